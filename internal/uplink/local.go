package uplink

import (
	"context"
	"fmt"
	"time"

	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// Inserter is the part of store.Store the local sender needs.
type Inserter interface {
	Insert(ctx context.Context, source string, rs []reading.Reading) (store.InsertResult, error)
}

// LocalName is the outbox consumer name of the local store.
const LocalName = "local"

type localSender struct {
	st       Inserter
	source   string
	onReject func(Rejected)
}

// NewLocal builds a sender that writes into the store of the server
// running in the same process, as source.
func NewLocal(st Inserter, source string, onReject func(Rejected)) Sender {
	if onReject == nil {
		onReject = func(Rejected) {}
	}
	return &localSender{st: st, source: source, onReject: onReject}
}

func (l *localSender) Name() string  { return LocalName }
func (l *localSender) MaxBatch() int { return 1000 }

func (l *localSender) Send(ctx context.Context, items []outbox.Item, _ func() time.Time, _ func(int) error) (int, error) {
	all := func(string) bool { return true }
	return sendFiltered(items, all, l.onReject, func(batch []outbox.Item) (int, error) {
		rs := make([]reading.Reading, len(batch))
		for i, it := range batch {
			rs[i] = it.Reading
		}
		if _, err := l.st.Insert(ctx, l.source, rs); err != nil {
			return 0, fmt.Errorf("local store: inserting %d readings: %w", len(rs), err)
		}
		return len(batch), nil
	})
}
