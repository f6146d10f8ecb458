package sqlite

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// TestReduceUpgrade opens a schema-2 file (before retention): the upgrade
// keeps its readings, nothing is reduced, and Reduce works on it.
func TestReduceUpgrade(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "pm.db")
	s, err := OpenFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	var rs []reading.Reading
	for i := range 12 {
		rs = append(rs, reading.Reading{Device: "plug", Time: t0.Add(time.Duration(i) * 10 * time.Second), Power: float64(i)})
	}
	if _, err := s.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	s.Close()
	db, err := openRaw(ctx, path, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, "ALTER TABLE sources DROP COLUMN reduced_before; PRAGMA user_version = 2"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err = OpenFile(ctx, path)
	if err != nil {
		t.Fatalf("open the schema-2 file: %v", err)
	}
	defer s.Close()
	if h, err := s.Horizon(ctx, "home"); err != nil || !h.IsZero() {
		t.Fatalf("Horizon after the upgrade = %s %v, want zero", h, err)
	}
	// the last reading of each minute stands for it
	last := func(_ *reading.Reading, raw []reading.Reading, _ *reading.Reading) []reading.Reading {
		var out []reading.Reading
		for i, r := range raw {
			if i+1 < len(raw) && raw[i+1].Time.Truncate(time.Minute).Equal(r.Time.Truncate(time.Minute)) {
				continue
			}
			out = append(out, reading.Reading{Device: r.Device, Time: r.Time.Truncate(time.Minute), Power: r.Power,
				Reduced: &reading.Reduced{Count: 6, LastTime: r.Time, LastPower: r.Power, MinPower: r.Power, MaxPower: r.Power}})
		}
		return out
	}
	res, err := s.Reduce(ctx, "home", t0.Add(time.Hour), 0, last)
	if err != nil || res.Raw != 12 || res.Reduced != 2 || !res.Done {
		t.Fatalf("Reduce after the upgrade = %+v %v, want 12 raw readings in 2 minutes", res, err)
	}
}

// TestReducePrevAfterReducedMinutes: a device's raw minutes around
// reduced ones already stored (a migrate): in steps of one minute, the
// minute after the reduced ones gets the newest of them as prev, not the
// last minute an earlier step reduced.
func TestReducePrevAfterReducedMinutes(t *testing.T) {
	defer func(n int) { ReduceStep = n }(ReduceStep)
	ReduceStep = 6
	ctx := t.Context()
	s, err := OpenFile(ctx, filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.EnsureSource(ctx, "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	minute := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	var rs []reading.Reading
	for _, m := range []int{0, 1, 4} {
		for i := range 6 {
			rs = append(rs, reading.Reading{Device: "a", Time: minute(m).Add(time.Duration(i) * 10 * time.Second), Power: float64(m)})
		}
	}
	for _, m := range []int{2, 3} {
		rs = append(rs, reading.Reading{Device: "a", Time: minute(m), Power: float64(m),
			Reduced: &reading.Reduced{Count: 6, MinPower: float64(m), MaxPower: float64(m), LastTime: minute(m).Add(50 * time.Second), LastPower: float64(m)}})
	}
	if _, err := s.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	var prevOf4 *reading.Reading
	fn := func(prev *reading.Reading, raw []reading.Reading, _ *reading.Reading) []reading.Reading {
		var out []reading.Reading
		for _, r := range raw {
			at := r.Time.Truncate(time.Minute)
			if at.Equal(minute(4)) && prev != nil {
				p := *prev
				prevOf4 = &p
			}
			if len(out) == 0 || !out[len(out)-1].Time.Equal(at) {
				out = append(out, reading.Reading{Device: r.Device, Time: at, Power: r.Power,
					Reduced: &reading.Reduced{Count: 6, MinPower: r.Power, MaxPower: r.Power, LastTime: at.Add(50 * time.Second), LastPower: r.Power}})
			}
		}
		return out
	}
	if _, err := s.Reduce(ctx, "home", minute(10), 0, fn); err != nil {
		t.Fatal(err)
	}
	if prevOf4 == nil || !prevOf4.Time.Equal(minute(3)) || prevOf4.Reduced == nil {
		t.Fatalf("prev of minute 4: %+v, want the reduced minute 3", prevOf4)
	}
}
