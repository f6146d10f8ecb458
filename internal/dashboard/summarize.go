package dashboard

import (
	"context"
	"runtime"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/store"
)

// Pages that add many days up (overview, year, month) never compute a long
// backlog of day summaries on the request path, as after importing a year:
// they take what is cached, compute what fits in SummaryBudget (in
// parallel), and leave the rest to one background job per source; the page
// says how many days are still to do and reloads itself until none are.

// totals returns the summaries of from..to and how many days are still
// being summarized in the background.
func (d *Dashboard) totals(ctx context.Context, source string, p *page, from, to string) ([]energy.DaySummary, int, error) {
	calc := d.calc(source, p.Zone)
	days, pending, err := calc.TotalsWithin(ctx, from, to, d.o.SummaryBudget, runtime.GOMAXPROCS(0))
	if err != nil {
		return nil, 0, err
	}
	if len(pending) > 0 {
		d.summarizeLater(source, p, pending)
	}
	return days, len(pending), nil
}

// summarizeLater starts (unless one runs) the background job of a source.
func (d *Dashboard) summarizeLater(source string, p *page, days []store.Day) {
	d.mu.Lock()
	if d.summarizing == nil {
		d.summarizing = map[string]bool{}
	}
	if d.summarizing[source] {
		d.mu.Unlock()
		return
	}
	d.summarizing[source] = true
	d.mu.Unlock()
	calc := d.calc(source, p.Zone)
	go func() {
		defer func() {
			d.mu.Lock()
			delete(d.summarizing, source)
			d.mu.Unlock()
		}()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-d.done:
				cancel()
			case <-ctx.Done():
			}
		}()
		start := time.Now()
		if err := calc.ComputeDays(ctx, days, runtime.GOMAXPROCS(0)); err != nil && ctx.Err() == nil {
			d.o.Log.Warn("summarizing days in the background", "source", source, "days", len(days), "err", err)
			return
		}
		d.o.Log.Info("summarized days in the background", "source", source, "days", len(days), "took", time.Since(start).Round(time.Millisecond))
	}()
}

// Summarizing reports whether a background job summarizes days of source.
func (d *Dashboard) Summarizing(source string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.summarizing[source]
}
