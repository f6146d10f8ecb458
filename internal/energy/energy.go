// Package energy turns readings into energy: per local day of a source, the
// energy taken from the grid (import) and fed in (export), peak power,
// feed-in times and the original's power bands; months and years add up days.
//
// Rules (see docs/dashboard.md):
//   - Per device, per step between two consecutive readings: where both carry
//     a counter (EnergyIn / EnergyOut), the counter's increase is the energy
//     of that step, also across gaps; a drop is a counter reset and counts 0
//     (counting restarts from the new value), so energy is never negative.
//   - Where a counter is missing, the trapezoid of power over the step is
//     used, split at the zero crossing into import (power > 0) and feed-in
//     (power < 0), and only when the step is at most GapIntervals intervals
//     long: a longer gap is not bridged.
//   - A step that crosses a day boundary is split at the boundary in
//     proportion to time (power interpolated linearly). This holds for a
//     counter step across a gap that spans midnight too (up to LookAround
//     long): Calc fetches the device's reading on the other side of the gap.
//   - The source's energy is the sum of its devices' energies, import and
//     export kept apart per device before summing.
//   - The source's power at an instant (chart, peak, bands, feed-in times) is
//     the sum of each device's latest power not older than the gap limit.
//   - The home's flows (internal/household: import, export, production,
//     battery, self-consumption, home consumption, appliances) are balanced
//     per quarter hour (Slot) from each device's energy in it, by the roles
//     of the day's Home, then added up per hour (DaySummary.Hours) and day
//     (DaySummary.Flow). A step longer than a slot is spread over the slots
//     it spans in proportion to time. Roles change what a summary says, so
//     a summary carries its home's fingerprint and is recomputed when the
//     roles change.
package energy

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/tariff"
)

// FormatVersion is bumped whenever DaySummary's meaning or layout changes, so
// cached summaries of an older format are recomputed. 2: counter steps
// across a gap spanning midnight are attributed. 3: the home's flows. 4:
// first and last production. 5: a home with roles and a grid meter
// counts the grid meter's import and export and power, and only its chosen
// device's temperature.
const FormatVersion = 5

// Slot is the interval the home's flows are balanced over: a quarter hour,
// the metering interval of grid operators. Within it the grid meter's own
// counters keep import and export apart; a shorter slot would balance
// counters that tick in whole Wh (a FRITZ!DECT's) against each other's
// rounding.
const Slot = 15 * time.Minute

// GapIntervals is how many reading intervals a step may span and still be
// integrated from power.
const GapIntervals = 3

// BandWidth is the width of one power band in W.
const BandWidth = 50.0

// MaxBands bounds the number of bands; power above MaxBands*BandWidth falls
// into the last band.
const MaxBands = 200

// Band is the time and energy spent within one BandWidth step of power:
// band i of DaySummary.Bands covers i*50 W < power ≤ (i+1)*50 W for import,
// FeedBands the same for the amount of feed-in.
type Band struct {
	Seconds float64 `json:"s"`
	Wh      float64 `json:"wh"`
}

// DeviceEnergy is one device's share of a day.
type DeviceEnergy struct {
	Device string  `json:"device"`
	InWh   float64 `json:"in"`
	OutWh  float64 `json:"out"`
	// CounterSteps and PowerSteps count the steps taken from counters and
	// from integrated power.
	CounterSteps int `json:"cs,omitempty"`
	PowerSteps   int `json:"ps,omitempty"`
	// Resets counts counter drops (device reboot, counter reset).
	Resets int `json:"resets,omitempty"`
}

// Method says how the device's energy was found: "counter", "power",
// "mixed" or "" when no step was integrated.
func (d DeviceEnergy) Method() string {
	switch {
	case d.CounterSteps > 0 && d.PowerSteps > 0:
		return "mixed"
	case d.CounterSteps > 0:
		return "counter"
	case d.PowerSteps > 0:
		return "power"
	}
	return ""
}

// DaySummary is what one local day of one source adds up to. It is cached in
// the store as JSON.
type DaySummary struct {
	Format    int       `json:"f"`
	Day       string    `json:"day"` // YYYY-MM-DD in the source's zone
	IntervalS float64   `json:"iv"`  // reading interval it was computed with (s)
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"` // Start + 23, 24 or 25 hours

	InWh  float64 `json:"in"`  // energy taken (import), Wh: the sum of the devices', or the grid meter's in a home with roles
	OutWh float64 `json:"out"` // energy fed in (export), Wh

	Readings int     `json:"n"`   // readings within the day (all devices)
	Covered  float64 `json:"cov"` // seconds of the day covered by readings without a gap

	PeakW      float64   `json:"peak"` // highest source power (W)
	PeakAt     time.Time `json:"peak_at,omitzero"`
	FeedPeakW  float64   `json:"feed_peak,omitempty"` // highest feed-in (W, positive)
	FeedPeakAt time.Time `json:"feed_peak_at,omitzero"`
	// FirstFeed and LastFeed are the first and last instants the source's
	// power was below zero (feed-in: production exceeding consumption).
	FirstFeed time.Time `json:"first_feed,omitzero"`
	LastFeed  time.Time `json:"last_feed,omitzero"`
	// FirstProd and LastProd are the first and last instants of
	// production: the pv devices' power above zero when the home has
	// roles, else feed-in (a source without roles is one meter, and what
	// it feeds in is what it produced beyond its own use).
	FirstProd time.Time `json:"first_prod,omitzero"`
	LastProd  time.Time `json:"last_prod,omitzero"`

	MinTemp *float64 `json:"tmin,omitempty"`
	MaxTemp *float64 `json:"tmax,omitempty"`

	Devices   []DeviceEnergy `json:"dev,omitempty"`
	Bands     []Band         `json:"bands,omitempty"`
	FeedBands []Band         `json:"feed_bands,omitempty"`

	// Home is the fingerprint of the roles the flows were computed with.
	Home string `json:"hf,omitempty"`
	// Flow is the day's flows (Wh); HourFlows the flows of each hour from
	// Start (23, 24 or 25 of them).
	Flow      household.Flow   `json:"fl"`
	HourFlows []household.Flow `json:"-"`
	// Money is what the day cost and earned by the Calc's tariff; it is
	// priced when read, never cached.
	Money tariff.Money `json:"-"`
	// Imported marks a day known only from an imported summary (the PHP
	// app's chart_stats.csv): no raw readings, only its energy and peak.
	Imported bool `json:"imp,omitempty"`
}

// Hours is the day's length in hours (23, 24 or 25 around DST changes).
func (s DaySummary) Hours() float64 { return s.End.Sub(s.Start).Hours() }

// Current reports whether a cached summary was computed by this code with
// this interval and the roles of the home with fingerprint home.
func (s DaySummary) Current(interval time.Duration, home string) bool {
	return s.Format == FormatVersion && s.IntervalS == interval.Seconds() && s.Home == home
}

// Price fills in Money from the hourly flows: import, export and
// self-consumption at the prices of each hour, and the base fee's share of
// the day.
func (s *DaySummary) Price(t *tariff.Tariff) {
	s.Money = tariff.Money{}
	if t == nil {
		return
	}
	for i, h := range s.HourFlows {
		s.Money.Add(t.Amounts(s.Start.Add(time.Duration(i)*time.Hour), h.Import, h.Export, h.Self))
	}
	s.Money.BaseFee = t.DayFee(s.Start)
}

// Point is one instant of the source's power, as the day chart draws it.
type Point struct {
	Time  time.Time
	Power float64 // sum over devices, W (a home with roles and a grid meter: the grid meter's)
	// Temp is the mean temperature of the devices that reported one at this
	// instant; HasTemp is false when none did.
	Temp    float64
	HasTemp bool
	// Gap is true when the previous point is further away than the gap limit
	// (or there is none): the chart must not join the two.
	Gap bool
	// Flow is the home's flows at this instant (W), balanced from each
	// device's latest power by the day's roles.
	Flow household.Flow
}

// DayBounds returns the UTC instants a local day (YYYY-MM-DD) starts and
// ends in loc.
func DayBounds(day string, loc *time.Location) (start, end time.Time, err error) {
	d, err := time.ParseInLocation("2006-01-02", day, loc)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("day %q: want YYYY-MM-DD", day)
	}
	y, m, dd := d.Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, loc).UTC(), time.Date(y, m, dd+1, 0, 0, 0, 0, loc).UTC(), nil
}

// LookAround is the longest gap across midnight over which a counter's
// increase is still attributed to the days it spans (see Day.LookBack).
const LookAround = 24 * time.Hour

// devState is what a device's previous reading left (times in Unix ns).
type devState struct {
	name         string
	have, listed bool
	t            int64
	p            float64
	in, out      *float64
	e            DeviceEnergy
	// the device's first reading of the window
	ft        int64
	fp        float64
	fin, fout *float64
	// before and after are set once the readings beyond the window were
	// taken (Day.Before, Day.After).
	before, after bool
	// the device's energy per Slot of the day (Wh, as stored)
	slotIn, slotOut []float64
}

// Day accumulates one local day. Feed it every reading of Window() in
// (time, device) order with Add, then call Summary.
type Day struct {
	day        string
	home       *household.Home
	gridHome   bool   // roles and a grid meter: InWh, OutWh and Power are the grid's
	tempDev    string // the device whose temperature counts ("" with roles: none)
	interval   time.Duration
	gap        int64 // ns
	start, end time.Time
	s, e       int64 // start, end in Unix ns
	hasPV      bool  // the home has a pv device: production is its power
	// OnPoint, when set, receives each source power point within the day.
	OnPoint func(Point)
	// OnReading, when set, receives every reading given to Add, after the
	// points up to its instant went to OnPoint (the day chart's device and
	// phase lines).
	OnReading func(reading.Reading)

	devs  []*devState // few per source: a slice beats a map
	last  int         // index of the device seen last
	parts []household.Part
	sum   DaySummary

	// the current instant's group of readings
	groupT    time.Time
	groupNs   int64
	groupOpen bool
	tempSum   float64
	tempN     int
	// previous total point
	prev     Point
	prevNs   int64
	havePrev bool
}

// NewDay starts the day (YYYY-MM-DD) in loc for readings taken every
// interval (10 s when 0), for a home without roles.
func NewDay(day string, loc *time.Location, interval time.Duration) (*Day, error) {
	return NewHomeDay(day, loc, interval, nil)
}

// NewHomeDay is NewDay for a home whose devices have roles (nil: none).
func NewHomeDay(day string, loc *time.Location, interval time.Duration, home *household.Home) (*Day, error) {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	start, end, err := DayBounds(day, loc)
	if err != nil {
		return nil, err
	}
	d := &Day{
		day: day, home: home, interval: interval,
		gridHome: home.Configured() && home.Has(household.Grid), tempDev: home.TemperatureDevice(), gap: int64(GapIntervals * interval),
		start: start, end: end, s: start.UnixNano(), e: end.UnixNano(), hasPV: home.Has(household.PV),
	}
	d.sum = DaySummary{Format: FormatVersion, Day: day, IntervalS: interval.Seconds(), Start: start, End: end, Home: home.Fingerprint()}
	return d, nil
}

// Window is the time range to read: the day widened by the gap limit on both
// sides, so steps crossing midnight are split correctly.
func (d *Day) Window() (from, to time.Time) {
	g := time.Duration(d.gap)
	return d.start.Add(-g), d.end.Add(g)
}

func (d *Day) device(name string) *devState {
	if d.last < len(d.devs) && d.devs[d.last].name == name {
		return d.devs[d.last]
	}
	for i, st := range d.devs {
		if st.name == name {
			d.last = i
			return st
		}
	}
	n := int((d.e - d.s + int64(Slot) - 1) / int64(Slot))
	st := &devState{name: name, e: DeviceEnergy{Device: name}, slotIn: make([]float64, n), slotOut: make([]float64, n)}
	d.devs = append(d.devs, st)
	d.last = len(d.devs) - 1
	return st
}

// Add takes the next reading; readings must come in time order.
func (d *Day) Add(r reading.Reading) {
	t := r.Time.UnixNano()
	if d.groupOpen && t != d.groupNs {
		d.flushGroup()
	}
	if !d.groupOpen {
		d.groupT, d.groupNs, d.groupOpen = r.Time, t, true
		d.tempSum, d.tempN = 0, 0
	}
	in := t >= d.s && t < d.e
	if in {
		d.sum.Readings++
		if r.Temperature != nil && (!d.home.Configured() || r.Device == d.tempDev) {
			d.tempSum += *r.Temperature
			d.tempN++
		}
	}
	st := d.device(r.Device)
	if st.have {
		d.step(st, t, r.Power, r.EnergyIn, r.EnergyOut)
	} else {
		st.ft, st.fp, st.fin, st.fout = t, r.Power, r.EnergyIn, r.EnergyOut
	}
	st.t, st.p, st.in, st.out, st.have = t, r.Power, r.EnergyIn, r.EnergyOut, true
	// a device seen only outside the day is not listed
	if in {
		st.listed = true
	}
	if d.OnReading != nil {
		d.OnReading(r)
	}
}

// LookBack lists, after the window's readings were added, the devices whose
// first reading of the window lies inside the day and carries a counter: a
// gap spans the day's start, and the counter's increase across it belongs
// partly to this day. Give each one's last reading before the window to
// Before. Devices reporting regularly never need it.
func (d *Day) LookBack() []string {
	var out []string
	for _, st := range d.devs {
		if st.have && !st.before && st.ft >= d.s && (st.fin != nil || st.fout != nil) {
			out = append(out, st.name)
		}
	}
	return out
}

// Before takes a device's last reading before the window (see LookBack):
// the counter increase from it to the device's first reading of the window
// counts for the day in proportion to the time of the gap inside the day.
// Only counters count across such a gap, as for any gap.
func (d *Day) Before(r reading.Reading) {
	st := d.find(r.Device)
	t := r.Time.UnixNano()
	if st == nil || !st.have || st.before || t >= st.ft {
		return
	}
	st.before = true
	prev := devState{name: st.name, have: true, t: t, p: r.Power, in: r.EnergyIn, out: r.EnergyOut, slotIn: st.slotIn, slotOut: st.slotOut}
	d.step(&prev, st.ft, st.fp, st.fin, st.fout)
	st.e.InWh += prev.e.InWh
	st.e.OutWh += prev.e.OutWh
	st.e.CounterSteps += prev.e.CounterSteps
	st.e.PowerSteps += prev.e.PowerSteps
	st.e.Resets += prev.e.Resets
}

// LookAhead lists, after the window's readings were added, the devices
// whose last reading of the window lies before the day's end and carries
// a counter: a gap spans the day's end. Give each one's first reading
// after the window to After.
func (d *Day) LookAhead() []string {
	var out []string
	for _, st := range d.devs {
		if st.have && !st.after && st.t < d.e && (st.in != nil || st.out != nil) {
			out = append(out, st.name)
		}
	}
	return out
}

// After takes a device's first reading after the window (see LookAhead):
// the counter increase from the device's last reading of the window to it
// counts for the day in proportion to the time of the gap inside the day.
// No reading may be added after it.
func (d *Day) After(r reading.Reading) {
	st := d.find(r.Device)
	t := r.Time.UnixNano()
	if st == nil || !st.have || st.after || t <= st.t {
		return
	}
	st.after = true
	d.step(st, t, r.Power, r.EnergyIn, r.EnergyOut)
}

// find returns the state of a device seen in the window, or nil.
func (d *Day) find(name string) *devState {
	for _, st := range d.devs {
		if st.name == name {
			return st
		}
	}
	return nil
}

// clip returns the part of [t0,t1] (ns) inside the day and the interpolated
// powers at its ends; ok is false when nothing of it lies inside.
func (d *Day) clip(t0, t1 int64, p0, p1 float64) (a, b int64, pa, pb float64, ok bool) {
	a, b = max(t0, d.s), min(t1, d.e)
	if b <= a {
		return a, b, 0, 0, false
	}
	if a == t0 && b == t1 {
		return a, b, p0, p1, true
	}
	span := float64(t1 - t0)
	pa = p0 + (p1-p0)*float64(a-t0)/span
	pb = p0 + (p1-p0)*float64(b-t0)/span
	return a, b, pa, pb, true
}

// step integrates one device step from its previous reading to (t1, p1).
func (d *Day) step(st *devState, t1 int64, p1 float64, in1, out1 *float64) {
	dt := t1 - st.t
	if dt <= 0 {
		return
	}
	a, b, pa, pb, ok := d.clip(st.t, t1, st.p, p1)
	if !ok {
		return
	}
	secs := float64(b-a) / 1e9
	frac := float64(b-a) / float64(dt)
	bridge := dt <= d.gap
	pin, pout := split(pa, pb, secs)
	usedCounter, usedPower, reset := false, false, false
	counter := func(c0, c1 *float64) float64 {
		usedCounter = true
		if *c1 < *c0 {
			reset = true
			return 0
		}
		return (*c1 - *c0) * frac
	}
	e := &st.e
	var din, dout float64
	if st.in != nil && in1 != nil {
		din = counter(st.in, in1)
	} else if bridge {
		din = pin
		usedPower = true
	}
	if st.out != nil && out1 != nil {
		dout = counter(st.out, out1)
	} else if bridge {
		dout = pout
		usedPower = true
	}
	e.InWh += din
	e.OutWh += dout
	if din != 0 || dout != 0 {
		d.spread(st, a, b, din, dout)
	}
	if reset {
		e.Resets++
	}
	if usedCounter {
		e.CounterSteps++
	}
	if usedPower {
		e.PowerSteps++
	}
}

// spread adds a step's energy over [a,b] (ns, inside the day) to the
// device's slots in proportion to time.
func (d *Day) spread(st *devState, a, b int64, din, dout float64) {
	slot := int64(Slot)
	i := int((a - d.s) / slot)
	j := int((b - 1 - d.s) / slot)
	if j >= len(st.slotIn) {
		j = len(st.slotIn) - 1
	}
	if i == j || b <= a {
		st.slotIn[i] += din
		st.slotOut[i] += dout
		return
	}
	span := float64(b - a)
	for k := i; k <= j; k++ {
		lo := max(a, d.s+int64(k)*slot)
		hi := min(b, d.s+int64(k+1)*slot)
		f := float64(hi-lo) / span
		st.slotIn[k] += din * f
		st.slotOut[k] += dout * f
	}
}

// StepWh is the one integration of power into energy: the import and
// export parts (Wh, both ≥ 0) of power moving linearly from p0 to p1 W
// over secs seconds. Pages that draw a running energy use it too.
func StepWh(p0, p1, secs float64) (in, out float64) { return split(p0, p1, secs) }

// split integrates power falling linearly from p0 to p1 over secs seconds
// and returns the import (p > 0) and export (p < 0) parts in Wh, both ≥ 0.
func split(p0, p1, secs float64) (in, out float64) {
	switch {
	case p0 >= 0 && p1 >= 0:
		return (p0 + p1) / 2 * secs / 3600, 0
	case p0 <= 0 && p1 <= 0:
		return 0, -(p0 + p1) / 2 * secs / 3600
	}
	// zero crossing at fraction f of the step
	f := p0 / (p0 - p1)
	a := p0 / 2 * f * secs / 3600
	b := p1 / 2 * (1 - f) * secs / 3600
	if p0 > 0 {
		return a, -b
	}
	return b, -a
}

// flushGroup ends the current instant: computes the source power there and
// integrates the source step from the previous instant.
func (d *Day) flushGroup() {
	d.groupOpen = false
	t := d.groupNs
	total := 0.0
	parts := d.parts[:0]
	for _, st := range d.devs {
		if st.have && t-st.t <= d.gap {
			total += st.p
			in, out := household.Split(st.p)
			parts = append(parts, d.home.Orient(st.name, in, out))
		}
	}
	d.parts = parts
	pt := Point{Time: d.groupT, Power: total, Flow: household.Balance(parts)}
	if d.gridHome {
		// the home's power at the connection point, as the PHP app's one
		// meter gave it: negative is feed-in
		pt.Power = pt.Flow.Import - pt.Flow.Export
	}
	if d.tempN > 0 {
		pt.Temp, pt.HasTemp = d.tempSum/float64(d.tempN), true
	}
	pt.Gap = !d.havePrev || t-d.prevNs > d.gap
	if !pt.Gap {
		d.sourceStep(d.prevNs, t, d.prev.Power, total)
	}
	if t >= d.s && t < d.e {
		d.atPoint(pt)
		if d.OnPoint != nil {
			d.OnPoint(pt)
		}
	}
	d.prev, d.prevNs, d.havePrev = pt, t, true
}

func (d *Day) atPoint(p Point) {
	s := &d.sum
	if p.Power > s.PeakW || s.PeakAt.IsZero() {
		s.PeakW, s.PeakAt = p.Power, p.Time
	}
	if p.Power < 0 {
		if -p.Power > s.FeedPeakW {
			s.FeedPeakW, s.FeedPeakAt = -p.Power, p.Time
		}
		if s.FirstFeed.IsZero() {
			s.FirstFeed = p.Time
		}
		s.LastFeed = p.Time
	}
	if p.Flow.Production > 0 || (!d.hasPV && p.Power < 0) {
		if s.FirstProd.IsZero() {
			s.FirstProd = p.Time
		}
		s.LastProd = p.Time
	}
	if p.HasTemp {
		if s.MinTemp == nil || p.Temp < *s.MinTemp {
			s.MinTemp = reading.F(p.Temp)
		}
		if s.MaxTemp == nil || p.Temp > *s.MaxTemp {
			s.MaxTemp = reading.F(p.Temp)
		}
	}
}

// sourceStep adds the step between two source points (no gap) to the
// covered time and the power bands.
func (d *Day) sourceStep(t0, t1 int64, p0, p1 float64) {
	a, b, pa, pb, ok := d.clip(t0, t1, p0, p1)
	if !ok {
		return
	}
	secs := float64(b-a) / 1e9
	d.sum.Covered += secs
	d.sum.Bands = addBands(d.sum.Bands, pa, pb, secs)
	d.sum.FeedBands = addBands(d.sum.FeedBands, -pa, -pb, secs)
}

// addBands adds the positive part of a linear power step (pa→pb over secs)
// to the bands.
func addBands(bands []Band, pa, pb, secs float64) []Band {
	lo, hi := math.Min(pa, pb), math.Max(pa, pb)
	if hi <= 0 {
		return bands
	}
	grow := func(i int) {
		for len(bands) <= i {
			bands = append(bands, Band{})
		}
	}
	idx := func(p float64) int {
		i := int(math.Ceil(p/BandWidth)) - 1
		return min(max(i, 0), MaxBands-1)
	}
	if hi-lo < 1e-9 {
		i := idx(hi)
		grow(i)
		bands[i].Seconds += secs
		bands[i].Wh += hi * secs / 3600
		return bands
	}
	from := math.Max(lo, 0)
	for i := idx(from); i <= idx(hi); i++ {
		x0 := math.Max(from, float64(i)*BandWidth)
		x1 := math.Min(hi, float64(i+1)*BandWidth)
		if i == MaxBands-1 {
			x1 = hi
		}
		if x1 <= x0 {
			continue
		}
		t := secs * (x1 - x0) / (hi - lo)
		grow(i)
		bands[i].Seconds += t
		bands[i].Wh += t * (x0 + x1) / 2 / 3600
	}
	return bands
}

// Summary ends the day and returns its summary.
func (d *Day) Summary() DaySummary {
	if d.groupOpen {
		d.flushGroup()
	}
	s := d.sum
	s.InWh, s.OutWh = 0, 0
	s.Devices = s.Devices[:0]
	for _, st := range d.devs {
		e := st.e
		if !st.listed && e.CounterSteps+e.PowerSteps == 0 {
			continue
		}
		s.Devices = append(s.Devices, e)
		s.InWh += e.InWh
		s.OutWh += e.OutWh
	}
	sort.Slice(s.Devices, func(i, j int) bool { return s.Devices[i].Device < s.Devices[j].Device })
	if len(s.Devices) == 0 {
		s.Devices = nil
	}
	d.flows(&s)
	if d.gridHome {
		// a home with roles and a grid meter: what came from and went to
		// the grid, not the sum of the meter and the plugs behind it
		s.InWh, s.OutWh = s.Flow.Import, s.Flow.Export
	}
	return s
}

// flows balances each slot of the day and adds the slots up per hour and
// for the day.
func (d *Day) flows(s *DaySummary) {
	s.Flow = household.Flow{}
	nh := int((d.e - d.s + int64(time.Hour) - 1) / int64(time.Hour))
	s.HourFlows = make([]household.Flow, nh)
	if len(d.devs) == 0 {
		return
	}
	perHour := int(time.Hour / Slot)
	parts := make([]household.Part, len(d.devs))
	for k := range d.devs[0].slotIn {
		for i, st := range d.devs {
			parts[i] = d.home.Orient(st.name, st.slotIn[k], st.slotOut[k])
		}
		f := household.Balance(parts)
		s.HourFlows[k/perHour].Add(f)
		s.Flow.Add(f)
	}
}

// Above returns, for each band step i (i*50 W), the time and energy spent at
// more than that power: the suffix sums of bands.
func Above(bands []Band) []Band {
	out := make([]Band, len(bands))
	var acc Band
	for i := len(bands) - 1; i >= 0; i-- {
		acc.Seconds += bands[i].Seconds
		acc.Wh += bands[i].Wh
		out[i] = acc
	}
	return out
}
