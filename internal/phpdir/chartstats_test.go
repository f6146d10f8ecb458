package phpdir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/powermeter/powermeter/internal/store"
)

func TestParseChartStatsLine(t *testing.T) {
	for _, c := range []struct {
		line string
		want store.ImportedDay
		err  string
	}{
		{"2023-07-10,1834.25,06:02:10,21:14:00,612.5,13:01:40", store.ImportedDay{Day: "2023-07-10", InWh: 1834.25, PeakW: 612.5, PeakAt: "13:01:40", First: "06:02:10", Last: "21:14:00", Origin: ChartStats}, ""},
		{"2023-07-11,120,06:02:10,21:14:00,-612.5,13:01:40,2450.5", store.ImportedDay{Day: "2023-07-11", InWh: 120, OutWh: 2450.5, PeakW: 612.5, PeakAt: "13:01:40", First: "06:02:10", Last: "21:14:00", Origin: ChartStats}, ""},
		// $unit2 = '%': the charge pair without feed-in (8 fields) is no feed-in
		{"2023-07-12,300,06:00:00,20:00:00,80,12:00:00,12,98", store.ImportedDay{Day: "2023-07-12", InWh: 300, PeakW: 80, PeakAt: "12:00:00", First: "06:00:00", Last: "20:00:00", Origin: ChartStats}, ""},
		{"2023-07-13,300,06:00:00,20:00:00,80,12:00:00,55.5,12,98", store.ImportedDay{Day: "2023-07-13", InWh: 300, OutWh: 55.5, PeakW: 80, PeakAt: "12:00:00", First: "06:00:00", Last: "20:00:00", Origin: ChartStats}, ""},
		{"2023-07-14,0,,,0,", store.ImportedDay{Day: "2023-07-14", Origin: ChartStats}, ""},
		{"13.07.2023,300", store.ImportedDay{}, "field 1"},
		{"2023-07-15,lots", store.ImportedDay{}, "field 2 (Wh)"},
		{"2023-07-15", store.ImportedDay{}, "want date,Wh"},
	} {
		got, err := ParseChartStatsLine(c.line)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%q: %v, want an error with %q", c.line, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q: %+v %v\nwant %+v", c.line, got, err, c.want)
		}
	}
}

// Days that exist only in chart_stats.csv are imported as day summaries;
// days with a raw file keep their readings; the cache files are no day
// files.
func TestImportKeepsDaysOnlyInChartStats(t *testing.T) {
	dir := t.TempDir()
	lines := phpFolder(t, dir) // 2026-10-24 … 2026-10-26 as day files
	_ = lines
	cs := strings.Join([]string{
		"2023-07-10,1834.25,06:02:10,21:14:00,612.5,13:01:40",
		"2023-07-11,120,06:02:10,21:14:00,612.5,13:01:40,2450.5",
		"2026-10-24,999999,00:00:00,23:55:00,1,12:00:00", // has its day file: ignored
		"garbage line",
		"2023-07-10,1900,06:02:10,21:14:00,612.5,13:01:40", // the PHP app's last line for a day wins
		"",
	}, "\n")
	if err := os.WriteFile(filepath.Join(dir, ChartStats), []byte(cs), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "chart_details_50.csv"), []byte("2023-07-10,a:0:{}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st := openStore(t)
	var refused []Refusal
	opt := ImportOptions{Source: "home", Zone: berlin, OnRefuse: func(r Refusal) { refused = append(refused, r) }}
	res, err := Import(context.Background(), st, dir, opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Summaries != 2 || res.SummariesNew != 2 || res.StatsLines != 4 || res.Files != 3 {
		t.Errorf("result %+v", res)
	}
	if len(refused) != 1 || refused[0].File != ChartStats || refused[0].Line != 4 {
		t.Errorf("refused %+v", refused)
	}
	got, err := st.(store.DayImporter).ImportedDays(context.Background(), "home", "2000-01-01", "2100-01-01")
	if err != nil || len(got) != 2 || got[0].Day != "2023-07-10" || got[0].InWh != 1900 || got[1].OutWh != 2450.5 {
		t.Errorf("imported days %+v %v", got, err)
	}
	// the raw days are still readings, not summaries
	ds, _ := st.Days(context.Background(), "home", "2026-10-24", "2026-10-26")
	if len(ds) != 3 {
		t.Errorf("days with readings %d", len(ds))
	}
	// idempotent
	res, err = Import(context.Background(), st, dir, opt)
	if err != nil || res.Summaries != 2 || res.SummariesNew != 0 || res.Imported != 0 {
		t.Errorf("second import %+v %v", res, err)
	}
}
