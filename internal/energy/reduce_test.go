package energy

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/reading"
)

// synthHome makes 10-s readings of a home from start to end: a grid meter
// with import and export counters (role grid), a pv inverter known only by
// its power, 3 s off the grid (pv), a plug known only by its power at
// irregular times off the 10-s grid, with zero crossings and gaps longer
// than the bridge (consumer), and a meter with counters that resets and
// misses three minutes (consumer).
func synthHome(start, end time.Time, seed uint64) []reading.Reading {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []reading.Reading
	sec := func(t time.Time) float64 { return float64(t.Unix()%86400) + float64(t.Nanosecond())/1e9 }
	sun := func(t time.Time) float64 {
		h := sec(t) / 3600 // UTC hours
		if h < 5 || h > 17 {
			return 0
		}
		return 2500*math.Sin((h-5)/12*math.Pi) + 200*math.Sin(sec(t)/97)
	}
	demand := func(t time.Time) float64 { return 400 + 300*math.Sin(sec(t)/1800) + 150*math.Sin(sec(t)/61) }

	// grid and pv: every 10 s; the grid meter counts what the step from
	// the previous reading gave, so its counters move like a real one's
	var gIn, gOut float64
	prevGrid := 0.0
	for t := start; t.Before(end); t = t.Add(10 * time.Second) {
		pvT := t.Add(3 * time.Second)
		g := demand(t) - sun(t)
		in, o := split(prevGrid, g, 10)
		gIn += in
		gOut += o
		prevGrid = g
		out = append(out,
			reading.Reading{Device: "grid", Time: t, Power: g, EnergyIn: reading.F(math.Round(gIn*1000) / 1000), EnergyOut: reading.F(math.Round(gOut*1000) / 1000)},
			reading.Reading{Device: "pv", Time: pvT, Power: sun(pvT)},
		)
	}

	// the plug: 10 s apart ± up to 4.9 s, milliseconds off the grid; a
	// gap of 45 s every ~83 min, a 7-minute gap every ~5 h
	n := 0
	for t := start.Add(1234 * time.Millisecond); t.Before(end); n++ {
		p := 250*math.Sin(sec(t)/400) + 30*rng.NormFloat64()
		out = append(out, reading.Reading{Device: "plug", Time: t, Power: p, Temperature: reading.F(20 + p/100)})
		step := 10*time.Second + time.Duration(rng.IntN(9800)-4900)*time.Millisecond
		switch {
		case n%500 == 499:
			step = 45 * time.Second
		case n%1800 == 1799:
			step = 7*time.Minute + 13*time.Second
		}
		t = t.Add(step)
	}

	// the meter: counters at 10 s, a reset every ~14 h, a 3-minute gap
	// within a quarter hour once an hour (hh:02:35 to hh:05:45)
	var mIn, mOut float64
	prevM := 0.0
	k := 0
	for t := start.Add(5 * time.Second); t.Before(end); t = t.Add(10 * time.Second) {
		p := 800*math.Sin(sec(t)/700) + 100
		in, o := split(prevM, p, 10)
		mIn += in
		mOut += o
		prevM = p
		k++
		if k%5000 == 0 {
			mIn, mOut = 3, 1 // reboot
		}
		if s := sec(t); int(s)%3600 > 155 && int(s)%3600 < 345 {
			continue
		}
		out = append(out, reading.Reading{Device: "meter", Time: t, Power: p, EnergyIn: reading.F(mIn), EnergyOut: reading.F(mOut), Voltage: reading.F(230), Phases: []float64{p / 2, p / 2}})
	}
	sortReadings(out)
	return out
}

func sortReadings(rs []reading.Reading) {
	sort.SliceStable(rs, func(i, j int) bool {
		if !rs[i].Time.Equal(rs[j].Time) {
			return rs[i].Time.Before(rs[j].Time)
		}
		return rs[i].Device < rs[j].Device
	})
}

// reduceUntil reduces the readings before horizon (a whole UTC minute) as
// a store does: per device, in chunks of chunk, each with the device's
// reading just before (as the store then holds it: reduced or raw) and
// its first reading after (raw).
func reduceUntil(rs []reading.Reading, horizon time.Time, chunk time.Duration, fn func(prev *reading.Reading, raw []reading.Reading, next *reading.Reading) []reading.Reading) []reading.Reading {
	byDev := map[string][]reading.Reading{}
	for _, r := range rs {
		byDev[r.Device] = append(byDev[r.Device], r)
	}
	var out []reading.Reading
	for _, dev := range byDev {
		var kept []reading.Reading
		i := 0
		for i < len(dev) && dev[i].Time.Before(horizon) {
			c := dev[i].Time.Truncate(chunk)
			end := c.Add(chunk)
			if end.After(horizon) {
				end = horizon
			}
			j := i
			for j < len(dev) && dev[j].Time.Before(end) {
				j++
			}
			var prev, next *reading.Reading
			if len(kept) > 0 {
				p := kept[len(kept)-1]
				prev = &p
			}
			if j < len(dev) {
				n := dev[j]
				next = &n
			}
			kept = append(kept, fn(prev, dev[i:j], next)...)
			i = j
		}
		kept = append(kept, dev[i:]...)
		out = append(out, kept...)
	}
	sortReadings(out)
	return out
}

func roles(t *testing.T) *household.Home {
	h, err := household.New([]household.Device{
		{Name: "grid", Role: household.Grid}, {Name: "pv", Role: household.PV},
		{Name: "plug", Role: household.Consumer}, {Name: "meter", Role: household.Consumer},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// computeDays computes the days of rs with Calc (window, look-back and
// look-ahead as the server does).
func computeDays(t *testing.T, rs []reading.Reading, loc *time.Location, home *household.Home, days []string, onPoint func(string, Point)) []DaySummary {
	t.Helper()
	m := &memStore{rs: rs}
	c := &Calc{Store: m, Source: "home", Zone: loc, Home: home, Now: func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }}
	var out []DaySummary
	for _, d := range days {
		var f func(Point)
		if onPoint != nil {
			f = func(p Point) { onPoint(d, p) }
		}
		s, err := c.Compute(context.Background(), d, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// sameEnergy asserts two computations of the same days agree within
// 0.005 Wh and to the Wh: the day's import and export, each device's,
// and the home's flows (day and hours).
func sameEnergy(t *testing.T, what string, raw, red []DaySummary) {
	t.Helper()
	check := func(name string, a, b float64) {
		t.Helper()
		if math.Abs(a-b) > 0.005 || math.Round(a) != math.Round(b) {
			t.Errorf("%s: %s: raw %.6f, reduced %.6f", what, name, a, b)
		}
	}
	flow := func(prefix string, a, b household.Flow) {
		t.Helper()
		check(prefix+" import", a.Import, b.Import)
		check(prefix+" export", a.Export, b.Export)
		check(prefix+" production", a.Production, b.Production)
		check(prefix+" self", a.Self, b.Self)
		check(prefix+" home", a.Home, b.Home)
		check(prefix+" appliances", a.Appliances, b.Appliances)
		check(prefix+" rest", a.Rest, b.Rest)
		check(prefix+" grid home", a.GridHome, b.GridHome)
		check(prefix+" solar home", a.SolarHome, b.SolarHome)
	}
	for i := range raw {
		a, b := raw[i], red[i]
		check(a.Day+" in", a.InWh, b.InWh)
		check(a.Day+" out", a.OutWh, b.OutWh)
		if len(a.Devices) != len(b.Devices) {
			t.Fatalf("%s: %s: devices %+v vs %+v", what, a.Day, a.Devices, b.Devices)
		}
		for j := range a.Devices {
			check(a.Day+" "+a.Devices[j].Device+" in", a.Devices[j].InWh, b.Devices[j].InWh)
			check(a.Day+" "+a.Devices[j].Device+" out", a.Devices[j].OutWh, b.Devices[j].OutWh)
		}
		flow(a.Day, a.Flow, b.Flow)
		for h := range a.HourFlows {
			flow(fmt.Sprintf("%s hour %d", a.Day, h), a.HourFlows[h], b.HourFlows[h])
		}
		if a.Readings != b.Readings {
			t.Errorf("%s: %s: readings %d, reduced %d", what, a.Day, a.Readings, b.Readings)
		}
		if a.PeakW != b.PeakW {
			t.Errorf("%s: %s: peak %v, reduced %v", what, a.Day, a.PeakW, b.PeakW)
		}
	}
}

// TestReducedDaysKeepTheirEnergy reduces days around both DST changes in
// Europe/Berlin, all of them or up to a horizon (mid-day, in the night
// the clocks go back, at local midnight), hour by hour as a store does,
// and computes every day again: energy per day, per device and the
// home's flows per hour are those of the raw readings.
func TestReducedDaysKeepTheirEnergy(t *testing.T) {
	loc := berlin(t)
	fn := Reducer(10 * time.Second)
	for _, c := range []struct {
		days     []string
		horizons []time.Time
	}{
		{[]string{"2026-03-28", "2026-03-29", "2026-03-30"}, []time.Time{
			time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC),     // everything
			time.Date(2026, 3, 29, 11, 37, 0, 0, time.UTC),  // mid-day
			time.Date(2026, 3, 28, 23, 0, 0, 0, time.UTC),   // local midnight
			time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC),    // the hour that is skipped ends
			time.Date(2026, 3, 30, 16, 43, 0, 0, time.UTC)}, // mid-day
		},
		{[]string{"2026-10-24", "2026-10-25", "2026-10-26"}, []time.Time{
			time.Date(2026, 10, 28, 0, 0, 0, 0, time.UTC),
			time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), // 02:30 the first time
			time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), // 02:30 the second time
			time.Date(2026, 10, 24, 9, 59, 0, 0, time.UTC)},
		},
	} {
		first, _, err := DayBounds(c.days[0], loc)
		if err != nil {
			t.Fatal(err)
		}
		_, last, _ := DayBounds(c.days[len(c.days)-1], loc)
		rs := synthHome(first.Add(-2*time.Hour), last.Add(2*time.Hour), uint64(first.Unix()))
		home := roles(t)
		raw := computeDays(t, rs, loc, home, c.days, nil)
		for _, s := range raw {
			if s.InWh < 1000 || s.OutWh < 1000 || s.Flow.Production < 5000 {
				t.Fatalf("%s: the synthetic day is too small to mean anything: %+v", s.Day, s)
			}
		}
		for _, h := range c.horizons {
			red := reduceUntil(rs, h, time.Hour, fn)
			if len(red) >= len(rs) {
				t.Fatalf("horizon %v: %d readings reduced to %d", h, len(rs), len(red))
			}
			var gaps int
			got := computeDays(t, red, loc, home, c.days, func(_ string, p Point) {
				if p.Gap {
					gaps++
				}
			})
			sameEnergy(t, "horizon "+h.Format(time.RFC3339), raw, got)
			// the grid meter reports throughout: the chart has no hole
			if gaps != 0 {
				t.Errorf("horizon %v: %d points after a gap", h, gaps)
			}
		}
	}
}

// TestReducerChunks: how a store cuts the raw readings into calls does not
// change the minutes (a minute is never cut).
func TestReducerChunks(t *testing.T) {
	start := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	rs := synthHome(start, start.Add(6*time.Hour), 7)
	fn := Reducer(0)
	horizon := start.Add(5*time.Hour + 17*time.Minute)
	a := reduceUntil(rs, horizon, time.Hour, fn)
	b := reduceUntil(rs, horizon, 7*time.Minute, fn)
	c := reduceUntil(rs, horizon, 24*time.Hour, fn)
	if len(a) != len(b) || len(a) != len(c) {
		t.Fatalf("%d, %d, %d readings", len(a), len(b), len(c))
	}
	for i := range a {
		if a[i].Reduced == nil {
			continue
		}
		for _, o := range []reading.Reading{b[i], c[i]} {
			if o.Device != a[i].Device || !o.Time.Equal(a[i].Time) || o.Reduced == nil ||
				math.Abs(o.Reduced.InWh-a[i].Reduced.InWh) > 1e-9 || math.Abs(o.Reduced.OutWh-a[i].Reduced.OutWh) > 1e-9 {
				t.Fatalf("minute %v %s: %+v vs %+v", a[i].Time, a[i].Device, o.Reduced, a[i].Reduced)
			}
		}
	}
}

// TestReducerMinute checks one minute's fields by hand.
func TestReducerMinute(t *testing.T) {
	m := day0.Add(time.Hour)
	dt := m.Add(59 * time.Second)
	raw := []reading.Reading{
		{Device: "d", Time: m.Add(5 * time.Second), Power: 100, Temperature: reading.F(20), Phases: []float64{1, 2}},
		{Device: "d", Time: m.Add(15 * time.Second), Power: -100, Voltage: reading.F(230), Backfilled: true, Phases: []float64{3}},
		{Device: "d", Time: m.Add(25 * time.Second), Power: 300, Temperature: reading.F(22), DeviceTime: &dt},
		{Device: "d", Time: m.Add(110 * time.Second), Power: 300},
	}
	prev := reading.Reading{Device: "d", Time: m.Add(-5 * time.Second), Power: 100}
	next := reading.Reading{Device: "d", Time: m.Add(130 * time.Second), Power: 0}
	out := Reducer(10*time.Second)(&prev, raw, &next)
	if len(out) != 2 {
		t.Fatalf("%d minutes", len(out))
	}
	r := out[0]
	if !r.Time.Equal(m) || r.Device != "d" || r.Power != 100 || *r.Temperature != 21 || *r.Voltage != 230 ||
		len(r.Phases) != 2 || r.Phases[0] != 2 || r.Phases[1] != 2 || !r.Backfilled || *r.DeviceTime != dt || r.EnergyIn != nil {
		t.Errorf("minute %+v", r)
	}
	rd := r.Reduced
	if rd.Count != 3 || rd.MinPower != -100 || rd.MaxPower != 300 || !rd.LastTime.Equal(m.Add(25*time.Second)) || rd.LastPower != 300 {
		t.Errorf("reduced %+v", rd)
	}
	// 0–5 s: 100 W (the step from prev, counted from the minute's start);
	// 5–15 s: 100 → −100 W crossing zero at 10 s; 15–25 s: −100 → 300 W,
	// crossing at 17.5 s; 25–60 s of the 85-s step to 110 s: more than
	// the bridge, nothing
	near(t, "in", rd.InWh, (100*5+100*5/2+300*7.5/2)/3600)
	near(t, "out", rd.OutWh, (100*5/2+100*2.5/2)/3600)
	// the second minute: 110–120 s of the step to next (300 → 0 W over
	// 20 s), up to the minute's end only: 300 → 150 W over 10 s
	near(t, "in 2", out[1].Reduced.InWh, 225*10.0/3600)
	// without next, the last step counts nothing yet
	out = Reducer(10*time.Second)(&prev, raw, nil)
	near(t, "in 2 without next", out[1].Reduced.InWh, 0)
	// a reduced prev counts only after its minute
	rp := reading.Reading{Device: "d", Time: m.Add(-time.Minute), Power: 50, Reduced: &reading.Reduced{Count: 6, LastTime: m.Add(-5 * time.Second), LastPower: 100}}
	out = Reducer(10*time.Second)(&rp, raw, nil)
	near(t, "in after reduced prev", out[0].Reduced.InWh, (100*5+100*5/2+300*7.5/2)/3600)
}

// TestReducedCounterGapAcrossMidnight: a meter with a counter offline
// 22:30–01:00, its readings reduced. Up to a horizon before the meter
// comes back, the days get what they get from the raw readings. Reduced
// beyond, the gap's increase lies in the minute of 01:00 (Reduced.GapInWh)
// and is spread over the gap again by time: the days are still exact.
func TestReducedCounterGapAcrossMidnight(t *testing.T) {
	var rs []reading.Reading
	rs = append(rs, counterRun("meter", -3*3600, -5400+10, 5000)...) // last at 22:30:00
	rs = append(rs, counterRun("meter", 3600, 3*3600, 7000)...)      // first at 01:00:00
	for s := -3 * 3600; s < 3*3600; s += 10 {
		rs = append(rs, pw("plug", at(day0, s), 0))
	}
	sortReadings(rs)
	days := []string{"2026-05-31", "2026-06-01"}
	raw := computeDays(t, rs, time.UTC, nil, days, nil)
	for _, h := range []time.Time{at(day0, 60), at(day0, -3600), at(day0, -5400+60)} {
		red := reduceUntil(rs, h, time.Hour, Reducer(0))
		got := computeDays(t, red, time.UTC, nil, days, nil)
		near(t, "day before", got[0].InWh, 1200)
		near(t, "day after", got[1].InWh, 800)
		sameEnergy(t, "horizon "+h.Format(time.RFC3339), raw, got)
	}
	red := reduceUntil(rs, at(day0, 4*3600), time.Hour, Reducer(0))
	got := computeDays(t, red, time.UTC, nil, days, nil)
	near(t, "both days", got[0].InWh+got[1].InWh, 2000)
	sameEnergy(t, "all reduced", raw, got)
}

// BenchmarkReducer reduces a day of the synthetic home (four devices,
// ~34,000 readings) in calls of one device and hour, as a store makes
// them (the cutting is not measured).
func BenchmarkReducer(b *testing.B) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	rs := synthHome(start, start.Add(24*time.Hour), 3)
	type call struct {
		prev, next *reading.Reading
		raw        []reading.Reading
	}
	var calls []call
	byDev := map[string][]reading.Reading{}
	for _, r := range rs {
		byDev[r.Device] = append(byDev[r.Device], r)
	}
	for _, dev := range byDev {
		for i := 0; i < len(dev); {
			j := i
			for j < len(dev) && dev[j].Time.Truncate(time.Hour).Equal(dev[i].Time.Truncate(time.Hour)) {
				j++
			}
			c := call{raw: dev[i:j]}
			if i > 0 {
				c.prev = &dev[i-1]
			}
			if j < len(dev) {
				c.next = &dev[j]
			}
			calls = append(calls, c)
			i = j
		}
	}
	fn := Reducer(0)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for _, c := range calls {
			fn(c.prev, c.raw, c.next)
		}
	}
	b.ReportMetric(float64(len(rs)), "readings")
}

// BenchmarkDayRawVsReduced computes the same day from raw readings and
// from reduced minutes.
func BenchmarkDayRawVsReduced(b *testing.B) {
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	rs := synthHome(start.Add(-time.Hour), start.Add(25*time.Hour), 3)
	red := reduceUntil(rs, start.Add(25*time.Hour), time.Hour, Reducer(0))
	for _, c := range []struct {
		name string
		rs   []reading.Reading
	}{{"raw", rs}, {"reduced", red}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d, _ := NewDay("2026-06-01", time.UTC, 0)
				from, to := d.Window()
				for _, r := range c.rs {
					if !r.Time.Before(from) && r.Time.Before(to) {
						d.Add(r)
					}
				}
				d.Summary()
			}
			b.ReportMetric(float64(len(c.rs)), "readings")
		})
	}
}

// TestReducedCounterResetAcrossGap: a meter offline 23:00–01:00 comes back
// with its counter reset: the gap counts nothing, and the minute after it
// keeps its own energy (it is not spread back over the gap).
func TestReducedCounterResetAcrossGap(t *testing.T) {
	var rs []reading.Reading
	rs = append(rs, counterRun("meter", -2*3600, -3600+10, 5000)...) // last at 23:00:00
	for s := 3600; s < 2*3600; s += 10 {
		r := pw("meter", at(day0, s), 0)
		r.EnergyIn = reading.F(float64(s-3600) / 10) // 1 Wh per 10 s from 0
		rs = append(rs, r)
	}
	days := []string{"2026-05-31", "2026-06-01"}
	raw := computeDays(t, rs, time.UTC, nil, days, nil)
	red := computeDays(t, reduceUntil(rs, at(day0, 3*3600), time.Hour, Reducer(0)), time.UTC, nil, days, nil)
	near(t, "day before", raw[0].InWh, 0)
	near(t, "day after", raw[1].InWh, 359)
	sameEnergy(t, "reset across a gap", raw, red)
}

// gapHome is a home in Europe/Berlin from 2026-05-31 20:00 to 2026-06-03
// 04:00 local: a grid meter with counters at about 3 kW (1 kW in the
// night's silence) every 10 s (3 s
// off the minute, so every minute has energy of its own), silent from
// 22:30:03 to 01:00:03 local across the night of 1 to 2 June, and on 2
// June from 10:07:43 to 10:23:23 (across a quarter hour's boundary) and
// from 12:52:43 to 13:08:23 (across an hour's, feeding in), and a pv
// inverter known only by its power that reports throughout.
func gapHome(t *testing.T) ([]reading.Reading, []string, *time.Location) {
	loc := berlin(t)
	start := time.Date(2026, 5, 31, 20, 0, 3, 0, loc)
	end := time.Date(2026, 6, 3, 4, 0, 0, 0, loc)
	silent := [][2]time.Time{
		{time.Date(2026, 6, 1, 22, 30, 3, 0, loc), time.Date(2026, 6, 2, 1, 0, 3, 0, loc)},
		{time.Date(2026, 6, 2, 10, 7, 43, 0, loc), time.Date(2026, 6, 2, 10, 23, 23, 0, loc)},
		{time.Date(2026, 6, 2, 12, 52, 43, 0, loc), time.Date(2026, 6, 2, 13, 8, 23, 0, loc)},
	}
	var rs []reading.Reading
	var gIn, gOut float64
	prev := 0.0
	for tt := start; tt.Before(end); tt = tt.Add(10 * time.Second) {
		s := float64(tt.Unix())
		p := 3000 + 700*math.Sin(s/900) + 200*math.Sin(s/53)
		if h := tt.In(loc).Hour(); h >= 11 && h < 15 {
			p -= 4500 // feed-in at noon
		}
		if tt.After(silent[0][0]) && tt.Before(silent[0][1]) {
			p -= 2000 // the night's load is lower than the morning's
		}
		in, out := split(prev, p, 10)
		gIn += in
		gOut += out
		prev = p
		off := false
		for _, g := range silent {
			off = off || (tt.After(g[0]) && tt.Before(g[1]))
		}
		if !off {
			rs = append(rs, reading.Reading{Device: "grid", Time: tt, Power: p,
				EnergyIn: reading.F(math.Round(gIn*1000) / 1000), EnergyOut: reading.F(math.Round(gOut*1000) / 1000)})
		}
		pvT := tt.Add(4 * time.Second)
		h := float64(pvT.In(loc).Hour()) + float64(pvT.In(loc).Minute())/60
		pv := 0.0
		if h > 6 && h < 20 {
			pv = 5000 * math.Sin((h-6)/14*math.Pi)
		}
		rs = append(rs, reading.Reading{Device: "pv", Time: pvT, Power: pv})
	}
	sortReadings(rs)
	return rs, []string{"2026-06-01", "2026-06-02"}, loc
}

// TestReducedCounterGapExact: a grid meter with counters silent across
// local midnight and across quarter hours' boundaries, its readings
// reduced up to horizons before, inside and after the silences: every
// day's energy, each device's, and the home's flows per day and hour are
// those of the raw readings within 0.005 Wh. The same minutes without
// their gap part (as reduced before Reduced.Gap existed) move up to the
// minute's own energy between the days: the test tells them apart.
func TestReducedCounterGapExact(t *testing.T) {
	rs, days, loc := gapHome(t)
	home := roles(t)
	raw := computeDays(t, rs, loc, home, days, nil)
	if raw[0].InWh < 50000 || raw[1].OutWh < 1000 {
		t.Fatalf("the synthetic days are too small: %+v", raw)
	}
	for _, h := range []time.Time{
		time.Date(2026, 6, 3, 2, 0, 0, 0, time.UTC),  // everything
		time.Date(2026, 6, 1, 22, 0, 0, 0, time.UTC), // midnight, inside the silence
		time.Date(2026, 6, 1, 23, 1, 0, 0, time.UTC), // the minute after the silence
		time.Date(2026, 6, 2, 8, 15, 0, 0, time.UTC), // inside the second silence
	} {
		red := reduceUntil(rs, h, time.Hour, Reducer(0))
		got := computeDays(t, red, loc, home, days, nil)
		sameEnergy(t, "horizon "+h.Format(time.RFC3339), raw, got)
	}

	red := reduceUntil(rs, time.Date(2026, 6, 3, 2, 0, 0, 0, time.UTC), time.Hour, Reducer(0))
	gaps := 0
	old := make([]reading.Reading, len(red))
	for i, r := range red {
		if r.Reduced != nil && r.Reduced.Gap {
			gaps++
			x := *r.Reduced
			x.Gap, x.GapInWh, x.GapOutWh = false, 0, 0
			r.Reduced = &x
		}
		old[i] = r
	}
	if gaps != 3 {
		t.Errorf("%d minutes after a gap, want 3", gaps)
	}
	got := computeDays(t, old, loc, home, days, nil)
	worst := 0.0
	for i := range raw {
		worst = max(worst, math.Abs(got[i].InWh-raw[i].InWh), math.Abs(got[i].OutWh-raw[i].OutWh))
	}
	t.Logf("without the gap part: a day's energy off by up to %.3f Wh", worst)
	if worst < 1 {
		t.Errorf("without the gap part the days are off by %.3f Wh only: the test does not see the gap", worst)
	}
}

// A device whose only reading of the window lies just before the day and
// whose next reading, after a counter gap, is a reduced minute is listed
// with the gap's energy, as it is with the raw reading (Summary used to
// leave it out and the day's total with it, while the flows kept it).
func TestSummaryListsEnergyFromAReducedMinuteAfterTheDay(t *testing.T) {
	mid := time.Date(2026, 5, 2, 0, 0, 0, 0, time.UTC)
	prev := reading.Reading{Device: "m", Time: mid.Add(-20 * time.Second), Power: 100, EnergyIn: reading.F(1000)}
	var raw []reading.Reading
	for i := range 6 {
		at := mid.Add(30*time.Hour + time.Duration(i)*10*time.Second)
		raw = append(raw, reading.Reading{Device: "m", Time: at, Power: 100, EnergyIn: reading.F(4000 + float64(i))})
	}
	minutes := Reducer(10*time.Second)(&prev, raw, nil)
	if len(minutes) != 1 || minutes[0].Reduced == nil {
		t.Fatalf("reduced: %+v", minutes)
	}
	sum := func(after reading.Reading) DaySummary {
		d, err := NewDay("2026-05-02", time.UTC, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		d.Add(prev)
		if names := d.LookAhead(); len(names) != 1 {
			t.Fatalf("look ahead: %v", names)
		}
		d.After(after)
		return d.Summary()
	}
	fromRaw, fromReduced := sum(raw[0]), sum(minutes[0])
	if len(fromRaw.Devices) != 1 || fromRaw.InWh < 1000 {
		t.Fatalf("from the raw reading: %+v", fromRaw)
	}
	if len(fromReduced.Devices) != 1 || math.Abs(fromReduced.InWh-fromRaw.InWh) > 0.005 {
		t.Errorf("from the reduced minute: %.3f Wh of %d devices, want %.3f Wh of 1", fromReduced.InWh, len(fromReduced.Devices), fromRaw.InWh)
	}
}
