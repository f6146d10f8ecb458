package energy

import (
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/reading"
)

const eps = 1e-6

func near(t *testing.T, name string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > eps*math.Max(1, math.Abs(want)) {
		t.Errorf("%s = %.9f, want %.9f", name, got, want)
	}
}

func at(base time.Time, sec int) time.Time { return base.Add(time.Duration(sec) * time.Second) }

func pw(dev string, t time.Time, p float64) reading.Reading {
	return reading.Reading{Device: dev, Time: t, Power: p}
}

// run feeds readings into a day of 10-s interval and returns its summary.
func run(t *testing.T, day string, loc *time.Location, rs []reading.Reading, onPoint func(Point)) DaySummary {
	t.Helper()
	d, err := NewDay(day, loc, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d.OnPoint = onPoint
	from, to := d.Window()
	for _, r := range rs {
		if r.Time.Before(from) || !r.Time.Before(to) {
			continue
		}
		d.Add(r)
	}
	return d.Summary()
}

var day0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func TestPowerOnlyConstant(t *testing.T) {
	var rs []reading.Reading
	for s := 0; s <= 3600; s += 10 {
		rs = append(rs, pw("plug", at(day0, s), 100))
	}
	s := run(t, "2026-06-01", time.UTC, rs, nil)
	near(t, "in", s.InWh, 100) // 100 W for exactly one hour
	near(t, "out", s.OutWh, 0)
	near(t, "covered", s.Covered, 3600)
	if s.Readings != 361 || s.PeakW != 100 || !s.PeakAt.Equal(day0) {
		t.Errorf("readings %d peak %v at %v", s.Readings, s.PeakW, s.PeakAt)
	}
	if len(s.Devices) != 1 || s.Devices[0].Method() != "power" || s.Devices[0].PowerSteps != 360 {
		t.Errorf("devices %+v", s.Devices)
	}
	// band 2 covers 100 W < p ≤ 150 W... 100 W sits in band 1 (50 < p ≤ 100)
	if len(s.Bands) != 2 || s.Bands[0].Seconds != 0 {
		t.Fatalf("bands %+v", s.Bands)
	}
	near(t, "band1 s", s.Bands[1].Seconds, 3600)
	near(t, "band1 wh", s.Bands[1].Wh, 100)
	if s.FeedBands != nil || !s.FirstFeed.IsZero() {
		t.Errorf("feed-in where there is none: %+v %v", s.FeedBands, s.FirstFeed)
	}
}

func TestRampTrapezoidAndBands(t *testing.T) {
	rs := []reading.Reading{pw("p", at(day0, 0), 0), pw("p", at(day0, 10), 100)}
	s := run(t, "2026-06-01", time.UTC, rs, nil)
	// mean 50 W over 10 s = 500 Ws
	near(t, "in", s.InWh, 500.0/3600)
	// 0→50 W takes 5 s at a mean of 25 W; 50→100 W 5 s at 75 W
	near(t, "band0 s", s.Bands[0].Seconds, 5)
	near(t, "band0 wh", s.Bands[0].Wh, 125.0/3600)
	near(t, "band1 s", s.Bands[1].Seconds, 5)
	near(t, "band1 wh", s.Bands[1].Wh, 375.0/3600)
	ab := Above(s.Bands)
	near(t, "above 0 s", ab[0].Seconds, 10)
	near(t, "above 0 wh", ab[0].Wh, 500.0/3600)
	near(t, "above 50 s", ab[1].Seconds, 5)
}

func TestZeroCrossing(t *testing.T) {
	// +100 W → −300 W over 20 s: crosses zero after 5 s.
	rs := []reading.Reading{pw("grid", at(day0, 0), 100), pw("grid", at(day0, 20), -300)}
	s := run(t, "2026-06-01", time.UTC, rs, nil)
	near(t, "in", s.InWh, 100.0/2*5/3600)    // 250 Ws
	near(t, "out", s.OutWh, 300.0/2*15/3600) // 2250 Ws
	if s.FeedPeakW != 300 || !s.FeedPeakAt.Equal(at(day0, 20)) {
		t.Errorf("feed peak %v at %v", s.FeedPeakW, s.FeedPeakAt)
	}
	if !s.FirstFeed.Equal(at(day0, 20)) || !s.LastFeed.Equal(at(day0, 20)) {
		t.Errorf("feed %v..%v", s.FirstFeed, s.LastFeed)
	}
	// feed bands: 0→300 W of feed-in over 15 s, 2.5 s per 50 W band
	if len(s.FeedBands) != 6 {
		t.Fatalf("feed bands %+v", s.FeedBands)
	}
	near(t, "feed band 5 s", s.FeedBands[5].Seconds, 2.5)
	near(t, "feed band 5 wh", s.FeedBands[5].Wh, 2.5*275/3600)
	// the reverse direction gives the same parts
	rs = []reading.Reading{pw("grid", at(day0, 0), -300), pw("grid", at(day0, 20), 100)}
	s = run(t, "2026-06-01", time.UTC, rs, nil)
	near(t, "in rev", s.InWh, 250.0/3600)
	near(t, "out rev", s.OutWh, 2250.0/3600)
}

func TestGapsNotBridged(t *testing.T) {
	var pts []Point
	rs := []reading.Reading{
		pw("p", at(day0, 0), 100), pw("p", at(day0, 10), 100), pw("p", at(day0, 20), 100),
		// 30 s = 3 intervals: still bridged
		pw("p", at(day0, 50), 100),
		// 40 s: a gap
		pw("p", at(day0, 90), 100), pw("p", at(day0, 100), 100),
	}
	s := run(t, "2026-06-01", time.UTC, rs, func(p Point) { pts = append(pts, p) })
	near(t, "in", s.InWh, 100*(10+10+30+10)/3600.0)
	near(t, "covered", s.Covered, 60)
	gaps := 0
	for _, p := range pts {
		if p.Gap {
			gaps++
		}
	}
	if len(pts) != 6 || gaps != 2 || !pts[4].Gap {
		t.Errorf("points %+v", pts)
	}
}

func TestCountersWithReset(t *testing.T) {
	c := func(sec int, in float64) reading.Reading {
		r := pw("fritz", at(day0, sec), 9999) // power must not be used
		r.EnergyIn = reading.F(in)
		return r
	}
	rs := []reading.Reading{
		c(0, 1000), c(10, 1010), c(20, 1025),
		c(30, 3), // reboot: counter restarts
		c(40, 8), c(50, 20),
		c(50+7200, 220), // two hours offline: the counter still knows
	}
	s := run(t, "2026-06-01", time.UTC, rs, nil)
	near(t, "in", s.InWh, 10+15+0+5+12+200)
	// no export counter: export comes from power, which is positive here,
	// and the two-hour step is not bridged by power
	near(t, "out", s.OutWh, 0)
	d := s.Devices[0]
	if d.Resets != 1 || d.CounterSteps != 6 || d.PowerSteps != 5 || d.Method() != "mixed" {
		t.Errorf("device %+v", d)
	}
	if s.InWh < 0 || s.OutWh < 0 {
		t.Error("negative energy")
	}
}

func TestExportCounterAndPowerMix(t *testing.T) {
	r := func(sec int, p, in, out float64) reading.Reading {
		x := pw("3em", at(day0, sec), p)
		x.EnergyIn, x.EnergyOut = reading.F(in), reading.F(out)
		return x
	}
	rs := []reading.Reading{
		r(0, 500, 100, 50), r(10, -200, 101, 50), r(20, -200, 101, 51.5),
		pw("3em", at(day0, 30), -200),             // a line without counters (legacy)
		r(40, -200, 101, 52.5),                    // counters again
		r(50, -100, 101, 52), r(60, 0, 101, 52.2), // export counter reset at 50
	}
	s := run(t, "2026-06-01", time.UTC, rs, nil)
	// in: 1 + 0 (steps 0-10, 10-20) + power 20-30 and 30-40 (negative → 0) + 0 + 0
	near(t, "in", s.InWh, 1)
	// out: 0 + 1.5 + power 20-30 (200 W, 10 s) + power 30-40 + reset 0 + 0.2
	near(t, "out", s.OutWh, 1.5+2*2000.0/3600+0.2)
	if s.Devices[0].Resets != 1 {
		t.Errorf("resets %d", s.Devices[0].Resets)
	}
}

func TestMidnightSplit(t *testing.T) {
	rs := []reading.Reading{pw("p", at(day0, -5), 100), pw("p", at(day0, 5), 300)}
	prev := run(t, "2026-05-31", time.UTC, rs, nil)
	cur := run(t, "2026-06-01", time.UTC, rs, nil)
	// power at midnight interpolates to 200 W
	near(t, "previous day", prev.InWh, (100+200)/2*5/3600.0)
	near(t, "this day", cur.InWh, (200+300)/2*5/3600.0)
	near(t, "sum", prev.InWh+cur.InWh, 200*10/3600.0)
	if prev.Readings != 1 || cur.Readings != 1 {
		t.Errorf("readings %d %d", prev.Readings, cur.Readings)
	}
	// counters split by time as well
	c0, c1 := pw("c", at(day0, -2), 0), pw("c", at(day0, 8), 0)
	c0.EnergyIn, c1.EnergyIn = reading.F(10), reading.F(20)
	prev = run(t, "2026-05-31", time.UTC, []reading.Reading{c0, c1}, nil)
	cur = run(t, "2026-06-01", time.UTC, []reading.Reading{c0, c1}, nil)
	near(t, "counter prev", prev.InWh, 2)
	near(t, "counter cur", cur.InWh, 8)
}

func berlin(t *testing.T) *time.Location {
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// constantDay feeds 100 W every 10 s over the whole day plus its margins.
func constantDay(t *testing.T, day string, loc *time.Location) DaySummary {
	start, end, err := DayBounds(day, loc)
	if err != nil {
		t.Fatal(err)
	}
	var rs []reading.Reading
	for tt := start.Add(-30 * time.Second); tt.Before(end.Add(30 * time.Second)); tt = tt.Add(10 * time.Second) {
		rs = append(rs, pw("p", tt, 100))
	}
	return run(t, day, loc, rs, nil)
}

func TestDSTDays(t *testing.T) {
	loc := berlin(t)
	for _, c := range []struct {
		day   string
		hours float64
	}{{"2026-03-29", 23}, {"2026-10-25", 25}, {"2026-06-01", 24}} {
		s := constantDay(t, c.day, loc)
		if s.Hours() != c.hours {
			t.Errorf("%s: %v hours", c.day, s.Hours())
		}
		near(t, c.day+" in", s.InWh, 100*c.hours)
		if s.Readings != int(c.hours*360) {
			t.Errorf("%s: %d readings", c.day, s.Readings)
		}
	}
	start, _, _ := DayBounds("2026-10-25", loc)
	if !start.Equal(time.Date(2026, 10, 24, 22, 0, 0, 0, time.UTC)) {
		t.Errorf("2026-10-25 starts %v", start)
	}
}

func TestDevicesSummed(t *testing.T) {
	var rs []reading.Reading
	for s := 0; s <= 600; s += 10 {
		p := 100.0
		if s > 300 {
			p = 20
		}
		rs = append(rs, pw("a-fridge", at(day0, s), p), pw("b-solar", at(day0, s), -50))
	}
	s := run(t, "2026-06-01", time.UTC, rs, nil)
	// each device's import and export apart, then summed
	near(t, "in", s.InWh, (100*300+60*10+20*290)/3600.0)
	near(t, "out", s.OutWh, 50*600/3600.0)
	if len(s.Devices) != 2 || s.Devices[0].Device != "a-fridge" {
		t.Fatalf("devices %+v", s.Devices)
	}
	near(t, "solar out", s.Devices[1].OutWh, 50*600/3600.0)
	// the source's power is the sum: 50 W peak, then −30 W (feed-in)
	if s.PeakW != 50 || !s.FirstFeed.Equal(at(day0, 310)) || !s.LastFeed.Equal(at(day0, 600)) || s.FeedPeakW != 30 {
		t.Errorf("peak %v feed %v..%v %v", s.PeakW, s.FirstFeed, s.LastFeed, s.FeedPeakW)
	}
}

func TestStaleDeviceLeavesTotal(t *testing.T) {
	var pts []Point
	rs := []reading.Reading{pw("a", at(day0, 0), 100), pw("b", at(day0, 0), 10)}
	for s := 10; s <= 60; s += 10 {
		rs = append(rs, pw("b", at(day0, s), 10))
	}
	run(t, "2026-06-01", time.UTC, rs, func(p Point) { pts = append(pts, p) })
	want := []float64{110, 110, 110, 110, 10, 10, 10}
	for i, p := range pts {
		if p.Power != want[i] {
			t.Errorf("point %d = %v, want %v", i, p.Power, want[i])
		}
	}
}

func TestTemperatureAndJSON(t *testing.T) {
	r1, r2 := pw("p", at(day0, 0), 5), pw("p", at(day0, 10), 7)
	r1.Temperature, r2.Temperature = reading.F(21.5), reading.F(19)
	s := run(t, "2026-06-01", time.UTC, []reading.Reading{r1, r2}, nil)
	if *s.MinTemp != 19 || *s.MaxTemp != 21.5 {
		t.Errorf("temps %v %v", *s.MinTemp, *s.MaxTemp)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back DaySummary
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.Current(10*time.Second, "") || back.Current(60*time.Second, "") || back.InWh != s.InWh || !back.PeakAt.Equal(s.PeakAt) || back.Day != "2026-06-01" {
		t.Errorf("round trip: %+v", back)
	}
}

func TestMonthsYears(t *testing.T) {
	days := []DaySummary{
		{Day: "2025-12-31", InWh: 1000, OutWh: 10, PeakW: 900, Readings: 1},
		{Day: "2026-01-01", InWh: 2000, OutWh: 20, PeakW: 1500, Readings: 1},
		{Day: "2026-01-02", InWh: 500, OutWh: 0, PeakW: 300, Readings: 1},
		{Day: "2026-02-01", InWh: 100, OutWh: 5, PeakW: 2000, Readings: 1},
	}
	m := Months(days)
	if len(m) != 3 || m[1].Key != "2026-01" || m[1].InWh != 2500 || m[1].OutWh != 20 || m[1].PeakW != 1500 || m[1].Days != 2 {
		t.Errorf("months %+v", m)
	}
	y := Years(days)
	if len(y) != 2 || y[1].Key != "2026" || y[1].InWh != 2600 || y[1].PeakW != 2000 || y[0].InWh != 1000 {
		t.Errorf("years %+v", y)
	}
	if a := Sum(days); a.InWh != 3600 || a.OutWh != 35 || a.PeakW != 2000 || a.Days != 4 || !a.PeakAt.Equal(days[3].PeakAt) {
		t.Errorf("sum %+v", a)
	}
}

func TestBadDay(t *testing.T) {
	if _, err := NewDay("2026-13-01", time.UTC, 0); err == nil {
		t.Error("no error for month 13")
	}
	if _, _, err := DayBounds("yesterday", time.UTC); err == nil {
		t.Error("no error for a word")
	}
}

func householdDay(t testing.TB) DaySummary {
	d, err := NewDay("2026-06-01", time.UTC, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for s := 0; s < 86400; s += 10 {
		h := float64(s) / 3600
		p := 150 + 900*math.Max(0, math.Sin((h-16)/6*math.Pi)) - 700*math.Max(0, math.Sin((h-7)/12*math.Pi)) + float64(s%70)
		r := pw("p", at(day0, s), p)
		r.Temperature = reading.F(20 + h/10)
		d.Add(r)
	}
	return d.Summary()
}

func TestCacheForm(t *testing.T) {
	s := householdDay(t)
	b, err := s.MarshalCache()
	if err != nil {
		t.Fatal(err)
	}
	var back DaySummary
	if err := back.UnmarshalCache(b); err != nil {
		t.Fatal(err)
	}
	if back.InWh != s.InWh || back.OutWh != s.OutWh || !back.PeakAt.Equal(s.PeakAt) || len(back.Bands) != len(s.Bands) || len(back.FeedBands) != len(s.FeedBands) || len(s.FeedBands) == 0 {
		t.Fatalf("round trip lost data: %+v", back)
	}
	for i := range s.Bands {
		if math.Abs(back.Bands[i].Seconds-s.Bands[i].Seconds) > 0.005 || math.Abs(back.Bands[i].Wh-s.Bands[i].Wh) > 0.0005 {
			t.Errorf("band %d: %+v, want %+v", i, back.Bands[i], s.Bands[i])
		}
	}
	if err := back.UnmarshalCache([]byte("{")); err == nil {
		t.Error("broken JSON accepted")
	}
}

// BenchmarkDecodeSummary decodes one cached day summary (an overview of a
// year decodes 365 of them when they are not in memory).
func BenchmarkDecodeSummary(b *testing.B) {
	s := householdDay(b)
	enc, err := s.MarshalCache()
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		fn   func(*DaySummary, []byte) error
	}{{"full", (*DaySummary).UnmarshalCache}, {"totals", (*DaySummary).unmarshalTotals}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				var d DaySummary
				if err := c.fn(&d, enc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(enc)), "bytes")
		})
	}
}

func TestTotalsForm(t *testing.T) {
	s := householdDay(t)
	b, err := s.MarshalCache()
	if err != nil {
		t.Fatal(err)
	}
	var tot DaySummary
	if err := tot.unmarshalTotals(b); err != nil {
		t.Fatal(err)
	}
	if tot.InWh != s.InWh || tot.OutWh != s.OutWh || tot.PeakW != s.PeakW || !tot.FirstFeed.Equal(s.FirstFeed) || tot.Readings != s.Readings || tot.Bands != nil || tot.Devices != nil {
		t.Errorf("totals %+v", tot)
	}
}

// Production times: feed-in without roles, the pv device's power with them.
func TestFirstLastProduction(t *testing.T) {
	zone, _ := time.LoadLocation("Europe/Berlin")
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, zone)
	feed := func(h float64) float64 { // 08:00–18:00 below zero
		if h >= 8 && h < 18 {
			return -100
		}
		return 50
	}
	run := func(home *household.Home) DaySummary {
		d, err := NewHomeDay("2026-06-01", zone, 10*time.Second, home)
		if err != nil {
			t.Fatal(err)
		}
		for tt := start; tt.Before(start.Add(24 * time.Hour)); tt = tt.Add(10 * time.Second) {
			h := tt.Sub(start).Hours()
			pv := 0.0
			if h >= 6 && h < 20 {
				pv = 300
			}
			d.Add(reading.Reading{Device: "grid", Time: tt.UTC(), Power: feed(h)})
			if home != nil {
				d.Add(reading.Reading{Device: "pv", Time: tt.UTC(), Power: pv})
			}
		}
		return d.Summary()
	}
	s := run(nil)
	if got := s.FirstProd.In(zone).Format("15:04:05") + "–" + s.LastProd.In(zone).Format("15:04:05"); got != "08:00:00–17:59:50" {
		t.Errorf("without roles: production %s", got)
	}
	home, err := household.New([]household.Device{{Name: "grid", Role: household.Grid}, {Name: "pv", Role: household.PV}})
	if err != nil {
		t.Fatal(err)
	}
	s = run(home)
	if got := s.FirstProd.In(zone).Format("15:04:05") + "–" + s.LastProd.In(zone).Format("15:04:05"); got != "06:00:00–19:59:50" {
		t.Errorf("with a pv device: production %s", got)
	}
}
