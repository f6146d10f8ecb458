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
	// NoEnergy makes a smart-meter-script device: an SML section, no ENERGY.
	NoEnergy bool
	// Username (default admin) and Password ("" = no password).
	Username, Password string
	Now                func() time.Time
	Zone               *time.Location
}

// ParseProfile reads `--profile` for the tasmota emulator: a comma-separated
// list of a load name and the flags 2ch, legacy-auth, sml.
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
		default:
			return ec, fmt.Errorf("tasmota emulator: unknown profile item %q (want fridge|solar|house3|constant, 2ch, legacy-auth, sml)", tok)
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
	e := &Emulator{cfg: ec, day: -1}
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
	if cmnd != "status8" {
		fmt.Fprint(w, `{"Command":"Unknown"}`)
		return
	}
	now := e.cfg.Now()
	local := now.In(e.cfg.Zone).Format("2006-01-02T15:04:05")
	if e.cfg.NoEnergy {
		json.NewEncoder(w).Encode(map[string]any{"StatusSNS": map[string]any{
			"Time": local,
			"SML":  map[string]any{"Total_in": 12345.678, "Power_curr": math.Round(e.power(now, 0))},
		}})
		return
	}
	n := e.cfg.Channels
	powers := make([]float64, n)
	totals := make([]float64, n)
	todays := make([]float64, n)
	currents := make([]float64, n)
	volt := math.Round(230 + 3*math.Sin(float64(now.Unix())/300))
	e.mu.Lock()
	// counter-reset restarts the counters once (a reboot), then they count on
	reset := e.faults.Active() == emulate.CounterReset && !e.resetDone
	e.resetDone = e.faults.Active() == emulate.CounterReset
	day := now.In(e.cfg.Zone).YearDay()
	for i := 0; i < n; i++ {
		powers[i] = e.power(now, i)
		wh := e.counters[i].At(now, powers[i])
		if reset {
			e.counters[i].Reset()
			e.dayStart[i] = 0
			wh = e.counters[i].At(now, powers[i])
		}
		if day != e.day {
			e.dayStart[i] = wh
		}
		totals[i] = math.Round(wh) / 1000
		todays[i] = math.Round(wh-e.dayStart[i]) / 1000
		currents[i] = math.Round(math.Abs(powers[i])/volt*1000) / 1000
	}
	e.day = day
	e.mu.Unlock()
	en := map[string]any{
		"TotalStartTime": "2023-01-14T09:11:02",
		"Yesterday":      1.234,
		"Voltage":        volt,
		"Factor":         0.95,
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
	json.NewEncoder(w).Encode(map[string]any{"StatusSNS": map[string]any{"Time": local, "ENERGY": en}})
}
