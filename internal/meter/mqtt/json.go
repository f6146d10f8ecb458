package mqtt

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// lookup follows a dotted path ("ENERGY.Power", "data.0.p") into v.
func lookup(v any, path string) (any, bool) {
	for _, part := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v2, ok := x[part]
			if !ok {
				return nil, false
			}
			v = v2
		case []any:
			i, err := strconv.Atoi(part)
			if err != nil || i < 0 || i >= len(x) {
				return nil, false
			}
			v = x[i]
		default:
			return nil, false
		}
	}
	return v, true
}

// numberAt reads the number at path (a JSON number or a numeric string).
func numberAt(doc any, path string) (float64, bool, error) {
	v, ok := lookup(doc, path)
	if !ok || v == nil {
		return 0, false, nil
	}
	switch x := v.(type) {
	case float64:
		return x, true, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, false, fmt.Errorf("%s: %q is not a number", path, x)
		}
		return f, true, nil
	}
	return 0, false, fmt.Errorf("%s: %v is not a number", path, v)
}

// parseJSON reads a generic JSON payload with the configured paths.
func (m *Meter) parseJSON(v value) (reading.Reading, time.Time, error) {
	var doc any
	if err := json.Unmarshal(v.data, &doc); err != nil {
		return reading.Reading{}, time.Time{}, fmt.Errorf("not JSON: %q", clip(v.data))
	}
	p := m.paths
	var r reading.Reading
	power, ok, err := numberAt(doc, p.Power)
	if err != nil {
		return r, time.Time{}, err
	}
	if !ok {
		return r, time.Time{}, fmt.Errorf("no value at %s (json.power) in %q", p.Power, clip(v.data))
	}
	r.Power = power
	scale := 1.0
	if p.EnergyUnit == "kWh" {
		scale = 1000
	}
	opt := []struct {
		path  string
		dst   **float64
		scale float64
	}{{p.EnergyIn, &r.EnergyIn, scale}, {p.EnergyOut, &r.EnergyOut, scale}, {p.Temperature, &r.Temperature, 1}, {p.Voltage, &r.Voltage, 1}}
	for _, o := range opt {
		if o.path == "" {
			continue
		}
		x, ok, err := numberAt(doc, o.path)
		if err != nil {
			return r, time.Time{}, err
		}
		if ok {
			*o.dst = reading.F(whRound(x * o.scale))
		}
	}
	for _, ph := range p.Phases {
		x, _, err := numberAt(doc, ph)
		if err != nil {
			return r, time.Time{}, err
		}
		r.Phases = append(r.Phases, x)
	}
	at := v.at
	if p.Time != "" {
		if t, ok := lookup(doc, p.Time); ok {
			switch x := t.(type) {
			case string:
				if tt, err := time.Parse(time.RFC3339, x); err == nil {
					dt := tt.UTC()
					r.DeviceTime = &dt
					at = dt
				}
			case float64:
				dt := time.Unix(int64(x), 0).UTC()
				r.DeviceTime = &dt
				at = dt
			}
		}
	}
	return r, at, nil
}

// whRound drops float noise below 1 mWh.
func whRound(x float64) float64 { return float64(int64(x*1000+copysign(0.5, x))) / 1000 }

func copysign(a, b float64) float64 {
	if b < 0 {
		return -a
	}
	return a
}
