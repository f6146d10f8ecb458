package phpdir

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/server/ingest"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/sqlite"
)

var berlin, _ = time.LoadLocation("Europe/Berlin")

func openStore(t *testing.T) store.Store {
	t.Helper()
	st, err := sqlite.OpenFile(context.Background(), filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.EnsureSource(context.Background(), "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	return st
}

// phpFolder writes a data folder as the PHP receiver would: one file per
// local day, every 5 minutes, with the autumn night 2026-10-25 (02:xx
// twice) and a day given as .csv.gz. It returns the files' lines.
func phpFolder(t *testing.T, dir string) map[string][]string {
	t.Helper()
	files := map[string][]string{}
	start := time.Date(2026, 10, 24, 0, 0, 0, 0, berlin)
	end := time.Date(2026, 10, 27, 0, 0, 0, 0, berlin)
	i := 0
	for tm := start; tm.Before(end); tm = tm.Add(5 * time.Minute) {
		var temp *float64
		var extra []float64
		switch i % 4 {
		case 0:
			temp = reading.F(20 + float64(i%10)/10)
		case 1:
			extra = []float64{float64(i), 1.5}
		case 2:
			temp = reading.F(-2.25)
		}
		power := float64(i%500) + 0.25
		if i%7 == 0 {
			power = -power
		}
		line, err := legacy.Format(tm, berlin, power, temp, 1, extra)
		if i%4 == 2 {
			line, err = legacy.Format(tm, berlin, power, temp, 2, extra)
		}
		if err != nil {
			t.Fatal(err)
		}
		day := tm.In(berlin).Format("2006-01-02")
		files[day] = append(files[day], line)
		i++
	}
	for day, lines := range files {
		content := strings.Join(lines, "\n") + "\n"
		if day == "2026-10-26" {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			zw.Write([]byte(content))
			zw.Close()
			if err := os.WriteFile(filepath.Join(dir, day+".csv.gz"), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, day+".csv"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, "stats.txt"), []byte(files["2026-10-26"][len(files["2026-10-26"])-1]), 0o644)
	return files
}

func TestImportExportRoundTrip(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	in := t.TempDir()
	files := phpFolder(t, in)
	if n := len(files["2026-10-25"]); n != 25*12 {
		t.Fatalf("test data: the autumn day has %d lines, want %d", n, 25*12)
	}
	// a file with a refused line (line 2) and a blank line
	bad := "27.10.2026,00:00:00,1.00\n27.10.2026,00:05:00,5-3\n\n27.10.2026,00:10:00,2.00\r\n"
	if err := os.WriteFile(filepath.Join(in, "2026-10-27.csv"), []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, ls := range files {
		total += len(ls)
	}
	var refusals []Refusal
	var progress int64
	opt := ImportOptions{Source: "home", Zone: berlin, BatchSize: 100,
		OnRefuse: func(r Refusal) { refusals = append(refusals, r) },
		Progress: func(n int64) { progress += n }}
	res, err := Import(ctx, st, in, opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 4 || res.Imported != total+2 || res.Present != 0 || res.Refused != 1 || res.Lines != total+3 {
		t.Fatalf("import: %+v, want 4 files, %d imported, 1 refused", res, total+2)
	}
	if len(refusals) != 1 || refusals[0].String() != `2026-10-27.csv:2: stats field 3 (power) "5-3": not a number` {
		t.Fatalf("refusals %v", refusals)
	}
	_, size, _ := Files(in)
	if progress != size {
		t.Fatalf("progress reported %d bytes, files have %d", progress, size)
	}
	// the doubled hour is in order: 25 hours of 5-minute steps without gaps
	var prev time.Time
	n := 0
	st.Range(ctx, "home", time.Date(2026, 10, 24, 22, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 23, 0, 0, 0, time.UTC), func(r reading.Reading) error {
		if n > 0 && r.Time.Sub(prev) != 5*time.Minute {
			t.Errorf("gap or overlap before %s", r.Time)
		}
		prev = r.Time
		n++
		return nil
	})
	if n != 25*12 {
		t.Fatalf("autumn day: %d readings stored, want %d", n, 25*12)
	}

	// again: nothing new
	refusals = nil
	res, err = Import(ctx, st, in, opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 0 || res.Present != total+2 || res.Refused != 1 {
		t.Fatalf("second import: %+v", res)
	}

	out := t.TempDir()
	eres, err := Export(ctx, st, out, ExportOptions{Source: "home", Device: ingest.Device, Zone: berlin,
		From: time.Date(2026, 10, 24, 0, 0, 0, 0, berlin), To: time.Date(2026, 10, 27, 0, 0, 0, 0, berlin)})
	if err != nil {
		t.Fatal(err)
	}
	if eres.Files != 3 || eres.Lines != total {
		t.Fatalf("export: %+v, want 3 files and %d lines", eres, total)
	}
	for day, lines := range files {
		got, err := os.ReadFile(filepath.Join(out, day+".csv"))
		if err != nil {
			t.Fatal(err)
		}
		if want := strings.Join(lines, "\n") + "\n"; string(got) != want {
			t.Errorf("%s.csv differs from the original:\n%s", day, firstDiff(string(got), want))
		}
	}
	stats, err := os.ReadFile(filepath.Join(out, "stats.txt"))
	if err != nil || string(stats) != files["2026-10-26"][len(files["2026-10-26"])-1] {
		t.Fatalf("stats.txt %q %v", stats, err)
	}
	left, _ := filepath.Glob(filepath.Join(out, ".*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := 0; i < len(al) && i < len(bl); i++ {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d: got %q want %q", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("%d lines, want %d", len(al), len(bl))
}

func TestLine(t *testing.T) {
	tm := time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		r    reading.Reading
		want string
	}{
		{reading.Reading{Time: tm, Power: 123.45, Temperature: reading.F(21.5)}, "26.11.2026,12:00:00,123.45,21.5"},
		{reading.Reading{Time: tm, Power: 100}, "26.11.2026,12:00:00,100.00"},
		{reading.Reading{Time: tm, Power: 1.125, Temperature: reading.F(21.55)}, "26.11.2026,12:00:00,1.125,21.55"},
		{reading.Reading{Time: tm, Power: -0.001}, "26.11.2026,12:00:00,-0.001"},
		{reading.Reading{Time: tm, Power: 123.4, Phases: []float64{60.2, 63.2}}, "26.11.2026,12:00:00,123.40,,60.20,63.20"},
		{reading.Reading{Time: tm, Power: 0.0001}, "26.11.2026,12:00:00,0.000"},
	} {
		got, err := Line(c.r, berlin)
		if err != nil || got != c.want {
			t.Errorf("Line(%v) = %q, %v; want %q", c.r.Power, got, err, c.want)
		}
	}
	if _, err := Line(reading.Reading{Time: tm, Power: 12345678}, berlin); err == nil {
		t.Error("a power of 8 digits was written")
	}
	if _, err := Line(reading.Reading{Time: tm, Power: 1, Phases: make([]float64, 13)}, berlin); err == nil {
		t.Error("17 fields were written")
	}
}
