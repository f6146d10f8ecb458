package dashboard

import (
	"encoding/json"
	"math"
	"time"

	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/reading"
	"image/color"
	"image/png"
	"strconv"
	"strings"
	"testing"

	"github.com/powermeter/powermeter/internal/energy"
)

// Small yearly totals once labelled every tick "0 kWh".
func TestMonthBarLabelsSmallTotals(t *testing.T) {
	p := &page{lang: langEN}
	c := monthBars("2026", []energy.Period{{Key: "2026-01", InWh: 300, OutWh: 120}, {Key: "2026-02", InWh: 800}}, p)
	seen := map[string]bool{}
	for _, l := range c.YLabels {
		if seen[l.Text] {
			t.Errorf("label %q twice: %v", l.Text, c.YLabels)
		}
		seen[l.Text] = true
	}
	if len(c.YLabels) < 3 || !seen["0.2 kWh"] {
		t.Errorf("labels %v", c.YLabels)
	}
	for _, c := range []struct {
		step float64
		want int
	}{{0.25, 2}, {0.5, 1}, {2, 0}, {1000, 0}, {0.001, 3}} {
		if got := stepDecimals(c.step); got != c.want {
			t.Errorf("stepDecimals(%v) = %d, want %d", c.step, got, c.want)
		}
	}
}

func TestManifestAndIcons(t *testing.T) {
	st := openStore(t)
	d := newTestDashboard(t, st, Options{Users: nil})
	h := mux(d)
	r := get(t, h, "/manifest.webmanifest")
	if r.code != 200 || r.h.Get("Content-Type") != "application/manifest+json" {
		t.Fatalf("manifest: %d %q", r.code, r.h.Get("Content-Type"))
	}
	var m webManifest
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("manifest is not JSON: %v\n%s", err, r.body)
	}
	if m.Name == "" || m.StartURL != "/" || m.Display != "fullscreen" || len(m.Icons) < 3 {
		t.Errorf("manifest %+v", m)
	}
	sizes := map[string]bool{}
	for _, ic := range m.Icons {
		sizes[ic.Sizes] = true
		r := get(t, h, strings.Split(ic.Src, "?")[0])
		if r.code != 200 || r.h.Get("Content-Type") != ic.Type {
			t.Errorf("%s: %d %q", ic.Src, r.code, r.h.Get("Content-Type"))
			continue
		}
		if ic.Type != "image/png" {
			continue
		}
		img, err := png.Decode(strings.NewReader(r.body))
		if err != nil {
			t.Errorf("%s: %v", ic.Src, err)
			continue
		}
		if got := strconv.Itoa(img.Bounds().Dx()) + "x" + strconv.Itoa(img.Bounds().Dy()); got != ic.Sizes {
			t.Errorf("%s is %s, manifest says %s", ic.Src, got, ic.Sizes)
		}
		// the bolt is white, the corners of a rounded icon transparent
		c := color.NRGBAModel.Convert(img.At(img.Bounds().Dx()/2, img.Bounds().Dy()/2)).(color.NRGBA)
		if c.R < 250 || c.G < 250 {
			t.Errorf("%s: centre %v, want the white bolt", ic.Src, c)
		}
	}
	if !sizes["192x192"] || !sizes["512x512"] {
		t.Errorf("icon sizes %v", sizes)
	}
	if r := get(t, h, "/icons/13.png"); r.code != 404 {
		t.Errorf("unknown icon: %d", r.code)
	}
	// pages link it
	if r := get(t, h, "/"); !strings.Contains(r.body, `<link rel="manifest" href="/manifest.webmanifest">`) {
		t.Error("pages do not link the manifest")
	}
}

func TestDayViews(t *testing.T) {
	st := &countingStore{Store: openStore(t)}
	day := "2026-03-27"
	start := time.Date(2026, 3, 27, 0, 0, 0, 0, berlin)
	insert(t, st, "home", threeDevices(start.Add(-time.Hour), start.Add(25*time.Hour))...)
	d := newTestDashboard(t, st, Options{})
	h := mux(d)

	r := get(t, h, "/s/home/day/"+day+"?res=15m")
	if r.code != 200 || !strings.Contains(r.body, `data-points="96"`) || !strings.Contains(r.body, `data-res="15m"`) {
		t.Fatalf("res=15m: %d, points %q", r.code, attr(r.body, "data-points"))
	}
	r = get(t, h, "/s/home/day/"+day+"?from=06:00&to=20:00")
	if got := attr(r.body, "data-points"); got != strconv.Itoa(14*360*3) && got != strconv.Itoa(14*360) {
		t.Errorf("06:00–20:00 raw: %s points", got)
	}
	// the active hours: the balcony produces from 07:00 to 19:00
	if !strings.Contains(r.body, `id="active-hours" href="?from=07%3a00&amp;to=19%3a00"`) && !strings.Contains(r.body, `id="active-hours" href="?from=07%3A00&amp;to=19%3A00"`) {
		i := strings.Index(r.body, "active-hours")
		t.Errorf("active hours link: %q", r.body[max(0, i-10):min(len(r.body), i+80)])
	}
	// ?device= draws that device only (its phases with it)
	r = get(t, h, "/s/home/day/"+day+"?device=grid")
	if r.code != 200 || strings.Contains(r.body, `data-s="dev:fridge"`) || !strings.Contains(r.body, `data-s="ph:grid:3"`) || attr(r.body, "data-points") != "8640" {
		t.Errorf("device=grid: %d, points %s", r.code, attr(r.body, "data-points"))
	}
	// bad views name the field
	for q, field := range map[string]string{"from=6": "from", "to=25:00": "to", "from=10:00&to=09:00": "to", "res=2m": "res", "ymax=x": "ymax", "tmin=5&tmax=1": "tmax"} {
		r := get(t, h, "/s/home/day/"+day+"?"+q)
		if r.code != 400 || !strings.Contains(r.body, field+":") {
			t.Errorf("%s: %d, want 400 naming %s", q, r.code, field)
		}
	}
	// a fixed axis: the top label is ymax
	r = get(t, h, "/s/home/day/"+day+"?ymax=2000")
	if !strings.Contains(r.body, `class="yl" style="top: 0.00%">2,000 W`) {
		t.Errorf("ymax=2000: no 2,000 W label at the top")
	}

	// a past day is rendered once per version
	get(t, h, "/s/home/day/"+day)
	n := st.ranges.Load()
	r1 := get(t, h, "/s/home/day/"+day)
	if st.ranges.Load() != n {
		t.Errorf("second view of a past day read the readings again")
	}
	insert(t, st, "home", reading.Reading{Device: "fridge", Time: start.Add(12*time.Hour + 5*time.Second).UTC(), Power: 5000})
	r2 := get(t, h, "/s/home/day/"+day)
	if st.ranges.Load() == n || r1.body == r2.body {
		t.Errorf("a new reading did not make a new page")
	}

	// the running consumption ends at the day's consumption
	r = get(t, h, "/s/home/day/"+day+"/data.json")
	var hd hoverData
	if err := json.Unmarshal([]byte(r.body), &hd); err != nil {
		t.Fatal(err)
	}
	wh := whAttrs(r2.body)["day-in"]
	for _, s := range hd.S {
		if s.Key == "wh" {
			last := *s.V[len(s.V)-1]
			if math.Abs(last-wh) > 0.01*wh {
				t.Errorf("running consumption ends at %v Wh, the day's consumption is %v Wh", last, wh)
			}
		}
	}
	sumT := 0
	for _, dt := range hd.T {
		sumT += int(dt)
	}
	if sumT != 86390 {
		t.Errorf("tooltip rows end %d s after the start, want 86390", sumT)
	}
	if len(hd.T) != 8641 { // and the reading at 12:00:05
		t.Errorf("tooltip rows: %d", len(hd.T))
	}
}

func attr(body, name string) string {
	i := strings.Index(body, name+`="`)
	if i < 0 {
		return ""
	}
	rest := body[i+len(name)+2:]
	return rest[:strings.IndexByte(rest, '"')]
}

// With roles, the chart adds production (above zero) and the home's
// consumption (below); a legacy line's extra values carry the field map's
// labels and units.
func TestDayChartRolesAndFields(t *testing.T) {
	st := openStore(t)
	day := "2026-03-27"
	start := time.Date(2026, 3, 27, 0, 0, 0, 0, berlin)
	rs := threeDevices(start, start.Add(24*time.Hour))
	for tt := start.UTC(); tt.Before(start.Add(24 * time.Hour)); tt = tt.Add(10 * time.Second) {
		rs = append(rs, reading.Reading{Device: "legacy", Time: tt, Power: 12.5, Temperature: reading.F(20), Phases: []float64{231.5, 3.25}})
	}
	insert(t, st, "home", rs...)
	home, err := household.New([]household.Device{{Name: "balcony", Role: household.PV, Label: "Balkon"}, {Name: "grid", Role: household.Grid}, {Name: "fridge", Role: household.Consumer}, {Name: "legacy", Role: household.Other}})
	if err != nil {
		t.Fatal(err)
	}
	fm := household.FieldMap{{Quantity: household.Power, Unit: "W"}, {Quantity: household.Temperature, Unit: "°C"}, {Quantity: household.Voltage, Unit: "V", Label: "Netz"}, {Quantity: household.Power, Unit: "W", Label: "Wärmepumpe"}}
	d := newTestDashboard(t, st, Options{Home: func(string) *household.Home { return home }, Fields: func(string) household.FieldMap { return fm }})
	h := mux(d)
	r := get(t, h, "/s/home/day/"+day)
	for _, want := range []string{`data-s="prod"`, `data-s="home"`, `data-s="ph:legacy:2"`, "Wärmepumpe", ">Balkon<"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("day page lacks %s", want)
		}
	}
	// the voltage is no power line: only in the tooltip, with its unit
	if strings.Contains(r.body, `data-s="ph:legacy:1"`) {
		t.Error("the voltage is drawn on the power axis")
	}
	var hd hoverData
	if err := json.Unmarshal([]byte(get(t, h, "/s/home/day/"+day+"/data.json").body), &hd); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range hd.S {
		if s.Key == "ph:legacy:1" {
			found = s.Unit == "V" && strings.Contains(s.Label, "Netz") && s.V[0] != nil && *s.V[0] == 231.5
		}
		if s.Key == "prod" {
			// at 13:00 the balcony's production, positive
			row := 13 * 360
			if s.V[row] == nil || *s.V[row] <= 0 {
				t.Errorf("production at 13:00: %v", s.V[row])
			}
		}
	}
	if !found {
		t.Errorf("the voltage field is not in the tooltip data: %+v", hd.S)
	}
	// the running consumption ends at the day's consumption: the grid's
	// import, not the sum of the grid meter and the plugs behind it
	wh, seen := whAttrs(r.body)["day-import"], false
	for _, s := range hd.S {
		if s.Key == "wh" {
			last := *s.V[len(s.V)-1]
			seen = true
			if wh <= 0 || math.Abs(last-wh) > 0.01*wh {
				t.Errorf("running consumption ends at %v Wh, the day's import is %v Wh", last, wh)
			}
		}
	}
	if !seen {
		t.Error("no running consumption")
	}
}

func TestMonthAndYearPages(t *testing.T) {
	st := openStore(t)
	start := time.Date(2026, 2, 25, 0, 0, 0, 0, berlin)
	insert(t, st, "home", threeDevices(start, start.Add(8*24*time.Hour))...)
	d := newTestDashboard(t, st, Options{})
	h := mux(d)

	r := get(t, h, "/s/home/month/2026-03")
	if r.code != 200 {
		t.Fatalf("month: %d %s", r.code, r.body)
	}
	// the bars add up to the month's total, and link to their days
	sum := 0.0
	for _, part := range strings.Split(r.body, `class="bar-in" data-wh="`)[1:] {
		v, err := strconv.ParseFloat(part[:strings.IndexByte(part, '"')], 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += v
	}
	total := whAttrs(r.body)["month-in"]
	if total <= 0 || math.Abs(sum-total) > 1e-6*total {
		t.Errorf("day bars add up to %v Wh, the month says %v", sum, total)
	}
	for _, want := range []string{`<a href="/s/home/day/2026-03-01">`, `href="/s/home/month/2026-02" rel="prev"`, `href="/s/home/month/2026-03.csv"`, `href="/s/home/year/2026"`, `id="d-2026-03-04"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("month page lacks %s", want)
		}
	}
	if strings.Contains(r.body, `rel="next"`) {
		t.Error("the current month links to the next")
	}
	// the overview's month is the same
	ov := get(t, h, "/s/home/overview?month=2026-03")
	i := strings.Index(ov.body, `id="m-2026-03"`)
	if i < 0 {
		t.Fatal("overview has no row for 2026-03")
	}
	row := ov.body[i:]
	v := attr(row, "data-wh")
	if f, _ := strconv.ParseFloat(v, 64); math.Abs(f-total) > 1e-6*total {
		t.Errorf("overview's March %s Wh, month page %v", v, total)
	}

	// CSV of the month: one row per day with readings
	r = get(t, h, "/s/home/month/2026-03.csv")
	lines := strings.Split(strings.TrimSpace(r.body), "\n")
	if r.code != 200 || r.h.Get("Content-Type") != "text/csv; charset=utf-8" || len(lines) != 1+4 || !strings.HasPrefix(lines[0], "day,consumption_kwh,feed_in_kwh") || !strings.HasPrefix(lines[1], "2026-03-01,") {
		t.Errorf("month CSV: %d %q", r.code, lines)
	}

	// the year: month bars linking to the months, CSV per month
	r = get(t, h, "/s/home/year/2026")
	if r.code != 200 || !strings.Contains(r.body, `<a href="/s/home/month/2026-02">`) || !strings.Contains(r.body, `<a href="/s/home/month/2026-03">`) || strings.Contains(r.body, `<a href="/s/home/month/2026-04">`) {
		t.Errorf("year page: %d", r.code)
	}
	r = get(t, h, "/s/home/year/2026.csv")
	if lines := strings.Split(strings.TrimSpace(r.body), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[1], "2026-02,") {
		t.Errorf("year CSV: %q", lines)
	}
	for _, bad := range []string{"/s/home/month/2026-13", "/s/home/month/x", "/s/home/year/26", "/s/home/year/1999.csv"} {
		if r := get(t, h, bad); r.code != 400 {
			t.Errorf("%s: %d", bad, r.code)
		}
	}
	if r := get(t, h, "/s/home/month/current"); r.code != 200 || !strings.Contains(r.body, "<h1>March 2026</h1>") {
		t.Errorf("current month: %d", r.code)
	}
}

// The first overview over many unsummarized days computes what fits in the
// budget and leaves the rest to the background, saying so.
func TestOverviewSummarizesInBackground(t *testing.T) {
	st := &countingStore{Store: openStore(t)}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, berlin)
	var rs []reading.Reading
	for tt := start.UTC(); tt.Before(start.AddDate(0, 0, 59)); tt = tt.Add(5 * time.Minute) {
		rs = append(rs, reading.Reading{Device: "plug", Time: tt, Power: 100})
	}
	insert(t, st, "home", rs...)
	d := newTestDashboard(t, st, Options{Interval: 5 * time.Minute, SummaryBudget: time.Nanosecond})
	h := mux(d)
	r := get(t, h, "/s/home/overview")
	if r.code != 200 || !strings.Contains(r.body, `id="pending"`) || !strings.Contains(r.body, `http-equiv="refresh"`) {
		t.Fatalf("first overview: %d, no pending notice", r.code)
	}
	// the background job finishes; then the overview is complete and quiet
	for deadline := time.Now().Add(30 * time.Second); d.Summarizing("home"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the background job did not finish")
		}
	}
	r = get(t, h, "/s/home/overview")
	if strings.Contains(r.body, `id="pending"`) {
		t.Error("still pending after the background job")
	}
	if wh := whAttrs(r.body)["all-in"]; math.Abs(wh-59*2400) > 10 { // less the last 5 minutes
		t.Errorf("all: %v Wh, want %v", wh, 59*2400)
	}
	n := st.ranges.Load()
	get(t, h, "/s/home/overview")
	if st.ranges.Load() != n {
		t.Error("a warm overview read readings")
	}
	// CSV downloads never leave days out
	d2 := newTestDashboard(t, st, Options{Interval: 10 * time.Minute, SummaryBudget: time.Nanosecond})
	csv := get(t, mux(d2), "/s/home/year/2026.csv")
	if lines := strings.Split(strings.TrimSpace(csv.body), "\n"); len(lines) != 3 {
		t.Errorf("year CSV while summarizing: %q", lines)
	}
	d2.Close()
	for deadline := time.Now().Add(30 * time.Second); d2.Summarizing("home"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the background job did not end on Close")
		}
	}
}

// ?device= on the CSV export keeps that device's readings only.
func TestExportOneDevice(t *testing.T) {
	st := openStore(t)
	start := time.Date(2026, 3, 27, 12, 0, 0, 0, berlin)
	insert(t, st, "home", threeDevices(start, start.Add(time.Minute))...)
	h := mux(newTestDashboard(t, st, Options{}))
	r := get(t, h, "/s/home/export.csv?from=2026-03-27&device=fridge")
	lines := strings.Split(strings.TrimSpace(r.body), "\n")
	if r.code != 200 || len(lines) != 1+6 {
		t.Fatalf("device=fridge: %d, %d lines", r.code, len(lines))
	}
	for _, l := range lines[1:] {
		if !strings.Contains(l, ",fridge,") {
			t.Errorf("line of another device: %s", l)
		}
	}
	r = get(t, h, "/s/home/export.csv?from=2026-03-27&device=grid&format=php")
	if lines := strings.Split(strings.TrimSpace(r.body), "\n"); len(lines) != 6 || !strings.HasPrefix(lines[0], "27.03.2026,12:00:00,") {
		t.Errorf("php format, one device: %q", lines)
	}
}
