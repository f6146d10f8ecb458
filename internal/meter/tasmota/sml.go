package tasmota

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

// SMLMap names the fields of a smart-meter script's group in Tasmota's
// StatusSNS (HTTP `Status 10`) or tele/<topic>/SENSOR (MQTT) JSON. The
// zero value of a field means its default (DefaultSMLMap).
type SMLMap struct {
	Group    string
	TotalIn  string    // kWh, import counter
	TotalOut string    // kWh, export counter
	Power    string    // W, positive import, negative export
	PowerL   [3]string // W per phase
	VoltageL [3]string // V per phase
	CurrentL [3]string // A per phase
}

// DefaultSMLMap is the common script's convention (also evcc's).
func DefaultSMLMap() SMLMap {
	return SMLMap{
		Group: "SML", TotalIn: "Total_in", TotalOut: "Total_out", Power: "Power_curr",
		PowerL:   [3]string{"power_l1", "power_l2", "power_l3"},
		VoltageL: [3]string{"voltage_l1", "voltage_l2", "voltage_l3"},
		CurrentL: [3]string{"current_l1", "current_l2", "current_l3"},
	}
}

// SMLMapFrom applies a [meters.sml] section (nil: all defaults).
func SMLMapFrom(c *config.SML) SMLMap {
	m := DefaultSMLMap()
	if c == nil {
		return m
	}
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&m.Group, c.Group)
	set(&m.TotalIn, c.TotalIn)
	set(&m.TotalOut, c.TotalOut)
	set(&m.Power, c.Power)
	set(&m.PowerL[0], c.PowerL1)
	set(&m.PowerL[1], c.PowerL2)
	set(&m.PowerL[2], c.PowerL3)
	set(&m.VoltageL[0], c.VoltageL1)
	set(&m.VoltageL[1], c.VoltageL2)
	set(&m.VoltageL[2], c.VoltageL3)
	set(&m.CurrentL[0], c.CurrentL1)
	set(&m.CurrentL[1], c.CurrentL2)
	set(&m.CurrentL[2], c.CurrentL3)
	return m
}

// SMLValues is what one SML group reported; nil = not reported.
type SMLValues struct {
	TotalIn, TotalOut *float64 // kWh
	Power             *float64 // W, negative = export
	PowerL            [3]*float64
	VoltageL          [3]*float64
	CurrentL          [3]*float64
}

// ErrLostSync is wrapped by the error of a read head that reports zero
// counters: an electronic meter's counters never return to 0, so the head
// has lost the meter's signal (misaligned, or the script restarted).
var ErrLostSync = fmt.Errorf("the read head reports 0 kWh counters: it has lost sync with the meter")

// ParseSML finds the mapped group in a StatusSNS or SENSOR object (the
// sections by name, as json.RawMessage) and returns its values. Errors say
// which group or field is missing and what the device does report, so a
// user can fix the mapping. The error is a *meter.Error of kind Config
// (mapping does not fit) or BadAnswer (a value that is not a number).
func ParseSML(sns map[string]json.RawMessage, m SMLMap) (SMLValues, error) {
	var v SMLValues
	raw, ok := sns[m.Group]
	if !ok {
		return v, meter.Errorf(meter.Config, nil, "no group %q in the answer (groups there: %s): set [meters.sml] group to the name your script uses", m.Group, sections(sns))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return v, meter.Errorf(meter.BadAnswer, err, "group %q is not a JSON object", m.Group)
	}
	num := func(name string) (*float64, error) {
		if name == "" {
			return nil, nil
		}
		b, ok := fields[name]
		if !ok {
			return nil, nil
		}
		b = bytes.TrimSpace(b)
		if bytes.Equal(b, []byte("null")) {
			return nil, nil
		}
		var f float64
		if err := json.Unmarshal(b, &f); err != nil {
			return nil, meter.Errorf(meter.BadAnswer, nil, "%s.%s is %s, not a number", m.Group, name, clip(string(b)))
		}
		return &f, nil
	}
	var err error
	if v.Power, err = num(m.Power); err != nil {
		return v, err
	}
	if v.Power == nil {
		return v, meter.Errorf(meter.Config, nil, "group %q has no power field %q (fields there: %s): set [meters.sml] power", m.Group, m.Power, fieldNames(fields))
	}
	if v.TotalIn, err = num(m.TotalIn); err != nil {
		return v, err
	}
	if v.TotalOut, err = num(m.TotalOut); err != nil {
		return v, err
	}
	for i := 0; i < 3; i++ {
		if v.PowerL[i], err = num(m.PowerL[i]); err != nil {
			return v, err
		}
		if v.VoltageL[i], err = num(m.VoltageL[i]); err != nil {
			return v, err
		}
		if v.CurrentL[i], err = num(m.CurrentL[i]); err != nil {
			return v, err
		}
	}
	return v, nil
}

// LostSync reports a read head that lost the meter: an import counter of 0
// (with no export counter, or one of 0 too). A grid meter of a household
// has always counted some import.
func (v SMLValues) LostSync() bool {
	return v.TotalIn != nil && *v.TotalIn == 0 && (v.TotalOut == nil || *v.TotalOut == 0)
}

// Reading turns the values into a Reading of device at t: counters in Wh,
// the sign of power as reported, per-phase power as Phases when all three
// phases are there, the mean of the reported phase voltages as Voltage.
// A head that lost sync is an error wrapping ErrLostSync.
func (v SMLValues) Reading(device string, t time.Time) (reading.Reading, error) {
	if v.LostSync() {
		return reading.Reading{}, meter.Errorf(meter.NotPresent, ErrLostSync, "no reading")
	}
	r := reading.Reading{Device: device, Time: t.UTC(), Power: *v.Power}
	if v.TotalIn != nil && *v.TotalIn >= 0 {
		r.EnergyIn = reading.F(whFromKWh(*v.TotalIn))
	}
	if v.TotalOut != nil && *v.TotalOut >= 0 {
		r.EnergyOut = reading.F(whFromKWh(*v.TotalOut))
	}
	if v.PowerL[0] != nil && v.PowerL[1] != nil && v.PowerL[2] != nil {
		r.Phases = []float64{*v.PowerL[0], *v.PowerL[1], *v.PowerL[2]}
	}
	var sum float64
	var n int
	for _, u := range v.VoltageL {
		if u != nil && *u > 0 {
			sum += *u
			n++
		}
	}
	if n > 0 {
		r.Voltage = reading.F(float64(int64(sum/float64(n)*100+0.5)) / 100)
	}
	return r, nil
}

// SMLGroups lists the groups of sns that look like a smart-meter script's
// (an object with a power-like or counter-like field), for error messages
// and discovery.
func SMLGroups(sns map[string]json.RawMessage) []string {
	var out []string
	for k, raw := range sns {
		if k == "ENERGY" || k == "Time" {
			continue
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(raw, &fields) != nil {
			continue
		}
		for f := range fields {
			lf := strings.ToLower(f)
			if strings.Contains(lf, "power") || strings.Contains(lf, "total") || strings.HasPrefix(lf, "e_") {
				out = append(out, k)
				break
			}
		}
	}
	sort.Strings(out)
	return out
}

func fieldNames(fields map[string]json.RawMessage) string {
	names := make([]string, 0, len(fields))
	for k := range fields {
		names = append(names, k)
	}
	if len(names) == 0 {
		return "none"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
