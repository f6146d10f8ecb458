package dashboard

import (
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/powermeter/powermeter/internal/reading"
)

// threeDevices is a home with a balcony plant, a fridge and a three-phase
// grid meter, every 10 s.
func threeDevices(from, to time.Time) []reading.Reading {
	var rs []reading.Reading
	for tt := from.UTC(); tt.Before(to); tt = tt.Add(10 * time.Second) {
		lt := tt.In(berlin)
		h := float64(lt.Hour()) + float64(lt.Minute())/60 + float64(lt.Second())/3600
		sun := -math.Round(600*math.Max(0, math.Sin((h-7)/12*math.Pi))*100) / 100
		fridge := 60 + float64(tt.Unix()/10%7)*10.25
		l1, l2, l3 := 100+float64(lt.Minute()), 80.5, 40+float64(lt.Hour())
		rs = append(rs,
			reading.Reading{Device: "balcony", Time: tt, Power: sun, Temperature: reading.F(15 + math.Round(h*10)/10)},
			reading.Reading{Device: "fridge", Time: tt, Power: fridge},
			reading.Reading{Device: "grid", Time: tt, Power: l1 + l2 + l3, Phases: []float64{l1, l2, l3}},
		)
	}
	return rs
}

type browser struct {
	t    *testing.T
	ctx  context.Context
	url  string
	dir  string
	down bool
}

func newBrowser(t *testing.T, url string) *browser {
	exe := chromium(t)
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
	t.Cleanup(cancelA)
	ctx, cancelC := chromedp.NewContext(actx)
	t.Cleanup(cancelC)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute) // -race on a busy machine
	t.Cleanup(cancel)
	return &browser{t: t, ctx: ctx, url: url, dir: artifactDir(t)}
}

func (b *browser) open(path, sel string) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, chromedp.Navigate(b.url+path), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
		b.t.Fatalf("%s: %v", path, err)
	}
}

func (b *browser) eval(js string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return s
}

func (b *browser) num(js string) float64 {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64](js))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

func (b *browser) shot(name string) {
	b.t.Helper()
	buf, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, buf, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// poll waits until js is true, across navigations (which end the page's
// script context: errors then are retried).
func (b *browser) poll(js string, what string) {
	b.t.Helper()
	var last error
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return
		}
		last = err
	}
	b.t.Fatalf("%s (%s): %v", what, js, last)
}

// plotX is the page x of instant at on the chart of a view [from, to).
func (b *browser) plotX(at, from, to time.Time) (float64, float64) {
	b.t.Helper()
	left := b.num(`document.getElementById('day-chart').getBoundingClientRect().left`)
	width := b.num(`document.getElementById('day-chart').getBoundingClientRect().width`)
	top := b.num(`document.getElementById('day-chart').getBoundingClientRect().top`)
	return left + width*at.Sub(from).Seconds()/to.Sub(from).Seconds(), top + 40
}

func (b *browser) mouse(typ input.DispatchMouseEventType, x, y float64) {
	b.t.Helper()
	p := input.DispatchMouseEventParams{Type: typ, X: x, Y: y, Button: input.MouseButtonNone}
	if typ != input.DispatchMouseEventTypeMouseMoved {
		p.Button, p.ClickCount = input.MouseButtonLeft, 1
	}
	if typ == input.DispatchMouseEventTypeMouseMoved && b.down {
		p.Buttons = 1
	}
	b.down = typ == input.DispatchMouseEventTypeMousePressed || (b.down && typ != input.DispatchMouseEventTypeMouseReleased)
	if _, err := chromedp.Call(b.ctx, input.DispatchMouseEvent, p); err != nil {
		b.t.Fatal(err)
	}
}

func TestBrowserDayChart(t *testing.T) {
	st := openStore(t)
	now := time.Now()
	today := now.In(berlin)
	yday := today.AddDate(0, 0, -1).Format("2006-01-02")
	start := time.Date(today.Year(), today.Month(), today.Day()-1, 0, 0, 0, 0, berlin)
	end := time.Date(today.Year(), today.Month(), today.Day(), 0, 0, 0, 0, berlin)
	rs := threeDevices(start.AddDate(0, 0, -2), now.Add(-time.Minute))
	insert(t, st, "home", rs...)
	d := newTestDashboard(t, st, Options{Now: time.Now})
	srv := httptest.NewServer(mux(d))
	defer srv.Close()
	b := newBrowser(t, srv.URL)

	// the value stored at 12:00 (the three devices added up)
	noon := time.Date(start.Year(), start.Month(), start.Day(), 12, 0, 0, 0, berlin)
	want := 0.0
	for _, r := range rs {
		if r.Time.Equal(noon.UTC()) {
			want += r.Power
		}
	}

	// hover at 12:00
	b.open("/s/home/day/"+yday, "#day-chart")
	x, y := b.plotX(noon, start, end)
	b.mouse(input.DispatchMouseEventTypeMouseMoved, x, y)
	b.poll(`!!document.getElementById('chart-tip') && !document.getElementById('chart-tip').hidden`, "tooltip shown")
	tip := b.eval(`document.getElementById('chart-tip').textContent`)
	wantS := langEN.num(want, 1) + "\u202fW"
	if !strings.Contains(tip, "12:00:00") || !strings.Contains(tip, "Total power"+wantS) {
		t.Errorf("tooltip at 12:00 says %q, want 12:00:00 and %q", tip, wantS)
	}
	b.shot("day-hover")

	// toggling a device hides exactly its series
	before := b.eval(`Array.from(document.querySelectorAll('#day-chart svg [data-s]')).filter(function(n){return getComputedStyle(n).display!=='none'}).map(function(n){return n.getAttribute('data-s')}).join(',')`)
	if !strings.Contains(before, "dev:fridge") || !strings.Contains(before, "ph:grid:1") {
		t.Fatalf("series drawn: %s", before)
	}
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(`#legend .lg[data-s="dev:fridge"]`))); err != nil {
		t.Fatal(err)
	}
	after := b.eval(`Array.from(document.querySelectorAll('#day-chart svg [data-s]')).filter(function(n){return getComputedStyle(n).display!=='none'}).map(function(n){return n.getAttribute('data-s')}).join(',')`)
	if after != strings.Replace(before, "dev:fridge,", "", -1) {
		t.Errorf("after hiding the fridge: %s (before: %s)", after, before)
	}

	// drag from 06:00 to 20:00 zooms to that range
	six, twenty := noon.Add(-6*time.Hour), noon.Add(8*time.Hour)
	x0, _ := b.plotX(six.Add(20*time.Second), start, end)
	x1, _ := b.plotX(twenty.Add(-20*time.Second), start, end)
	b.mouse(input.DispatchMouseEventTypeMousePressed, x0, y)
	b.mouse(input.DispatchMouseEventTypeMouseMoved, (x0+x1)/2, y)
	b.mouse(input.DispatchMouseEventTypeMouseMoved, x1, y)
	b.mouse(input.DispatchMouseEventTypeMouseReleased, x1, y)
	b.poll(`location.search.indexOf('from=06%3A00') >= 0 && location.search.indexOf('to=20%3A00') >= 0 && !!document.getElementById('day-chart')`, "drag zooms to 06:00–20:00")
	// the zoomed view holds the first and last point of the range
	n := 0
	for _, r := range rs {
		if !r.Time.Before(six) && r.Time.Before(twenty) && r.Device == "fridge" {
			n++
		}
	}
	b.open("/s/home/day/"+yday+"?from=06:00&to=20:00", "#day-chart")
	if got := b.eval(`document.querySelector('svg.chart-svg').getAttribute('data-points')`); got != strconv.Itoa(n) {
		t.Errorf("06:00–20:00 draws %s points, want %d", got, n)
	}
	rng := b.eval(`fetch(document.getElementById('chart').getAttribute('data-src')).then(function(r){return r.json()}).then(function(d){var s=0; d.t.forEach(function(x){s+=x}); return d.t[0]+'-'+s})`)
	if rng != fmt.Sprintf("0-%d", int(twenty.Sub(six).Seconds())-10) {
		t.Errorf("the zoomed data spans %s s", rng)
	}
	b.shot("day-zoom")

	// res=15m: 96 points for a full day
	b.open("/s/home/day/"+yday+"?res=15m", "#day-chart")
	if got := b.eval(`document.querySelector('svg.chart-svg').getAttribute('data-points')`); got != "96" {
		t.Errorf("res=15m draws %s points", got)
	}
	b.shot("day-15m")

	// ← opens the previous day; T today
	b.open("/s/home/day/"+yday, "#day-chart")
	if err := chromedp.Do(b.ctx, chromedp.KeyEvent(kb.ArrowLeft)); err != nil {
		t.Fatal(err)
	}
	prev := start.AddDate(0, 0, -1).Format("2006-01-02")
	b.poll(`location.pathname === '/s/home/day/`+prev+`'`, "← opens the previous day")

	// today's chart refreshes itself (every 60 s; the test asks at once)
	b.open("/s/home/day/today", "#day-chart")
	pts := b.eval(`document.querySelector('svg.chart-svg').getAttribute('data-points')`)
	nb, _ := strconv.Atoi(pts)
	late := now.Add(-30 * time.Second).Truncate(10 * time.Second).UTC()
	insert(t, st, "home", reading.Reading{Device: "fridge", Time: late, Power: 77}, reading.Reading{Device: "grid", Time: late, Power: 300, Phases: []float64{100, 100, 100}}, reading.Reading{Device: "balcony", Time: late, Power: 0})
	b.eval(`document.getElementById('chart').dispatchEvent(new Event('pm-refresh')), ''`)
	b.poll(`document.querySelector('svg.chart-svg').getAttribute('data-points') === '`+strconv.Itoa(nb+1)+`'`, "today's chart takes the new reading")

	// the live power in the tab title
	b.open("/s/home", "#total")
	b.poll(`/ W · /.test(document.title)`, "the live power in the title")

	// the manifest, as the browser reads it
	icons := b.eval(`fetch('/manifest.webmanifest').then(function(r){return r.json()}).then(function(m){return m.icons.map(function(i){return i.sizes}).join(',')})`)
	if !strings.Contains(icons, "192x192") || !strings.Contains(icons, "512x512") {
		t.Errorf("manifest icons %q", icons)
	}

	// the month's day bars add up to the overview's month
	month := yday[:7]
	b.open("/s/home/month/"+month, "#day-bars")
	bars := b.num(`Array.from(document.querySelectorAll('#day-bars rect.bar-in')).reduce(function(s, r){return s + Number(r.getAttribute('data-wh'))}, 0)`)
	b.open("/s/home/overview?month="+month, "#all-in")
	ov := b.num(`Number(document.querySelector('#m-` + month + ` td.in').getAttribute('data-wh'))`)
	if ov <= 0 || math.Abs(bars-ov) > 1e-6*ov {
		t.Errorf("month bars add up to %v Wh, the overview's month is %v Wh", bars, ov)
	}
	// a click on a bar opens its day
	b.open("/s/home/month/"+month, "#day-bars")
	if err := chromedp.Do(b.ctx, chromedp.Click(chromedp.CSS(`#day-bars g.grp[data-key="`+yday+`"] rect.hit`))); err != nil {
		t.Fatal(err)
	}
	b.poll(`location.pathname === '/s/home/day/`+yday+`'`, "a click on a day bar opens the day")

	// German, dark, phone: every page fits 360 px
	if _, err := chromedp.Call(b.ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	pages := []struct{ name, path, sel string }{
		{"home", "/", ".sources"},
		{"live", "/s/home", "#total"},
		{"day", "/s/home/day/" + yday, "#day-chart"},
		{"overview", "/s/home/overview", "#all-in"},
		{"month", "/s/home/month/" + month, "#day-bars"},
		{"year", "/s/home/year/" + month[:4], "#month-bars"},
	}
	for _, mode := range []struct {
		name, lang string
		dark       bool
		w, h       int64
	}{{"desktop", "en-US", false, 1280, 900}, {"phone", "en-US", false, 360, 800}, {"phone-dark-de", "de-DE", true, 360, 800}, {"desktop-dark-de", "de-DE", true, 1280, 900}} {
		if _, err := chromedp.Call(b.ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{Headers: network.Headers{"Accept-Language": mode.lang}}); err != nil {
			t.Fatal(err)
		}
		scheme := "light"
		if mode.dark {
			scheme = "dark"
		}
		if _, err := chromedp.Call(b.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
			t.Fatal(err)
		}
		vp := []chromedp.EmulateViewportOption{chromedp.EmulateScale(1)}
		if mode.w < 500 {
			vp = []chromedp.EmulateViewportOption{chromedp.EmulateScale(1.5), chromedp.EmulateMobile, chromedp.EmulatePortrait}
		}
		if err := chromedp.Do(b.ctx, chromedp.EmulateViewport(mode.w, mode.h, vp...)); err != nil {
			t.Fatal(err)
		}
		for _, p := range pages {
			b.open(p.path, p.sel)
			if mode.w < 500 {
				sw, iw := b.num(`document.documentElement.scrollWidth`), b.num(`window.innerWidth`)
				if sw > iw {
					t.Errorf("%s at %d px scrolls sideways: scrollWidth %v > innerWidth %v", p.name, mode.w, sw, iw)
				}
				// names of one word stay on one line
				split := b.eval(`Array.from(document.querySelectorAll('tbody th, .src, .chip, .source .name, .lg')).filter(function(e){
					var t = e.textContent.trim(); if (!t || /\s/.test(t)) return false;
					return Array.from(e.childNodes).some(function(n){
						if (n.nodeType !== 3 || !n.textContent.trim()) return false;
						var r = document.createRange(); r.selectNodeContents(n);
						var tops = {}; Array.from(r.getClientRects()).forEach(function(c){ if (c.width > 0) tops[Math.round(c.top)] = 1 });
						return Object.keys(tops).length > 1;
					});
				}).map(function(e){return e.textContent.trim()}).join(',')`)
				if split != "" {
					t.Errorf("%s at %d px splits names: %s", p.name, mode.w, split)
				}
			}
			b.shot(p.name + "-" + mode.name)
		}
	}
}
