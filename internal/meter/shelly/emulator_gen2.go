package shelly

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
)

// Gen2Emulator is a Gen2+ RPC device: a Plus Plug S (switch:0) on a fridge,
// a PM Mini Gen3 (pm1:0 with ret_aenergy) on a balcony plant, or a Pro 3EM
// (em:0 + emdata:0, or em1:0..2 + em1data:0..2 in the monophase profile) at
// a house's grid connection. It serves /shelly, GET /rpc/<Method> and POST
// /rpc (JSON-RPC), with digest SHA-256 auth when Options.Password is set.
type Gen2Emulator struct {
	emuBase
	kind   gen2Kind
	info   map[string]any // GET /shelly, Shelly.GetDeviceInfo
	id     string
	digest *digestServer
	load   func(time.Time) float64

	mu   sync.Mutex
	boot time.Time
	imp  [3]*emulate.Counter // Wh per phase (plug, pm: [0] only)
	exp  [3]*emulate.Counter
}

type gen2Kind int

const (
	kindPlugS gen2Kind = iota
	kindPMMini
	kindPro3EM
)

// NewGen2Emulator builds a Plus Plug S (profiles "fridge", the default, and
// "constant") or, with profile "solar", a PM Mini Gen3 measuring a balcony
// plant (negative power when feeding in, ret_aenergy counting the export).
func NewGen2Emulator(o emulate.Options, c EmulatorConfig) (*Gen2Emulator, error) {
	e := &Gen2Emulator{}
	if err := e.init(o, c); err != nil {
		return nil, err
	}
	zone := e.opt.Zone
	switch o.Profile {
	case "", "fridge":
		e.kind, e.load = kindPlugS, emulate.Fridge
	case "constant":
		e.kind, e.load = kindPlugS, func(time.Time) float64 { return 60 }
	case "solar":
		// 2.5 W of night-time standby, the plant's output as negative power.
		e.kind, e.load = kindPMMini, func(t time.Time) float64 { return 2.5 - emulate.Solar(t, zone, 600) }
	default:
		return nil, fmt.Errorf("shelly-gen2: unknown profile %q (want fridge, constant or solar)", o.Profile)
	}
	return e, e.setup()
}

// NewPro3EMEmulator builds a Pro 3EM measuring a 3-phase house
// (emulate.House3: L3 feeds in when the sun shines).
func NewPro3EMEmulator(o emulate.Options, c EmulatorConfig) (*Gen2Emulator, error) {
	e := &Gen2Emulator{kind: kindPro3EM}
	if err := e.init(o, c); err != nil {
		return nil, err
	}
	switch o.Profile {
	case "", "house3":
	case "monophase":
		e.cfg.Monophase = true
	default:
		return nil, fmt.Errorf("shelly-pro3em: unknown profile %q (it measures a 3-phase house: house3, or three single-phase loads: monophase)", o.Profile)
	}
	return e, e.setup()
}

func (e *Gen2Emulator) setup() error {
	mac := strings.ToLower(e.mac)
	var gen int
	var model, app string
	switch e.kind {
	case kindPlugS:
		gen, model, app, e.id = 2, "SNPL-00112EU", "PlusPlugS", "shellyplusplugs-"+mac
		e.imp[0] = emulate.NewCounter(7258.589)
	case kindPMMini:
		gen, model, app, e.id = 3, "S3PM-001PCEU16", "MiniPMG3", "shellypmminig3-"+mac
		e.imp[0], e.exp[0] = emulate.NewCounter(812.25), emulate.NewCounter(15230.5)
	case kindPro3EM:
		gen, model, app, e.id = 2, "SPEM-003CEBEU", "Pro3EM", "shellypro3em-"+mac
		start := [3]float64{2034616.71, 185686.89, 369469.8}
		for i := range e.imp {
			e.imp[i], e.exp[i] = emulate.NewCounter(start[i]), emulate.NewCounter(float64(i)*492.5)
		}
	}
	authDomain := any(nil)
	if e.opt.Password != "" {
		authDomain = e.id
		e.digest = newDigestServer(e.id, e.opt.Username, e.opt.Password, e.cfg, e.opt.Now)
	}
	e.info = map[string]any{
		"name": nil, "id": e.id, "mac": e.mac, "slot": 0, "model": model, "gen": gen,
		"fw_id": "20250101-000000/2.0.0-emulator", "ver": "2.0.0", "app": app,
		"auth_en": e.opt.Password != "", "auth_domain": authDomain,
	}
	if e.kind == kindPro3EM {
		e.info["profile"] = e.profile()
	}
	e.boot = e.opt.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("/shelly", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, e.info) })
	mux.HandleFunc("/rpc/", e.authed(e.serveGet))
	mux.HandleFunc("/rpc", e.authed(e.servePost))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, rpcError{Code: 404, Message: "Not Found"})
	})
	e.wrap(mux)
	return nil
}

func (e *Gen2Emulator) profile() string {
	if e.cfg.Monophase {
		return "monophase"
	}
	return "triphase"
}

// ID is the device id, which is also the digest realm.
func (e *Gen2Emulator) ID() string { return e.id }

func (e *Gen2Emulator) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if e.digest != nil {
			ok, stale := e.digest.check(r)
			if !ok {
				e.digest.challenge(w, stale)
				return
			}
		}
		h(w, r)
	}
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// serveGet answers GET /rpc/<Method>?id=N with the bare result.
func (e *Gen2Emulator) serveGet(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/rpc/")
	var id *int
	if s := r.URL.Query().Get("id"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			writeJSON(w, http.StatusBadRequest, rpcError{Code: -103, Message: fmt.Sprintf("Invalid argument 'id': %q is not a number!", s)})
			return
		}
		id = &n
	}
	res, code, rerr := e.call(method, id)
	if rerr != nil {
		writeJSON(w, code, rerr)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// servePost answers POST /rpc {"id":…,"method":…,"params":{…}}.
func (e *Gen2Emulator) servePost(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, rpcError{Code: -103, Message: "POST a JSON-RPC frame to /rpc"})
		return
	}
	var frame struct {
		ID     json.RawMessage `json:"id"`
		Method string          `json:"method"`
		Params struct {
			ID *int `json:"id"`
		} `json:"params"`
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || json.Unmarshal(body, &frame) != nil || frame.Method == "" {
		writeJSON(w, http.StatusBadRequest, rpcError{Code: -32700, Message: "Bad request: want {\"id\":1,\"method\":\"…\"}"})
		return
	}
	out := map[string]any{"id": frame.ID, "src": e.id}
	res, code, rerr := e.call(frame.Method, frame.Params.ID)
	if rerr != nil {
		out["error"] = rerr
		writeJSON(w, code, out)
		return
	}
	out["result"] = res
	writeJSON(w, http.StatusOK, out)
}

// call runs one RPC method (names are case-insensitive, as on the device).
func (e *Gen2Emulator) call(method string, id *int) (any, int, *rpcError) {
	s := e.snapshot()
	component := func(name string, n int) (any, int, *rpcError) {
		if id == nil {
			return nil, http.StatusBadRequest, &rpcError{Code: -103, Message: "Missing required argument 'id'!"}
		}
		v, ok := s.status[fmt.Sprintf("%s:%d", name, *id)]
		if !ok || *id >= n {
			return nil, http.StatusBadRequest, &rpcError{Code: -105, Message: fmt.Sprintf("Argument 'id', value %d not found!", *id)}
		}
		return v, 0, nil
	}
	switch m := strings.ToLower(method); {
	case m == "shelly.getstatus":
		return s.status, 0, nil
	case m == "shelly.getdeviceinfo":
		return e.info, 0, nil
	case m == "shelly.getconfig":
		return e.config(), 0, nil
	case m == "sys.getstatus":
		return s.status["sys"], 0, nil
	case m == "switch.getstatus" && e.kind == kindPlugS:
		return component("switch", 1)
	case m == "pm1.getstatus" && e.kind == kindPMMini:
		return component("pm1", 1)
	case m == "em.getstatus" && e.kind == kindPro3EM && !e.cfg.Monophase:
		return component("em", 1)
	case m == "emdata.getstatus" && e.kind == kindPro3EM && !e.cfg.Monophase:
		return component("emdata", 1)
	case m == "em1.getstatus" && e.kind == kindPro3EM && e.cfg.Monophase:
		return component("em1", 3)
	case m == "em1data.getstatus" && e.kind == kindPro3EM && e.cfg.Monophase:
		return component("em1data", 3)
	}
	return nil, http.StatusNotFound, &rpcError{Code: 404, Message: "No handler for " + method}
}

// ChannelNames are the names the emulated devices' owners gave their
// channels (Shelly.GetConfig): the Plug S's switch, the Pro 3EM's phases in
// its monophase profile.
var ChannelNames = map[string]string{"switch:0": "Kaffeemaschine", "em1:0": "Herd", "em1:1": "Waschmaschine", "em1:2": "Wärmepumpe"}

// config is Shelly.GetConfig: the components with their (user) names.
func (e *Gen2Emulator) config() map[string]any {
	out := map[string]any{"sys": map[string]any{"device": map[string]any{"name": nil, "mac": e.mac}}}
	var keys []string
	switch {
	case e.kind == kindPlugS:
		keys = []string{"switch:0"}
	case e.kind == kindPMMini:
		keys = []string{"pm1:0"}
	case e.kind == kindPro3EM && e.cfg.Monophase:
		keys = []string{"em1:0", "em1:1", "em1:2"}
	case e.kind == kindPro3EM:
		keys = []string{"em:0"}
	}
	for i, k := range keys {
		var name any
		if n, ok := ChannelNames[k]; ok {
			name = n
		}
		out[k] = map[string]any{"id": i, "name": name}
	}
	return out
}

// Status parts, as the devices send them.
type g2Energy struct {
	Total    float64    `json:"total"`
	ByMinute [3]float64 `json:"by_minute"`
	MinuteTs int64      `json:"minute_ts"`
}

type g2Temp struct {
	TC *float64 `json:"tC"`
	TF *float64 `json:"tF"`
}

type g2Switch struct {
	ID          int      `json:"id"`
	Source      string   `json:"source"`
	Output      bool     `json:"output"`
	APower      float64  `json:"apower"`
	Voltage     float64  `json:"voltage"`
	Current     float64  `json:"current"`
	AEnergy     g2Energy `json:"aenergy"`
	Temperature g2Temp   `json:"temperature"`
}

type g2PM1 struct {
	ID         int      `json:"id"`
	Voltage    float64  `json:"voltage"`
	Current    float64  `json:"current"`
	APower     float64  `json:"apower"`
	Freq       float64  `json:"freq"`
	AEnergy    g2Energy `json:"aenergy"`
	RetAEnergy g2Energy `json:"ret_aenergy"`
}

type g2EM struct {
	ID                   int      `json:"id"`
	ACurrent             float64  `json:"a_current"`
	AVoltage             float64  `json:"a_voltage"`
	AActPower            float64  `json:"a_act_power"`
	AAprtPower           float64  `json:"a_aprt_power"`
	APF                  float64  `json:"a_pf"`
	AFreq                float64  `json:"a_freq"`
	BCurrent             float64  `json:"b_current"`
	BVoltage             float64  `json:"b_voltage"`
	BActPower            float64  `json:"b_act_power"`
	BAprtPower           float64  `json:"b_aprt_power"`
	BPF                  float64  `json:"b_pf"`
	BFreq                float64  `json:"b_freq"`
	CCurrent             float64  `json:"c_current"`
	CVoltage             float64  `json:"c_voltage"`
	CActPower            float64  `json:"c_act_power"`
	CAprtPower           float64  `json:"c_aprt_power"`
	CPF                  float64  `json:"c_pf"`
	CFreq                float64  `json:"c_freq"`
	NCurrent             *float64 `json:"n_current"`
	TotalCurrent         float64  `json:"total_current"`
	TotalActPower        float64  `json:"total_act_power"`
	TotalAprtPower       float64  `json:"total_aprt_power"`
	UserCalibratedPhases []string `json:"user_calibrated_phase"`
	Errors               []string `json:"errors,omitempty"`
}

type g2EMData struct {
	ID                 int     `json:"id"`
	ATotalActEnergy    float64 `json:"a_total_act_energy"`
	ATotalActRetEnergy float64 `json:"a_total_act_ret_energy"`
	BTotalActEnergy    float64 `json:"b_total_act_energy"`
	BTotalActRetEnergy float64 `json:"b_total_act_ret_energy"`
	CTotalActEnergy    float64 `json:"c_total_act_energy"`
	CTotalActRetEnergy float64 `json:"c_total_act_ret_energy"`
	TotalAct           float64 `json:"total_act"`
	TotalActRet        float64 `json:"total_act_ret"`
}

type g2EM1 struct {
	ID          int      `json:"id"`
	Current     float64  `json:"current"`
	Voltage     float64  `json:"voltage"`
	ActPower    float64  `json:"act_power"`
	AprtPower   float64  `json:"aprt_power"`
	PF          float64  `json:"pf"`
	Freq        float64  `json:"freq"`
	Calibration string   `json:"calibration"`
	Errors      []string `json:"errors,omitempty"`
}

type g2EM1Data struct {
	ID                int     `json:"id"`
	TotalActEnergy    float64 `json:"total_act_energy"`
	TotalActRetEnergy float64 `json:"total_act_ret_energy"`
}

type g2Sys struct {
	MAC              string         `json:"mac"`
	RestartRequired  bool           `json:"restart_required"`
	Time             *string        `json:"time"`
	Unixtime         *int64         `json:"unixtime"`
	Uptime           int64          `json:"uptime"`
	RAMSize          int            `json:"ram_size"`
	RAMFree          int            `json:"ram_free"`
	FSSize           int            `json:"fs_size"`
	FSFree           int            `json:"fs_free"`
	CfgRev           int            `json:"cfg_rev"`
	KvsRev           int            `json:"kvs_rev"`
	ScheduleRev      int            `json:"schedule_rev"`
	WebhookRev       int            `json:"webhook_rev"`
	AvailableUpdates map[string]any `json:"available_updates"`
	ResetReason      int            `json:"reset_reason"`
}

type gen2Snap struct {
	status map[string]any // Shelly.GetStatus
}

// snapshot is the device's state now; counters advance with the power.
func (e *Gen2Emulator) snapshot() gen2Snap {
	now := e.opt.Now()
	e.counterReset(func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		e.boot = now
		for i := range e.imp {
			if e.imp[i] != nil {
				e.imp[i].Reset()
			}
			if e.exp[i] != nil {
				e.exp[i].Reset()
			}
		}
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	sys := g2Sys{
		MAC: e.mac, Uptime: int64(now.Sub(e.boot).Seconds()),
		RAMSize: 246084, RAMFree: 141748, FSSize: 458752, FSFree: 139264,
		CfgRev: 12, AvailableUpdates: map[string]any{}, ResetReason: 3,
	}
	if !e.cfg.Unsynced {
		ts, hm := now.Unix(), now.In(e.opt.Zone).Format("15:04")
		sys.Unixtime, sys.Time = &ts, &hm
	}
	st := map[string]any{
		"sys":   sys,
		"cloud": map[string]any{"connected": false},
		"mqtt":  map[string]any{"connected": false},
		"wifi":  map[string]any{"sta_ip": "127.0.0.1", "status": "got ip", "ssid": "emulated", "rssi": -57},
		"ws":    map[string]any{"connected": false},
	}
	minute := now.Truncate(time.Minute).Unix()
	volt := round(230+2.5*math.Sin(float64(now.Unix())/300), 1)
	switch e.kind {
	case kindPlugS:
		p := round(e.load(now), 1)
		in := e.imp[0].At(now, p)
		tc := round(30+8*math.Min(p, 100)/100, 1)
		tf := round(tc*9/5+32, 1)
		mwh := round(p*1000/60, 3) // mWh per minute
		st["switch:0"] = g2Switch{
			Source: "init", Output: true, APower: p, Voltage: volt, Current: round(p/volt, 3),
			AEnergy:     g2Energy{Total: round(in, 3), ByMinute: [3]float64{mwh, mwh, mwh}, MinuteTs: minute},
			Temperature: g2Temp{TC: &tc, TF: &tf},
		}
	case kindPMMini:
		p := round(e.load(now), 1)
		in, out := e.imp[0].At(now, p), e.exp[0].At(now, -p)
		mwh := round(math.Abs(p)*1000/60, 3)
		st["pm1:0"] = g2PM1{
			Voltage: volt, Current: round(math.Abs(p)/volt, 3), APower: p, Freq: 50,
			// aenergy counts both directions, ret_aenergy the returned part
			AEnergy:    g2Energy{Total: round(in+out, 3), ByMinute: [3]float64{mwh, mwh, mwh}, MinuteTs: minute},
			RetAEnergy: g2Energy{Total: round(out, 3), MinuteTs: minute},
		}
	case kindPro3EM:
		e.pro3em(now, st)
	}
	return gen2Snap{status: st}
}

func (e *Gen2Emulator) pro3em(now time.Time, st map[string]any) {
	ph := emulate.House3(now, e.opt.Zone)
	failed := e.faults.Active() == emulate.Inval
	var errs []string
	if failed {
		errs = []string{"power_meter_failure"}
	}
	var v, cur, aprt, in, out [3]float64
	pf := [3]float64{0.93, 0.88, 0.97}
	for i, p := range ph {
		v[i] = round(230+2*math.Sin(float64(now.Unix())/300+float64(i)), 1)
		aprt[i] = round(math.Abs(p)/pf[i], 1)
		cur[i] = round(aprt[i]/v[i], 3)
		in[i], out[i] = round(e.imp[i].At(now, p), 2), round(e.exp[i].At(now, -p), 2)
	}
	temp := round(41+3*math.Sin(float64(now.Unix())/1800), 1)
	tf := round(temp*9/5+32, 1)
	st["temperature:0"] = map[string]any{"id": 0, "tC": temp, "tF": tf}
	if e.cfg.Monophase {
		for i := range ph {
			k := strconv.Itoa(i)
			st["em1:"+k] = g2EM1{ID: i, Current: cur[i], Voltage: v[i], ActPower: ph[i], AprtPower: aprt[i], PF: pf[i], Freq: 50, Calibration: "factory", Errors: errs}
			st["em1data:"+k] = g2EM1Data{ID: i, TotalActEnergy: in[i], TotalActRetEnergy: out[i]}
		}
		return
	}
	st["em:0"] = g2EM{
		ACurrent: cur[0], AVoltage: v[0], AActPower: ph[0], AAprtPower: aprt[0], APF: pf[0], AFreq: 50,
		BCurrent: cur[1], BVoltage: v[1], BActPower: ph[1], BAprtPower: aprt[1], BPF: pf[1], BFreq: 50,
		CCurrent: cur[2], CVoltage: v[2], CActPower: ph[2], CAprtPower: aprt[2], CPF: pf[2], CFreq: 50,
		TotalCurrent:         round(cur[0]+cur[1]+cur[2], 3),
		TotalActPower:        round(ph[0]+ph[1]+ph[2], 3),
		TotalAprtPower:       round(aprt[0]+aprt[1]+aprt[2], 3),
		UserCalibratedPhases: []string{},
		Errors:               errs,
	}
	st["emdata:0"] = g2EMData{
		ATotalActEnergy: in[0], ATotalActRetEnergy: out[0],
		BTotalActEnergy: in[1], BTotalActRetEnergy: out[1],
		CTotalActEnergy: in[2], CTotalActRetEnergy: out[2],
		TotalAct: round(in[0]+in[1]+in[2], 2), TotalActRet: round(out[0]+out[1]+out[2], 2),
	}
}
