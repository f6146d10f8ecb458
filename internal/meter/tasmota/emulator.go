package tasmota

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
)

func init() {
	emulate.Register("tasmota", func(o emulate.Options) (emulate.Emulator, error) {
		ec, err := ParseProfile(o.Profile)
		if err != nil {
			return nil, err
		}
		ec.Username, ec.Password, ec.Now, ec.Zone = o.Username, o.Password, o.Now, o.Zone
		return NewEmulator(ec), nil
	})
}

// EmulatorConfig shapes an emulated Tasmota device.
type EmulatorConfig struct {
	// Load is the load on channel 0: "fridge" (default), "solar", "house3"
	// (sum of three phases, negative when feeding in), "constant".
	Load string
	// Channels is 1 (scalars) or 2 (arrays, like a Shelly 2.5 on Tasmota
	// with SetOption129 1: per-channel Total). Channel 1 draws a constant 42 W.
	Channels int
	// LegacyAuth answers a missing or wrong password with 200 and the
	// WARNING body, as older firmware does (newer: 401 with the same body).
	LegacyAuth bool
	// NoEnergy makes a smart-meter read head: the group of an SML script
	// (the 3-phase house at the grid connection), no ENERGY section.
	NoEnergy bool
	// SMLRenamed makes the read head's script use other names: group
	// "MT631" with E_in, E_out, P, P_L1..3 (as scripts for that meter do).
	SMLRenamed bool
	// DS18B20 adds a DS18B20 temperature sensor section.
	DS18B20 bool
	// Username (default admin) and Password ("" = no password).
	Username, Password string
	Now                func() time.Time
	Zone               *time.Location
}

// ParseProfile reads `--profile` for the tasmota emulator: a comma-separated
// list of a load name and the flags 2ch, legacy-auth, sml, sml-renamed,
// ds18b20.
func ParseProfile(p string) (EmulatorConfig, error) {
	ec := EmulatorConfig{Load: "fridge", Channels: 1}
	for _, tok := range strings.Split(p, ",") {
		switch tok = strings.TrimSpace(tok); tok {
		case "":
		case "fridge", "solar", "house3", "constant":
			ec.Load = tok
		case "2ch":
			ec.Channels = 2
		case "legacy-auth":
			ec.LegacyAuth = true
		case "sml":
			ec.NoEnergy = true
		case "sml-renamed":
			ec.NoEnergy, ec.SMLRenamed = true, true
		case "ds18b20":
			ec.DS18B20 = true
		default:
			return ec, fmt.Errorf("tasmota emulator: unknown profile item %q (want fridge|solar|house3|constant, 2ch, legacy-auth, sml, sml-renamed, ds18b20)", tok)
		}
	}
	return ec, nil
}

// Emulator serves a Tasmota device's /cm command interface.
type Emulator struct {
	cfg    EmulatorConfig
	faults emulate.Faults
	h      http.Handler

	mu        sync.Mutex
	smlIn     *emulate.Counter // read head: import and export counters
	smlOut    *emulate.Counter
	counters  []*emulate.Counter
	dayStart  []float64
	day       int
	resetDone bool
}

// NewEmulator builds an emulated Tasmota device.
func NewEmulator(ec EmulatorConfig) *Emulator {
	if ec.Channels < 1 {
		ec.Channels = 1
	}
	if ec.Channels > 2 {
		ec.Channels = 2
	}
	if ec.Username == "" {
		ec.Username = DefaultUser
	}
	if ec.Now == nil {
		ec.Now = time.Now
	}
	if ec.Zone == nil {
		ec.Zone = time.UTC
	}
	if ec.Load == "" {
		ec.Load = "fridge"
	}
	e := &Emulator{cfg: ec, day: -1, smlIn: emulate.NewCounter(9876543.2), smlOut: emulate.NewCounter(1234567.8)}
	for i := 0; i < ec.Channels; i++ {
		e.counters = append(e.counters, emulate.NewCounter(1290396+float64(i)*52110))
	}
	e.dayStart = make([]float64, ec.Channels)
	mux := http.NewServeMux()
	mux.HandleFunc("/cm", e.cm)
	e.h = e.faults.Wrap(mux)
	return e
}

// Faults is the emulator's fault board (counter-reset restarts Total).
func (e *Emulator) Faults() *emulate.Faults { return &e.faults }

func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.h.ServeHTTP(w, r) }

func (e *Emulator) power(t time.Time, ch int) float64 {
	if ch == 1 {
		return 42
	}
	switch e.cfg.Load {
	case "solar":
		return emulate.Solar(t, e.cfg.Zone, 380)
	case "house3":
		p := emulate.House3(t, e.cfg.Zone)
		return math.Round((p[0]+p[1]+p[2])*100) / 100
	case "constant":
		return 100
	}
	return math.Round(emulate.Fridge(t)*100) / 100
}

func (e *Emulator) cm(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	w.Header().Set("Content-Type", "application/json")
	if e.cfg.Password != "" && (q.Get("user") != e.cfg.Username || q.Get("password") != e.cfg.Password) {
		if !e.cfg.LegacyAuth {
			w.WriteHeader(http.StatusUnauthorized)
		}
		fmt.Fprint(w, `{"WARNING":"Need user=<username>&password=<password>"}`)
		return
	}
	cmnd := strings.ToLower(strings.Join(strings.Fields(q.Get("cmnd")), ""))
	if cmnd != "status8" && cmnd != "status10" {
		fmt.Fprint(w, `{"Command":"Unknown"}`)
		return
	}
	now := e.cfg.Now()
	local := now.In(e.cfg.Zone).Format("2006-01-02T15:04:05")
	sns := map[string]any{"Time": local}
	if e.cfg.NoEnergy {
		e.sml(now, sns)
	} else {
		sns["ENERGY"] = e.energy(now)
	}
	if e.cfg.DS18B20 {
		sns["DS18B20"] = map[string]any{"Id": "01191ED79876", "Temperature": 21.4}
		sns["TempUnit"] = "C"
	}
	// Status 8 and Status 10 both answer with StatusSNS (8 is the old name).
	json.NewEncoder(w).Encode(map[string]any{"StatusSNS": sns})
}

// sml fills the group of a read head's script: the 3-phase house, import
// and export counters in kWh. The lost-sync fault reports what a head that
// lost the meter's signal shows: zeros.
func (e *Emulator) sml(now time.Time, sns map[string]any) {
	ph := emulate.House3(now, e.cfg.Zone)
	p := math.Round(ph[0] + ph[1] + ph[2])
	in := e.smlIn.At(now, p)
	out := e.smlOut.At(now, -p)
	if e.faults.Active() == emulate.LostSync {
		in, out, p, ph = 0, 0, 0, [3]float64{}
	}
	if e.cfg.SMLRenamed {
		sns["MT631"] = map[string]any{
			"E_in": math.Round(in) / 1000, "E_out": math.Round(out) / 1000, "P": p,
			"P_L1": math.Round(ph[0]), "P_L2": math.Round(ph[1]), "P_L3": math.Round(ph[2]),
		}
		return
	}
	sns["SML"] = map[string]any{
		"Total_in": math.Round(in) / 1000, "Total_out": math.Round(out) / 1000, "Power_curr": p,
		"power_l1": math.Round(ph[0]), "power_l2": math.Round(ph[1]), "power_l3": math.Round(ph[2]),
		"voltage_l1": 230.1, "voltage_l2": 231.4, "voltage_l3": 229.8,
		"Meter_Id": "0a01454d48000012c3a4",
	}
}

// energy is the ENERGY section of a plug. Like Tasmota with its default
// WattRes 0, Power is whole watts while Voltage, Current and Factor carry
// the finer value.
func (e *Emulator) energy(now time.Time) map[string]any {
	n := e.cfg.Channels
	powers := make([]float64, n)
	totals := make([]float64, n)
	todays := make([]float64, n)
	currents := make([]float64, n)
	volt := math.Round(230 + 3*math.Sin(float64(now.Unix())/300))
	pf := 0.95
	if e.cfg.Load == "constant" {
		// a resistive heater at 250 V: V × I × PF is exactly the load
		// (100 W → 0.4 A, 42 W → 0.168 A)
		volt, pf = 250, 1
	}
	e.mu.Lock()
	// counter-reset restarts the counters once (a reboot), then they count on
	reset := e.faults.Active() == emulate.CounterReset && !e.resetDone
	e.resetDone = e.faults.Active() == emulate.CounterReset
	day := now.In(e.cfg.Zone).YearDay()
	for i := 0; i < n; i++ {
		exact := e.power(now, i)
		wh := e.counters[i].At(now, exact)
		if reset {
			e.counters[i].Reset()
			e.dayStart[i] = 0
			wh = e.counters[i].At(now, exact)
		}
		if day != e.day {
			e.dayStart[i] = wh
		}
		totals[i] = math.Round(wh) / 1000
		todays[i] = math.Round(wh-e.dayStart[i]) / 1000
		currents[i] = math.Round(math.Abs(exact)/volt/pf*1000) / 1000
		powers[i] = math.Round(exact)
	}
	e.day = day
	e.mu.Unlock()
	en := map[string]any{
		"TotalStartTime": "2023-01-14T09:11:02",
		"Yesterday":      1.234,
		"Voltage":        volt,
		"Factor":         pf,
	}
	// single channel: scalars; several: arrays (per-channel Total as with
	// SetOption129 1)
	pick := func(v []float64) any {
		if n == 1 {
			return v[0]
		}
		return v
	}
	en["Total"], en["Today"], en["Power"], en["Current"] = pick(totals), pick(todays), pick(powers), pick(currents)
	return en
}
