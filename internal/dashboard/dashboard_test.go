package dashboard

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/reading"
)

// fillHome stores 100 W every 10 s from 28 March 2026 00:00 to testNow
// (Berlin): 2400 Wh on the 28th, 2300 Wh on the 23-hour 29th.
func fillHome() []reading.Reading {
	from := time.Date(2026, 3, 28, 0, 0, 0, 0, berlin)
	return series("plug", from, testNow, func(time.Time) float64 { return 100 })
}

func TestHomeEscapesAndHidesKeys(t *testing.T) {
	st := openStore(t)
	now := testNow.UTC()
	insert(t, st, "home", reading.Reading{Device: "<script>alert(1)</script>", Time: now.Add(-5 * time.Second), Power: 42})
	d := newTestDashboard(t, st, Options{})
	h := mux(d)
	for _, path := range []string{"/", "/s/home", "/s/home/day/2026-03-30"} {
		r := get(t, h, path)
		if r.code != 200 {
			t.Fatalf("%s: %d %s", path, r.code, r.body)
		}
		if strings.Contains(r.body, "<script>alert") {
			t.Errorf("%s: device name not escaped", path)
		}
		if !strings.Contains(r.body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: device name missing", path)
		}
		if strings.Contains(r.body, "ingest-key-never-shown") {
			t.Errorf("%s: shows the ingest key", path)
		}
		if ct := r.h.Get("Content-Type"); ct != "text/html; charset=utf-8" {
			t.Errorf("%s: content type %q", path, ct)
		}
	}
	// the home page lists the source with its zone
	r := get(t, h, "/")
	if !strings.Contains(r.body, `href="/s/home"`) || !strings.Contains(r.body, "Europe/Berlin") {
		t.Errorf("home page: %s", r.body)
	}
}

func TestLivePageAndStale(t *testing.T) {
	st := openStore(t)
	now := testNow.UTC()
	r1 := reading.Reading{Device: "3em", Time: now.Add(-10 * time.Second), Power: 1234.6, Phases: []float64{400, 500, 334.6}, Temperature: reading.F(21.5), Voltage: reading.F(231.2), EnergyIn: reading.F(123456)}
	r2 := reading.Reading{Device: "fridge", Time: now.Add(-10 * time.Second), Power: 80}
	insert(t, st, "home", r1, r2)
	d := newTestDashboard(t, st, Options{})
	r := get(t, mux(d), "/s/home", "Accept-Language", "en-GB,en;q=0.9")
	for _, want := range []string{`id="total" data-w="1314.6"`, "1,315 W", "L2 500 W", "21.5 °C", "231.2 V", "123.46 kWh", `class="panel"`, `data-events="/s/home/events"`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("live page lacks %q", want)
		}
	}
	// German labels and separators
	r = get(t, mux(d), "/s/home", "Accept-Language", "de-DE,de;q=0.9,en;q=0.5")
	for _, want := range []string{`lang="de"`, "1.315 W", "21,5 °C", "Aktuell"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("German live page lacks %q", want)
		}
	}
	// 3 intervals later the values are stale
	late := newTestDashboard(t, st, Options{Now: func() time.Time { return testNow.Add(25 * time.Second) }})
	if r := get(t, mux(late), "/s/home"); !strings.Contains(r.body, `class="panel stale"`) {
		t.Error("values 35 s old are not marked stale")
	}
	if r := get(t, mux(d), "/s/home"); strings.Contains(r.body, `class="panel stale"`) {
		t.Error("values 10 s old are marked stale")
	}
	if r := get(t, mux(d), "/s/home?view=big"); !strings.Contains(r.body, `<body class="big">`) {
		t.Error("?view=big is not the large-digit mode")
	}
	if r := get(t, mux(d), "/s/nosuch"); r.code != 404 {
		t.Errorf("unknown source: %d", r.code)
	}
}

var dataWh = regexp.MustCompile(`id="(day-in|day-out|day-import|all-in|all-out|month-in|month-out|year-in|year-out)" data-wh="([-0-9.e+]+)"`)

func whAttrs(body string) map[string]float64 {
	out := map[string]float64{}
	for _, m := range dataWh.FindAllStringSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		out[m[1]] = v
	}
	return out
}

func TestDayPage(t *testing.T) {
	st := openStore(t)
	insert(t, st, "home", fillHome()...)
	d := newTestDashboard(t, st, Options{})
	h := mux(d)
	r := get(t, h, "/s/home/day/2026-03-29")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	wh := whAttrs(r.body)
	if math.Abs(wh["day-in"]-2300) > 1e-6 || wh["day-out"] != 0 {
		t.Errorf("23-hour day: %v", wh)
	}
	for _, want := range []string{"2.30 kWh", `data-points="8280"`, "(23 hours)", `href="/s/home/day/2026-03-28"`, `href="/s/home/day/2026-03-30"`, "&gt; 50 W", "23 h 0 min"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("day page lacks %q", want)
		}
	}
	// today has no "next day"; the 28th is 24 hours
	r = get(t, h, "/s/home/day/2026-03-30")
	if strings.Contains(r.body, `rel="next"`) {
		t.Error("today links to tomorrow")
	}
	if wh := whAttrs(get(t, h, "/s/home/day/2026-03-28").body); math.Abs(wh["day-in"]-2400) > 1e-6 {
		t.Errorf("28th: %v", wh)
	}
	// the date picker's GET form and bad dates
	if r := get(t, h, "/s/home/day?date=2026-03-01"); r.code != 303 || r.h.Get("Location") != "/s/home/day/2026-03-01" {
		t.Errorf("date picker: %d %q", r.code, r.h.Get("Location"))
	}
	for _, bad := range []string{"2026-02-30", "20260301", "1999-12-31", "x"} {
		if r := get(t, h, "/s/home/day/"+bad); r.code != 400 {
			t.Errorf("%s: %d", bad, r.code)
		}
	}
	if r := get(t, h, "/s/home/day/2026-01-01"); r.code != 200 || !strings.Contains(r.body, `id="no-readings"`) || !strings.Contains(r.body, `data-points="0"`) {
		t.Errorf("a day without readings: %d", r.code)
	}
	if r := get(t, h, "/s/home/day/yesterday"); !strings.Contains(r.body, "<h1>Sunday, 29 March 2026") {
		t.Error("/day/yesterday is not the 29th")
	}
}

func TestDayChartGapsAndFeedIn(t *testing.T) {
	st := openStore(t)
	day := time.Date(2026, 6, 10, 0, 0, 0, 0, berlin)
	// 06:00–08:00 +200 W, 08:00–09:00 nothing (a gap), 09:00–11:00 −400 W
	rs := series("grid", day.Add(6*time.Hour), day.Add(8*time.Hour), func(time.Time) float64 { return 200 })
	rs = append(rs, series("grid", day.Add(9*time.Hour), day.Add(11*time.Hour), func(time.Time) float64 { return -400 })...)
	insert(t, st, "home", rs...)
	d := newTestDashboard(t, st, Options{})
	r := get(t, mux(d), "/s/home/day/2026-06-10")
	// two runs of the chart: two subpaths in the band path
	m := regexp.MustCompile(`<path id="p-band"[^>]* d="([^"]*)"`).FindStringSubmatch(r.body)
	if m == nil || strings.Count(m[1], "M") != 2 {
		t.Fatalf("want 2 runs (a gap), got %v", m)
	}
	wh := whAttrs(r.body)
	// 2 h at 200 W (last step ends at 07:59:50) and 2 h at 400 W feed-in
	if math.Abs(wh["day-in"]-200*(7200-10)/3600.0) > 1e-6 || math.Abs(wh["day-out"]-400*(7200-10)/3600.0) > 1e-6 {
		t.Errorf("energy %v", wh)
	}
	for _, want := range []string{`title="09:00:00 – 10:59:50">09:00 – 10:59`, "400 W"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("day page lacks %q", want)
		}
	}
}

func TestOverviewUsesDayCache(t *testing.T) {
	base := openStore(t)
	st := &countingStore{Store: base}
	insert(t, st, "home", fillHome()...)
	d := newTestDashboard(t, st, Options{})
	h := mux(d)
	r := get(t, h, "/s/home/overview")
	if r.code != 200 {
		t.Fatalf("%d %s", r.code, r.body)
	}
	want := 2400 + 2300 + 100*(12*3600-10)/3600.0
	if wh := whAttrs(r.body); math.Abs(wh["all-in"]-want) > 1e-6 {
		t.Errorf("total %v, want %v", wh, want)
	}
	for _, s := range []string{"5.90 kWh", `id="d-2026-03-29"`, `href="/s/home/day/2026-03-29"`, "March 2026", `id="y-2026"`} {
		if !strings.Contains(r.body, s) {
			t.Errorf("overview lacks %q", s)
		}
	}
	if n := st.ranges.Load(); n != 3 {
		t.Errorf("first overview read %d days, want 3", n)
	}
	// the two finished days come from the cache now; today is recomputed
	st.ranges.Store(0)
	get(t, h, "/s/home/overview")
	if n := st.ranges.Load(); n != 1 {
		t.Errorf("second overview read %d days, want 1 (today)", n)
	}
	// a late reading moves the 28th's version: only it and today are read
	insert(t, st, "home", reading.Reading{Device: "late", Time: time.Date(2026, 3, 28, 12, 0, 5, 0, berlin).UTC(), Power: 1})
	st.ranges.Store(0)
	get(t, h, "/s/home/overview")
	if n := st.ranges.Load(); n != 2 {
		t.Errorf("after a late reading: %d days read, want 2", n)
	}
	// year and month selection
	if r := get(t, h, "/s/home/overview?year=2026"); !strings.Contains(r.body, `<tr id="y-2026" class="sel">`) {
		t.Error("year not selected")
	}
	if r := get(t, h, "/s/home/overview?month=2026-03"); !strings.Contains(r.body, `<tr id="m-2026-03" class="sel">`) {
		t.Error("month not selected")
	}
}

func TestExportCSV(t *testing.T) {
	st := openStore(t)
	// around the spring clock change: 01:59:50 CET is followed by 03:00:00 CEST
	t0 := time.Date(2026, 3, 29, 0, 59, 50, 0, time.UTC)
	a := reading.Reading{Device: "a", Time: t0, Power: 100.5, Temperature: reading.F(21.5)}
	b := reading.Reading{Device: "=cmd|x", Time: t0, Power: -20}
	c := reading.Reading{Device: "a", Time: t0.Add(10 * time.Second), Power: 7, Phases: []float64{1, 2, 4}, EnergyIn: reading.F(5)}
	insert(t, st, "home", a, b, c)
	d := newTestDashboard(t, st, Options{})
	h := mux(d)
	r := get(t, h, "/s/home/export.csv?from=2026-03-29&to=2026-03-29&format=php")
	want := "29.03.2026,01:59:50,80.50,21.5,-20.00,100.50\n29.03.2026,03:00:00,7.00,,1.00,2.00,4.00\n"
	if r.code != 200 || r.body != want {
		t.Errorf("php export %d:\n%s\nwant:\n%s", r.code, r.body, want)
	}
	if cd := r.h.Get("Content-Disposition"); !strings.Contains(cd, "attachment") || !strings.Contains(cd, ".csv") {
		t.Errorf("content disposition %q", cd)
	}
	r = get(t, h, "/s/home/export.csv?from=2026-03-29T00:00:00Z&to=2026-03-29T02:00:00Z&format=utc")
	want = "time,device,power_w,energy_in_wh,energy_out_wh,temperature_c,voltage_v,phases_w\n" +
		"2026-03-29T00:59:50Z,'=cmd|x,-20,,,,,\n" +
		"2026-03-29T00:59:50Z,a,100.5,,,21.5,,\n" +
		"2026-03-29T01:00:00Z,a,7,5,,,,1 2 4\n"
	if r.body != want {
		t.Errorf("utc export:\n%s\nwant:\n%s", r.body, want)
	}
	for _, bad := range []string{"?from=x", "?from=2026-03-29&to=2026-03-28", "?format=xml"} {
		if r := get(t, h, "/s/home/export.csv"+bad); r.code != 400 {
			t.Errorf("%s: %d", bad, r.code)
		}
	}
}

func TestAccess(t *testing.T) {
	st := openStore(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	d := newTestDashboard(t, st, Options{Users: []string{"anna:" + string(hash)}, ReadToken: "tok-123456"})
	h := mux(d)
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	if r := get(t, h, "/"); r.code != 401 || !strings.Contains(r.h.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("no credentials: %d %v", r.code, r.h)
	}
	if r := get(t, h, "/", "Authorization", basic("anna", "wrong")); r.code != 401 {
		t.Errorf("wrong password: %d", r.code)
	}
	for i := 0; i < 2; i++ { // the second time from the cache
		if r := get(t, h, "/", "Authorization", basic("anna", "pw")); r.code != 200 {
			t.Errorf("right password: %d", r.code)
		}
	}
	if r := get(t, h, "/", "Authorization", "Bearer tok-123456"); r.code != 200 {
		t.Errorf("bearer: %d", r.code)
	}
	if r := get(t, h, "/s/home/overview?token=bad"); r.code != 401 {
		t.Errorf("bad token: %d", r.code)
	}
	r := get(t, h, "/s/home/overview?year=2026&token=tok-123456")
	if r.code != 303 || r.h.Get("Location") != "overview?year=2026" {
		t.Fatalf("token: %d %q", r.code, r.h.Get("Location"))
	}
	cookie := r.h.Get("Set-Cookie")
	if !strings.Contains(cookie, "HttpOnly") || strings.Contains(cookie, "tok-123456") {
		t.Errorf("cookie %q", cookie)
	}
	if r := get(t, h, "/s/home/overview", "Cookie", strings.Split(cookie, ";")[0]); r.code != 200 {
		t.Errorf("with cookie: %d", r.code)
	}
	// static files need no login
	if r := get(t, h, "/static/style.css"); r.code != 200 || !strings.Contains(r.body, "prefers-color-scheme") {
		t.Errorf("static: %d", r.code)
	}
	if _, err := New(st, Options{Users: []string{"bob:plain"}}); err == nil {
		t.Error("a user without a bcrypt hash is accepted")
	}
}

func TestEventsStream(t *testing.T) {
	st := openStore(t)
	now := time.Now()
	insert(t, st, "home", reading.Reading{Device: "plug", Time: now.Add(-20 * time.Second).Truncate(time.Second), Power: 111})
	d := newTestDashboard(t, st, Options{Now: time.Now, PollInterval: 50 * time.Millisecond})
	srv := httptest.NewServer(mux(d))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/s/home/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	next := func() string {
		var ev strings.Builder
		for sc.Scan() {
			line := sc.Text()
			if line == "" && ev.Len() > 0 {
				return ev.String()
			}
			if strings.HasPrefix(line, "data: ") {
				ev.WriteString(line[6:])
			}
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return ""
	}
	if ev := next(); !strings.Contains(ev, `data-w="111"`) {
		t.Fatalf("first event: %s", ev)
	}
	insert(t, st, "home", reading.Reading{Device: "plug", Time: now.Add(-10 * time.Second).Truncate(time.Second), Power: 4321})
	if ev := next(); !strings.Contains(ev, "4,321 W") {
		t.Fatalf("after an insert: %s", ev)
	}
	// Close ends the stream (so a server shutdown need not wait for it)
	d.Close()
	for sc.Scan() {
	}
	if ctx.Err() != nil {
		t.Error("the stream did not end after Close")
	}
}

func TestPickLang(t *testing.T) {
	for h, want := range map[string]lang{
		"":                           langEN,
		"de":                         langDE,
		"de-AT,en;q=0.5":             langDE,
		"fr-FR,en-US;q=0.8,de;q=0.7": langEN,
		"fr,de;q=0.4":                langDE,
		"en;q=0.2,de;q=0.9":          langDE,
		"zh":                         langEN,
	} {
		if got := pickLang(h); got != want {
			t.Errorf("%q: %s, want %s", h, got, want)
		}
	}
	for v, want := range map[float64]string{1234567.891: "1.234.567,89", -0.004: "0,00", -1500: "−1.500,00"} {
		if got := langDE.num(v, 2); got != want {
			t.Errorf("de %v: %q, want %q", v, got, want)
		}
	}
	if got := langEN.Dur(3725); got != "1 h 2 min" {
		t.Errorf("duration %q", got)
	}
}

func TestEnergyMatchesCalc(t *testing.T) {
	st := openStore(t)
	day := time.Date(2026, 7, 1, 0, 0, 0, 0, berlin)
	rs := series("pv", day, day.Add(24*time.Hour), func(tt time.Time) float64 {
		h := tt.Sub(day).Hours()
		return 150 - 900*math.Max(0, math.Sin((h-6)/12*math.Pi))
	})
	insert(t, st, "home", rs...)
	d := newTestDashboard(t, st, Options{Now: func() time.Time { return day.AddDate(0, 0, 2) }})
	calc := &energy.Calc{Store: st, Source: "home", Zone: berlin}
	s, err := calc.Compute(context.Background(), "2026-07-01", nil)
	if err != nil {
		t.Fatal(err)
	}
	r := get(t, mux(d), "/s/home/day/2026-07-01")
	wh := whAttrs(r.body)
	if wh["day-in"] != s.InWh || wh["day-out"] != s.OutWh || s.OutWh < 1000 || s.InWh < 1000 {
		t.Errorf("page %v, calc in %v out %v", wh, s.InWh, s.OutWh)
	}
	if !strings.Contains(r.body, fmt.Sprintf(`title="%s – %s"`, s.FirstFeed.In(berlin).Format("15:04:05"), s.LastFeed.In(berlin).Format("15:04:05"))) {
		t.Error("first/last feed-in missing")
	}
}
