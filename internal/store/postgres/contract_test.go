package postgres

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/storetest"
)

// TestContract runs the store contract suite; each test gets its own schema.
func TestContract(t *testing.T) {
	var urls sync.Map // *Store → its URL, for Reopen
	storetest.Run(t,
		func(t *testing.T) store.Store {
			s, u := open(t)
			urls.Store(s, u)
			return s
		},
		storetest.Reopen(func(t *testing.T, closed store.Store) store.Store {
			u, ok := urls.Load(closed)
			if !ok {
				t.Fatal("reopen: store not opened by this test")
			}
			return openURL(t, u.(string))
		}))
}

// folding is a Store that folds everything into chunks after each Insert,
// so the contract suite runs against the compact layout: replays found in
// chunks, late readings merged into chunks, ranges, days and latest
// readings read from chunks.
type folding struct{ *Store }

func (f folding) Insert(ctx context.Context, source string, rs []reading.Reading) (store.InsertResult, error) {
	res, err := f.Store.Insert(ctx, source, rs)
	if err != nil {
		return res, err
	}
	if _, err := f.Fold(ctx, time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		return res, err
	}
	return res, nil
}

// TestContractFolded runs the suite with every reading folded into chunks
// as soon as it is inserted.
func TestContractFolded(t *testing.T) {
	var urls sync.Map // folding → its URL, for Reopen
	storetest.Run(t,
		func(t *testing.T) store.Store {
			s, u := open(t)
			f := folding{s}
			urls.Store(f, u)
			return f
		},
		storetest.Reopen(func(t *testing.T, closed store.Store) store.Store {
			u, ok := urls.Load(closed)
			if !ok {
				t.Fatal("reopen: store not opened by this test")
			}
			return folding{openURL(t, u.(string))}
		}))
}
