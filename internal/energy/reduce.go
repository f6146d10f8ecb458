package energy

import (
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// Reducer returns the store.ReduceFunc of retention for readings taken
// every interval (10 s when 0): it reduces one device's raw readings to
// one reduced reading per UTC minute, whose energy (Reduced.InWh, OutWh)
// is what the rules of this package give the minute, so Day adds up to
// the same energy from reduced minutes as from the raw readings.
//
// Each step between consecutive readings (prev, the raw readings, next)
// is split at the minutes' boundaries as Day splits it at a day's: counter
// increase in proportion to time, else the trapezoid of the interpolated
// power when the step is bridged. A minute holds the parts of the steps
// inside it, and also the parts in the minutes without readings before it
// (a counter step across a gap), kept apart in Reduced.GapInWh and
// GapOutWh: Day spreads them over the gap again in proportion to time and
// keeps the rest in the minute, as the raw readings would. A step from prev counts only after the end of
// prev's minute: that minute holds the part before (reduced), or keeps it
// itself (raw). The step to next counts up to the end of the last raw
// reading's minute; next's minute holds the rest. Without next (the
// device sent nothing since) the last step is unknown and counts nothing;
// a next that is already reduced is treated so too.
func Reducer(interval time.Duration) store.ReduceFunc {
	if interval <= 0 {
		interval = 10 * time.Second
	}
	gap := int64(GapIntervals * interval)
	return func(prev *reading.Reading, raw []reading.Reading, next *reading.Reading) []reading.Reading {
		return reduce(gap, prev, raw, next)
	}
}

// minuteAcc collects one minute's raw readings.
type minuteAcc struct {
	out          reading.Reading
	red          reading.Reduced
	power        float64
	temp, volt   float64
	nTemp, nVolt int
	phases       []float64
	nPhases      []int
	inWh, outWh  float64
	// the part of inWh, outWh in the minutes without readings before this
	// one; gap: there are such minutes
	gapIn, gapOut float64
	gap           bool
	last          *reading.Reading
}

func (m *minuteAcc) add(r *reading.Reading) {
	if m.red.Count == 0 || r.Power < m.red.MinPower {
		m.red.MinPower = r.Power
	}
	if m.red.Count == 0 || r.Power > m.red.MaxPower {
		m.red.MaxPower = r.Power
	}
	m.red.Count++
	m.power += r.Power
	if r.Temperature != nil {
		m.temp += *r.Temperature
		m.nTemp++
	}
	if r.Voltage != nil {
		m.volt += *r.Voltage
		m.nVolt++
	}
	for i, p := range r.Phases {
		if i >= len(m.phases) {
			m.phases = append(m.phases, 0)
			m.nPhases = append(m.nPhases, 0)
		}
		m.phases[i] += p
		m.nPhases[i]++
	}
	if r.Backfilled {
		m.out.Backfilled = true
	}
	m.last = r
}

// reading is the minute's reduced reading.
func (m *minuteAcc) reading() reading.Reading {
	r := m.out
	n := float64(m.red.Count)
	r.Power = m.power / n
	if m.nTemp > 0 {
		r.Temperature = reading.F(m.temp / float64(m.nTemp))
	}
	if m.nVolt > 0 {
		r.Voltage = reading.F(m.volt / float64(m.nVolt))
	}
	if len(m.phases) > 0 {
		r.Phases = make([]float64, len(m.phases))
		for i, p := range m.phases {
			r.Phases[i] = p / float64(m.nPhases[i])
		}
	}
	last := m.last
	r.EnergyIn, r.EnergyOut = copyF(last.EnergyIn), copyF(last.EnergyOut)
	if last.DeviceTime != nil {
		dt := *last.DeviceTime
		r.DeviceTime = &dt
	}
	red := m.red
	red.InWh, red.OutWh = m.inWh, m.outWh
	if m.gap {
		// the gap's parts were added first, so they never exceed the
		// sums; min keeps that under any order of addition
		red.Gap, red.GapInWh, red.GapOutWh = true, min(m.gapIn, m.inWh), min(m.gapOut, m.outWh)
	}
	red.LastTime, red.LastPower = last.Time, last.Power
	r.Reduced = &red
	return r
}

func copyF(p *float64) *float64 {
	if p == nil {
		return nil
	}
	return reading.F(*p)
}

// reduce is Reducer's function for gap limit gap (ns).
func reduce(gap int64, prev *reading.Reading, raw []reading.Reading, next *reading.Reading) []reading.Reading {
	if len(raw) == 0 {
		return nil
	}
	minute := int64(time.Minute)
	var mins []*minuteAcc
	at := make([]int, len(raw)) // the minute of each raw reading (index into mins)
	for i := range raw {
		r := &raw[i]
		t := r.Time.UnixNano()
		mt := t / minute * minute
		if len(mins) == 0 || mins[len(mins)-1].out.Time.UnixNano() != mt {
			mins = append(mins, &minuteAcc{out: reading.Reading{Device: r.Device, Time: time.Unix(0, mt).UTC()}})
		}
		mins[len(mins)-1].add(r)
		at[i] = len(mins) - 1
	}

	// addStep adds the step from (t0, p0, counters of r0) to r1 over [a, b)
	// to the minutes: the part in the minute of t0 to minute i0 (when ≥ 0),
	// all others to i1, the minute of the step's end.
	addStep := func(s stepEnds, a, b int64, i0, i1 int) {
		for lo := a; lo < b; {
			hi := min(b, (lo/minute+1)*minute)
			din, dout := s.part(lo, hi)
			i := i1
			if i0 >= 0 && lo/minute == s.t0/minute {
				i = i0
			}
			if i >= 0 {
				m := mins[i]
				m.inWh += din
				m.outWh += dout
				if i == i1 && lo/minute != s.t1/minute {
					// before the minute of the step's end: a minute
					// without readings
					m.gap = true
					m.gapIn += din
					m.gapOut += dout
				}
			}
			lo = hi
		}
	}

	if prev != nil {
		t0, p0, from := prev.Time.UnixNano(), prev.Power, minuteEnd(prev.Time.UnixNano())
		if rd := prev.Reduced; rd != nil {
			t0, p0 = rd.LastTime.UnixNano(), rd.LastPower
		}
		r := &raw[0]
		t1 := r.Time.UnixNano()
		if t1 > t0 {
			s := newStep(t0, p0, prev.EnergyIn, prev.EnergyOut, t1, r.Power, r.EnergyIn, r.EnergyOut, gap)
			addStep(s, max(t0, from), t1, -1, at[0])
		}
	}
	for i := 1; i < len(raw); i++ {
		r0, r1 := &raw[i-1], &raw[i]
		t0, t1 := r0.Time.UnixNano(), r1.Time.UnixNano()
		if t1 <= t0 {
			continue
		}
		s := newStep(t0, r0.Power, r0.EnergyIn, r0.EnergyOut, t1, r1.Power, r1.EnergyIn, r1.EnergyOut, gap)
		addStep(s, t0, t1, at[i-1], at[i])
	}
	if next != nil && next.Reduced == nil {
		r0 := &raw[len(raw)-1]
		t0, t1 := r0.Time.UnixNano(), next.Time.UnixNano()
		if t1 > t0 {
			s := newStep(t0, r0.Power, r0.EnergyIn, r0.EnergyOut, t1, next.Power, next.EnergyIn, next.EnergyOut, gap)
			addStep(s, t0, min(t1, minuteEnd(t0)), len(mins)-1, -1)
		}
	}

	out := make([]reading.Reading, len(mins))
	for i, m := range mins {
		out[i] = m.reading()
	}
	return out
}
