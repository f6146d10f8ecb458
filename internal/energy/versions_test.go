package energy_test

import (
	"context"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/postgres"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
	"github.com/powermeter/powermeter/internal/store/sqlite"
)

// summaryCounter counts the summaries a store hands out (Days; DayVersions
// hands out none).
type summaryCounter struct {
	store.Store
	read atomic.Int64
}

func (c *summaryCounter) Days(ctx context.Context, source, from, to string) ([]store.Day, error) {
	ds, err := c.Store.Days(ctx, source, from, to)
	for _, d := range ds {
		if len(d.Summary) > 0 {
			c.read.Add(1)
		}
	}
	return ds, err
}

func (c *summaryCounter) DayVersions(ctx context.Context, source, from, to string) ([]store.Day, error) {
	ds, err := c.Store.(store.DayVersioner).DayVersions(ctx, source, from, to)
	for _, d := range ds {
		if d.Summary != nil || d.SummaryVersion != 0 {
			return nil, context.Canceled // a summary where none belongs
		}
	}
	return ds, err
}

// TestWarmTotalsReadVersions: with the summaries decoded in memory, Totals
// reads only the days' versions; a day that changed (a reading, here from
// a second server with its own cache) is read or computed again, and every
// answer equals a cold computation from the readings.
func TestWarmTotalsReadVersions(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		st, err := sqlite.OpenFile(context.Background(), filepath.Join(t.TempDir(), "pm.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		testWarmTotals(t, st, st)
	})
	t.Run("postgres", func(t *testing.T) {
		u := pgtest.URL(t)
		ctx := context.Background()
		a, err := postgres.OpenWith(ctx, u, postgres.Options{FoldEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := postgres.OpenWith(ctx, u, postgres.Options{FoldEvery: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		testWarmTotals(t, a, b)
	})
}

// testWarmTotals reads through st and writes the late reading through
// other (the same database; another server on PostgreSQL).
func testWarmTotals(t *testing.T, st, other store.Store) {
	ctx := context.Background()
	if err := st.EnsureSource(ctx, "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	start := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	var rs []reading.Reading
	for i := 0; i < 5*24*60; i++ { // five days, a reading a minute
		e := float64(i) * 2
		rs = append(rs, reading.Reading{Device: "plug", Time: start.Add(time.Duration(i) * time.Minute), Power: 120, EnergyIn: &e})
	}
	if _, err := st.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.(store.DayVersioner); !ok {
		t.Fatalf("%T lists no versions alone", st)
	}
	now := func() time.Time { return start.AddDate(0, 0, 10) }
	cs := &summaryCounter{Store: st}
	calc := &energy.Calc{Store: cs, Source: "home", Zone: time.UTC, Interval: time.Minute, Now: now, Cache: energy.NewCache(100)}
	cold := func() []energy.DaySummary {
		t.Helper()
		// no cache and a store without DayVersions: from the readings
		// (or the stored summaries) the old way
		c := &energy.Calc{Store: struct{ store.Store }{st}, Source: "home", Zone: time.UTC, Interval: time.Minute, Now: now}
		days, err := c.Totals(ctx, "2025-01-01", "2025-12-31")
		if err != nil {
			t.Fatal(err)
		}
		return days
	}
	same := func(got, want []energy.DaySummary) {
		t.Helper()
		if len(got) != len(want) {
			t.Fatalf("%d days, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i].Day != want[i].Day || got[i].InWh != want[i].InWh || got[i].PeakW != want[i].PeakW || got[i].Readings != want[i].Readings {
				t.Fatalf("day %s: %+v, want %+v", want[i].Day, got[i], want[i])
			}
		}
	}
	totals := func() []energy.DaySummary {
		t.Helper()
		days, err := calc.Totals(ctx, "2025-01-01", "2025-12-31")
		if err != nil {
			t.Fatal(err)
		}
		return days
	}

	first := totals() // computes and caches all five days
	if len(first) != 5 {
		t.Fatalf("%d days, want 5", len(first))
	}
	same(first, cold())
	cs.read.Store(0)
	same(totals(), first)
	if n := cs.read.Load(); n != 0 {
		t.Errorf("warm totals read %d summaries from the store, want 0", n)
	}

	// another calculator (a restart: nothing in memory) reads them once
	calc.Cache = energy.NewCache(100)
	same(totals(), first)
	if n := cs.read.Load(); n != 5 {
		t.Errorf("totals after a restart read %d summaries, want 5", n)
	}
	cs.read.Store(0)
	same(totals(), first)
	if n := cs.read.Load(); n != 0 {
		t.Errorf("warm totals read %d summaries from the store, want 0", n)
	}

	// a late reading on the third day (another server): that day is read
	// and computed again, the others stay in memory
	e := 2.0*(2*24*60+30) + 0.5
	late := reading.Reading{Device: "plug", Time: start.Add((2*24*60+30)*time.Minute + 30*time.Second), Power: 5000, EnergyIn: &e}
	if _, err := other.Insert(ctx, "home", []reading.Reading{late}); err != nil {
		t.Fatal(err)
	}
	after := totals()
	same(after, cold())
	if after[2].PeakW != 5000 || after[2].Readings != first[2].Readings+1 {
		t.Errorf("day 3 after a late reading: peak %v, %d readings; want 5000 and %d", after[2].PeakW, after[2].Readings, first[2].Readings+1)
	}
	if n := cs.read.Load(); n != 1 {
		t.Errorf("totals after one day changed read %d summaries, want 1 (that day's row, its summary of the old version)", n)
	}
	same(totals(), after)
}
