package dashboard

import (
	"context"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/reading"
)

// chromium finds Debian's chromium; without it the test skips, or fails
// when CI=true.
func chromium(t *testing.T) string {
	t.Helper()
	for _, p := range []string{os.Getenv("CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("chromium"); err == nil {
		return p
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("chromium is not installed (apt-get install chromium)")
	}
	t.Skip("chromium is not installed; skipping the browser test")
	return ""
}

func artifactDir(t *testing.T) string {
	dir := os.Getenv("POWERMETER_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	dir = filepath.Join(dir, "dashboard")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// homeReading is a day of a home with a balcony solar plant: base load,
// evening peak and a kettle; feed-in around noon; temperature.
func homeReading(tt time.Time) reading.Reading {
	lt := tt.In(berlin)
	h := float64(lt.Hour()) + float64(lt.Minute())/60 + float64(lt.Second())/3600
	p := 160 + 700*math.Max(0, math.Sin((h-17)/5*math.Pi)) - 750*math.Max(0, math.Sin((h-7.5)/11*math.Pi))
	p += 25 * math.Sin(float64(tt.Unix())/97)
	if lt.Minute() == 42 && lt.Hour()%5 == 1 && lt.Second() < 40 {
		p += 2100 // kettle
	}
	temp := 19.5 + 2.5*math.Sin((h-9)/24*2*math.Pi)
	return reading.Reading{Device: "plug", Time: tt, Power: math.Round(p*100) / 100, Temperature: reading.F(math.Round(temp*10) / 10)}
}

func TestBrowser(t *testing.T) {
	exe := chromium(t)
	dir := artifactDir(t)
	t.Logf("screenshots go to %s", dir)

	st := openStore(t)
	now := time.Now().Truncate(10 * time.Second)
	first := time.Date(now.In(berlin).Year(), now.In(berlin).Month(), now.In(berlin).Day()-9, 0, 0, 0, 0, berlin)
	var rs []reading.Reading
	for tt := first.UTC(); tt.Before(now.Add(-time.Minute)); tt = tt.Add(10 * time.Second) {
		// an outage of the logger two days ago: a gap in the chart
		if lt := tt.In(berlin); lt.YearDay() == now.In(berlin).AddDate(0, 0, -2).YearDay() && lt.Hour() == 3 {
			continue
		}
		rs = append(rs, homeReading(tt))
	}
	insert(t, st, "home", rs...)

	d := newTestDashboard(t, st, Options{Now: time.Now, PollInterval: 200 * time.Millisecond})
	srv := httptest.NewServer(mux(d))
	defer srv.Close()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("lang", "en-US"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelA()
	ctx, cancelC := chromedp.NewContext(actx)
	defer cancelC()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()

	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(dir, name+".png")
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", p)
	}
	// view saves what is on screen (the top of a long page)
	view := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(dir, name+".png")
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot %s", p)
	}
	// text reads an element's visible text in one step inside the page: the
	// live page replaces its nodes as readings arrive, so a node looked up
	// first may be gone by the time its text is asked for.
	text := func(sel string) string {
		t.Helper()
		js := `(() => { const e = document.querySelector(` + strconv.Quote(sel) + `); return e === null ? "\u0000" : e.innerText; })()`
		s, err := chromedp.Run(ctx, chromedp.Evaluate[string](js))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		if s == "\x00" {
			t.Fatalf("text of %s: no such element", sel)
		}
		return s
	}
	open := func(path, sel string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+path), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}

	// live: the value of a reading stored now appears without a reload
	open("/s/home", "#total")
	if total := text("#total"); !strings.HasSuffix(total, " W") {
		t.Errorf("live total %q", total)
	}
	insert(t, st, "home", reading.Reading{Device: "plug", Time: now, Power: 4321.4, Temperature: reading.F(22.3)})
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById('total').textContent === '4,321 W'`, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("live page did not update to 4,321 W (shows %q): %v", text("#total"), err)
	}
	shot("live")
	open("/s/home?view=big", "#total")
	shot("live-big")

	// day chart of yesterday: the chart holds every point of the day
	yday := now.In(berlin).AddDate(0, 0, -1).Format("2006-01-02")
	calc := &energy.Calc{Store: st, Source: "home", Zone: berlin}
	points := 0
	sum, err := calc.Compute(context.Background(), yday, func(energy.Point) { points++ })
	if err != nil {
		t.Fatal(err)
	}
	open("/s/home/day/"+yday, "#day-chart")
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("svg.chart-svg"), "data-points"))
	if err != nil {
		t.Fatal(err)
	}
	if attr.Value != strconv.Itoa(points) || points < 8000 {
		t.Errorf("chart holds %q points, Go computed %d", attr.Value, points)
	}
	bandW, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`document.querySelector('.pos use.band').getBBox().width`))
	if err != nil {
		t.Fatal(err)
	}
	if bandW < 990 {
		t.Errorf("the power line spans %v of 1000 columns", bandW)
	}
	if got, want := text("#day-in"), langEN.Wh(sum.InWh); got != want {
		t.Errorf("day energy %q, Go computed %q", got, want)
	}
	shot("day")

	// overview: the kWh shown equal what Go computes
	days, err := calc.Days(context.Background(), "2000-01-01", "2200-12-31")
	if err != nil {
		t.Fatal(err)
	}
	var allIn, allOut float64
	for _, s := range days {
		allIn += s.InWh
		allOut += s.OutWh
	}
	open("/s/home/overview?month="+yday[:7], "#all-in")
	if gi, go_ := text("#all-in"), text("#all-out"); gi != langEN.KWh(allIn) || go_ != langEN.KWh(allOut) || allOut == 0 {
		t.Errorf("overview shows %q / %q, Go computed %q / %q", gi, go_, langEN.KWh(allIn), langEN.KWh(allOut))
	}
	if got := text("#d-" + yday + " td.in"); got != langEN.KWh(sum.InWh) {
		t.Errorf("overview row %s: %q, Go computed %q", yday, got, langEN.KWh(sum.InWh))
	}
	shot("overview")
	open("/", ".sources")
	shot("home")

	// German labels for a German browser
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": "de-DE,de;q=0.9"}}); err != nil {
		t.Fatal(err)
	}
	open("/s/home/day/"+yday, "#day-chart")
	if got, want := text("#day-in"), langDE.Wh(sum.InWh); got != want || !strings.Contains(want, ",") {
		t.Errorf("German day energy %q, want %q", got, want)
	}
	shot("day-de")
	if _, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{}}); err != nil {
		t.Fatal(err)
	}

	// the day with the outage, on a phone, in dark mode
	gapDay := now.In(berlin).AddDate(0, 0, -2).Format("2006-01-02")
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulatePortrait)); err != nil {
		t.Fatal(err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	open("/s/home/day/"+gapDay, "#day-chart")
	runs, err := chromedp.Run(ctx, chromedp.Evaluate[int](`(document.getElementById('p-band').getAttribute('d').match(/M/g) || []).length`))
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Errorf("the day with an outage is drawn in %d pieces, want 2", runs)
	}
	shot("day-phone-dark")
	view("day-phone-dark-top")
	open("/s/home", "#total")
	shot("live-phone-dark")
	open("/s/home/overview", "#all-in")
	shot("overview-phone-dark")

}
