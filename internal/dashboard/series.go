package dashboard

import (
	"fmt"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/reading"
)

// The day chart's series: the source's total power, each device, the
// phases (or extra fields) of a device, the temperature and the running
// energy. Points fall into buckets: pixel columns for res=raw (keeping min
// and max per column, so short spikes survive), or time buckets of 1, 5,
// 15 or 60 minutes (their mean).

// resolutions are the choices of ?res=.
var resolutions = []struct {
	Name string
	D    time.Duration
}{{"raw", 0}, {"1m", time.Minute}, {"5m", 5 * time.Minute}, {"15m", 15 * time.Minute}, {"60m", time.Hour}}

// chartOpts is the view the address asks for.
type chartOpts struct {
	From, To       time.Time // the view, within the day
	FromS, ToS     string    // as given (HH:MM), "" for the day's bounds
	Res            time.Duration
	ResName        string
	YMax           float64 // fixed top of the power axis; 0: automatic
	TMin, TMax     float64 // fixed temperature range when TMin < TMax
	Device         string  // one device only
	Zoomed         bool
	dayStart, dayE time.Time
}

// optsError names the bad query field.
type optsError struct{ field, msg string }

func (e *optsError) Error() string { return e.field + ": " + e.msg }

// parseClock reads HH:MM (24:00 is the day's end) as an instant of the
// day starting at start, in zone; on clock-change days the wall clock is
// resolved by time.Date.
func parseClock(s string, start time.Time, zone *time.Location) (time.Time, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || len(m) != 2 || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return time.Time{}, fmt.Errorf("%q is not a time of day (HH:MM)", s)
	}
	l := start.In(zone)
	return time.Date(l.Year(), l.Month(), l.Day(), hh, mm, 0, 0, zone), nil
}

// parseChartOpts reads from, to, res, ymax, tmin, tmax and device; def are
// the source's defaults (fixed axis ranges).
func parseChartOpts(q url.Values, start, end time.Time, zone *time.Location, def chartDefaults) (chartOpts, error) {
	o := chartOpts{From: start, To: end, ResName: "raw", YMax: def.YMax, TMin: def.TMin, TMax: def.TMax, dayStart: start, dayE: end}
	if s := q.Get("from"); s != "" {
		t, err := parseClock(s, start, zone)
		if err != nil {
			return o, &optsError{"from", err.Error()}
		}
		if t.Before(start) {
			t = start
		}
		o.From, o.FromS = t, s
	}
	if s := q.Get("to"); s != "" {
		t, err := parseClock(s, start, zone)
		if err != nil {
			return o, &optsError{"to", err.Error()}
		}
		if s == "24:00" {
			t = end
		}
		if t.After(end) {
			t = end
		}
		o.To, o.ToS = t, s
	}
	if !o.To.After(o.From) {
		return o, &optsError{"to", "must be after from"}
	}
	if o.To.Sub(o.From) < 10*time.Minute {
		return o, &optsError{"to", "the range must be at least 10 minutes"}
	}
	o.Zoomed = !o.From.Equal(start) || !o.To.Equal(end)
	if s := q.Get("res"); s != "" {
		found := false
		for _, r := range resolutions {
			if r.Name == s {
				o.Res, o.ResName, found = r.D, r.Name, true
			}
		}
		if !found {
			return o, &optsError{"res", fmt.Sprintf("%q is not one of raw, 1m, 5m, 15m, 60m", s)}
		}
	}
	num := func(name string, dst *float64) error {
		s := q.Get(name)
		if s == "" {
			return nil
		}
		v, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > 1e7 {
			return &optsError{name, fmt.Sprintf("%q is not a number", s)}
		}
		*dst = v
		return nil
	}
	for _, f := range []struct {
		n string
		p *float64
	}{{"ymax", &o.YMax}, {"tmin", &o.TMin}, {"tmax", &o.TMax}} {
		if err := num(f.n, f.p); err != nil {
			return o, err
		}
	}
	if o.YMax < 0 {
		return o, &optsError{"ymax", "must be positive (W)"}
	}
	if (q.Get("tmin") != "" || q.Get("tmax") != "") && o.TMin >= o.TMax {
		return o, &optsError{"tmax", "must be above tmin"}
	}
	o.Device = q.Get("device")
	return o, nil
}

// chartDefaults are a source's fixed axis ranges (config).
type chartDefaults struct {
	YMax       float64
	TMin, TMax float64
}

// query returns the view's parameters for links (without from/to when
// drop is set), in a fixed order.
func (o *chartOpts) query(drop bool, extra ...string) string {
	v := url.Values{}
	if !drop {
		if o.FromS != "" {
			v.Set("from", o.FromS)
		}
		if o.ToS != "" {
			v.Set("to", o.ToS)
		}
	}
	if o.ResName != "raw" {
		v.Set("res", o.ResName)
	}
	if o.Device != "" {
		v.Set("device", o.Device)
	}
	for i := 0; i+1 < len(extra); i += 2 {
		v.Set(extra[i], extra[i+1])
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// bucket is one column or time bucket of a series.
type bucket struct {
	i        int
	min, max float64
	sum      float64
	n        int
	last     float64
}

// chartSeries is one line of the chart.
type chartSeries struct {
	Key   string // "total", "dev:NAME", "ph:NAME:1", "temp", "wh"
	Label string
	Unit  string
	Class string // CSS colour class
	runs  [][]bucket
	cur   []bucket
	have  bool
	n     int // values added
}

func (s *chartSeries) add(i int, t int64, v float64, gap bool) {
	s.n++
	if gap && len(s.cur) > 0 {
		s.runs = append(s.runs, s.cur)
		s.cur = nil
	}
	s.have = true
	if n := len(s.cur); n > 0 && s.cur[n-1].i == i {
		b := &s.cur[n-1]
		b.min, b.max = math.Min(b.min, v), math.Max(b.max, v)
		b.sum += v
		b.n++
		b.last = v
		return
	}
	s.cur = append(s.cur, bucket{i: i, min: v, max: v, sum: v, n: 1, last: v})
}

func (s *chartSeries) finish() {
	if len(s.cur) > 0 {
		s.runs = append(s.runs, s.cur)
		s.cur = nil
	}
}

func (s *chartSeries) buckets() int {
	n := 0
	for _, r := range s.runs {
		n += len(r)
	}
	return n
}

// devLine is a device's state for its lines.
type devLine struct {
	name   string
	power  *chartSeries
	phases []*chartSeries
	// the last reading's instant and power as drawn (of a reduced minute:
	// its start and mean power), valid for the hover up to until
	lastNs, until int64
	p             float64
	ph            []float64
	// where the device's next step starts for the running energy, and
	// from where it counts (the end of a reduced minute, whose energy
	// holds the part before)
	stepNs, fromNs int64
	stepP          float64
}

// chartBuilder takes a day's points and readings and draws the chart.
type chartBuilder struct {
	o     chartOpts
	gap   int64
	from  int64
	span  int64
	n     int // buckets
	total *chartSeries
	temp  *chartSeries
	wh    *chartSeries
	// mm is the band between the lowest and highest power of the drawn
	// total where reduced minutes (retention) give only its mean
	mm          *chartSeries
	lastReduced bool  // the previous total value was a reduced minute
	tempUntil   int64 // the temperature line joins the next value up to here
	devs        []*devLine
	// running energy (consumption, from power)
	whSum  float64
	points int

	// hover rows (only for the tooltip data): instant (s from the view's
	// start) and the values
	wantHover bool
	hoverT    []int32
	hoverV    map[string][]float64
	rowsAt    int // rows written
	// the whole day in 5-minute buckets (min, max power), for the active
	// hours
	act []actBucket
	// roles: production and the home's consumption from the flows
	roles      bool
	prod, home *chartSeries
	flow       household.Flow
	// gridIn is, in a home with roles and a grid meter (no device
	// filter), what a device's measured step adds to the home's import
	// (the day's consumption): household.Balance of the oriented part;
	// nil: every device's import counts.
	gridIn func(device string, in, out float64) float64
	// device labels (roles' labels); nil: the name
	devLabel func(device string) string
	// field labels of a device's phases (i of n values); nil: L1–L3 / #i
	phaseLabel func(device string, i, n int) (label, unit string)
}

const maxDeviceLines = 12

func newChartBuilder(o chartOpts, interval time.Duration) *chartBuilder {
	c := &chartBuilder{o: o, gap: int64(energy.GapIntervals * interval), from: o.From.UnixNano(), span: o.To.Sub(o.From).Nanoseconds()}
	if o.Res == 0 {
		c.n = chartCols
	} else {
		c.n = int((c.span + int64(o.Res) - 1) / int64(o.Res))
	}
	c.total = &chartSeries{Key: "total", Unit: "W", Class: "total"}
	c.temp = &chartSeries{Key: "temp", Unit: "°C", Class: "temp"}
	c.wh = &chartSeries{Key: "wh", Unit: "Wh", Class: "wh"}
	c.mm = &chartSeries{Key: "total", Unit: "W", Class: "mm"}
	c.prod = &chartSeries{Key: "prod", Unit: "W"}
	c.home = &chartSeries{Key: "home", Unit: "W"}
	c.hoverV = map[string][]float64{}
	c.act = make([]actBucket, int(o.dayE.Sub(o.dayStart)/(5*time.Minute))+1)
	return c
}

type actBucket struct {
	min, max float64
	ok       bool
	prod     bool // a device below zero: producing
}

// activeHours is the span of whole hours in which a device produced (its
// power below zero), or on a day without production, in which the power
// rose above the day's base load by a tenth of the way to its peak; ok is
// false on a day without such a time.
func (c *chartBuilder) activeHours(zone *time.Location) (from, to string, ok bool) {
	base, peak := math.Inf(1), math.Inf(-1)
	for _, a := range c.act {
		if a.ok {
			base, peak = math.Min(base, math.Max(a.min, 0)), math.Max(peak, a.max)
		}
	}
	if math.IsInf(base, 0) {
		return "", "", false
	}
	thr := base + 0.1*(peak-base)
	prod := false
	for _, a := range c.act {
		prod = prod || a.prod
	}
	first, last := -1, -1
	for k, a := range c.act {
		if (prod && a.prod) || (!prod && a.ok && a.max > thr && peak-base >= 10) {
			if first < 0 {
				first = k
			}
			last = k
		}
	}
	if first < 0 {
		return "", "", false
	}
	t0 := c.o.dayStart.Add(time.Duration(first) * 5 * time.Minute).In(zone).Truncate(time.Hour)
	t1 := c.o.dayStart.Add(time.Duration(last+1) * 5 * time.Minute).In(zone)
	if t1.Truncate(time.Hour) != t1 {
		t1 = t1.Truncate(time.Hour).Add(time.Hour)
	}
	if t0.Before(c.o.dayStart) {
		t0 = c.o.dayStart.In(zone)
	}
	if !t1.Before(c.o.dayE) {
		return t0.Format("15:04"), "24:00", true
	}
	return t0.Format("15:04"), t1.Format("15:04"), true
}

// idx is the bucket of instant t (ns), or -1 outside the view.
func (c *chartBuilder) idx(t int64) int {
	d := t - c.from
	if d < 0 || d >= c.span {
		return -1
	}
	if c.o.Res == 0 {
		return int(d * chartCols / c.span)
	}
	return int(d / int64(c.o.Res))
}

// xOf is the SVG x (0..1000) of bucket i's centre.
func (c *chartBuilder) xOf(i int) float64 {
	if c.o.Res == 0 {
		return float64(i) + .5
	}
	mid := (float64(i) + .5) * float64(c.o.Res)
	return math.Min(1000*mid/float64(c.span), 1000)
}

// point takes a source point (no device filter).
func (c *chartBuilder) point(p energy.Point) {
	t := p.Time.UnixNano()
	if c.roles {
		// production above zero, the home's consumption below
		c.flow = p.Flow
		if i := c.idx(t); i >= 0 {
			if p.Flow.Production > 0 || c.prod.n > 0 {
				c.prod.add(i, t, p.Flow.Production, p.Gap)
			}
			if p.Flow.HomeKnown {
				c.home.add(i, t, -p.Flow.Home, p.Gap)
			}
		}
	}
	c.total1(t, p.Power, p.Gap, p.Temp, p.HasTemp, p.Reduced, p.Min, p.Max)
}

// total1 adds one instant of the drawn total (the source, or the one
// device of ?device=); reduced says a reduced minute gives its mean power,
// lo and hi the lowest and highest power around it.
func (c *chartBuilder) total1(t int64, power float64, gap bool, temp float64, hasTemp bool, reduced bool, lo, hi float64) {
	if k := int((t - c.o.dayStart.UnixNano()) / int64(5*time.Minute)); k >= 0 && k < len(c.act) {
		a := &c.act[k]
		if !a.ok {
			a.min, a.max, a.ok = lo, hi, true
		} else {
			a.min, a.max = math.Min(a.min, lo), math.Max(a.max, hi)
		}
	}
	i := c.idx(t)
	if i < 0 {
		return
	}
	c.points++
	c.total.add(i, t, power, gap)
	if reduced {
		c.mm.add(i, t, lo, gap || !c.lastReduced)
		c.mm.add(i, t, hi, false)
	}
	c.lastReduced = reduced
	c.wh.add(i, t, c.whSum, gap)
	if hasTemp {
		c.temp.add(i, t, temp, c.temp.have && t > c.tempUntil)
		c.tempUntil = t + c.gap
		if reduced {
			c.tempUntil += int64(time.Minute)
		}
	}
	if c.o.Res == 0 && c.wantHover {
		c.hoverRow(t, power, temp, hasTemp)
	}
}

// hoverRow records the values at instant t for the tooltip.
func (c *chartBuilder) hoverRow(t int64, power, temp float64, hasTemp bool) {
	c.hoverT = append(c.hoverT, int32((t-c.from)/1e9))
	set := func(k string, v float64) {
		col := c.hoverV[k]
		for len(col) < c.rowsAt {
			col = append(col, math.NaN())
		}
		c.hoverV[k] = append(col, v)
	}
	set("total", power)
	if c.roles {
		if c.prod.n > 0 {
			set("prod", c.flow.Production)
		}
		if c.flow.HomeKnown {
			set("home", c.flow.Home)
		}
	}
	set("wh", c.whSum)
	if hasTemp {
		set("temp", temp)
	}
	if c.o.Device == "" {
		for _, d := range c.devs {
			if t <= d.until && d.lastNs <= t {
				set(d.power.Key, d.p)
			}
		}
	}
	for _, d := range c.devs {
		if t <= d.until && d.lastNs <= t {
			for j, s := range d.phases {
				if j < len(d.ph) {
					set(s.Key, d.ph[j])
				}
			}
		}
	}
	c.rowsAt++
}

// reading takes a reading (after the points up to its instant).
func (c *chartBuilder) reading(r reading.Reading) {
	if c.o.Device != "" && r.Device != c.o.Device {
		return
	}
	t := r.Time.UnixNano()
	d := c.dev(r.Device)
	if d == nil {
		return
	}
	gap := d.lastNs == 0 || t > d.until
	rd := r.Reduced
	// running consumption: each device's import, integrated from power
	// within the day (as the day's consumption adds devices up); a
	// reduced minute brings its energy
	switch {
	case rd != nil:
		if t >= c.o.dayStart.UnixNano() && t < c.o.dayE.UnixNano() {
			in := rd.InWh
			if c.gridIn != nil {
				in = c.gridIn(d.name, rd.InWh, rd.OutWh)
			}
			c.whSum += in
		}
	case d.stepNs != 0 && t-d.stepNs <= c.gap:
		a, b := max(d.stepNs, d.fromNs, c.o.dayStart.UnixNano()), min(t, c.o.dayE.UnixNano())
		if b > a {
			in, out := energy.StepWhWithin(d.stepNs, t, d.stepP, r.Power, a, b)
			if c.gridIn != nil {
				in = c.gridIn(d.name, in, out)
			}
			c.whSum += in
		}
	}
	d.lastNs, d.p, d.until = t, r.Power, t+c.gap
	d.stepNs, d.stepP, d.fromNs = t, r.Power, 0
	if rd != nil {
		d.until += int64(time.Minute)
		d.stepNs, d.stepP, d.fromNs = rd.LastTime.UnixNano(), rd.LastPower, t+int64(time.Minute)
	}
	if k := int((t - c.o.dayStart.UnixNano()) / int64(5*time.Minute)); r.Power < 0 && t >= c.o.dayStart.UnixNano() && k < len(c.act) {
		c.act[k].prod = true
	}
	d.ph = append(d.ph[:0], r.Phases...)
	if c.o.Device != "" {
		temp, hasT := 0.0, r.Temperature != nil
		if hasT {
			temp = *r.Temperature
		}
		lo, hi := r.Power, r.Power
		if rd != nil {
			lo, hi = rd.MinPower, rd.MaxPower
		}
		c.total1(t, r.Power, gap, temp, hasT, rd != nil, lo, hi)
	}
	i := c.idx(t)
	if i < 0 {
		return
	}
	if c.o.Device == "" {
		d.power.add(i, t, r.Power, gap)
		if rd != nil && c.o.Res == 0 {
			// a column keeps its lowest and highest value: a reduced
			// minute's are its raw readings'
			d.power.add(i, t, rd.MinPower, false)
			d.power.add(i, t, rd.MaxPower, false)
		}
	}
	for j, v := range r.Phases {
		if j >= 16 {
			break
		}
		for len(d.phases) <= j {
			k := len(d.phases)
			label, unit := PhaseName(k, len(r.Phases)), "W"
			if c.phaseLabel != nil {
				if l, u := c.phaseLabel(d.name, k, len(r.Phases)); l != "" {
					label, unit = l, u
				}
			}
			if c.o.Device == "" && len(c.devs) > 1 {
				label = d.name + " " + label
			}
			d.phases = append(d.phases, &chartSeries{Key: "ph:" + d.name + ":" + strconv.Itoa(k+1), Label: label, Unit: unit})
		}
		d.phases[j].add(i, t, v, gap)
	}
}

// PhaseName names value i of n: L1–L3 for three phases, #1… otherwise.
func PhaseName(i, n int) string {
	if n == 3 {
		return "L" + strconv.Itoa(i+1)
	}
	return "#" + strconv.Itoa(i+1)
}

func (c *chartBuilder) dev(name string) *devLine {
	for _, d := range c.devs {
		if d.name == name {
			return d
		}
	}
	if len(c.devs) >= maxDeviceLines {
		return nil
	}
	label := name
	if c.devLabel != nil {
		label = c.devLabel(name)
	}
	d := &devLine{name: name, power: &chartSeries{Key: "dev:" + name, Label: label, Unit: "W"}}
	c.devs = append(c.devs, d)
	return d
}

// lines lists the drawn series besides the total, temperature and energy:
// each device (when there are several and no ?device=), then phases.
func (c *chartBuilder) lines() []*chartSeries {
	var out []*chartSeries
	if c.roles {
		for _, s := range []*chartSeries{c.prod, c.home} {
			if s.n > 0 {
				out = append(out, s)
			}
		}
	}
	sort.SliceStable(c.devs, func(i, j int) bool { return c.devs[i].name < c.devs[j].name })
	if c.o.Device == "" && len(c.devs) > 1 {
		for _, d := range c.devs {
			if d.power.n > 0 {
				out = append(out, d.power)
			}
		}
	}
	for _, d := range c.devs {
		for _, p := range d.phases {
			if p.n > 0 && p.Unit == "W" {
				out = append(out, p)
			}
		}
	}
	k := 0
	for _, s := range out {
		switch s.Key {
		case "prod":
			s.Class = "c-prod"
		case "home":
			s.Class = "c-home"
		default:
			s.Class = "c" + strconv.Itoa(k%8)
			k++
		}
	}
	return out
}

// others are a device's extra fields that are not power (units besides
// W): listed in the tooltip only.
func (c *chartBuilder) others() []*chartSeries {
	var out []*chartSeries
	for _, d := range c.devs {
		for _, p := range d.phases {
			if p.n > 0 && p.Unit != "W" {
				out = append(out, p)
			}
		}
	}
	return out
}
