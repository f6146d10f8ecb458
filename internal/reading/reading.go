// Package reading defines the one value every part of powermeter passes
// around: a measurement of one device at one instant, with explicit units.
package reading

import (
	"fmt"
	"math"
	"time"
	"unicode"
	"unicode/utf8"
)

// Reading is one measurement of one device. Optional quantities are nil when
// the device does not report them; a Reading is never half filled: either a
// meter returns a complete one or an error.
type Reading struct {
	// Device identifies the device within its source (for a meter that
	// covers one device: the meter's name).
	Device string `json:"device"`
	// Time is the instant the reading stands for, in UTC. The logger sets it
	// to the round's instant on the interval grid.
	Time time.Time `json:"time"`
	// Power is the active power in W; negative means feed-in (export).
	Power float64 `json:"power_w"`
	// EnergyIn and EnergyOut are the device's own energy counters in Wh
	// (import and export), as the device reports them: they may reset.
	EnergyIn  *float64 `json:"energy_in_wh,omitempty"`
	EnergyOut *float64 `json:"energy_out_wh,omitempty"`
	// Temperature in °C.
	Temperature *float64 `json:"temperature_c,omitempty"`
	// Voltage in V.
	Voltage *float64 `json:"voltage_v,omitempty"`
	// Phases holds per-phase or per-channel power in W (3EM: L1, L2, L3;
	// several meters in one legacy line: one value per meter; AhoyDTU: DC
	// inputs). Legacy lines carry their extra fields here.
	Phases []float64 `json:"phases_w,omitempty"`
	// DeviceTime is the device's own clock for this value, where it has one.
	DeviceTime *time.Time `json:"device_time,omitempty"`
	// Backfilled marks a reading filled in later from a device's history.
	Backfilled bool `json:"backfilled,omitempty"`
	// Reduced is set on a reading that stands for one device's raw
	// readings of one UTC minute [Time, Time+1m), kept in their place once
	// the retention period has passed ([server.retention]). Power,
	// Temperature, Voltage and Phases are then the means of the raw
	// readings, EnergyIn and EnergyOut the counters of the minute's last
	// raw reading, DeviceTime its device clock, Backfilled whether any of
	// them was.
	Reduced *Reduced `json:"reduced,omitempty"`
}

// Reduced is what a reduced reading keeps of a minute besides the means.
type Reduced struct {
	// Count is how many raw readings the minute had.
	Count int `json:"count"`
	// MinPower and MaxPower are the lowest and highest raw power in W.
	MinPower float64 `json:"min_power_w"`
	MaxPower float64 `json:"max_power_w"`
	// InWh and OutWh are the device's energy within the minute (import
	// and export, both ≥ 0) as the energy rules computed it from the raw
	// readings (internal/energy), so a day's energy does not change when
	// its readings are reduced. After minutes without readings of the
	// device they include the step across them (GapInWh, GapOutWh).
	InWh  float64 `json:"in_wh"`
	OutWh float64 `json:"out_wh"`
	// Gap is set when minutes without readings of the device lie before
	// this one (since the end of the previous reading's minute): then
	// GapInWh and GapOutWh (≤ InWh, OutWh) are the part of the minute's
	// energy that belongs to those minutes, spread over them in proportion
	// to time, and the rest is the minute's own. A minute reduced before
	// the part was kept apart has Gap false: its whole energy is spread
	// over such a gap, as it was then.
	Gap      bool    `json:"gap,omitempty"`
	GapInWh  float64 `json:"gap_in_wh,omitempty"`
	GapOutWh float64 `json:"gap_out_wh,omitempty"`
	// LastTime and LastPower are the minute's last raw reading's time and
	// power: the next step of the device starts there (its counters are
	// the reading's EnergyIn and EnergyOut).
	LastTime  time.Time `json:"last_time"`
	LastPower float64   `json:"last_power_w"`
}

// CheckName refuses a device name that not every store can hold or every
// page show: invalid UTF-8 or a control character (NUL, tab, newline, DEL,
// C1 controls).
func CheckName(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q: not valid UTF-8", s)
	}
	for i, c := range s {
		if unicode.IsControl(c) {
			return fmt.Errorf("%q: control character %U at byte %d", s, c, i)
		}
	}
	return nil
}

// F returns a pointer to v, for the optional fields.
func F(v float64) *float64 { return &v }

// Validate checks that a reading is complete and its numbers are finite.
func (r *Reading) Validate() error {
	if r.Device == "" {
		return fmt.Errorf("device: empty")
	}
	if len(r.Device) > 128 {
		return fmt.Errorf("device: longer than 128 bytes")
	}
	if err := CheckName(r.Device); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	if r.Time.IsZero() {
		return fmt.Errorf("time: missing")
	}
	if y := r.Time.Year(); y < 2000 || y > 2200 {
		return fmt.Errorf("time: year %d out of range 2000..2200", y)
	}
	if err := inRange("power_w", r.Power, -MaxPower, MaxPower); err != nil {
		return err
	}
	checks := []struct {
		name     string
		v        *float64
		min, max float64
	}{
		{"energy_in_wh", r.EnergyIn, 0, MaxEnergy},
		{"energy_out_wh", r.EnergyOut, 0, MaxEnergy},
		{"temperature_c", r.Temperature, -273.15, MaxTemperature},
		{"voltage_v", r.Voltage, 0, MaxVoltage},
	}
	for _, c := range checks {
		if c.v == nil {
			continue
		}
		if err := inRange(c.name, *c.v, c.min, c.max); err != nil {
			return err
		}
	}
	if len(r.Phases) > 16 {
		return fmt.Errorf("phases_w: %d values, at most 16", len(r.Phases))
	}
	for i, p := range r.Phases {
		if err := inRange(fmt.Sprintf("phases_w[%d]", i), p, -MaxPower, MaxPower); err != nil {
			return err
		}
	}
	if x := r.Reduced; x != nil {
		if x.Count < 1 {
			return fmt.Errorf("reduced.count: %d, want at least 1", x.Count)
		}
		for _, c := range []struct {
			name     string
			v        float64
			min, max float64
		}{
			{"reduced.min_power_w", x.MinPower, -MaxPower, MaxPower},
			{"reduced.max_power_w", x.MaxPower, -MaxPower, MaxPower},
			{"reduced.last_power_w", x.LastPower, -MaxPower, MaxPower},
			{"reduced.in_wh", x.InWh, 0, MaxEnergy},
			{"reduced.out_wh", x.OutWh, 0, MaxEnergy},
			{"reduced.gap_in_wh", x.GapInWh, 0, x.InWh},
			{"reduced.gap_out_wh", x.GapOutWh, 0, x.OutWh},
		} {
			if err := inRange(c.name, c.v, c.min, c.max); err != nil {
				return err
			}
		}
		if !x.Gap && (x.GapInWh != 0 || x.GapOutWh != 0) {
			return fmt.Errorf("reduced: gap_in_wh or gap_out_wh without gap")
		}
		if x.MinPower > x.MaxPower {
			return fmt.Errorf("reduced: min_power_w %v above max_power_w %v", x.MinPower, x.MaxPower)
		}
		if x.LastTime.IsZero() {
			return fmt.Errorf("reduced.last_time: missing")
		}
	}
	return nil
}

// The limits every backend can store exactly (to 0.001 of the unit); a
// value beyond them is a device glitch, refused with the field's name rather
// than failing deep in a store.
const (
	MaxPower       = 1e9  // W, either sign
	MaxEnergy      = 1e12 // Wh
	MaxTemperature = 1000 // °C
	MaxVoltage     = 1e6  // V
)

func inRange(name string, v, min, max float64) error {
	switch {
	case !finite(v):
		return fmt.Errorf("%s: not a finite number", name)
	case v < min || v > max:
		return fmt.Errorf("%s: %v outside %v..%v", name, v, min, max)
	}
	return nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
