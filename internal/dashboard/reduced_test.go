package dashboard

import (
	"context"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// TestReducedDayChart: a day whose readings the SQLite store reduced to
// minutes (retention) keeps its energy, draws the band of its minutes'
// lowest to highest power (a 10-s spike of 5 kW still sets the axis),
// joins its points without holes, runs its energy line to the day's
// consumption, and exports the reduced fields.
func TestReducedDayChart(t *testing.T) {
	ctx := context.Background()
	st := openStore(t)
	day := "2026-03-27"
	start := time.Date(2026, 3, 27, 0, 0, 0, 0, berlin)
	spike := start.Add(12*time.Hour + 20*time.Second)
	rs := series("grid", start.Add(-time.Hour), start.Add(25*time.Hour), func(tt time.Time) float64 {
		if tt.Equal(spike.UTC()) {
			return 5000
		}
		return 300 + 200*math.Sin(float64(tt.Unix())/900) - 400*math.Max(0, math.Sin(float64(tt.Unix())/7200))
	})
	insert(t, st, "home", rs...)
	h := mux(newTestDashboard(t, st, Options{}))

	raw := get(t, h, "/s/home/day/"+day)
	if raw.code != 200 || strings.Contains(raw.body, `class="mm"`) {
		t.Fatalf("raw day: %d, band drawn: %v", raw.code, strings.Contains(raw.body, `class="mm"`))
	}
	rawWh := whAttrs(raw.body)

	red, ok := st.(store.Reducer)
	if !ok {
		t.Fatal("the SQLite store does not reduce")
	}
	for {
		res, err := red.Reduce(ctx, "home", start.Add(25*time.Hour), 0, energy.Reducer(10*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if res.Done {
			break
		}
	}
	got := get(t, h, "/s/home/day/"+day)
	if got.code != 200 {
		t.Fatalf("reduced day: %d", got.code)
	}
	redWh := whAttrs(got.body)
	for _, k := range []string{"day-in", "day-out"} {
		if math.Abs(rawWh[k]-redWh[k]) > 0.005 || rawWh[k] == 0 {
			t.Errorf("%s: raw %v Wh, reduced %v Wh", k, rawWh[k], redWh[k])
		}
	}
	// with a second device, the grid's own line keeps the spike too
	// (a reduced reading inserted as such, as migrate does)
	pm := start.Add(15 * time.Hour).UTC()
	insert(t, st, "home", reading.Reading{Device: "plug", Time: pm, Power: 1,
		Reduced: &reading.Reduced{Count: 1, MinPower: 1, MaxPower: 1, LastTime: pm, LastPower: 1}})
	two := get(t, h, "/s/home/day/"+day)
	if top, mm := topY(two.body, `data-s="dev:grid" d="`), topY(two.body, `class="mm" data-s="total" d="`); math.IsInf(top, 0) || top != mm {
		t.Errorf("the grid's line tops at y %v, the band at %v: the spike is missing", top, mm)
	}
	// the device's energy came from reduced minutes
	if !strings.Contains(got.body, "reduced minutes") && !strings.Contains(got.body, "reduzierte Minuten") {
		t.Error("the device's method is not shown as reduced minutes")
	}
	if !strings.Contains(got.body, `<path class="mm" data-s="total" d="M`) {
		t.Error("no band of the reduced minutes")
	}
	// the spike's minute averages about 1.1 kW; the band still reaches 5 kW
	if !strings.Contains(got.body, `>5,000 W<`) {
		t.Error("the power axis does not reach the spike's 5,000 W")
	}
	// one point per minute, joined: one run of the total
	if p := attr(got.body, "data-points"); p != "1440" {
		t.Errorf("points: %s, want 1440", p)
	}
	band := got.body[strings.Index(got.body, `id="p-band"`):]
	band = band[:strings.Index(band, `"/>`)]
	if n := strings.Count(band, "M"); n != 1 {
		t.Errorf("the total is drawn in %d pieces, want 1", n)
	}

	// the running consumption ends at the day's consumption
	var hd hoverData
	if err := json.Unmarshal([]byte(get(t, h, "/s/home/day/"+day+"/data.json").body), &hd); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range hd.S {
		if s.Key == "wh" {
			found = true
			if last := *s.V[len(s.V)-1]; math.Abs(last-redWh["day-in"]) > 0.01*redWh["day-in"] {
				t.Errorf("running consumption ends at %v Wh, the day's is %v Wh", last, redWh["day-in"])
			}
		}
	}
	if !found || len(hd.T) != 1440 {
		t.Errorf("tooltip: %d rows, energy line %v", len(hd.T), found)
	}

	// ?device= draws the device's own band; 15-minute buckets keep it
	for _, q := range []string{"?device=grid", "?res=15m"} {
		r := get(t, h, "/s/home/day/"+day+q)
		if !strings.Contains(r.body, `class="mm"`) || !strings.Contains(r.body, `>5,000 W<`) {
			t.Errorf("%s: no band up to the spike", q)
		}
	}

	// the export carries the reduced fields
	ex := get(t, h, "/s/home/export.csv?from="+day+"&to="+day)
	lines := strings.Split(ex.body, "\n")
	if ex.code != 200 || lines[0] != "time,device,power_w,energy_in_wh,energy_out_wh,temperature_c,voltage_v,phases_w"+reducedColumns {
		t.Fatalf("export: %d %q", ex.code, lines[0])
	}
	row := ""
	for _, l := range lines {
		if strings.HasPrefix(l, spike.UTC().Truncate(time.Minute).Format(time.RFC3339)+",grid,") {
			row = l
		}
	}
	f := strings.Split(row, ",")
	if len(f) != 17 || f[15] != "" || f[16] != "" || f[8] != "6" || f[10] != "5000" || f[13] != spike.Add(30*time.Second).UTC().Format(time.RFC3339Nano) {
		t.Errorf("export of the spike's minute: %q", row)
	}
	// a range after the horizon keeps the plain columns
	after := get(t, h, "/s/home/export.csv?from=2026-03-29&to=2026-03-29")
	if !strings.HasPrefix(after.body, "time,device,power_w,energy_in_wh,energy_out_wh,temperature_c,voltage_v,phases_w\n") {
		t.Errorf("export after the horizon: %q", after.body[:min(len(after.body), 120)])
	}
}

// topY is the smallest y (the highest power) of the SVG path whose d
// attribute follows marker.
func topY(body, marker string) float64 {
	i := strings.Index(body, marker)
	if i < 0 {
		return math.Inf(1)
	}
	d := body[i+len(marker):]
	d = d[:strings.IndexByte(d, '"')]
	top := math.Inf(1)
	for _, p := range strings.FieldsFunc(d, func(r rune) bool { return r == 'M' || r == 'L' || r == 'Z' }) {
		_, y, ok := strings.Cut(p, ",")
		if v, err := strconv.ParseFloat(y, 64); ok && err == nil {
			top = math.Min(top, v)
		}
	}
	return top
}
