package energy_test

import (
	"context"
	"math"
	"path/filepath"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store/sqlite"
	"github.com/powermeter/powermeter/internal/tariff"
)

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-6*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.6f, want %.6f", what, got, want)
	}
}

var day = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// sunnyDay is a day of 10-s readings with counters: the grid meter, a
// balcony plug on the plant (counting its production as consumption) and
// a fridge plug. 00–06 h: the home draws 200 W (fridge 100 W); 06–12 h
// the plant makes 500 W, the home draws 300 W, 200 W go out; 12–24 h
// 300 W from the grid, the fridge is off.
func sunnyDay() []reading.Reading {
	var out []reading.Reading
	var gIn, gOut, pv, fr float64
	for s := -60; s <= 86400+60; s += 10 {
		h := math.Floor(float64(s-5) / 3600)
		var grid, sun, fridge float64
		switch {
		case h < 6:
			grid, fridge = 200, 100
		case h < 12:
			grid, sun, fridge = -200, 500, 100
		default:
			grid = 300
		}
		k := 10.0 / 3600
		if grid > 0 {
			gIn += grid * k
		} else {
			gOut -= grid * k
		}
		pv += sun * k
		fr += fridge * k
		t := day.Add(time.Duration(s) * time.Second)
		out = append(out,
			reading.Reading{Device: "fridge", Time: t, Power: fridge, EnergyIn: reading.F(fr)},
			reading.Reading{Device: "grid", Time: t, Power: grid, EnergyIn: reading.F(gIn), EnergyOut: reading.F(gOut)},
			reading.Reading{Device: "pv", Time: t, Power: sun, EnergyIn: reading.F(pv)},
		)
	}
	return out
}

func home(t *testing.T, pvRole household.Role) *household.Home {
	h, err := household.New([]household.Device{{Name: "grid", Role: household.Grid}, {Name: "pv", Role: pvRole}, {Name: "fridge", Role: household.Consumer}})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSunnyDayFlows(t *testing.T) {
	d, err := energy.NewHomeDay("2026-06-01", time.UTC, 10*time.Second, home(t, household.PV))
	if err != nil {
		t.Fatal(err)
	}
	var noon energy.Point
	d.OnPoint = func(p energy.Point) {
		if p.Time.Equal(day.Add(9 * time.Hour)) {
			noon = p
		}
	}
	from, to := d.Window()
	for _, r := range sunnyDay() {
		if !r.Time.Before(from) && r.Time.Before(to) {
			d.Add(r)
		}
	}
	s := d.Summary()
	f := s.Flow
	near(t, "import", f.Import, 4800)
	near(t, "export", f.Export, 1200)
	near(t, "production", f.Production, 3000)
	near(t, "home", f.Home, 6600)
	near(t, "self", f.Self, 1800)
	near(t, "appliances", f.Appliances, 1200)
	near(t, "rest", f.Rest, 5400)
	near(t, "grid→home", f.GridHome, 4800)
	a, _ := f.Autarky()
	near(t, "autarky", a, 1-4800.0/6600)
	r, _ := f.SelfRate()
	near(t, "self rate", r, 0.6)
	if len(s.HourFlows) != 24 {
		t.Fatalf("%d hours", len(s.HourFlows))
	}
	h7 := s.HourFlows[7]
	near(t, "07 h export", h7.Export, 200)
	near(t, "07 h production", h7.Production, 500)
	near(t, "07 h home", h7.Home, 300)
	near(t, "03 h home", s.HourFlows[3].Home, 200)
	// the moment at 09:00, in W
	near(t, "09:00 home W", noon.Flow.Home, 300)
	near(t, "09:00 solar→home W", noon.Flow.SolarHome, 300)
	near(t, "09:00 export W", noon.Flow.Export, 200)
	near(t, "09:00 rest W", noon.Flow.Rest, 200)
	// the source's power is the grid meter's (−200 W: feed-in), not the
	// sum of the devices (400 W: grid + pv + fridge)
	near(t, "09:00 source power", noon.Power, -200)
	near(t, "day in = import", s.InWh, 4800)
	near(t, "day out = export", s.OutWh, 1200)

	// money: 0.30 per kWh in, 0.08 out
	tr := &tariff.Tariff{Import: []tariff.Price{{PerKWh: 0.30}}, FeedIn: []tariff.Price{{PerKWh: 0.08}}, BaseFee: 15}
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	s.Price(tr)
	near(t, "cost", s.Money.Cost, 1.44)
	near(t, "revenue", s.Money.Revenue, 0.096)
	near(t, "savings", s.Money.Savings, 0.54)
	near(t, "base fee", s.Money.BaseFee, 0.5)
}

func TestRoleChangeRecomputes(t *testing.T) {
	ctx := context.Background()
	st, err := sqlite.OpenFile(ctx, filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.EnsureSource(ctx, "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Insert(ctx, "home", sunnyDay()); err != nil {
		t.Fatal(err)
	}
	cache := energy.NewCache(100)
	calc := func(h *household.Home) *energy.Calc {
		return &energy.Calc{Store: st, Source: "home", Zone: time.UTC, Cache: cache, Home: h,
			Now: func() time.Time { return day.Add(72 * time.Hour) }}
	}
	days, err := calc(home(t, household.PV)).Totals(ctx, "2026-06-01", "2026-06-01")
	if err != nil || len(days) != 1 {
		t.Fatalf("days %v %v", days, err)
	}
	near(t, "home with the plant as pv", days[0].Flow.Home, 6600)
	// now cached; the same roles read it back
	again, _ := calc(home(t, household.PV)).Totals(ctx, "2026-06-01", "2026-06-01")
	near(t, "cached home", again[0].Flow.Home, 6600)
	// the plant's plug taken for an appliance: recomputed, not the cached figure
	days, err = calc(home(t, household.Consumer)).Totals(ctx, "2026-06-01", "2026-06-01")
	if err != nil {
		t.Fatal(err)
	}
	// 00–06 h 1200 Wh, 06–12 h nothing (the grid meter sees export: no
	// home can draw less than nothing), 12–24 h 3600 Wh
	near(t, "home with the plug as an appliance", days[0].Flow.Home, 4800)
	near(t, "production", days[0].Flow.Production, 0)
	near(t, "appliances", days[0].Flow.Appliances, 4200)
	// and back: the store's cache holds the newest roles only
	days, _ = calc(home(t, household.PV)).Days(ctx, "2026-06-01", "2026-06-01")
	near(t, "home back with pv", days[0].Flow.Home, 6600)
	near(t, "hour 7 export", days[0].HourFlows[7].Export, 200)
}

// In a home with a grid meter the power bands hold the grid's power: a
// steady 500 W import with a 200 W fridge behind the meter spends the
// day's hour in the 450–500 W band only (a step used to end at the sum of
// all devices, 700 W).
func TestGridHomeBandsAreTheGrids(t *testing.T) {
	d, err := energy.NewHomeDay("2026-06-01", time.UTC, 10*time.Second, home(t, household.PV))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	for i := range 361 {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		d.Add(reading.Reading{Device: "fridge", Time: at, Power: 200})
		d.Add(reading.Reading{Device: "grid", Time: at, Power: 500})
	}
	s := d.Summary()
	var secs float64
	for i, b := range s.Bands {
		secs += b.Seconds
		if b.Seconds > 0 && i != 9 {
			t.Errorf("band %d (%d–%d W): %.0f s, want all of the hour in band 9 (450–500 W)", i, i*50, (i+1)*50, b.Seconds)
		}
	}
	if math.Abs(secs-3600) > 1e-6 || len(s.Bands) < 10 || math.Abs(s.Bands[9].Wh-500) > 1e-6 {
		t.Errorf("bands %+v: want 3600 s and 500 Wh in band 9", s.Bands)
	}
}
