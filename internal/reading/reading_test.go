package reading

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	ok := func() Reading {
		return Reading{Device: "plug", Time: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), Power: -412.5,
			EnergyIn: F(10), EnergyOut: F(0), Temperature: F(-20), Voltage: F(230), Phases: []float64{1, -2, 3}}
	}
	r := ok()
	if err := r.Validate(); err != nil {
		t.Fatalf("valid reading refused: %v", err)
	}
	cases := []struct {
		field string
		mut   func(*Reading)
	}{
		{"device", func(r *Reading) { r.Device = "" }},
		{"device", func(r *Reading) { r.Device = strings.Repeat("x", 129) }},
		{"time", func(r *Reading) { r.Time = time.Time{} }},
		{"time", func(r *Reading) { r.Time = time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC) }},
		{"power_w", func(r *Reading) { r.Power = math.NaN() }},
		{"power_w", func(r *Reading) { r.Power = 1e13 }},
		{"power_w", func(r *Reading) { r.Power = -1e10 }},
		{"energy_in_wh", func(r *Reading) { r.EnergyIn = F(-1) }},
		{"energy_out_wh", func(r *Reading) { r.EnergyOut = F(math.Inf(1)) }},
		{"energy_in_wh", func(r *Reading) { r.EnergyIn = F(2e12) }},
		{"temperature_c", func(r *Reading) { r.Temperature = F(-300) }},
		{"temperature_c", func(r *Reading) { r.Temperature = F(5000) }},
		{"voltage_v", func(r *Reading) { r.Voltage = F(-1) }},
		{"voltage_v", func(r *Reading) { r.Voltage = F(3e6) }},
		{"phases_w", func(r *Reading) { r.Phases = make([]float64, 17) }},
		{"phases_w[1]", func(r *Reading) { r.Phases[1] = 1e12 }},
	}
	for _, c := range cases {
		r := ok()
		c.mut(&r)
		err := r.Validate()
		if err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
			t.Errorf("want an error naming %s, got %v", c.field, err)
		}
	}
}

// TestValidateDeviceName: names every store can hold and every page show.
func TestValidateDeviceName(t *testing.T) {
	base := Reading{Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, name := range []string{"plug", "Küche 1", "PV/Dach", "☀"} {
		r := base
		r.Device = name
		if err := r.Validate(); err != nil {
			t.Errorf("%q: %v", name, err)
		}
	}
	for _, name := range []string{"a\x00b", "a\nb", "\t", "x\x7f", "c1\u0085", "bad\xff"} {
		r := base
		r.Device = name
		if err := r.Validate(); err == nil || !strings.HasPrefix(err.Error(), "device: ") {
			t.Errorf("%q: %v, want a device error", name, err)
		}
	}
}

// TestValidateReducedGap: a reduced minute's gap part is finite, ≥ 0, at
// most the minute's energy, and only on a minute marked Gap.
func TestValidateReducedGap(t *testing.T) {
	m := time.Date(2026, 6, 1, 23, 1, 0, 0, time.UTC)
	ok := func() Reading {
		return Reading{Device: "grid", Time: m, Power: 3000, EnergyIn: F(1000), Reduced: &Reduced{Count: 6, MinPower: 2900, MaxPower: 3100,
			InWh: 2500, OutWh: 1, Gap: true, GapInWh: 2450, GapOutWh: 1, LastTime: m.Add(53 * time.Second), LastPower: 3000}}
	}
	r := ok()
	if err := r.Validate(); err != nil {
		t.Fatalf("valid minute refused: %v", err)
	}
	r.Reduced.GapInWh, r.Reduced.GapOutWh = 0, 0
	if err := r.Validate(); err != nil {
		t.Fatalf("valid minute after a gap without energy refused: %v", err)
	}
	for _, c := range []struct {
		field string
		mut   func(*Reduced)
	}{
		{"reduced.gap_in_wh", func(x *Reduced) { x.GapInWh = math.NaN() }},
		{"reduced.gap_in_wh", func(x *Reduced) { x.GapInWh = -0.001 }},
		{"reduced.gap_in_wh", func(x *Reduced) { x.GapInWh = 2500.001 }},
		{"reduced.gap_out_wh", func(x *Reduced) { x.GapOutWh = math.Inf(1) }},
		{"reduced", func(x *Reduced) { x.Gap = false }},
	} {
		r := ok()
		c.mut(r.Reduced)
		if err := r.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.field+":") {
			t.Errorf("want an error naming %s, got %v", c.field, err)
		}
	}
}
