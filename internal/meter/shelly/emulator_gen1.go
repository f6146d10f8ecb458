package shelly

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
)

// Gen1Emulator is a Shelly Plug S (Gen1) on a load, or with Profile
// "house3" a Shelly 3EM at the grid connection of a house. It serves
// /shelly, /status, /meter/0 (Plug S) and /emeter/0..2 (3EM), with HTTP
// Basic auth on everything but /shelly when Options.Password is set.
type Gen1Emulator struct {
	emuBase
	threePhase bool
	model      string
	hostname   string
	load       func(time.Time) float64

	mu    sync.Mutex
	boot  time.Time
	total *emulate.Counter    // Plug S, Wh
	imp   [3]*emulate.Counter // 3EM per phase, Wh
	exp   [3]*emulate.Counter
}

// NewGen1Emulator builds a Gen1 emulator. Profiles: "fridge" (default),
// "solar" (a balcony plant, power reported positive as a Plug S does),
// "constant" (60 W), "house3" (a 3EM).
func NewGen1Emulator(o emulate.Options, c EmulatorConfig) (*Gen1Emulator, error) {
	e := &Gen1Emulator{}
	if err := e.init(o, c); err != nil {
		return nil, err
	}
	zone := e.opt.Zone
	switch o.Profile {
	case "", "fridge":
		e.load = emulate.Fridge
	case "solar":
		e.load = func(t time.Time) float64 { return emulate.Solar(t, zone, 600) }
	case "constant":
		e.load = func(time.Time) float64 { return 60 }
	case "house3":
		e.threePhase = true
	default:
		return nil, fmt.Errorf("shelly-gen1: unknown profile %q (want fridge, solar, constant or house3)", o.Profile)
	}
	e.boot = e.opt.Now()
	if e.threePhase {
		e.model, e.hostname = "SHEM-3", "shellyem3-"+e.mac
		start := [3]float64{912345.6, 402311.2, 150220.9}
		for i := range e.imp {
			e.imp[i] = emulate.NewCounter(start[i])
			e.exp[i] = emulate.NewCounter(float64(i) * 1234.5)
		}
	} else {
		e.model, e.hostname = "SHPLG-S", "shellyplug-s-"+e.mac[6:]
		e.total = emulate.NewCounter(43.8)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/shelly", e.serveShelly)
	mux.HandleFunc("/", e.auth(e.serveDevice))
	e.wrap(mux)
	return e, nil
}

func (e *Gen1Emulator) serveShelly(w http.ResponseWriter, r *http.Request) {
	info := map[string]any{
		"type": e.model, "mac": e.mac, "auth": e.opt.Password != "",
		"fw": "20230913-113421/v1.14.0-gcb84623", "discoverable": true,
		"longid": 1, "num_outputs": 1,
	}
	if e.threePhase {
		info["num_meters"], info["num_emeters"] = 0, 3
	} else {
		info["num_meters"] = 1
	}
	writeJSON(w, http.StatusOK, info)
}

// auth demands HTTP Basic credentials when a password is set.
func (e *Gen1Emulator) auth(h http.HandlerFunc) http.HandlerFunc {
	if e.opt.Password == "" {
		return h
	}
	want := e.opt.Username
	if want == "" {
		want = "admin"
	}
	return func(w http.ResponseWriter, r *http.Request) {
		if !emulate.BasicAuth(w, r, want, e.opt.Password, e.hostname) {
			return
		}
		h(w, r)
	}
}

func (e *Gen1Emulator) serveDevice(w http.ResponseWriter, r *http.Request) {
	st := e.snapshot()
	path := strings.TrimSuffix(r.URL.Path, "/")
	switch {
	case path == "/status":
		writeJSON(w, http.StatusOK, st)
		return
	case path == "/settings":
		writeJSON(w, http.StatusOK, e.settings())
		return
	case strings.HasPrefix(path, "/meter/") && !e.threePhase:
		if i, err := strconv.Atoi(strings.TrimPrefix(path, "/meter/")); err == nil && i >= 0 && i < len(st.Meters) {
			writeJSON(w, http.StatusOK, st.Meters[i])
			return
		}
	case strings.HasPrefix(path, "/emeter/") && e.threePhase:
		if i, err := strconv.Atoi(strings.TrimPrefix(path, "/emeter/")); err == nil && i >= 0 && i < len(st.EMeters) {
			writeJSON(w, http.StatusOK, st.EMeters[i])
			return
		}
	}
	http.Error(w, "Not Found", http.StatusNotFound)
}

// Gen1 /status as the devices send it (the parts a client may look at).
type g1Status struct {
	WifiSta struct {
		Connected bool   `json:"connected"`
		SSID      string `json:"ssid"`
		IP        string `json:"ip"`
		RSSI      int    `json:"rssi"`
	} `json:"wifi_sta"`
	Cloud struct {
		Enabled   bool `json:"enabled"`
		Connected bool `json:"connected"`
	} `json:"cloud"`
	MQTT struct {
		Connected bool `json:"connected"`
	} `json:"mqtt"`
	Time            string      `json:"time"`
	Unixtime        int64       `json:"unixtime"`
	Serial          int         `json:"serial"`
	HasUpdate       bool        `json:"has_update"`
	MAC             string      `json:"mac"`
	CfgChangedCnt   int         `json:"cfg_changed_cnt"`
	Relays          []g1Relay   `json:"relays"`
	Meters          []g1Meter   `json:"meters,omitempty"`
	EMeters         []g1EMeter  `json:"emeters,omitempty"`
	TotalPower      *float64    `json:"total_power,omitempty"`
	FSMounted       bool        `json:"fs_mounted,omitempty"`
	Temperature     *float64    `json:"temperature,omitempty"`
	Overtemperature *bool       `json:"overtemperature,omitempty"`
	Tmp             *g1Tmp      `json:"tmp,omitempty"`
	Update          g1Update    `json:"update"`
	RAMTotal        int         `json:"ram_total"`
	RAMFree         int         `json:"ram_free"`
	FSSize          int         `json:"fs_size"`
	FSFree          int         `json:"fs_free"`
	Uptime          int64       `json:"uptime"`
	ActionsStats    g1ActionsSt `json:"actions_stats"`
}

type g1Relay struct {
	IsOn           bool   `json:"ison"`
	HasTimer       bool   `json:"has_timer"`
	TimerStarted   int64  `json:"timer_started"`
	TimerDuration  int64  `json:"timer_duration"`
	TimerRemaining int64  `json:"timer_remaining"`
	Overpower      bool   `json:"overpower"`
	Source         string `json:"source"`
}

type g1Meter struct {
	Power     float64    `json:"power"`
	Overpower float64    `json:"overpower"`
	IsValid   bool       `json:"is_valid"`
	Timestamp int64      `json:"timestamp"`
	Counters  [3]float64 `json:"counters"`
	Total     int64      `json:"total"`
}

type g1EMeter struct {
	Power         float64 `json:"power"`
	PF            float64 `json:"pf"`
	Current       float64 `json:"current"`
	Voltage       float64 `json:"voltage"`
	IsValid       bool    `json:"is_valid"`
	Total         float64 `json:"total"`
	TotalReturned float64 `json:"total_returned"`
}

type g1Tmp struct {
	TC      float64 `json:"tC"`
	TF      float64 `json:"tF"`
	IsValid bool    `json:"is_valid"`
}

type g1Update struct {
	Status     string `json:"status"`
	HasUpdate  bool   `json:"has_update"`
	NewVersion string `json:"new_version"`
	OldVersion string `json:"old_version"`
}

type g1ActionsSt struct {
	Skipped int `json:"skipped"`
}

// snapshot is the device's state now; counters advance with the power.
func (e *Gen1Emulator) snapshot() *g1Status {
	now := e.opt.Now()
	e.counterReset(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.boot = now
		if e.total != nil {
			e.total.Reset()
		}
		for i := range e.imp {
			if e.imp[i] != nil {
				e.imp[i].Reset()
				e.exp[i].Reset()
			}
		}
	})
	valid := e.faults.Active() != emulate.Inval
	local := now.In(e.opt.Zone)
	_, offset := local.Zone()

	e.mu.Lock()
	defer e.mu.Unlock()
	st := &g1Status{
		Time: local.Format("15:04"), Unixtime: now.Unix(), Serial: int(now.Unix()/60) % 65536,
		MAC: e.mac, Uptime: int64(now.Sub(e.boot).Seconds()),
		RAMTotal: 52056, RAMFree: 40428, FSSize: 233681, FSFree: 166915,
		Update: g1Update{Status: "idle", NewVersion: "20230913-113421/v1.14.0-gcb84623", OldVersion: "20230913-113421/v1.14.0-gcb84623"},
	}
	if e.cfg.Unsynced {
		st.Unixtime, st.Time = 0, ""
	}
	st.WifiSta.Connected, st.WifiSta.SSID, st.WifiSta.IP, st.WifiSta.RSSI = true, "emulated", "127.0.0.1", -58
	st.Relays = []g1Relay{{IsOn: true, Source: "http"}}
	if e.threePhase {
		ph := emulate.House3(now, e.opt.Zone)
		var sum float64
		st.EMeters = make([]g1EMeter, 3)
		for i, p := range ph {
			v := round(230+2*math.Sin(float64(now.Unix())/300+float64(i)), 2)
			in, out := e.imp[i].At(now, p), e.exp[i].At(now, -p)
			if !valid {
				p = 0
			}
			st.EMeters[i] = g1EMeter{Power: p, PF: 0.92, Current: round(math.Abs(p)/v, 3), Voltage: v, IsValid: valid, Total: round(in, 1), TotalReturned: round(out, 1)}
			sum += p
		}
		sum = round(sum, 2)
		st.TotalPower = &sum
		st.FSMounted = true
		return st
	}
	p := e.load(now)
	wh := e.total.At(now, p)
	if !valid {
		p = 0
	}
	temp := round(24+6*math.Min(p, 100)/100+math.Sin(float64(now.Unix())/900), 2)
	over := false
	st.Temperature, st.Overtemperature = &temp, &over
	st.Tmp = &g1Tmp{TC: temp, TF: round(temp*9/5+32, 2), IsValid: true}
	wm := round(p, 0) // the last minutes' energy in watt-minutes
	st.Meters = []g1Meter{{
		Power:     round(p, 2),
		IsValid:   valid,
		Timestamp: now.Unix() + int64(offset), // local wall clock, as Gen1 sends it
		Counters:  [3]float64{wm, wm, wm},
		Total:     int64(math.Round(wh * 60)), // watt-minutes
	}}
	return st
}

// Gen1Names are the names the emulated Gen1 devices' owners gave them
// (/settings): the Plug S's relay by profile, the 3EM as a device (its
// relay has none).
var Gen1Names = map[string]string{"fridge": "Kühlschrank", "solar": "Balkon", "house3": "Hausanschluss"}

// settings is /settings: the device's name and its relay's, null where the
// owner gave none (the parts a client may look at).
func (e *Gen1Emulator) settings() map[string]any {
	profile := e.opt.Profile
	if profile == "" {
		profile = "fridge"
	}
	var device, relay any
	if n, ok := Gen1Names[profile]; ok {
		if e.threePhase {
			device = n
		} else {
			relay = n
		}
	}
	return map[string]any{
		"name": device, "fw": "20230913-113421/v1.14.0-gcb84623",
		"device": map[string]any{"type": e.model, "mac": e.mac, "hostname": e.hostname},
		"relays": []map[string]any{{"name": relay, "appliance_type": "General", "max_power": 2500, "default_state": "off"}},
	}
}
