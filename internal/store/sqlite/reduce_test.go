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
