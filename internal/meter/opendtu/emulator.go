package opendtu

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
)

func init() {
	emulate.Register("opendtu", func(o emulate.Options) (emulate.Emulator, error) {
		switch o.Profile {
		case "", "solar":
			return NewEmulator(o), nil
		case "single":
			return NewSingleEmulator(o), nil
		}
		return nil, fmt.Errorf("opendtu emulator: profile %q: the inverters follow the solar curve (want solar, or single for one inverter)", o.Profile)
	})
}

// Emulator is an OpenDTU with two inverters on the solar curve (an HM-800
// with two panels, an HM-400 with one). At night the inverters become
// unreachable and their last values persist. Faults: stale freezes the data
// (data_age grows, reachable stays true: a stuck radio); counter-reset
// restarts the YieldTotal counters from 0 once, as after an inverter restart.
// With a password set, /api/livedata/status needs Basic auth.
type Emulator struct {
	o      emulate.Options
	start  time.Time
	faults emulate.Faults
	h      http.Handler

	mu        sync.Mutex
	invs      []*emuInverter
	resetDone bool
}

type emuInverter struct {
	serial, name string
	peak         float64
	shares       []float64
	counter      *emulate.Counter
	last         time.Time // last successful poll
	power, uac   float64
	temp, whDay  float64
	wh           float64
	dc           []float64
	day          int
	dayStart     float64
}

// Serials of the emulated inverters.
const (
	Serial800 = "114182912345"
	Serial400 = "112183456789"
)

// NewSingleEmulator builds an OpenDTU with one inverter (the HM-800).
func NewSingleEmulator(o emulate.Options) *Emulator {
	e := NewEmulator(o)
	e.invs = e.invs[:1]
	return e
}

// NewEmulator builds the emulated OpenDTU.
func NewEmulator(o emulate.Options) *Emulator {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Zone == nil {
		o.Zone = time.UTC
	}
	if o.Username == "" {
		o.Username = DefaultUser
	}
	e := &Emulator{o: o, start: o.Now(), invs: []*emuInverter{
		{serial: Serial800, name: "HM-800", peak: 780, shares: []float64{0.52, 0.48}, counter: emulate.NewCounter(2345678)},
		{serial: Serial400, name: "HM-400", peak: 390, shares: []float64{1}, counter: emulate.NewCounter(876543)},
	}}
	for _, inv := range e.invs {
		inv.dc = make([]float64, len(inv.shares))
		inv.day = -1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/livedata/status", e.status)
	mux.HandleFunc("GET /{$}", e.index)
	e.h = e.faults.Wrap(mux)
	return e
}

// Faults is the fault board.
func (e *Emulator) Faults() *emulate.Faults { return &e.faults }

func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.h.ServeHTTP(w, r) }

func (e *Emulator) poll(now time.Time) {
	f := e.faults.Active()
	reset := f == emulate.CounterReset && !e.resetDone
	e.resetDone = f == emulate.CounterReset
	for _, inv := range e.invs {
		if reset {
			inv.counter.At(now, 0) // the energy until now is gone with the reset
			inv.counter.Reset()
			inv.wh, inv.whDay, inv.dayStart = 0, 0, 0
		}
		if f == emulate.Stale {
			continue
		}
		p := emulate.Solar(now, e.o.Zone, inv.peak)
		if p <= 0 {
			inv.counter.At(now, 0) // asleep: no answer, values persist
			continue
		}
		inv.last = now
		inv.power = p
		inv.wh = inv.counter.At(now, p)
		if d := now.In(e.o.Zone).YearDay(); d != inv.day {
			inv.day, inv.dayStart = d, inv.wh
		}
		inv.whDay = math.Round(inv.wh - inv.dayStart)
		inv.uac = math.Round((231+2*math.Cos(float64(now.Unix())/500))*10) / 10
		inv.temp = math.Round((17+28*p/inv.peak)*10) / 10
		for i, s := range inv.shares {
			inv.dc[i] = math.Round(p/0.96*s*10) / 10
		}
	}
}

// index is the start of the web interface, public even when the API needs
// a password (as the device's: a single-page app titled OpenDTU).
func (e *Emulator) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html")
	_, _ = w.Write([]byte(`<!DOCTYPE html><html lang="en"><head><meta charset="UTF-8"><title>OpenDTU</title>` +
		`<script type="module" src="/js/app.js"></script></head><body><div id="app"></div></body></html>`))
}

func v(x float64, u string, d int) map[string]any { return map[string]any{"v": x, "u": u, "d": d} }

func (e *Emulator) status(w http.ResponseWriter, r *http.Request) {
	if e.o.Password != "" && !emulate.BasicAuth(w, r, e.o.Username, e.o.Password, "Login Required") {
		return
	}
	now := e.o.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.poll(now)
	want := r.URL.Query().Get("inv")
	var invs []map[string]any
	var totalP, totalDay, totalWh float64
	for i, inv := range e.invs {
		age := now.Sub(inv.last)
		if inv.last.IsZero() {
			age = now.Sub(e.start)
		}
		reachable := !inv.last.IsZero() && (age < 2*time.Minute || e.faults.Active() == emulate.Stale)
		if reachable {
			totalP += inv.power
		}
		totalDay += inv.whDay
		totalWh += inv.wh
		if want != "" && want != inv.serial {
			continue
		}
		m := map[string]any{
			"serial": inv.serial, "name": inv.name, "order": i,
			"data_age": int64(age / time.Second), "poll_enabled": true,
			"reachable": reachable, "producing": reachable && inv.power > 0,
			"limit_relative": 100, "limit_absolute": inv.peak,
		}
		if want == inv.serial {
			cur := 0.0
			if inv.uac > 0 {
				cur = math.Round(inv.power/inv.uac*100) / 100
			}
			m["AC"] = map[string]any{"0": map[string]any{
				"Power": v(inv.power, "W", 1), "Voltage": v(inv.uac, "V", 1), "Current": v(cur, "A", 2),
				"Frequency": v(50, "Hz", 2), "PowerFactor": v(1, "", 3),
				"YieldDay": v(inv.whDay, "Wh", 0), "YieldTotal": v(math.Round(inv.wh)/1000, "kWh", 3),
			}}
			dc := map[string]any{}
			for j, p := range inv.dc {
				dc[fmt.Sprint(j)] = map[string]any{"name": map[string]any{"u": fmt.Sprintf("Panel %d", j+1)},
					"Power": v(p, "W", 1), "Voltage": v(33.5, "V", 1), "Current": v(math.Round(p/33.5*100)/100, "A", 2)}
			}
			m["DC"] = dc
			m["INV"] = map[string]any{"0": map[string]any{"Temperature": v(inv.temp, "°C", 1)}}
		}
		invs = append(invs, m)
	}
	if invs == nil {
		invs = []map[string]any{}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"inverters": invs,
		"total": map[string]any{
			"Power":      v(math.Round(totalP*10)/10, "W", 1),
			"YieldDay":   v(math.Round(totalDay), "Wh", 0),
			"YieldTotal": v(math.Round(totalWh)/1000, "kWh", 3),
		},
		"hints": map[string]any{"time_sync": false, "radio_problem": false, "default_password": false},
	})
}
