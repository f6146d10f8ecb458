package postgres

import (
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/powermeter/powermeter/internal/reading"
)

// Fixed-point scales of the stored integers.
const (
	powerScale  = 1000 // mW (power, phases)
	energyScale = 1000 // mWh
	tempScale   = 1000 // m°C
	voltScale   = 1000 // mV
)

// maxExact bounds scaled values: float64 holds integers exactly up to 2^53.
const maxExact = 1 << 53

func scale(v float64, s float64, limit float64, field string) (int64, error) {
	x := math.Round(v * s)
	if math.IsNaN(x) || math.Abs(x) >= limit {
		return 0, fmt.Errorf("%s: %v out of the storable range", field, v)
	}
	return int64(x), nil
}

func unscale(x int64, s float64) float64 { return float64(x) / s }

// columns holds a group of readings as column arrays, the shape the insert
// statement's unnest takes.
type columns struct {
	source   []int32
	t        []time.Time
	device   []int32
	power    []int64
	eIn      []pgtype.Int8
	eOut     []pgtype.Int8
	temp     []pgtype.Int4
	volt     []pgtype.Int4
	phases   []pgtype.Text // array literal "{1,2,3}" cast in SQL
	devTime  []pgtype.Timestamptz
	backfill []bool
	hour     []time.Time // the UTC hour of t (its chunk)
	off      []int16     // t's second in that hour
}

// row is one reading encoded for storage.
type row struct {
	t        time.Time
	power    int64
	eIn      pgtype.Int8
	eOut     pgtype.Int8
	temp     pgtype.Int4
	volt     pgtype.Int4
	phases   pgtype.Text
	devTime  pgtype.Timestamptz
	backfill bool
}

// encode validates r and converts it to its stored form.
func encode(r *reading.Reading) (row, error) {
	if err := r.Validate(); err != nil {
		return row{}, err
	}
	var w row
	var err error
	w.t = r.Time.UTC().Truncate(time.Second)
	if w.power, err = scale(r.Power, powerScale, maxExact, "power_w"); err != nil {
		return row{}, err
	}
	if w.eIn, err = opt8(r.EnergyIn, energyScale, "energy_in_wh"); err != nil {
		return row{}, err
	}
	if w.eOut, err = opt8(r.EnergyOut, energyScale, "energy_out_wh"); err != nil {
		return row{}, err
	}
	if w.temp, err = opt4(r.Temperature, tempScale, "temperature_c"); err != nil {
		return row{}, err
	}
	if w.volt, err = opt4(r.Voltage, voltScale, "voltage_v"); err != nil {
		return row{}, err
	}
	if len(r.Phases) > 0 {
		b := make([]byte, 0, 2+len(r.Phases)*8)
		b = append(b, '{')
		for i, p := range r.Phases {
			x, err := scale(p, powerScale, maxExact, fmt.Sprintf("phases_w[%d]", i))
			if err != nil {
				return row{}, err
			}
			if i > 0 {
				b = append(b, ',')
			}
			b = fmt.Appendf(b, "%d", x)
		}
		b = append(b, '}')
		w.phases = pgtype.Text{String: string(b), Valid: true}
	}
	if r.DeviceTime != nil {
		w.devTime = pgtype.Timestamptz{Time: r.DeviceTime.UTC().Truncate(time.Millisecond), Valid: true}
	}
	w.backfill = r.Backfilled
	return w, nil
}

func opt8(v *float64, s float64, field string) (pgtype.Int8, error) {
	if v == nil {
		return pgtype.Int8{}, nil
	}
	x, err := scale(*v, s, maxExact, field)
	return pgtype.Int8{Int64: x, Valid: err == nil}, err
}

func opt4(v *float64, s float64, field string) (pgtype.Int4, error) {
	if v == nil {
		return pgtype.Int4{}, nil
	}
	x, err := scale(*v, s, math.MaxInt32, field)
	return pgtype.Int4{Int32: int32(x), Valid: err == nil}, err
}

func (c *columns) add(source, device int32, w *row) {
	c.source = append(c.source, source)
	c.t = append(c.t, w.t)
	c.device = append(c.device, device)
	c.power = append(c.power, w.power)
	c.eIn = append(c.eIn, w.eIn)
	c.eOut = append(c.eOut, w.eOut)
	c.temp = append(c.temp, w.temp)
	c.volt = append(c.volt, w.volt)
	c.phases = append(c.phases, w.phases)
	c.devTime = append(c.devTime, w.devTime)
	c.backfill = append(c.backfill, w.backfill)
	h := w.t.Truncate(time.Hour)
	c.hour = append(c.hour, h)
	c.off = append(c.off, int16(w.t.Sub(h)/time.Second))
}

func (c *columns) args() []any {
	return []any{c.source, c.t, c.device, c.power, c.eIn, c.eOut, c.temp, c.volt, c.phases, c.devTime, c.backfill, c.hour, c.off}
}

// scanned is a stored reading as read back.
type scanned struct {
	t        time.Time
	device   int32
	power    int64
	eIn      pgtype.Int8
	eOut     pgtype.Int8
	temp     pgtype.Int4
	volt     pgtype.Int4
	phases   []int64
	devTime  pgtype.Timestamptz
	backfill bool
	red      *reducedVals // a reduced minute's own values; nil for a raw reading
}

// readingCols is the select list scanned into a scanned.
const readingCols = `r.t, r.device_id, r.power, r.energy_in, r.energy_out, r.temperature, r.voltage, r.phases, r.device_time, r.backfilled`

func (s *scanned) dest() []any {
	return []any{&s.t, &s.device, &s.power, &s.eIn, &s.eOut, &s.temp, &s.volt, &s.phases, &s.devTime, &s.backfill}
}

func (s *scanned) decode(device string) reading.Reading {
	r := reading.Reading{
		Device:     device,
		Time:       s.t.UTC(),
		Power:      unscale(s.power, powerScale),
		Backfilled: s.backfill,
	}
	if s.eIn.Valid {
		r.EnergyIn = reading.F(unscale(s.eIn.Int64, energyScale))
	}
	if s.eOut.Valid {
		r.EnergyOut = reading.F(unscale(s.eOut.Int64, energyScale))
	}
	if s.temp.Valid {
		r.Temperature = reading.F(unscale(int64(s.temp.Int32), tempScale))
	}
	if s.volt.Valid {
		r.Voltage = reading.F(unscale(int64(s.volt.Int32), voltScale))
	}
	if len(s.phases) > 0 {
		r.Phases = make([]float64, len(s.phases))
		for i, p := range s.phases {
			r.Phases[i] = unscale(p, powerScale)
		}
	}
	if s.devTime.Valid {
		t := s.devTime.Time.UTC()
		r.DeviceTime = &t
	}
	if s.red != nil {
		r.Reduced = s.red.decode()
	}
	return r
}
