package dashboard

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// recordHandler keeps the log records of level Warn and above.
type recordHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r.Clone())
	return nil
}
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *recordHandler) WithGroup(string) slog.Handler      { return h }

// TestExportPHPSkipsLoggedOnce: lines the old format cannot hold are left
// out and counted in one warning per download.
func TestExportPHPSkipsLoggedOnce(t *testing.T) {
	st := openStore(t)
	t0 := time.Date(2026, 3, 29, 10, 0, 0, 0, time.UTC)
	var rs []reading.Reading
	for i := range 5 {
		rs = append(rs, reading.Reading{Device: "a", Time: t0.Add(time.Duration(i) * 10 * time.Second), Power: 5e6}) // 7 digits
	}
	rs = append(rs, reading.Reading{Device: "a", Time: t0.Add(time.Minute), Power: 12.5})
	insert(t, st, "home", rs...)
	h := &recordHandler{}
	d := newTestDashboard(t, st, Options{Log: slog.New(h)})
	r := get(t, mux(d), "/s/home/export.csv?from=2026-03-29&to=2026-03-29&format=php")
	if want := "29.03.2026,12:01:00,12.50\n"; r.code != 200 || r.body != want {
		t.Fatalf("php export %d %q, want %q", r.code, r.body, want)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.recs) != 1 {
		t.Fatalf("%d warnings, want 1", len(h.recs))
	}
	lines := int64(-1)
	h.recs[0].Attrs(func(a slog.Attr) bool {
		if a.Key == "lines" {
			lines = a.Value.Int64()
		}
		return true
	})
	if lines != 5 {
		t.Errorf("warning %q counts %d lines, want 5", h.recs[0].Message, lines)
	}
}
