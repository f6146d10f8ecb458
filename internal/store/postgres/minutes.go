package postgres

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/powermeter/powermeter/internal/reading"
)

// Reduced minutes (retention) are stored like chunks: one row of minutes
// per source, UTC hour and device, the hour's reduced readings as arrays in
// time order. Besides the columns a chunk has (offs is the minute's start,
// its second in the hour; power the mean; energy_in, energy_out, device_ms
// those of the minute's last raw reading), a row holds per minute the
// count n of raw readings, power_min and power_max, the minute's energy
// in_uwh and out_uwh in µWh (1e-6 Wh, so a day's energy is kept to well
// below a Wh), and the last raw reading's second within its minute
// (last_secs) and power. An hour with all 60 minutes has offs NULL (its
// offsets are 0, 60, …, 3540): regular offsets do not compress, and
// without them a row of a 10-s device fits four to a page. A minute after
// minutes without readings of its device (reading.Reduced.Gap) has the
// gap's part of its energy in gap_in_uwh and gap_out_uwh (schema step 7);
// both arrays are NULL in a row without such a minute, and NULL at the
// other minutes of a row with one.

// energyMicro is the scale of a reduced minute's energy: µWh.
const energyMicro = 1e6

// minuteCols is the select list scanned into a minuteRow.
const minuteCols = `m.hour, m.device_id, m.offs, m.n, m.power, m.power_min, m.power_max, m.in_uwh, m.out_uwh,
	m.last_secs, m.last_power, m.temperature, m.energy_in, m.energy_out, m.voltage, m.phases, m.device_ms, m.backfilled,
	m.gap_in_uwh, m.gap_out_uwh`

// upsertMinutesSQL writes a whole row of minutes (merged in Go).
const upsertMinutesSQL = `INSERT INTO minutes (source_id, hour, device_id, offs, n, power, power_min, power_max, in_uwh, out_uwh,
	last_secs, last_power, temperature, energy_in, energy_out, voltage, phases, device_ms, backfilled, gap_in_uwh, gap_out_uwh)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
ON CONFLICT (source_id, hour, device_id) DO UPDATE SET
	(offs, n, power, power_min, power_max, in_uwh, out_uwh, last_secs, last_power,
	 temperature, energy_in, energy_out, voltage, phases, device_ms, backfilled, gap_in_uwh, gap_out_uwh) =
	(excluded.offs, excluded.n, excluded.power, excluded.power_min, excluded.power_max, excluded.in_uwh, excluded.out_uwh,
	 excluded.last_secs, excluded.last_power, excluded.temperature, excluded.energy_in, excluded.energy_out,
	 excluded.voltage, excluded.phases, excluded.device_ms, excluded.backfilled, excluded.gap_in_uwh, excluded.gap_out_uwh)`

// minuteRow is one row of minutes, with offs and lastOffs both seconds in
// the hour once scanned and expanded (expand); args stores them in the
// table's form.
type minuteRow struct {
	hour      time.Time
	device    int32
	offs      []int16
	n         []int16
	power     []int64
	pmin      []int64
	pmax      []int64
	inU       []int64
	outU      []int64
	lastOffs  []int16
	lastPower []int64
	temp      []pgtype.Int4
	eIn       []pgtype.Int8
	eOut      []pgtype.Int8
	volt      []pgtype.Int4
	phases    []pgtype.Text
	devMs     []pgtype.Int8
	backfill  []pgtype.Bool
	gapIn     []pgtype.Int8
	gapOut    []pgtype.Int8
}

func (m *minuteRow) dest() []any {
	return []any{&m.hour, &m.device, &m.offs, &m.n, &m.power, &m.pmin, &m.pmax, &m.inU, &m.outU,
		&m.lastOffs, &m.lastPower, &m.temp, &m.eIn, &m.eOut, &m.volt, &m.phases, &m.devMs, &m.backfill,
		&m.gapIn, &m.gapOut}
}

// expand turns a scanned row into the form the code uses: offs filled in
// for a full hour, lastOffs seconds in the hour.
func (m *minuteRow) expand() {
	if m.offs == nil {
		m.offs = make([]int16, len(m.n))
		for i := range m.offs {
			m.offs[i] = int16(i * 60)
		}
	}
	for i := range m.lastOffs {
		m.lastOffs[i] += m.offs[i]
	}
}

// args are upsertMinutesSQL's parameters for the row, in the table's
// form (see expand).
func (m *minuteRow) args(source int32) []any {
	offs := m.offs
	if len(offs) == 60 { // 60 different minutes of one hour: all of them
		offs = nil
	}
	secs := make([]int16, len(m.lastOffs))
	for i := range secs {
		secs[i] = m.lastOffs[i] - m.offs[i]
	}
	return []any{source, m.hour, m.device, offs, m.n, m.power, m.pmin, m.pmax, m.inU, m.outU,
		secs, m.lastPower, m.temp, m.eIn, m.eOut, m.volt, m.phases, m.devMs, m.backfill, m.gapIn, m.gapOut}
}

// minute is one reduced reading in its stored form.
type minute struct {
	off       int16 // the minute's start: second in the hour
	n         int16
	power     int64 // mean, mW
	pmin      int64
	pmax      int64
	inU       int64 // µWh
	outU      int64
	lastOff   int16 // the last raw reading: second in the hour
	lastPower int64
	temp      pgtype.Int4
	eIn       pgtype.Int8
	eOut      pgtype.Int8
	volt      pgtype.Int4
	phases    pgtype.Text
	devMs     pgtype.Int8 // device time − the last raw reading's time
	backfill  bool
	// the gap's part of the energy (µWh), valid after minutes without
	// readings (reading.Reduced.Gap)
	gapIn, gapOut pgtype.Int8
}

// at is the i-th minute of the row.
func (m *minuteRow) at(i int) minute {
	e := minute{off: m.offs[i], n: m.n[i], power: m.power[i], pmin: m.pmin[i], pmax: m.pmax[i],
		inU: m.inU[i], outU: m.outU[i], lastOff: m.lastOffs[i], lastPower: m.lastPower[i]}
	if i < len(m.temp) {
		e.temp = m.temp[i]
	}
	if i < len(m.eIn) {
		e.eIn = m.eIn[i]
	}
	if i < len(m.eOut) {
		e.eOut = m.eOut[i]
	}
	if i < len(m.volt) {
		e.volt = m.volt[i]
	}
	if i < len(m.phases) {
		e.phases = m.phases[i]
	}
	if i < len(m.devMs) {
		e.devMs = m.devMs[i]
	}
	if i < len(m.backfill) {
		e.backfill = m.backfill[i].Valid && m.backfill[i].Bool
	}
	if len(m.gapIn) == len(m.n) && len(m.gapOut) == len(m.n) {
		// a server older than schema step 7 that rewrote the row (Delete,
		// Reduce) left these arrays as they were, out of step with the
		// minutes: without them, the minutes are read as before step 7
		e.gapIn, e.gapOut = m.gapIn[i], m.gapOut[i]
	}
	return e
}

// all is every minute of the row.
func (m *minuteRow) all() []minute {
	out := make([]minute, len(m.offs))
	for i := range m.offs {
		out[i] = m.at(i)
	}
	return out
}

// minuteRowOf builds the row of the minutes ms (sorted by off here): an
// optional array is NULL when no minute has the quantity, as in chunks.
func minuteRowOf(hour time.Time, device int32, ms []minute) minuteRow {
	slices.SortFunc(ms, func(a, b minute) int { return int(a.off) - int(b.off) })
	r := minuteRow{hour: hour, device: device}
	var hasT, hasI, hasO, hasV, hasP, hasD, hasB, hasG bool
	for _, e := range ms {
		r.offs = append(r.offs, e.off)
		r.n = append(r.n, e.n)
		r.power = append(r.power, e.power)
		r.pmin = append(r.pmin, e.pmin)
		r.pmax = append(r.pmax, e.pmax)
		r.inU = append(r.inU, e.inU)
		r.outU = append(r.outU, e.outU)
		r.lastOffs = append(r.lastOffs, e.lastOff)
		r.lastPower = append(r.lastPower, e.lastPower)
		r.temp = append(r.temp, e.temp)
		r.eIn = append(r.eIn, e.eIn)
		r.eOut = append(r.eOut, e.eOut)
		r.volt = append(r.volt, e.volt)
		r.phases = append(r.phases, e.phases)
		r.devMs = append(r.devMs, e.devMs)
		r.backfill = append(r.backfill, pgtype.Bool{Bool: e.backfill, Valid: true})
		r.gapIn = append(r.gapIn, e.gapIn)
		r.gapOut = append(r.gapOut, e.gapOut)
		hasG = hasG || e.gapIn.Valid
		hasT, hasI, hasO = hasT || e.temp.Valid, hasI || e.eIn.Valid, hasO || e.eOut.Valid
		hasV, hasP, hasD, hasB = hasV || e.volt.Valid, hasP || e.phases.Valid, hasD || e.devMs.Valid, hasB || e.backfill
	}
	if !hasT {
		r.temp = nil
	}
	if !hasI {
		r.eIn = nil
	}
	if !hasO {
		r.eOut = nil
	}
	if !hasV {
		r.volt = nil
	}
	if !hasP {
		r.phases = nil
	}
	if !hasD {
		r.devMs = nil
	}
	if !hasB {
		r.backfill = nil
	}
	if !hasG {
		r.gapIn, r.gapOut = nil, nil
	}
	return r
}

// scanned is the minute as a stored reading of device, for decoding.
func (e *minute) scanned(hour time.Time, device int32) (scanned, error) {
	t := hour.Add(time.Duration(e.off) * time.Second)
	last := hour.Add(time.Duration(e.lastOff) * time.Second)
	sc := scanned{t: t, device: device, power: e.power, eIn: e.eIn, eOut: e.eOut, temp: e.temp, volt: e.volt,
		backfill: e.backfill,
		red: &reducedVals{n: int(e.n), pmin: e.pmin, pmax: e.pmax, inU: e.inU, outU: e.outU, last: last, lastPower: e.lastPower,
			gapIn: e.gapIn, gapOut: e.gapOut}}
	if e.phases.Valid {
		ps, err := parsePhases(e.phases.String)
		if err != nil {
			return sc, fmt.Errorf("minute %s device %d: %w", t.Format(time.RFC3339), device, err)
		}
		sc.phases = ps
	}
	if e.devMs.Valid {
		sc.devTime = pgtype.Timestamptz{Time: last.Add(time.Duration(e.devMs.Int64) * time.Millisecond), Valid: true}
	}
	return sc, nil
}

// reducedVals is what a reduced reading keeps besides a raw one's fields
// (reading.Reduced in stored units).
type reducedVals struct {
	n          int
	pmin, pmax int64
	inU, outU  int64
	last       time.Time
	lastPower  int64
	// valid after minutes without readings
	gapIn, gapOut pgtype.Int8
}

func (v *reducedVals) decode() *reading.Reduced {
	x := &reading.Reduced{
		Count:     v.n,
		MinPower:  unscale(v.pmin, powerScale),
		MaxPower:  unscale(v.pmax, powerScale),
		InWh:      float64(v.inU) / energyMicro,
		OutWh:     float64(v.outU) / energyMicro,
		LastTime:  v.last.UTC(),
		LastPower: unscale(v.lastPower, powerScale),
	}
	if v.gapIn.Valid && v.gapOut.Valid {
		x.Gap, x.GapInWh, x.GapOutWh = true, float64(v.gapIn.Int64)/energyMicro, float64(v.gapOut.Int64)/energyMicro
	}
	return x
}

// encodeMinute validates a reduced reading and converts it to its stored
// form; it returns the minute's UTC hour too.
func encodeMinute(r *reading.Reading) (time.Time, minute, error) {
	w, err := encode(r)
	if err != nil {
		return time.Time{}, minute{}, err
	}
	red := r.Reduced
	if red == nil {
		return time.Time{}, minute{}, fmt.Errorf("not a reduced reading")
	}
	if !w.t.Equal(w.t.Truncate(time.Minute)) {
		return time.Time{}, minute{}, fmt.Errorf("reduced reading at %s: not the start of a minute", w.t.Format(time.RFC3339))
	}
	if red.Count < 1 || red.Count > 60 {
		return time.Time{}, minute{}, fmt.Errorf("reduced reading at %s: count %d outside 1..60", w.t.Format(time.RFC3339), red.Count)
	}
	last := red.LastTime.UTC().Truncate(time.Second)
	if last.Before(w.t) || !last.Before(w.t.Add(time.Minute)) {
		return time.Time{}, minute{}, fmt.Errorf("reduced reading at %s: last time %s outside its minute", w.t.Format(time.RFC3339), red.LastTime.Format(time.RFC3339))
	}
	hour := w.t.Truncate(time.Hour)
	e := minute{off: int16(w.t.Sub(hour) / time.Second), n: int16(red.Count), power: w.power,
		lastOff: int16(last.Sub(hour) / time.Second), eIn: w.eIn, eOut: w.eOut, temp: w.temp, volt: w.volt,
		phases: w.phases, backfill: w.backfill}
	for _, f := range []struct {
		v    float64
		s    float64
		to   *int64
		name string
		min  float64
	}{
		{red.MinPower, powerScale, &e.pmin, "min_power_w", -reading.MaxPower},
		{red.MaxPower, powerScale, &e.pmax, "max_power_w", -reading.MaxPower},
		{red.LastPower, powerScale, &e.lastPower, "last_power_w", -reading.MaxPower},
		{red.InWh, energyMicro, &e.inU, "in_wh", 0},
		{red.OutWh, energyMicro, &e.outU, "out_wh", 0},
	} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) || f.v < f.min {
			return time.Time{}, minute{}, fmt.Errorf("reduced reading at %s: %s: %v out of range", w.t.Format(time.RFC3339), f.name, f.v)
		}
		x, err := scale(f.v, f.s, maxExact, f.name)
		if err != nil {
			return time.Time{}, minute{}, fmt.Errorf("reduced reading at %s: %w", w.t.Format(time.RFC3339), err)
		}
		*f.to = x
	}
	if w.devTime.Valid {
		e.devMs = pgtype.Int8{Int64: w.devTime.Time.Sub(last).Milliseconds(), Valid: true}
	}
	if red.Gap {
		for _, f := range []struct {
			v, total float64
			to       *pgtype.Int8
			name     string
		}{{red.GapInWh, red.InWh, &e.gapIn, "gap_in_wh"}, {red.GapOutWh, red.OutWh, &e.gapOut, "gap_out_wh"}} {
			if math.IsNaN(f.v) || f.v < 0 || f.v > f.total {
				return time.Time{}, minute{}, fmt.Errorf("reduced reading at %s: %s: %v out of range", w.t.Format(time.RFC3339), f.name, f.v)
			}
			x, err := scale(f.v, energyMicro, maxExact, f.name)
			if err != nil {
				return time.Time{}, minute{}, fmt.Errorf("reduced reading at %s: %w", w.t.Format(time.RFC3339), err)
			}
			*f.to = pgtype.Int8{Int64: x, Valid: true}
		}
	}
	return hour, e, nil
}

// keepFrom is the chunk without its readings before index k (they were
// reduced): optional arrays become NULL when no kept reading has the
// quantity, as the folder writes them.
func (c *chunk) keepFrom(k int) chunk {
	r := chunk{hour: c.hour, device: c.device, offs: c.offs[k:], power: c.power[k:]}
	tail := func(n int) int { return min(k, n) }
	r.temp = c.temp[tail(len(c.temp)):]
	r.eIn = c.eIn[tail(len(c.eIn)):]
	r.eOut = c.eOut[tail(len(c.eOut)):]
	r.volt = c.volt[tail(len(c.volt)):]
	r.phases = c.phases[tail(len(c.phases)):]
	r.devMs = c.devMs[tail(len(c.devMs)):]
	r.backfill = c.backfill[tail(len(c.backfill)):]
	if !slices.ContainsFunc(r.temp, func(v pgtype.Int4) bool { return v.Valid }) {
		r.temp = nil
	}
	if !slices.ContainsFunc(r.eIn, func(v pgtype.Int8) bool { return v.Valid }) {
		r.eIn = nil
	}
	if !slices.ContainsFunc(r.eOut, func(v pgtype.Int8) bool { return v.Valid }) {
		r.eOut = nil
	}
	if !slices.ContainsFunc(r.volt, func(v pgtype.Int4) bool { return v.Valid }) {
		r.volt = nil
	}
	if !slices.ContainsFunc(r.phases, func(v pgtype.Text) bool { return v.Valid }) {
		r.phases = nil
	}
	if !slices.ContainsFunc(r.devMs, func(v pgtype.Int8) bool { return v.Valid }) {
		r.devMs = nil
	}
	if !slices.ContainsFunc(r.backfill, func(v pgtype.Bool) bool { return v.Valid && v.Bool }) {
		r.backfill = nil
	}
	return r
}
