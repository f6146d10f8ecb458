package epever

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
)

func init() {
	emulate.Register("epever", func(o emulate.Options) (emulate.Emulator, error) {
		if o.Profile != "" && o.Profile != "solar" {
			return nil, fmt.Errorf("epever emulator: profile %q: the panel follows the solar curve (want solar)", o.Profile)
		}
		return NewEmulator(o), nil
	})
}

// Emulator is an ESP-Epever bridge on a 12 V charge controller with a
// 200 W panel on the solar curve. The bridge answers every value as a
// number with two decimals; faults as every emulator (slow = a bridge
// whose Modbus read hangs: a timeout).
type Emulator struct {
	o      emulate.Options
	faults emulate.Faults
	h      http.Handler
}

// PanelPeak is the emulated panel's peak power in W.
const PanelPeak = 200

// NewEmulator builds the emulated bridge.
func NewEmulator(o emulate.Options) *Emulator {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Zone == nil {
		o.Zone = time.UTC
	}
	e := &Emulator{o: o}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+Path, e.all)
	e.h = e.faults.Wrap(mux)
	return e
}

// Faults is the fault board.
func (e *Emulator) Faults() *emulate.Faults { return &e.faults }

func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.h.ServeHTTP(w, r) }

func r2(x float64) float64 { return math.Round(x*100) / 100 }

// Values returns what the bridge reports at t: panel power, voltage and
// current, battery voltage and current.
func (e *Emulator) Values(t time.Time) (panelP, panelV, panelI, batV, batI float64) {
	panelP = r2(emulate.Solar(t, e.o.Zone, PanelPeak))
	batV = 12.9
	if panelP > 0 {
		panelV = r2(17.2 + 1.5*panelP/PanelPeak)
		panelI = r2(panelP / panelV)
		batV = r2(13.1 + 1.1*panelP/PanelPeak)
		batI = r2(panelP * 0.97 / batV)
	}
	return
}

func (e *Emulator) all(w http.ResponseWriter, r *http.Request) {
	if e.o.Password != "" && !emulate.BasicAuth(w, r, e.o.Username, e.o.Password, "ESP-Epever") {
		return
	}
	pp, pv, pi, bv, bi := e.Values(e.o.Now())
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"PanelV": pv, "PanelI": pi, "PanelP": pp,
		"BatteryV": bv, "BatteryI": bi, "BatteryP": r2(bv * bi),
		"LoadV": bv, "LoadI": 0.0, "LoadP": 0.0,
		"BatterySOC": math.Min(100, math.Round((bv-11.8)/(14.4-11.8)*100)),
		"DeviceTemp": 24.5,
	})
}
