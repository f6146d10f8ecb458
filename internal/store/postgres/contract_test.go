package postgres

import (
	"sync"
	"testing"

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
