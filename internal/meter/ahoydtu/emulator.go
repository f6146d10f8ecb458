package ahoydtu

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
)

func init() {
	emulate.Register("ahoydtu", func(o emulate.Options) (emulate.Emulator, error) {
		if o.Profile != "" && o.Profile != "solar" {
			return nil, fmt.Errorf("ahoydtu emulator: profile %q: the inverters follow the solar curve (want solar)", o.Profile)
		}
		return NewEmulator(o.Now, o.Zone), nil
	})
}

// PollInterval is how often the emulated DTU polls its inverters.
const PollInterval = 15 * time.Second

// Emulator is an AhoyDTU with two inverters on the solar curve: id 0 an
// HM-600 with two panels, id 1 an HM-300 with one. At night (no sun) the
// inverters sleep: their last values persist and ts_last_success stands
// still. The stale fault freezes them by day as well.
type Emulator struct {
	now    func() time.Time
	zone   *time.Location
	faults emulate.Faults
	h      http.Handler

	mu   sync.Mutex
	invs []*emuInverter
}

type emuInverter struct {
	name, serial string
	peak         float64
	shares       []float64 // split of DC power over the inputs
	counter      *emulate.Counter
	ts           int64
	ch           [][]float64
	dayStart     float64
	day          int
}

// NewEmulator builds the emulated DTU (now and zone may be nil).
func NewEmulator(now func() time.Time, zone *time.Location) *Emulator {
	if now == nil {
		now = time.Now
	}
	if zone == nil {
		zone = time.UTC
	}
	e := &Emulator{now: now, zone: zone, invs: []*emuInverter{
		{name: "HM-600", serial: "116180214522", peak: 580, shares: []float64{0.55, 0.45}, counter: emulate.NewCounter(1234567)},
		{name: "HM-300", serial: "112180812345", peak: 290, shares: []float64{1}, counter: emulate.NewCounter(456789)},
	}}
	for _, inv := range e.invs {
		// a freshly started DTU: no data yet, all zero
		inv.ch = make([][]float64, 1+len(inv.shares))
		inv.ch[0] = make([]float64, 10)
		for i := range inv.shares {
			inv.ch[i+1] = make([]float64, 6)
		}
		inv.day = -1
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/api/inverter/id/", e.inverter)
	mux.HandleFunc("/api/inverter/list", e.list)
	e.h = e.faults.Wrap(mux)
	return e
}

// Faults is the fault board (stale freezes the inverters).
func (e *Emulator) Faults() *emulate.Faults { return &e.faults }

func (e *Emulator) ServeHTTP(w http.ResponseWriter, r *http.Request) { e.h.ServeHTTP(w, r) }

// poll brings the inverters up to now, as the DTU's radio loop would.
func (e *Emulator) poll(now time.Time) {
	if e.faults.Active() == emulate.Stale {
		return
	}
	for _, inv := range e.invs {
		p := emulate.Solar(now, e.zone, inv.peak)
		if p <= 0 {
			inv.counter.At(now, 0) // asleep: values persist, ts_last_success stands still
			continue
		}
		ts := now.Unix() - now.Unix()%int64(PollInterval/time.Second)
		if ts == inv.ts {
			continue
		}
		inv.ts = ts
		wh := inv.counter.At(now, p)
		if d := now.In(e.zone).YearDay(); d != inv.day {
			inv.day, inv.dayStart = d, wh
		}
		pdc := p / 0.955
		uac := math.Round((230+2*math.Sin(float64(ts)/400))*10) / 10
		temp := math.Round((18+25*p/inv.peak)*10) / 10
		yieldDay := math.Round(wh - inv.dayStart)
		inv.ch[0] = []float64{uac, round(p/uac, 2), p, 50.01, 1, temp, round(wh/1000, 3), yieldDay, round(pdc, 1), round(p/pdc*100, 2)}
		for i, s := range inv.shares {
			u := round(31+4*s+math.Sin(float64(ts)/300), 1)
			pi := round(pdc*s, 1)
			inv.ch[i+1] = []float64{u, round(pi/u, 2), pi, math.Round(yieldDay * s / 0.955), round(wh*s/955, 3), round(pi/400*100, 3)}
		}
	}
}

func round(v float64, d int) float64 {
	f := math.Pow(10, float64(d))
	return math.Round(v*f) / f
}

func (e *Emulator) inverter(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	id, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/api/inverter/id/"))
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil || id < 0 || id >= len(e.invs) {
		fmt.Fprint(w, `{"error":"inverter not found!"}`)
		return
	}
	e.poll(e.now())
	inv := e.invs[id]
	names := []string{"AC"}
	maxPwr := []any{nil}
	for i := range inv.shares {
		names = append(names, fmt.Sprintf("Panel %d", i+1))
		maxPwr = append(maxPwr, 400)
	}
	status := 0
	if inv.ts > 0 && e.now().Unix()-inv.ts < 60 {
		status = 2
	}
	json.NewEncoder(w).Encode(map[string]any{
		"id": id, "enabled": true, "name": inv.name, "serial": inv.serial, "version": "10018",
		"power_limit_read": 100, "power_limit_ack": false, "max_pwr": inv.peak,
		"ts_last_success": inv.ts, "generation": 0, "status": status, "alarm_cnt": 0, "rssi": -64,
		"ch": inv.ch, "ch_name": names, "ch_max_pwr": maxPwr,
	})
}

func (e *Emulator) list(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	type item struct {
		Enabled  bool   `json:"enabled"`
		ID       int    `json:"id"`
		Name     string `json:"name"`
		Serial   string `json:"serial"`
		Channels int    `json:"channels"`
		Version  string `json:"version"`
	}
	var items []item
	for i, inv := range e.invs {
		items = append(items, item{true, i, inv.name, inv.serial, len(inv.shares), "10018"})
	}
	json.NewEncoder(w).Encode(map[string]any{"inverter": items, "interval": int(PollInterval / time.Second)})
}
