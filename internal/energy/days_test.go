package energy

import (
	"context"
	"errors"
	"sort"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// memStore is an in-memory store.Store of one source for Calc tests; it
// counts Range calls and cached summaries.
type memStore struct {
	rs     []reading.Reading
	ranges int
	puts   map[string][]byte
}

func (m *memStore) EnsureSource(context.Context, string, string) error { return nil }

func (m *memStore) Insert(_ context.Context, _ string, rs []reading.Reading) (store.InsertResult, error) {
	m.rs = append(m.rs, rs...)
	sort.SliceStable(m.rs, func(i, j int) bool {
		if !m.rs[i].Time.Equal(m.rs[j].Time) {
			return m.rs[i].Time.Before(m.rs[j].Time)
		}
		return m.rs[i].Device < m.rs[j].Device
	})
	return store.InsertResult{Inserted: len(rs)}, nil
}

func (m *memStore) Latest(context.Context, string) ([]reading.Reading, error) { return nil, nil }

func (m *memStore) Range(_ context.Context, _ string, from, to time.Time, fn func(reading.Reading) error) error {
	m.ranges++
	for _, r := range m.rs {
		if !r.Time.Before(from) && r.Time.Before(to) {
			if err := fn(r); err != nil {
				return err
			}
		}
	}
	return nil
}

func (m *memStore) Sources(context.Context) ([]store.SourceInfo, error) { return nil, nil }

func (m *memStore) LastTime(context.Context, string) (time.Time, bool, error) {
	return time.Time{}, false, errors.New("not used")
}

func (m *memStore) Days(context.Context, string, string, string) ([]store.Day, error) {
	return nil, errors.New("not used")
}

func (m *memStore) PutDaySummary(_ context.Context, _, day string, _ int64, b []byte) (bool, error) {
	if m.puts == nil {
		m.puts = map[string][]byte{}
	}
	m.puts[day] = b
	return true, nil
}

func (m *memStore) Close() error { return nil }

// counterRun is readings of a meter with an import counter every 10 s over
// [from, to) (seconds from day0), the counter at wh throughout.
func counterRun(dev string, from, to int, wh float64) []reading.Reading {
	var rs []reading.Reading
	for s := from; s < to; s += 10 {
		r := pw(dev, at(day0, s), 0)
		r.EnergyIn = reading.F(wh)
		rs = append(rs, r)
	}
	return rs
}

// TestCounterGapAcrossMidnight: a meter offline 22:30–01:00 whose counter
// rose 2000 Wh meanwhile; a power-only plug keeps reporting. The increase
// is split by time: 1.5 h of the 2.5 h gap (1200 Wh) before midnight, 1 h
// (800 Wh) after.
func TestCounterGapAcrossMidnight(t *testing.T) {
	m := &memStore{}
	ctx := context.Background()
	var rs []reading.Reading
	rs = append(rs, counterRun("meter", -3*3600, -5400+10, 5000)...) // last at 22:30:00
	rs = append(rs, counterRun("meter", 3600, 3*3600, 7000)...)      // first at 01:00:00
	for s := -3 * 3600; s < 3*3600; s += 10 {
		rs = append(rs, pw("plug", at(day0, s), 0))
	}
	if _, err := m.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	c := &Calc{Store: m, Source: "home", Zone: time.UTC, Now: func() time.Time { return at(day0, 4*86400) }}
	prev, err := c.Compute(ctx, "2026-05-31", nil)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := c.Compute(ctx, "2026-06-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "day before", prev.InWh, 1200)
	near(t, "day after", cur.InWh, 800)
	if len(cur.Devices) != 2 || cur.Devices[0].Device != "meter" || cur.Devices[0].InWh != cur.InWh {
		t.Errorf("devices of the day after: %+v", cur.Devices)
	}

	// Export counters go the same way, and a gap that ends exactly at
	// midnight gives the day after nothing.
	m2 := &memStore{}
	a, b := pw("inv", at(day0, -7200), 0), pw("inv", at(day0, 0), 0)
	a.EnergyOut, b.EnergyOut = reading.F(100), reading.F(160)
	if _, err := m2.Insert(ctx, "home", []reading.Reading{a, b}); err != nil {
		t.Fatal(err)
	}
	c.Store = m2
	prev, _ = c.Compute(ctx, "2026-05-31", nil)
	cur, _ = c.Compute(ctx, "2026-06-01", nil)
	near(t, "export day before", prev.OutWh, 60)
	near(t, "export day after", cur.OutWh, 0)
}

// TestCounterGapLookupsAreRare: a meter reporting without gaps costs one
// read per day, and a gap longer than LookAround is not attributed.
func TestCounterGapLookupsAreRare(t *testing.T) {
	m := &memStore{}
	ctx := context.Background()
	if _, err := m.Insert(ctx, "home", counterRun("meter", -3600, 86400+3600, 10)); err != nil {
		t.Fatal(err)
	}
	c := &Calc{Store: m, Source: "home", Zone: time.UTC, Now: func() time.Time { return at(day0, 4*86400) }}
	if _, err := c.Compute(ctx, "2026-06-01", nil); err != nil {
		t.Fatal(err)
	}
	if m.ranges != 1 {
		t.Errorf("a day without gaps took %d reads, want 1", m.ranges)
	}

	m = &memStore{}
	rs := counterRun("meter", -26*3600, -25*3600, 0)
	rs = append(rs, counterRun("meter", 3600, 7200, 500)...)
	if _, err := m.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	c.Store = m
	s, err := c.Compute(ctx, "2026-06-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "gap over a day", s.InWh, 0)
	if m.ranges != 7 { // the day, back 1, 3, 6, 12 and 24 h, ahead (its last reading is at 02:00)
		t.Errorf("%d reads, want 7", m.ranges)
	}
}

// TestCounterGapNotCachedWhileOffline: a day whose meter is still offline
// past midnight is not cached, since the reading that completes it is yet
// to come; once it came, the day is cached with its share.
func TestCounterGapNotCachedWhileOffline(t *testing.T) {
	m := &memStore{}
	ctx := context.Background()
	if _, err := m.Insert(ctx, "home", counterRun("meter", -3600, -1800+10, 1000)); err != nil { // until 23:30
		t.Fatal(err)
	}
	now := at(day0, 1800)
	c := &Calc{Store: m, Source: "home", Zone: time.UTC, Now: func() time.Time { return now }}
	s, err := c.ComputeAndCache(ctx, "2026-05-31", 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "while offline", s.InWh, 0)
	if len(m.puts) != 0 {
		t.Fatal("day cached while its meter's gap is still open")
	}
	if _, err := m.Insert(ctx, "home", counterRun("meter", 5400, 5410, 1300)); err != nil { // back at 01:30
		t.Fatal(err)
	}
	now = at(day0, 7200)
	if s, err = c.ComputeAndCache(ctx, "2026-05-31", 7, nil); err != nil {
		t.Fatal(err)
	}
	near(t, "after", s.InWh, 75) // 30 min of the 2-h gap: a quarter of 300 Wh
	if len(m.puts) != 1 {
		t.Fatal("complete day not cached")
	}
	// A meter gone for good stops holding the day back after LookAround.
	m2 := &memStore{}
	if _, err := m2.Insert(ctx, "home", counterRun("meter", -3600, -1800+10, 1000)); err != nil {
		t.Fatal(err)
	}
	c.Store = m2
	now = at(day0, 86400+60)
	if _, err := c.ComputeAndCache(ctx, "2026-05-31", 7, nil); err != nil {
		t.Fatal(err)
	}
	if len(m2.puts) != 1 {
		t.Error("day not cached a LookAround after its end")
	}
}
