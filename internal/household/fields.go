package household

import (
	"fmt"
	"strings"

	"github.com/powermeter/powermeter/internal/reading"
)

// Quantity is what a value of a legacy stats line measures.
type Quantity string

// The quantities a field map may name.
const (
	Power       Quantity = "power"       // W
	Temperature Quantity = "temperature" // °C
	Voltage     Quantity = "voltage"     // V
	Current     Quantity = "current"     // A
	SoC         Quantity = "soc"         // %, a battery's state of charge
	Energy      Quantity = "energy"      // Wh
	Value       Quantity = "other"       // anything else, with its unit
)

var quantities = []Quantity{Power, Temperature, Voltage, Current, SoC, Energy, Value}

var defaultUnit = map[Quantity]string{Power: "W", Temperature: "°C", Voltage: "V", Current: "A", SoC: "%", Energy: "Wh"}

// ParseQuantity checks a quantity's name.
func ParseQuantity(s string) (Quantity, error) {
	for _, q := range quantities {
		if string(q) == s {
			return q, nil
		}
	}
	names := make([]string, len(quantities))
	for i, q := range quantities {
		names[i] = string(q)
	}
	return "", fmt.Errorf("%q: want one of %s", s, strings.Join(names, ", "))
}

// Field is what one position of a legacy stats line means.
type Field struct {
	Quantity Quantity `json:"quantity"`
	Unit     string   `json:"unit"`
	Label    string   `json:"label,omitempty"`
}

// FieldMap gives the values of a legacy stats line (value 1 = the power
// field, value 2 = the "temperature" field, values 3… the further fields)
// their meaning, as the PHP app's $unit1…$unit6 and labels do
// (PROTOCOLS.md §6). Value 1 is always power in W.
type FieldMap []Field

// DefaultFields is the PHP app's default: power in W, temperature in °C,
// then powers in W (L1…L4).
func DefaultFields() FieldMap {
	return FieldMap{
		{Power, "W", "Leistung"},
		{Temperature, "°C", "Temperatur"},
		{Power, "W", "L1"}, {Power, "W", "L2"}, {Power, "W", "L3"}, {Power, "W", "L4"},
	}
}

// Check completes units from quantities and refuses a map whose value 1 is
// not power. An empty map is the default.
func (m FieldMap) Check() (FieldMap, error) {
	if len(m) == 0 {
		return DefaultFields(), nil
	}
	out := make(FieldMap, len(m))
	for i, f := range m {
		q, err := ParseQuantity(string(f.Quantity))
		if err != nil {
			return nil, fmt.Errorf("value %d: quantity %w", i+1, err)
		}
		if f.Unit == "" {
			f.Unit = defaultUnit[q]
		}
		if f.Unit == "" {
			return nil, fmt.Errorf("value %d: unit missing (a quantity %q needs one)", i+1, q)
		}
		f.Quantity = q
		out[i] = f
	}
	if out[0].Quantity != Power || out[0].Unit != "W" {
		return nil, fmt.Errorf("value 1: %s in %s: the first value of a stats line is the power in W", out[0].Quantity, out[0].Unit)
	}
	if len(out) > 14 {
		return nil, fmt.Errorf("%d values: a stats line holds at most 14", len(out))
	}
	return out, nil
}

// At returns the meaning of value n (1-based); values beyond the map are
// powers in W, as the PHP app shows them.
func (m FieldMap) At(n int) Field {
	if n >= 1 && n <= len(m) {
		return m[n-1]
	}
	if n == 2 {
		return Field{Temperature, "°C", "Temperatur"}
	}
	return Field{Power, "W", fmt.Sprintf("value %d", n)}
}

// Second says where value 2 of a line is stored: as the reading's
// temperature, its voltage, or (any other quantity) as the first of the
// further values (Phases), ahead of values 3….
func (m FieldMap) Second() Quantity {
	switch q := m.At(2).Quantity; q {
	case Temperature, Voltage:
		return q
	}
	return Value
}

// IsDefault reports whether the map says what a line meant before field
// maps: power, temperature, then powers.
func (m FieldMap) IsDefault() bool {
	for i, f := range m {
		d := DefaultFields().At(i + 1)
		if f.Quantity != d.Quantity || f.Unit != d.Unit {
			return false
		}
	}
	return true
}

// Place moves the values of a legacy line, as the line reader fills a
// reading (value 2 in Temperature, values 3… in Phases), to where the map
// says value 2 belongs: Voltage for a voltage, the front of Phases for
// any other quantity (an empty value 2 there becomes 0).
func (m FieldMap) Place(r *reading.Reading) {
	switch m.Second() {
	case Voltage:
		r.Voltage, r.Temperature = r.Temperature, nil
	case Value:
		if r.Temperature == nil && len(r.Phases) == 0 {
			return
		}
		v := 0.0
		if r.Temperature != nil {
			v = *r.Temperature
		}
		r.Phases = append([]float64{v}, r.Phases...)
		r.Temperature = nil
	}
}

// Unplace is the inverse of Place: value 2 back in Temperature, values 3…
// in Phases, as a stats line is written.
func (m FieldMap) Unplace(r *reading.Reading) {
	switch m.Second() {
	case Voltage:
		r.Temperature, r.Voltage = r.Voltage, nil
	case Value:
		if len(r.Phases) > 0 {
			r.Temperature = reading.F(r.Phases[0])
			r.Phases = r.Phases[1:]
		}
	}
}

// Values lists a legacy reading's values 2… with their meaning, as stored
// by Place (for showing them with their units).
func (m FieldMap) Values(r reading.Reading) []FieldValue {
	u := r
	u.Phases = append([]float64(nil), r.Phases...)
	m.Unplace(&u)
	var out []FieldValue
	if u.Temperature != nil {
		out = append(out, FieldValue{Field: m.At(2), Value: *u.Temperature})
	}
	for i, v := range u.Phases {
		out = append(out, FieldValue{Field: m.At(3 + i), Value: v})
	}
	return out
}

// FieldValue is one value of a line with its meaning.
type FieldValue struct {
	Field
	Value float64
}

// UnitFor guesses a quantity from a unit, as the PHP app's $unitN gives
// one: W power, °C temperature, V voltage, A current, % state of charge,
// Wh energy, anything else "other".
func UnitFor(unit string) Quantity {
	switch strings.TrimSpace(unit) {
	case "W", "kW":
		return Power
	case "°C", "C", "&deg;C":
		return Temperature
	case "V":
		return Voltage
	case "A":
		return Current
	case "%":
		return SoC
	case "Wh", "kWh":
		return Energy
	}
	return Value
}
