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
