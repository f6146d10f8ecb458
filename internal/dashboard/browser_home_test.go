package dashboard

import (
	"context"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/tariff"
)

// TestBrowserHomeFlowAndMoney shows a home with a grid meter, a balcony
// plant and a fridge in Chromium: the live flow adds up and follows new
// readings, the overview's money columns equal what Go computes.
func TestBrowserHomeFlowAndMoney(t *testing.T) {
	exe := chromium(t)
	st := openStore(t)
	home, err := household.New([]household.Device{
		{Name: "grid", Role: household.Grid, Label: "Netz"},
		{Name: "pv", Role: household.PV, Label: "Balkon"},
		{Name: "fridge", Role: household.Consumer, Label: "Kühlschrank"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tr := &tariff.Tariff{Currency: "EUR", Zone: berlin, Import: []tariff.Price{{PerKWh: 0.30, Windows: []tariff.Window{{From: 22, To: 6, Price: 0.25}}}},
		FeedIn: []tariff.Price{{PerKWh: 0.08}}, BaseFee: 10, Investment: 500}
	now := time.Now().Truncate(10 * time.Second)
	tr.InvestedOn = time.Date(now.In(berlin).Year(), now.In(berlin).Month(), now.In(berlin).Day()-3, 0, 0, 0, 0, berlin)
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	// three days: the plant makes 500 W from 10 to 14 h, the house draws
	// 300 W, the fridge 100 W of it
	sun := func(tt time.Time) float64 {
		if h := tt.In(berlin).Hour(); h >= 10 && h < 14 {
			return 500
		}
		return 0
	}
	from := tr.InvestedOn
	to := now.Add(-time.Minute)
	rs := series("pv", from, to, sun)
	rs = append(rs, series("grid", from, to, func(tt time.Time) float64 { return 300 - sun(tt) })...)
	rs = append(rs, series("fridge", from, to, func(time.Time) float64 { return 100 })...)
	// the moment: 550 W of sun, 150 W going out, the fridge at 90 W
	rs = append(rs,
		reading.Reading{Device: "grid", Time: now, Power: -150},
		reading.Reading{Device: "pv", Time: now, Power: 550},
		reading.Reading{Device: "fridge", Time: now, Power: 90})
	insert(t, st, "home", rs...)

	d := newTestDashboard(t, st, Options{Now: time.Now, PollInterval: 200 * time.Millisecond,
		Home:   func(string) *household.Home { return home },
		Tariff: func(string) *tariff.Tariff { return tr }})
	srv := httptest.NewServer(mux(d))
	defer srv.Close()

	actx, cancelA := chromedp.NewExecAllocator(context.Background(), chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.Flag("no-first-run", true), chromedp.Flag("lang", "en-US"), chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900))
	defer cancelA()
	ctx, cancelC := chromedp.NewContext(actx)
	defer cancelC()
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return strings.TrimSpace(s)
	}
	open := func(path, sel string) {
		t.Helper()
		if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+path), chromedp.WaitVisible(chromedp.CSS(sel))); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}

	dir := artifactDir(t)
	shot := func(name string) {
		t.Helper()
		buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".png"), buf, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	open("/s/home", "#flow")
	shot("home-live")
	for sel, want := range map[string]string{
		`[data-flow="production"]`: "550 W", `[data-flow="solar_home"]`: "400 W", `[data-flow="grid_home"]`: "0.0 W",
		`[data-flow="export"]`: "150 W", `[data-flow="home"]`: "400 W", `[data-flow="appliances"]`: "90.0 W", `[data-flow="rest"]`: "310 W",
		"#total": "400 W", ".headline": "Home consumption",
	} {
		if got := text(sel); got != want {
			t.Errorf("live %s = %q, want %q", sel, got, want)
		}
	}
	// a cloud: 100 W of sun, 200 W from the grid; the page follows
	insert(t, st, "home",
		reading.Reading{Device: "grid", Time: now.Add(10 * time.Second), Power: 200},
		reading.Reading{Device: "pv", Time: now.Add(10 * time.Second), Power: 100},
		reading.Reading{Device: "fridge", Time: now.Add(10 * time.Second), Power: 90})
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.querySelector('[data-flow="home"]').textContent === '300 W'`, chromedp.WithPollingTimeout(15*time.Second))); err != nil {
		t.Fatalf("flow did not follow to 300 W (shows %q): %v", text(`[data-flow="home"]`), err)
	}
	if got := text(`[data-flow="grid_home"]`); got != "200 W" {
		t.Errorf("grid → home %q after the cloud", got)
	}

	// yesterday's day page: production, consumption, import and export apart
	yday := now.In(berlin).AddDate(0, 0, -1).Format("2006-01-02")
	ys, err := (&energy.Calc{Store: st, Source: "home", Zone: berlin, Home: home, Tariff: tr}).Compute(context.Background(), yday, nil)
	if err != nil {
		t.Fatal(err)
	}
	open("/s/home/day/"+yday, "#day-production")
	shot("home-day")
	for sel, want := range map[string]string{
		"#day-production": langEN.Wh(ys.Flow.Production), "#day-home": langEN.Wh(ys.Flow.Home),
		"#day-import": langEN.Wh(ys.Flow.Import), "#day-export": langEN.Wh(ys.Flow.Export),
		"#day-savings": langEN.Money(ys.Money.Savings, "EUR"),
	} {
		if got := text(sel); got != want {
			t.Errorf("day %s = %q, want %q", sel, got, want)
		}
	}
	// 4 h of 500 W sun, 24 h of 300 W: home 7.2 kWh, production 2 kWh of
	// which 0.8 kWh go out (200 W for 4 h; the 10-s ramps at 10 and 14 h
	// take a third of a Wh)
	if ys.Flow.Home < 7199 || ys.Flow.Home > 7201 || ys.Flow.Production < 1999 || ys.Flow.Production > 2001 || ys.Flow.Export < 799 || ys.Flow.Export > 801 {
		t.Errorf("yesterday %+v", ys.Flow)
	}

	// overview: money columns as Go computes them
	calc := &energy.Calc{Store: st, Source: "home", Zone: berlin, Home: home, Tariff: tr}
	month := now.In(berlin).Format("2006-01")
	days, err := calc.Totals(context.Background(), month+"-01", now.In(berlin).Format("2006-01-02"))
	if err != nil {
		t.Fatal(err)
	}
	ds, _ := energy.Rows(days, "day", berlin, home, tr)
	total := energy.Total(ds)
	open("/s/home/overview", "#home-days")
	for sel, want := range map[string]string{
		"#home-days tfoot .sav":  langEN.Money(total.Money.Savings, "EUR"),
		"#home-days tfoot .cost": langEN.Money(total.Money.Cost, "EUR"),
		"#home-days tfoot .rev":  langEN.Money(total.Money.Revenue, "EUR"),
		"#home-days tfoot .prod": langEN.KWh(total.Flow.Production),
	} {
		if got := text(sel); got != want {
			t.Errorf("overview %s = %q, want %q", sel, got, want)
		}
	}
	if total.Money.Savings <= 0 || total.Flow.Production <= 0 {
		t.Errorf("nothing to compare: %+v", total)
	}
	if p := text("#payback"); !strings.Contains(p, "€500.00") {
		t.Errorf("payback %q", p)
	}
	shot("home-overview")
}
