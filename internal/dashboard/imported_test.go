package dashboard

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/powermeter/powermeter/internal/store"
)

// Days imported from the PHP app's chart_stats.csv show in the overview,
// counted in the totals and marked as without raw readings.
func TestOverviewShowsImportedDays(t *testing.T) {
	st := openStore(t)
	insert(t, st, "home", fillHome()...)
	h := mux(newTestDashboard(t, st, Options{}))
	before := whAttrs(get(t, h, "/s/home/overview?month=2026-03").body)
	_, err := st.(store.DayImporter).PutImportedDays(context.Background(), "home", []store.ImportedDay{
		{Day: "2026-03-10", InWh: 1500, OutWh: 250, PeakW: 700, PeakAt: "13:00:00", Origin: "chart_stats.csv"},
		{Day: "2025-08-01", InWh: 1000, PeakW: 300, Origin: "chart_stats.csv"},
		{Day: "2026-03-29", InWh: 99999, Origin: "chart_stats.csv"}, // has readings: they win
	})
	if err != nil {
		t.Fatal(err)
	}
	r := get(t, h, "/s/home/overview?month=2026-03")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	if wh := whAttrs(r.body); math.Abs(wh["all-in"]-before["all-in"]-2500) > 1e-6 || math.Abs(wh["all-out"]-before["all-out"]-250) > 1e-6 {
		t.Errorf("totals %v, want %v + 2500 Wh in and 250 Wh out imported", wh, before)
	}
	for _, s := range []string{`<tr id="d-2026-03-10" class="imported"`, "summary only", "of them a day summary only (no raw readings)", `id="y-2025"`} {
		if !strings.Contains(r.body, s) {
			t.Errorf("overview lacks %q", s)
		}
	}
	// an imported day has no day page link (there are no readings to chart)
	if strings.Contains(r.body, `href="/s/home/day/2026-03-10"`) {
		t.Error("an imported day links to a day page")
	}
	if !strings.Contains(r.body, `href="/s/home/day/2026-03-29"`) || strings.Contains(r.body, "99.99") {
		t.Error("a day with readings lost its page or took the imported figures")
	}
}
