// Package household knows what a home is: the role of each device of a
// source (grid meter, solar plant, battery, appliance, other), what the
// values of a legacy stats line mean (the field map), and how the energies
// (or powers) the devices measured over one interval balance into the
// home's flows: import, export, production, battery charge and discharge,
// self-consumption, home consumption, appliance shares and the rest of the
// home.
//
// It is the one place these figures are computed: energy summaries, the
// API, the pages and every exporter call Balance, so the same figure is
// never computed twice in two ways. Of powermeter it imports only the
// reading type.
//
// Sign conventions (after a device's Invert):
//   - grid: positive = import, negative = export (feed-in);
//   - pv: production whatever the sign (a plug measuring a balcony plant
//     reports it as consumption, an inverter as positive power);
//   - battery: positive = charging, negative = discharging;
//   - consumer: an appliance behind the grid meter, whatever the sign;
//   - other: not part of the balance.
package household

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Role is what a device is to the home.
type Role string

// The roles. Unset is a device no role was given to: in a source where no
// device has a role it counts as the grid meter (what the readings meant
// before roles existed), else it is left out of the balance like Other.
const (
	Unset    Role = ""
	Grid     Role = "grid"
	PV       Role = "pv"
	Battery  Role = "battery"
	Consumer Role = "consumer"
	Other    Role = "other"
)

// Roles lists the roles a configuration may name.
var Roles = []Role{Grid, PV, Battery, Consumer, Other}

// ParseRole checks a role's name ("" is Unset).
func ParseRole(s string) (Role, error) {
	if s == "" {
		return Unset, nil
	}
	for _, r := range Roles {
		if string(r) == s {
			return r, nil
		}
	}
	names := make([]string, len(Roles))
	for i, r := range Roles {
		names[i] = string(r)
	}
	return Unset, fmt.Errorf("%q: want one of %s", s, strings.Join(names, ", "))
}

// Temperature kinds a device's temperature may be declared as; only a
// declared one is shown as the home's temperature.
const (
	TempRoom   = "room"
	TempDevice = "device"
)

// Device is one device of a source and what it is to the home.
type Device struct {
	Name  string // the device name readings carry ("legacy" for log.php lines)
	Role  Role
	Label string // shown instead of the name ("" = the name)
	// Invert reads the device's values with the other sign (import ↔
	// export, charge ↔ discharge); what is stored does not change.
	Invert bool
	// Temperature declares the device's temperature a room or device
	// temperature to show with the home ("" = not shown).
	Temperature string
}

// Title is the label, or the name when there is none.
func (d Device) Title() string {
	if d.Label != "" {
		return d.Label
	}
	return d.Name
}

// Home is the devices of one source with their roles. The zero value and a
// nil *Home are a home without roles: every device counts as a grid meter,
// which is what a single plug or meter meant before roles existed.
type Home struct {
	devs   []Device // sorted by name
	anyRol bool
}

// New makes a home of devs; it fails on an unknown role, a repeated or
// empty name, or two shown temperatures.
func New(devs []Device) (*Home, error) {
	h := &Home{devs: append([]Device(nil), devs...)}
	sort.Slice(h.devs, func(i, j int) bool { return h.devs[i].Name < h.devs[j].Name })
	temps := 0
	for i, d := range h.devs {
		if d.Name == "" {
			return nil, fmt.Errorf("device %d: no name", i)
		}
		if i > 0 && h.devs[i-1].Name == d.Name {
			return nil, fmt.Errorf("device %q: listed twice", d.Name)
		}
		if _, err := ParseRole(string(d.Role)); err != nil {
			return nil, fmt.Errorf("device %q: role %w", d.Name, err)
		}
		switch d.Temperature {
		case "", TempRoom, TempDevice:
		default:
			return nil, fmt.Errorf("device %q: temperature %q: want room or device", d.Name, d.Temperature)
		}
		if d.Temperature != "" {
			temps++
		}
		if d.Role != Unset {
			h.anyRol = true
		}
	}
	if temps > 1 {
		return nil, fmt.Errorf("more than one device has its temperature shown: choose one")
	}
	return h, nil
}

// Configured reports whether any device has a role. A home without roles
// shows import and export as before (consumption and feed-in).
func (h *Home) Configured() bool { return h != nil && h.anyRol }

// Devices returns the configured devices, sorted by name.
func (h *Home) Devices() []Device {
	if h == nil {
		return nil
	}
	return h.devs
}

// Device returns what the home knows of a device; a device not listed
// takes the entry of its meter ("box/11657 0020838" that of "box"), else
// has the effective role of an unset one (see Role).
func (h *Home) Device(name string) Device {
	if d, ok := h.find(name); ok {
		d.Name = name
		d.Role = h.effective(d.Role)
		return d
	}
	if i := strings.IndexByte(name, '/'); i > 0 {
		if d, ok := h.find(name[:i]); ok {
			d.Name = name
			d.Role = h.effective(d.Role)
			d.Temperature = ""
			return d
		}
	}
	return Device{Name: name, Role: h.effective(Unset)}
}

func (h *Home) find(name string) (Device, bool) {
	if h == nil {
		return Device{}, false
	}
	i := sort.Search(len(h.devs), func(i int) bool { return h.devs[i].Name >= name })
	if i < len(h.devs) && h.devs[i].Name == name {
		return h.devs[i], true
	}
	return Device{}, false
}

// Role is the effective role of a device: the configured one, Grid for an
// unset one in a home without roles, Other for an unset one otherwise.
func (h *Home) Role(name string) Role { return h.Device(name).Role }

func (h *Home) effective(r Role) Role {
	if r != Unset {
		return r
	}
	if h.Configured() {
		return Other
	}
	return Grid
}

// Has reports whether a configured device has the role.
func (h *Home) Has(r Role) bool {
	if !h.Configured() {
		return r == Grid
	}
	for _, d := range h.devs {
		if d.Role == r {
			return true
		}
	}
	return false
}

// TemperatureDevice is the device whose temperature is shown with the
// home, or "" when none was chosen.
func (h *Home) TemperatureDevice() string {
	if h == nil {
		return ""
	}
	for _, d := range h.devs {
		if d.Temperature != "" {
			return d.Name
		}
	}
	return ""
}

// Fingerprint names this home's roles and inversions: summaries computed
// for one fingerprint are recomputed when it changes (labels and shown
// temperatures do not change any figure and are left out).
func (h *Home) Fingerprint() string {
	if !h.Configured() {
		return ""
	}
	s := sha256.New()
	for _, d := range h.devs {
		fmt.Fprintf(s, "%s\x00%s\x00%t\x00", d.Name, d.Role, d.Invert)
	}
	return hex.EncodeToString(s.Sum(nil))[:12]
}

// Part is what one device measured over an interval: energy (Wh) or power
// (W) in its positive (In) and negative (Out) direction, both ≥ 0, as
// stored; Orient applies the device's role and Invert.
type Part struct {
	Role    Role
	In, Out float64
}

// Orient makes the part of a device from what it measured (in, out ≥ 0).
func (h *Home) Orient(device string, in, out float64) Part {
	d := h.Device(device)
	if d.Invert {
		in, out = out, in
	}
	return Part{Role: d.Role, In: in, Out: out}
}

// Split turns a signed power into its positive and negative parts.
func Split(p float64) (in, out float64) {
	if p >= 0 {
		return p, 0
	}
	return 0, -p
}

// Flow is the home over one interval, in Wh (energy) or W (power); every
// field is ≥ 0 and, with a grid meter, the balance holds exactly:
//
//	Home = Import + Production + Discharge − Export − Charge
//	Home = SolarHome + BatteryHome + GridHome
//	Home = Appliances + Rest (when the appliances measured no more than it)
//
// Production first serves the export (pv → grid), then the battery's
// charge (pv → battery), the rest goes to the home; the battery's
// discharge serves the home before the grid does.
type Flow struct {
	Import     float64 `json:"import"`     // from the grid
	Export     float64 `json:"export"`     // to the grid (feed-in)
	Production float64 `json:"production"` // by the pv devices
	Charge     float64 `json:"charge"`     // into the battery
	Discharge  float64 `json:"discharge"`  // out of the battery
	// Self is the production used in the home, directly or through the
	// battery: Production − (the part of Export that came from it).
	Self float64 `json:"self"`
	// Home is the home's consumption (0 when the home has no grid meter:
	// see Known).
	Home float64 `json:"home"`
	// SolarHome, BatteryHome and GridHome split Home by where it came
	// from; GridHome is what autarky counts against.
	SolarHome   float64 `json:"solar_home"`
	BatteryHome float64 `json:"battery_home"`
	GridHome    float64 `json:"grid_home"`
	// Appliances is the consumption of the consumer devices (a share of
	// Home, never added to it); Rest is Home − Appliances ("rest of the
	// home", 0 where appliances measured more than the home).
	Appliances float64 `json:"appliances"`
	Rest       float64 `json:"rest"`
	// HomeKnown is true when a grid meter was part of the interval, so
	// Home, Self and the rates mean something.
	HomeKnown bool `json:"home_known"`
}

// Balance computes the flows of one interval from what each device
// measured over it. Parts of the same role add up. Without a grid meter
// only production, battery and appliances are known (HomeKnown false).
func Balance(parts []Part) Flow {
	var f Flow
	for _, p := range parts {
		switch p.Role {
		case Grid, Unset:
			f.Import += p.In
			f.Export += p.Out
			f.HomeKnown = true
		case PV:
			f.Production += p.In + p.Out
		case Battery:
			f.Charge += p.In
			f.Discharge += p.Out
		case Consumer:
			f.Appliances += p.In + p.Out
		}
	}
	if !f.HomeKnown {
		f.Self = 0
		return f
	}
	f.Home = math.Max(0, f.Import+f.Production+f.Discharge-f.Export-f.Charge)
	toGrid := math.Min(f.Production, f.Export)
	f.Self = f.Production - toGrid
	toBattery := math.Min(f.Self, f.Charge)
	f.SolarHome = math.Min(f.Self-toBattery, f.Home)
	f.BatteryHome = math.Min(f.Discharge, f.Home-f.SolarHome)
	f.GridHome = math.Max(0, f.Home-f.SolarHome-f.BatteryHome)
	f.Rest = math.Max(0, f.Home-f.Appliances)
	return f
}

// Add adds another interval's flows.
func (f *Flow) Add(o Flow) {
	f.Import += o.Import
	f.Export += o.Export
	f.Production += o.Production
	f.Charge += o.Charge
	f.Discharge += o.Discharge
	f.Self += o.Self
	f.Home += o.Home
	f.SolarHome += o.SolarHome
	f.BatteryHome += o.BatteryHome
	f.GridHome += o.GridHome
	f.Appliances += o.Appliances
	f.Rest += o.Rest
	f.HomeKnown = f.HomeKnown || o.HomeKnown
}

// Autarky is the self-supplied share of the home's consumption (0…1):
// 1 − GridHome/Home; ok is false when nothing was consumed or the home is
// not known.
func (f Flow) Autarky() (v float64, ok bool) {
	if !f.HomeKnown || f.Home <= 0 {
		return 0, false
	}
	return clamp01(1 - f.GridHome/f.Home), true
}

// SelfRate is the used share of the production (0…1): Self/Production; ok
// is false without production or without a grid meter.
func (f Flow) SelfRate() (v float64, ok bool) {
	if !f.HomeKnown || f.Production <= 0 {
		return 0, false
	}
	return clamp01(f.Self / f.Production), true
}

func clamp01(v float64) float64 { return math.Min(1, math.Max(0, v)) }
