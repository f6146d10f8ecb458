package ingest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store/sqlite"
)

var berlin, _ = time.LoadLocation("Europe/Berlin")

func parse(t *testing.T, s string) legacy.Line {
	t.Helper()
	l, err := legacy.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.OpenFile(ctx, filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.EnsureSource(ctx, "home", "Europe/Berlin")
	early := time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC) // 02:30 CEST
	late := early.Add(time.Hour)                            // 02:30 CET

	// The source is already past the night (a stored reading at 09:00).
	if _, err := st.Insert(ctx, "home", []reading.Reading{{Device: Device, Time: time.Date(2026, 10, 25, 8, 0, 0, 0, time.UTC), Power: 1}}); err != nil {
		t.Fatal(err)
	}
	r := NewResolver(st)
	a, ta, err := r.Resolve(ctx, "home", berlin, parse(t, "25.10.2026,02:30:00,1.00"))
	if err != nil || !a.Equal(early) {
		t.Fatalf("first 02:30 of a replay: %v %v, want %v", a, err, early)
	}
	// its insert is still in flight: the twin must not take the same instant
	b, tb, err := r.Resolve(ctx, "home", berlin, parse(t, "25.10.2026,02:30:00,2.00"))
	if err != nil || !b.Equal(late) {
		t.Fatalf("second 02:30 while the first is in flight: %v %v, want %v", b, err, late)
	}
	// the same line again (a retry) gets the same instant
	c, tc, err := r.Resolve(ctx, "home", berlin, parse(t, "25.10.2026,02:30:00,2.00"))
	if err != nil || !c.Equal(late) {
		t.Fatalf("retried line: %v %v, want %v", c, err, late)
	}
	for _, x := range []Ticket{ta, tb, tc} {
		x.Done()
	}
	if n := len(r.state("home").pending); n != 0 {
		t.Fatalf("%d instants still pending after Done", n)
	}
	// an ordinary hour is never pending
	_, tn, err := r.Resolve(ctx, "home", berlin, parse(t, "25.10.2026,12:00:00,1.00"))
	if err != nil || tn != (Ticket{}) {
		t.Fatalf("an ordinary time got ticket %+v, %v", tn, err)
	}

	// A fresh resolver finds the earlier instant in the store.
	if _, err := st.Insert(ctx, "home", []reading.Reading{{Device: Device, Time: early, Power: 1}}); err != nil {
		t.Fatal(err)
	}
	r = NewResolver(st)
	d, _, err := r.Resolve(ctx, "home", berlin, parse(t, "25.10.2026,02:30:00,3.00"))
	if err != nil || !d.Equal(late) {
		t.Fatalf("02:30 with the earlier one stored: %v %v, want %v", d, err, late)
	}
	// a reading of another device at the early instant does not count
	r2 := NewResolver(st)
	e, _, err := r2.Resolve(ctx, "cabin", berlin, parse(t, "25.10.2026,02:45:00,3.00"))
	if err != nil || !e.Equal(early.Add(15*time.Minute)) {
		t.Fatalf("unknown source, first 02:45: %v %v", e, err)
	}
}

func TestParseBound(t *testing.T) {
	for _, c := range []struct {
		s    string
		end  bool
		want time.Time
	}{
		{"2026-11-26", false, time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC)},
		{"2026-11-26", true, time.Date(2026, 11, 26, 23, 0, 0, 0, time.UTC)},
		{"2026-10-25", true, time.Date(2026, 10, 25, 23, 0, 0, 0, time.UTC)},
		{"2026-11-26T12:00:00+01:00", false, time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)},
		{"2026-11-26T12:00:00Z", true, time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)},
	} {
		got, err := ParseBound(c.s, berlin, c.end)
		if err != nil || !got.Equal(c.want) || got.Location() != time.UTC {
			t.Errorf("ParseBound(%q, %v) = %v, %v; want %v", c.s, c.end, got, err, c.want)
		}
	}
	for _, s := range []string{"", "yesterday", "26.11.2026", "2026-11-26T12:00:00"} {
		if _, err := ParseBound(s, berlin, false); err == nil {
			t.Errorf("ParseBound(%q) accepted", s)
		}
	}
}

// TestResolveDoubledHourShared: two resolvers on one store (two servers),
// and a resent first-pass line while its insert is still in flight.
func TestResolveDoubledHourShared(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.OpenFile(ctx, filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.EnsureSource(ctx, "home", "Europe/Berlin")
	utc := func(h, m int) time.Time { return time.Date(2026, 10, 25, h, m, 0, 0, time.UTC) }
	resolve := func(r *Resolver, line string, insert bool) (time.Time, Ticket) {
		t.Helper()
		l := parse(t, line)
		at, tk, err := r.Resolve(ctx, "home", berlin, l)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		if insert {
			if _, err := st.Insert(ctx, "home", []reading.Reading{Reading(l, at)}); err != nil {
				t.Fatal(err)
			}
			tk.Done()
		}
		return at, tk
	}
	a, b := NewResolver(st), NewResolver(st)
	resolve(b, "25.10.2026,01:55:00,1.00", true) // b's memory: 23:55Z
	if at, _ := resolve(a, "25.10.2026,02:10:00,2.00,20.5", true); !at.Equal(utc(0, 10)) {
		t.Fatalf("first pass on a: %v", at)
	}
	// b must see a's reading at 00:10Z: other values → second pass
	if at, _ := resolve(b, "25.10.2026,02:10:00,3.00,20.5", true); !at.Equal(utc(1, 10)) {
		t.Fatalf("second pass on b: %v, want %v", at, utc(1, 10))
	}

	// in flight: 02:20 (not yet inserted), then 02:30, then 02:20 resent
	c := NewResolver(st)
	st.EnsureSource(ctx, "cabin", "Europe/Berlin")
	rc := func(line string) (time.Time, Ticket) {
		at, tk, err := c.Resolve(ctx, "cabin", berlin, parse(t, line))
		if err != nil {
			t.Fatal(err)
		}
		return at, tk
	}
	x, tx := rc("25.10.2026,02:20:00,5.00")
	y, ty := rc("25.10.2026,02:30:00,6.00")
	z, tz := rc("25.10.2026,02:20:00,5.00")
	w, tw := rc("25.10.2026,02:20:00,7.00")
	for _, k := range []Ticket{tx, ty, tz, tw} {
		k.Done()
	}
	if !x.Equal(utc(0, 20)) || !y.Equal(utc(0, 30)) || !z.Equal(x) || !w.Equal(utc(1, 20)) {
		t.Fatalf("in flight: %v %v, resent %v, second pass %v", x, y, z, w)
	}
}

// countingStore counts LastTime calls.
type countingStore struct {
	*sqlite.Store
	lastTimes int
}

func (c *countingStore) LastTime(ctx context.Context, source string) (time.Time, bool, error) {
	c.lastTimes++
	return c.Store.LastTime(ctx, source)
}

// TestPrime: a primed source's first line does not ask the store, and the
// primed instant is the one the line is placed against; a source not
// primed asks on its first line.
func TestPrime(t *testing.T) {
	ctx := context.Background()
	sq, err := sqlite.OpenFile(ctx, filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	for _, n := range []string{"home", "cabin", "other"} {
		sq.EnsureSource(ctx, n, "Europe/Berlin")
	}
	st := &countingStore{Store: sq}
	r := NewResolver(st)
	early := time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC) // 02:30 CEST
	// home has sent up to 02:59 CEST (as a store would have said); cabin nothing
	r.Prime([]string{"home", "cabin"}, map[string]time.Time{"home": early.Add(29 * time.Minute)})
	if _, tk, err := r.ResolveLine(ctx, "cabin", berlin, parse(t, "24.10.2026,12:00:00,1.00"), true); err != nil {
		t.Fatal(err)
	} else {
		tk.Done()
	}
	if st.lastTimes != 0 {
		t.Fatalf("a primed source's first line asked the store %d times", st.lastTimes)
	}
	// 02:30 again, live, after 02:59 CEST: the second pass (CET), which
	// only the primed instant tells (the store holds nothing)
	got, tk, err := r.ResolveLine(ctx, "home", berlin, parse(t, "25.10.2026,02:30:00,1.00"), true)
	if err != nil || !got.Equal(early.Add(time.Hour)) {
		t.Fatalf("02:30 after a primed 02:59 CEST: %v %v, want %v", got, err, early.Add(time.Hour))
	}
	tk.Done()
	st.lastTimes = 0
	if _, tk, err := r.ResolveLine(ctx, "other", berlin, parse(t, "24.10.2026,12:00:00,1.00"), true); err != nil {
		t.Fatal(err)
	} else {
		tk.Done()
	}
	if st.lastTimes != 1 {
		t.Fatalf("a source not primed asked the store %d times on its first line, want 1", st.lastTimes)
	}
}
