package phpdir

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

func TestExportRefusesPartialDays(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	rs := []reading.Reading{
		{Device: "plug", Time: time.Date(2026, 11, 1, 6, 0, 0, 0, berlin), Power: 1},
		{Device: "plug", Time: time.Date(2026, 11, 1, 18, 0, 0, 0, berlin), Power: 2},
		{Device: "plug", Time: time.Date(2026, 11, 2, 6, 0, 0, 0, berlin), Power: 3},
	}
	if _, err := st.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	full := "01.11.2026,06:00:00,1.00\n01.11.2026,18:00:00,2.00\n"
	if err := os.WriteFile(filepath.Join(dir, "2026-11-01.csv"), []byte(full), 0o644); err != nil {
		t.Fatal(err)
	}
	opt := ExportOptions{Source: "home", Device: "plug", Zone: berlin}
	for _, c := range []struct{ from, to time.Time }{
		{from: time.Date(2026, 11, 1, 12, 0, 0, 0, berlin)},
		{to: time.Date(2026, 11, 1, 12, 0, 0, 0, berlin)},
		{from: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)}, // UTC midnight is 01:00 in Berlin
	} {
		o := opt
		o.From, o.To = c.from, c.to
		res, err := Export(ctx, st, dir, o)
		if !errors.Is(err, ErrPartialDay) || res.Files != 0 {
			t.Errorf("export from %v to %v: %+v, %v; want ErrPartialDay", c.from, c.to, res, err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "2026-11-01.csv")); string(got) != full {
		t.Errorf("the complete day file was changed to %q", got)
	}
	// Midnights (the end of the range exclusive) are fine.
	o := opt
	o.From, o.To = time.Date(2026, 11, 2, 0, 0, 0, 0, berlin), time.Date(2026, 11, 3, 0, 0, 0, 0, berlin).UTC()
	res, err := Export(ctx, st, dir, o)
	if err != nil || res.Files != 1 || res.Lines != 1 {
		t.Errorf("export of 2026-11-02: %+v, %v; want 1 file, 1 line", res, err)
	}
}

func TestExportFileModes(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	if _, err := st.Insert(ctx, "home", []reading.Reading{{Device: "plug", Time: time.Date(2026, 11, 1, 6, 0, 0, 0, berlin), Power: 1}}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if _, err := Export(ctx, st, dir, ExportOptions{Source: "home", Device: "plug", Zone: berlin}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"2026-11-01.csv", "stats.txt"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %v, want 0644 (the PHP app's web server reads it)", name, fi.Mode().Perm())
		}
	}
}

func TestExportSkipsUnwritableReadings(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	at := func(h int) time.Time { return time.Date(2026, 11, 1, h, 0, 0, 0, berlin) }
	rs := []reading.Reading{
		{Device: "plug", Time: at(1), Power: 1},
		{Device: "plug", Time: at(2), Power: 12345678},                       // 8 digits
		{Device: "plug", Time: at(3), Power: 3, Phases: make([]float64, 13)}, // 17 fields
		{Device: "plug", Time: at(4), Power: 4},
		{Device: "plug", Time: at(26), Power: 1e7}, // the only reading of 11-02
	}
	if _, err := st.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var skips []Skip
	res, err := Export(ctx, st, dir, ExportOptions{Source: "home", Device: "plug", Zone: berlin,
		OnSkip: func(s Skip) { skips = append(skips, s) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 1 || res.Lines != 2 || res.Skipped != 3 {
		t.Fatalf("export: %+v, want 1 file, 2 lines, 3 skipped", res)
	}
	if len(skips) != 3 || !skips[0].Time.Equal(at(2)) || !strings.Contains(skips[0].String(), "6 characters") ||
		!strings.Contains(skips[1].String(), "13 further values") {
		t.Errorf("skips: %v", skips)
	}
	got, _ := os.ReadFile(filepath.Join(dir, "2026-11-01.csv"))
	if want := "01.11.2026,01:00:00,1.00\n01.11.2026,04:00:00,4.00\n"; string(got) != want {
		t.Errorf("day file %q, want %q", got, want)
	}
	if _, err := os.Stat(filepath.Join(dir, "2026-11-02.csv")); !os.IsNotExist(err) {
		t.Errorf("a day with no writable reading got a file (%v)", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "stats.txt")); string(got) != "01.11.2026,04:00:00,4.00" {
		t.Errorf("stats.txt %q", got)
	}
}
