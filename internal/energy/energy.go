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
//   - Within a day, a step's energy is split over the day's quarter hours
//     (Slot) the same way: power interpolated linearly, counters in
//     proportion to time.
//   - The source's power at an instant (chart, peak, bands, feed-in times) is
//     the sum of each device's latest power not older than the gap limit.
//   - A reduced reading (reading.Reduced, retention) stands for a device's
//     minute: its energy (InWh, OutWh, computed by Reducer with these same
//     rules) is the device's energy of that minute, its mean power is the
//     device's power for the minute plus the gap limit, its highest and
//     lowest power count for the peaks, and the device's next step starts
//     at the minute's last raw reading but counts only from the minute's
//     end. A minute after minutes without readings of the device also
//     holds the step across them, kept apart (GapInWh, GapOutWh) and
//     spread over them in proportion to time. Local days and slots start
//     on whole minutes, so a day of reduced minutes adds up to the energy
//     of its raw readings.
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
// device's temperature. 6: a power step crossing a slot boundary is split
// with interpolated power (it was split in proportion to time), and
// reduced minutes count (DeviceEnergy.Minutes). 7: in a home with a grid
// meter the power bands integrate the grid's power on both ends of a step
// (the step ended at the sum of all devices).
const FormatVersion = 7

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
	// Minutes counts the reduced minutes (reading.Reduced) whose energy
	// was taken as the reducer computed it from the raw readings; their
	// steps are not counted again in CounterSteps or PowerSteps.
	Minutes int `json:"min,omitempty"`
}

// Method says how the device's energy was found: "counter", "power",
// "mixed", "minutes" when only reduced minutes counted, or "" when no step
// was integrated. Reduced minutes beside steps do not change the method
// of the steps.
func (d DeviceEnergy) Method() string {
	switch {
	case d.CounterSteps == 0 && d.PowerSteps == 0 && d.Minutes > 0:
		return "minutes"
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
	// Reduced is true when a reduced minute (reading.Reduced) gives a
	// device's power here: Power then holds its mean, and Min and Max are
	// the power with each such device at its lowest and highest of the
	// minute (the chart's band). Otherwise Min and Max are Power.
	Reduced  bool
	Min, Max float64
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
	// where the device's next step starts: the last raw reading (of a
	// reduced minute: its LastTime, LastPower and counters)
	t       int64
	p       float64
	in, out *float64
	// from is where the next step's energy starts to count: the end of a
	// reduced minute (its energy holds the step's part before), else 0.
	from    int64
	reduced bool // the previous reading was a reduced minute
	// the device's power for the source's points, valid up to until, and
	// its highest and lowest power there (a reduced minute's mean, maximum
	// and minimum)
	pp, hi, lo float64
	until      int64
	e          DeviceEnergy
	// the device's first reading of the window (of a reduced minute: its
	// Time and energy, fred non-nil)
	ft        int64
	fp        float64
	fin, fout *float64
	fred      *reading.Reduced
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
	prev      Point
	prevNs    int64
	prevUntil int64 // the next point joins this one up to here
	havePrev  bool
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
// sides, so steps crossing midnight are split correctly, and by one more
// minute before the start, so a reduced minute whose last raw reading lies
// within the gap limit before midnight is read too.
func (d *Day) Window() (from, to time.Time) {
	g := time.Duration(d.gap)
	return d.start.Add(-g - time.Minute), d.end.Add(g)
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
		if r.Reduced != nil {
			d.sum.Readings += r.Reduced.Count
		} else {
			d.sum.Readings++
		}
		if r.Temperature != nil && (!d.home.Configured() || r.Device == d.tempDev) {
			d.tempSum += *r.Temperature
			d.tempN++
		}
	}
	st := d.device(r.Device)
	if r.Reduced != nil {
		d.addReduced(st, r)
	} else {
		if st.have {
			d.step(st, t, r.Power, r.EnergyIn, r.EnergyOut)
		} else {
			st.ft, st.fp, st.fin, st.fout = t, r.Power, r.EnergyIn, r.EnergyOut
		}
		st.t, st.p, st.in, st.out, st.from, st.reduced = t, r.Power, r.EnergyIn, r.EnergyOut, 0, false
		st.pp, st.hi, st.lo, st.until = r.Power, r.Power, r.Power, t+d.gap
	}
	st.have = true
	// a device seen only outside the day is not listed
	if in {
		st.listed = true
	}
	if d.OnReading != nil {
		d.OnReading(r)
	}
}

// addReduced takes a device's reduced minute: its energy counts as the
// reducer computed it, and the device's next step starts at the minute's
// last raw reading but counts only from the minute's end.
func (d *Day) addReduced(st *devState, r reading.Reading) {
	rd := r.Reduced
	t := r.Time.UnixNano()
	end := t + int64(time.Minute)
	if st.have {
		d.addMinuteAfter(st, st, t, r.EnergyIn, r.EnergyOut, rd, 1)
	} else {
		st.ft, st.fp, st.fin, st.fout, st.fred = t, r.Power, r.EnergyIn, r.EnergyOut, rd
		d.addMinute(st, t, t, t, end, rd.InWh, rd.OutWh, 1)
	}
	st.t, st.p, st.in, st.out, st.from, st.reduced = rd.LastTime.UnixNano(), rd.LastPower, r.EnergyIn, r.EnergyOut, end, true
	st.pp, st.hi, st.lo, st.until = r.Power, rd.MaxPower, rd.MinPower, end+d.gap
}

// countFrom is where a reduced minute after the device's state st starts
// to hold energy: the end of the minute of the device's previous reading
// (Reducer counts a step from a reading only after that reading's
// minute). A reduced minute's energy also holds the steps' parts in the
// minutes without readings before it.
func countFrom(st *devState) int64 {
	if st.reduced {
		return st.from
	}
	return minuteEnd(st.t)
}

// spans returns where the import and export energy of a reduced minute
// starting at t (with counters in, out) after the device's state st
// begin: at the minute's start, unless minutes without readings lie
// between and the step across them carried energy (a counter on both
// sides that did not drop, or a step short enough to bridge with power);
// then at the end of the previous reading's minute.
func (d *Day) spans(st *devState, t int64, in, out *float64) (fromIn, fromOut int64) {
	cf := countFrom(st)
	if cf >= t {
		return t, t
	}
	bridge := t-st.t <= d.gap
	// a counter lower than before was reset across the gap: the step
	// counts 0, the minute holds only its own energy
	counts := func(c0, c1 *float64) bool { return c0 != nil && c1 != nil && *c1 >= *c0 }
	fromIn, fromOut = t, t
	if bridge || counts(st.in, in) {
		fromIn = cf
	}
	if bridge || counts(st.out, out) {
		fromOut = cf
	}
	return fromIn, fromOut
}

// addMinuteAfter adds sign times the energy of the reduced minute rd
// starting at t (with counters in, out) to st, after the device's previous
// reading, whose state is prev. A minute that keeps the part of its energy
// in the minutes without readings before it (Reduced.Gap) has that part
// spread over them, from the end of prev's minute, and keeps the rest
// itself: exactly as the raw readings split it. An older one without the
// part is spread whole, as far as spans says.
func (d *Day) addMinuteAfter(st, prev *devState, t int64, in, out *float64, rd *reading.Reduced, sign float64) {
	end := t + int64(time.Minute)
	if !rd.Gap {
		fi, fo := d.spans(prev, t, in, out)
		d.addMinute(st, fi, fo, t, end, rd.InWh, rd.OutWh, sign)
		return
	}
	// own part in the minute; the gap's part spread from where the
	// reducer counted it (the minute itself if the previous reading seen
	// here is not before the gap, which a consistent store never gives)
	from := min(countFrom(prev), t)
	if from == t || (rd.GapInWh == 0 && rd.GapOutWh == 0) {
		d.addMinute(st, t, t, t, end, rd.InWh, rd.OutWh, sign)
		return
	}
	d.addMinute(st, t, t, t, end, rd.InWh-rd.GapInWh, rd.OutWh-rd.GapOutWh, sign)
	if d.addSpan(st, from, t, rd.GapInWh, rd.GapOutWh, sign) && (end <= d.s || t >= d.e) {
		// the minute is outside the day, its energy partly inside
		st.e.Minutes += int(sign)
	}
}

// addSpan adds sign times energy in, out spread over [a,b) in proportion
// to time: the part inside the day, into its slots. It reports whether
// some of [a,b) lies inside the day.
func (d *Day) addSpan(st *devState, a, b int64, in, out, sign float64) bool {
	lo, hi := max(a, d.s), min(b, d.e)
	if hi <= lo {
		return false
	}
	f := sign * float64(hi-lo) / float64(b-a)
	st.e.InWh += in * f
	st.e.OutWh += out * f
	d.spread(st, lo, hi, in*f, out*f)
	return true
}

// minuteEnd is the end of the UTC minute holding t (Unix ns).
func minuteEnd(t int64) int64 {
	m := int64(time.Minute)
	return (t/m + 1) * m
}

// addMinute adds sign times a reduced minute's energy (the minute starting
// at t, ending at end): to the minute itself when its import (export)
// starts there (fromIn, fromOut ≥ t, see spans), else spread over [from,
// end) in proportion to time: it then holds a step across minutes without
// readings, a counter's increase spread evenly over time. (For a minute
// reduced before Reduced.Gap existed, the minute's own part is spread
// with it, an approximation: where such a gap spans a slot's or the day's
// boundary, the split between them can differ from the raw readings' by
// up to the minute's own energy; see addMinuteAfter.) Only the part
// inside the day counts.
func (d *Day) addMinute(st *devState, fromIn, fromOut, t, end int64, in, out float64, sign float64) {
	inIn := d.addSpan(st, min(fromIn, t), end, in, 0, sign)
	inOut := d.addSpan(st, min(fromOut, t), end, 0, out, sign)
	if inIn || inOut {
		st.e.Minutes += int(sign)
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
// Only counters count across such a gap, as for any gap. When the first
// reading of the window is a reduced minute, its energy already holds the
// increase, and is spread over the gap from the end of r's minute instead.
func (d *Day) Before(r reading.Reading) {
	st := d.find(r.Device)
	t := r.Time.UnixNano()
	if st == nil || !st.have || st.before || t >= st.ft {
		return
	}
	st.before = true
	prev := devState{name: st.name, have: true, t: t, p: r.Power, in: r.EnergyIn, out: r.EnergyOut, slotIn: st.slotIn, slotOut: st.slotOut}
	if rd := r.Reduced; rd != nil {
		prev.t, prev.p, prev.from, prev.reduced = rd.LastTime.UnixNano(), rd.LastPower, t+int64(time.Minute), true
	}
	if fr := st.fred; fr != nil {
		// taken back from the minute alone, added again over the gap
		end := st.ft + int64(time.Minute)
		d.addMinute(st, st.ft, st.ft, st.ft, end, fr.InWh, fr.OutWh, -1)
		d.addMinuteAfter(&prev, &prev, st.ft, st.fin, st.fout, fr, 1)
	} else {
		d.step(&prev, st.ft, st.fp, st.fin, st.fout)
	}
	st.e.InWh += prev.e.InWh
	st.e.OutWh += prev.e.OutWh
	st.e.CounterSteps += prev.e.CounterSteps
	st.e.PowerSteps += prev.e.PowerSteps
	st.e.Resets += prev.e.Resets
	st.e.Minutes += prev.e.Minutes
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
// No reading may be added after it. A reduced minute's energy holds the
// increase (spread over the gap from the end of the last reading's minute).
func (d *Day) After(r reading.Reading) {
	st := d.find(r.Device)
	t := r.Time.UnixNano()
	if st == nil || !st.have || st.after || t <= st.t {
		return
	}
	st.after = true
	if rd := r.Reduced; rd != nil {
		d.addMinuteAfter(st, st, t, r.EnergyIn, r.EnergyOut, rd, 1)
		return
	}
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

// stepEnds is one step of a device, from its reading at t0 to the next at
// t1 (Unix ns), with the powers and counters at both ends.
type stepEnds struct {
	t0, t1               int64
	p0, p1               float64
	in0, out0, in1, out1 *float64
	// bridge: the step is short enough to integrate power
	bridge bool
}

// newStep makes the step from the device state st to (t1, p1, in1, out1)
// for gap limit gap (ns).
func newStep(t0 int64, p0 float64, in0, out0 *float64, t1 int64, p1 float64, in1, out1 *float64, gap int64) stepEnds {
	return stepEnds{t0: t0, t1: t1, p0: p0, p1: p1, in0: in0, out0: out0, in1: in1, out1: out1, bridge: t1-t0 <= gap}
}

// kinds says how the step's energy is found: from a counter, from power,
// and whether a counter dropped (a reset, counting 0).
func (s *stepEnds) kinds() (counter, power, reset bool) {
	if s.in0 != nil && s.in1 != nil {
		counter = true
		reset = *s.in1 < *s.in0
	} else if s.bridge {
		power = true
	}
	if s.out0 != nil && s.out1 != nil {
		counter = true
		reset = reset || *s.out1 < *s.out0
	} else if s.bridge {
		power = true
	}
	return counter, power, reset
}

// part returns the step's import and export energy (Wh) within [a,b]
// (t0 ≤ a < b ≤ t1): the counters' increase in proportion to time (0 after
// a reset), else, when the step is bridged, the trapezoid of the power
// interpolated linearly to a and b.
func (s *stepEnds) part(a, b int64) (din, dout float64) {
	span := float64(s.t1 - s.t0)
	frac := float64(b-a) / span
	pin, pout := 0.0, 0.0
	if s.bridge && (s.in0 == nil || s.in1 == nil || s.out0 == nil || s.out1 == nil) {
		pa, pb := s.p0, s.p1
		if a != s.t0 {
			pa = s.p0 + (s.p1-s.p0)*float64(a-s.t0)/span
		}
		if b != s.t1 {
			pb = s.p0 + (s.p1-s.p0)*float64(b-s.t0)/span
		}
		pin, pout = split(pa, pb, float64(b-a)/1e9)
	}
	if s.in0 != nil && s.in1 != nil {
		if *s.in1 >= *s.in0 {
			din = (*s.in1 - *s.in0) * frac
		}
	} else {
		din = pin
	}
	if s.out0 != nil && s.out1 != nil {
		if *s.out1 >= *s.out0 {
			dout = (*s.out1 - *s.out0) * frac
		}
	} else {
		dout = pout
	}
	return din, dout
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

// step integrates one device step from its previous reading to (t1, p1):
// the part inside the day and after st.from, split at the day's slot
// boundaries.
func (d *Day) step(st *devState, t1 int64, p1 float64, in1, out1 *float64) {
	if t1-st.t <= 0 {
		return
	}
	a, b := max(st.t, st.from, d.s), min(t1, d.e)
	if b <= a {
		return
	}
	s := newStep(st.t, st.p, st.in, st.out, t1, p1, in1, out1, d.gap)
	usedCounter, usedPower, reset := s.kinds()
	e := &st.e
	slot := int64(Slot)
	for lo := a; lo < b; {
		k := int((lo - d.s) / slot)
		hi := min(b, d.s+int64(k+1)*slot)
		k = min(k, len(st.slotIn)-1)
		din, dout := s.part(lo, hi)
		e.InWh += din
		e.OutWh += dout
		st.slotIn[k] += din
		st.slotOut[k] += dout
		lo = hi
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

// StepWhWithin is the part within [a,b] (t0 ≤ a < b ≤ t1, Unix ns) of
// power moving linearly from p0 at t0 to p1 at t1, cut as a day cuts a
// step: with the power interpolated to a and b.
func StepWhWithin(t0, t1 int64, p0, p1 float64, a, b int64) (in, out float64) {
	s := stepEnds{t0: t0, t1: t1, p0: p0, p1: p1, bridge: true}
	return s.part(a, b)
}

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
	reduced := false
	until := t + d.gap
	for _, st := range d.devs {
		if st.have && t <= st.until {
			total += st.pp
			in, out := household.Split(st.pp)
			parts = append(parts, d.home.Orient(st.name, in, out))
			if st.reduced {
				reduced = true
				until = max(until, st.until)
			}
		}
	}
	d.parts = parts
	pt := Point{Time: d.groupT, Power: total, Flow: household.Balance(parts)}
	if d.gridHome {
		// the home's power at the connection point, as the PHP app's one
		// meter gave it: negative is feed-in
		pt.Power = pt.Flow.Import - pt.Flow.Export
	}
	// the peaks: a reduced minute's highest and lowest power, as the
	// mean hides them
	hi, lo := pt.Power, pt.Power
	if reduced {
		hi, lo = d.powerWith(t, true), d.powerWith(t, false)
	}
	if d.tempN > 0 {
		pt.Temp, pt.HasTemp = d.tempSum/float64(d.tempN), true
	}
	pt.Reduced, pt.Min, pt.Max = reduced, lo, hi
	pt.Gap = !d.havePrev || t > d.prevUntil
	if !pt.Gap {
		d.sourceStep(d.prevNs, t, d.prev.Power, pt.Power)
	}
	if t >= d.s && t < d.e {
		d.atPoint(pt, hi, lo)
		if d.OnPoint != nil {
			d.OnPoint(pt)
		}
	}
	d.prev, d.prevNs, d.prevUntil, d.havePrev = pt, t, until, true
}

// powerWith is the source's power at t (ns) with each device's highest
// (hi) or lowest power since its previous point.
func (d *Day) powerWith(t int64, hi bool) float64 {
	total := 0.0
	parts := d.parts[:0]
	for _, st := range d.devs {
		if st.have && t <= st.until {
			p := st.lo
			if hi {
				p = st.hi
			}
			total += p
			in, out := household.Split(p)
			parts = append(parts, d.home.Orient(st.name, in, out))
		}
	}
	d.parts = parts
	if d.gridHome {
		f := household.Balance(parts)
		return f.Import - f.Export
	}
	return total
}

// atPoint takes a point of the day; hi and lo are the highest and lowest
// power around it (its power unless a reduced minute contributes).
func (d *Day) atPoint(p Point, hi, lo float64) {
	s := &d.sum
	if hi > s.PeakW || s.PeakAt.IsZero() {
		s.PeakW, s.PeakAt = hi, p.Time
	}
	if lo < 0 && -lo > s.FeedPeakW {
		s.FeedPeakW, s.FeedPeakAt = -lo, p.Time
	}
	if p.Power < 0 {
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
		if !st.listed && e.CounterSteps+e.PowerSteps+e.Minutes == 0 {
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
