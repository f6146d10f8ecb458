package sqlite

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// epoch is the zero of the ts column: 2000-01-01T00:00:00Z. Seconds since
// then fit SQLite's 4-byte integer until 2068 (unix seconds would need 6
// bytes from 2038 on); reading.Validate refuses years before 2000.
const epoch = 946684800

// maxMilli bounds a value in milli-units so that it stays exact in a float64.
const maxMilli = 1 << 53

// row is one reading as it is stored: integers, the device still by name.
type row struct {
	ts  int64 // seconds since epoch
	dev string
	p   int64 // power, mW
	// v is everything else, in the smallest form: nil when there is
	// nothing; an int64 when there is only a temperature with at most two
	// decimals (in 0.01 °C: 2 bytes up to 327 °C; the common legacy
	// reading); else a []byte from encodeExtra.
	v any
	// reduced: v holds a reduced reading (reading.Reduced), which Insert
	// stores even before the source's reduced horizon
	reduced bool
}

// milli converts a value in a unit to integer milli-units (mW, mWh, mV,
// m°C), rounding half away from zero.
func milli(v float64) (int64, bool) {
	m := math.Round(v * 1000)
	if math.IsNaN(m) || m > maxMilli || m < -maxMilli {
		return 0, false
	}
	return int64(m), true
}

func unmilli(m int64) float64 { return float64(m) / 1000 }

// Flags of the extra blob's first byte.
const (
	xEnergyIn = 1 << iota
	xEnergyOut
	xVoltage
	xDeviceTime
	xBackfilled
	xPhases
	xTemperature
	xReduced // schema 3: a reduced reading; its minute's summary follows the fields
	xKnown   = xEnergyIn | xEnergyOut | xVoltage | xDeviceTime | xBackfilled | xPhases | xTemperature | xReduced
)

// micro converts energy in Wh to integer µWh (a reduced reading's energy
// of its minute: a small device's minute is a few mWh, kept to 1e-6 Wh so
// a day of 1440 of them still sums to the Wh).
func micro(v float64) (int64, bool) {
	m := math.Round(v * 1e6)
	if math.IsNaN(m) || m < 0 || m > math.MaxInt64/2 {
		return 0, false
	}
	return int64(m), true
}

// encodeRow converts a valid reading to its stored form.
func encodeRow(r *reading.Reading) (row, error) {
	sec := r.Time.Unix()
	out := row{ts: sec - epoch, dev: r.Device, reduced: r.Reduced != nil}
	var ok bool
	if out.p, ok = milli(r.Power); !ok {
		return row{}, fmt.Errorf("power_w: %v out of range", r.Power)
	}
	var temp int64
	if r.Temperature != nil {
		if temp, ok = milli(*r.Temperature); !ok {
			return row{}, fmt.Errorf("temperature_c: %v out of range", *r.Temperature)
		}
	}
	x, err := encodeExtra(r, sec, temp, r.Temperature != nil && temp%10 != 0)
	switch {
	case err != nil:
		return row{}, err
	case x != nil:
		out.v = x
	case r.Temperature != nil:
		out.v = temp / 10
	}
	return out, nil
}

// encodeExtra packs the rarely present fields into a blob: one flag byte,
// then, for each flag set, in this order: energy in and out (uvarint mWh),
// temperature (varint m°C, given as temp), voltage (varint mV), device
// time (varint ms relative to the reading's second), phases (uvarint
// count, then varint mW each), the reduced summary (see appendReduced).
// Backfilled is the flag alone. A reading
// without any rare field gets no blob (nil); its temperature, if any, is
// then stored as a plain integer, unless fineTemp (a third decimal) asks
// for the blob.
func encodeExtra(r *reading.Reading, sec, temp int64, fineTemp bool) ([]byte, error) {
	var flags byte
	if r.EnergyIn != nil {
		flags |= xEnergyIn
	}
	if r.EnergyOut != nil {
		flags |= xEnergyOut
	}
	if r.Voltage != nil {
		flags |= xVoltage
	}
	if r.DeviceTime != nil {
		flags |= xDeviceTime
	}
	if r.Backfilled {
		flags |= xBackfilled
	}
	if len(r.Phases) > 0 {
		flags |= xPhases
	}
	if r.Reduced != nil {
		flags |= xReduced
	}
	if flags == 0 && !fineTemp {
		return nil, nil
	}
	if r.Temperature != nil {
		flags |= xTemperature
	}
	b := make([]byte, 1, 1+4*binary.MaxVarintLen64+len(r.Phases)*4)
	b[0] = flags
	for _, f := range []struct {
		name string
		v    *float64
	}{{"energy_in_wh", r.EnergyIn}, {"energy_out_wh", r.EnergyOut}} {
		if f.v == nil {
			continue
		}
		m, ok := milli(*f.v)
		if !ok || m < 0 {
			return nil, fmt.Errorf("%s: %v out of range", f.name, *f.v)
		}
		b = binary.AppendUvarint(b, uint64(m))
	}
	if r.Temperature != nil {
		b = binary.AppendVarint(b, temp)
	}
	if r.Voltage != nil {
		m, ok := milli(*r.Voltage)
		if !ok {
			return nil, fmt.Errorf("voltage_v: %v out of range", *r.Voltage)
		}
		b = binary.AppendVarint(b, m)
	}
	if r.DeviceTime != nil {
		b = binary.AppendVarint(b, r.DeviceTime.UnixMilli()-sec*1000)
	}
	if len(r.Phases) > 0 {
		b = binary.AppendUvarint(b, uint64(len(r.Phases)))
		for i, p := range r.Phases {
			m, ok := milli(p)
			if !ok {
				return nil, fmt.Errorf("phases_w[%d]: %v out of range", i, p)
			}
			b = binary.AppendVarint(b, m)
		}
	}
	if r.Reduced != nil {
		var err error
		if b, err = appendReduced(b, r, sec); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendReduced appends the summary of a reduced reading, relative to the
// reading's own values where that makes it shorter: count (uvarint), mean
// power minus minimum and maximum minus mean (varint mW, usually a few
// bytes less than the absolute values), energy in and out (uvarint µWh),
// the last raw reading's time (varint seconds after the reading's) and
// power (varint mW minus the mean), and after minutes without readings
// (Reduced.Gap) the gap's part of the energy in and out (uvarint µWh;
// schema 3 blobs end before it and decode unchanged).
func appendReduced(b []byte, r *reading.Reading, sec int64) ([]byte, error) {
	x := r.Reduced
	if x.Count < 1 {
		return nil, fmt.Errorf("reduced.count: %d, want at least 1", x.Count)
	}
	p, _ := milli(r.Power) // checked by encodeRow
	mw := func(name string, v float64) (int64, error) {
		m, ok := milli(v)
		if !ok {
			return 0, fmt.Errorf("reduced.%s: %v out of range", name, v)
		}
		return m, nil
	}
	lo, err := mw("min_power_w", x.MinPower)
	if err != nil {
		return nil, err
	}
	hi, err := mw("max_power_w", x.MaxPower)
	if err != nil {
		return nil, err
	}
	last, err := mw("last_power_w", x.LastPower)
	if err != nil {
		return nil, err
	}
	in, ok := micro(x.InWh)
	if !ok {
		return nil, fmt.Errorf("reduced.in_wh: %v out of range", x.InWh)
	}
	out, ok := micro(x.OutWh)
	if !ok {
		return nil, fmt.Errorf("reduced.out_wh: %v out of range", x.OutWh)
	}
	if x.LastTime.IsZero() {
		return nil, errors.New("reduced.last_time: missing")
	}
	b = binary.AppendUvarint(b, uint64(x.Count))
	b = binary.AppendVarint(b, p-lo)
	b = binary.AppendVarint(b, hi-p)
	b = binary.AppendUvarint(b, uint64(in))
	b = binary.AppendUvarint(b, uint64(out))
	b = binary.AppendVarint(b, x.LastTime.Unix()-sec)
	b = binary.AppendVarint(b, last-p)
	if x.Gap {
		// after minutes without readings: the part of the energy that
		// belongs to them (µWh); a blob without it (also every one written
		// before it existed) decodes with Gap false
		gin, ok := micro(x.GapInWh)
		if !ok || x.GapInWh > x.InWh {
			return nil, fmt.Errorf("reduced.gap_in_wh: %v out of range", x.GapInWh)
		}
		gout, ok := micro(x.GapOutWh)
		if !ok || x.GapOutWh > x.OutWh {
			return nil, fmt.Errorf("reduced.gap_out_wh: %v out of range", x.GapOutWh)
		}
		b = binary.AppendUvarint(b, uint64(gin))
		b = binary.AppendUvarint(b, uint64(gout))
	}
	return b, nil
}

var errBadExtra = errors.New("corrupt extra-fields blob")

// decodeExtra fills the rare fields of r from a blob made by encodeExtra.
func decodeExtra(r *reading.Reading, b []byte, sec int64) error {
	if len(b) == 0 {
		return nil
	}
	flags := b[0]
	if flags&^xKnown != 0 {
		return fmt.Errorf("%w: unknown flags %#x", errBadExtra, flags)
	}
	b = b[1:]
	uv := func() (uint64, error) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, errBadExtra
		}
		b = b[n:]
		return v, nil
	}
	sv := func() (int64, error) {
		v, n := binary.Varint(b)
		if n <= 0 {
			return 0, errBadExtra
		}
		b = b[n:]
		return v, nil
	}
	for _, f := range []struct {
		flag byte
		dst  **float64
	}{{xEnergyIn, &r.EnergyIn}, {xEnergyOut, &r.EnergyOut}} {
		if flags&f.flag == 0 {
			continue
		}
		v, err := uv()
		if err != nil {
			return err
		}
		if v > maxMilli {
			return fmt.Errorf("%w: counter %d", errBadExtra, v)
		}
		*f.dst = reading.F(unmilli(int64(v)))
	}
	if flags&xTemperature != 0 {
		v, err := sv()
		if err != nil {
			return err
		}
		r.Temperature = reading.F(unmilli(v))
	}
	if flags&xVoltage != 0 {
		v, err := sv()
		if err != nil {
			return err
		}
		r.Voltage = reading.F(unmilli(v))
	}
	if flags&xDeviceTime != 0 {
		v, err := sv()
		if err != nil {
			return err
		}
		t := time.UnixMilli(sec*1000 + v).UTC()
		r.DeviceTime = &t
	}
	r.Backfilled = flags&xBackfilled != 0
	if flags&xPhases != 0 {
		n, err := uv()
		if err != nil {
			return err
		}
		if n > 16 {
			return fmt.Errorf("%w: %d phases", errBadExtra, n)
		}
		r.Phases = make([]float64, n)
		for i := range r.Phases {
			v, err := sv()
			if err != nil {
				return err
			}
			r.Phases[i] = unmilli(v)
		}
	}
	if flags&xReduced != 0 {
		var v [7]int64
		for i := range v {
			var err error
			if i == 0 || i == 3 || i == 4 {
				var u uint64
				u, err = uv()
				v[i] = int64(u)
				if u > math.MaxInt64/2 {
					err = errBadExtra
				}
			} else {
				v[i], err = sv()
			}
			if err != nil {
				return err
			}
		}
		p := int64(math.Round(r.Power * 1000))
		r.Reduced = &reading.Reduced{
			Count:     int(v[0]),
			MinPower:  unmilli(p - v[1]),
			MaxPower:  unmilli(p + v[2]),
			InWh:      float64(v[3]) / 1e6,
			OutWh:     float64(v[4]) / 1e6,
			LastTime:  time.Unix(sec+v[5], 0).UTC(),
			LastPower: unmilli(p + v[6]),
		}
		if len(b) > 0 {
			gin, err := uv()
			if err != nil {
				return err
			}
			gout, err := uv()
			if err != nil {
				return err
			}
			if gin > uint64(v[3]) || gout > uint64(v[4]) {
				return fmt.Errorf("%w: gap energy above the minute's", errBadExtra)
			}
			x := r.Reduced
			x.Gap, x.GapInWh, x.GapOutWh = true, float64(gin)/1e6, float64(gout)/1e6
		}
	}
	if len(b) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", errBadExtra, len(b))
	}
	return nil
}

// decodeRow builds a reading from stored columns; v is the column that
// holds NULL, a temperature or an extra blob (see row).
func decodeRow(dev string, ts, p int64, v any) (reading.Reading, error) {
	sec := ts + epoch
	r := reading.Reading{Device: dev, Time: time.Unix(sec, 0).UTC(), Power: unmilli(p)}
	var err error
	switch v := v.(type) {
	case nil:
	case int64:
		r.Temperature = reading.F(float64(v) / 100)
	case []byte:
		err = decodeExtra(&r, v, sec)
	default:
		err = fmt.Errorf("%w: column holds %T", errBadExtra, v)
	}
	if err != nil {
		return reading.Reading{}, fmt.Errorf("reading %s at %s: %w", dev, r.Time.Format(time.RFC3339), err)
	}
	return r, nil
}
