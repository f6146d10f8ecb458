package shelly

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/metertest"
)

// recorded is one request an emulator saw and its answer's status.
type recorded struct {
	path, auth string
	code       int
	challenge  string
}

// recorder sits in front of an emulator and notes every request.
type recorder struct {
	h    http.Handler
	mu   sync.Mutex
	reqs []recorded
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(c int) { s.code = c; s.ResponseWriter.WriteHeader(c) }

func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return s.ResponseWriter.(http.Hijacker).Hijack()
}

func (rc *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sw := &statusWriter{ResponseWriter: w, code: 200}
	rc.h.ServeHTTP(sw, r)
	rc.mu.Lock()
	rc.reqs = append(rc.reqs, recorded{path: r.URL.RequestURI(), auth: r.Header.Get("Authorization"), code: sw.code, challenge: w.Header().Get("WWW-Authenticate")})
	rc.mu.Unlock()
}

// since returns the requests after the first n.
func (rc *recorder) since(n int) []recorded {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]recorded(nil), rc.reqs[n:]...)
}

func (rc *recorder) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

func startEmulator(t testing.TB, e emulate.Emulator) (*httptest.Server, *recorder) {
	t.Helper()
	rc := &recorder{h: e}
	srv := httptest.NewUnstartedServer(rc)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, rc
}

func newEmu(t testing.TB, kind string, o emulate.Options) emulate.Emulator {
	t.Helper()
	e, err := emulate.New(kind, o)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// paramOf returns a digest parameter from an Authorization header.
func paramOf(t testing.TB, h, key string) string {
	t.Helper()
	_, params := cutScheme(h)
	var v string
	if err := eachParam(params, func(k, val string) {
		if k == key {
			v = val
		}
	}); err != nil {
		t.Fatalf("%q: %v", h, err)
	}
	return v
}

var berlinNoon = time.Date(2026, 7, 1, 11, 0, 0, 0, time.UTC) // 13:00 in Berlin, sun high

func TestGen1Emulator(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	clock := metertest.NewClock(berlinNoon)
	e := newEmu(t, "shelly-gen1", emulate.Options{Password: "plug€pw", Now: clock.Now, Zone: berlin})
	srv, _ := startEmulator(t, e)

	m := newTestMeter(t, srv.URL, berlin, func(c *config.Meter) { c.Password = "plug€pw" })
	r := metertest.ReadOne(t, m)
	if want := math.Round(emulate.Fridge(clock.Now())*100) / 100; r.Power != want {
		t.Errorf("power %v, want the fridge's %v", r.Power, want)
	}
	if m.dev.model != "SHPLG-S" || !m.dev.auth {
		t.Errorf("detected %+v", m.dev)
	}
	first := *r.EnergyIn
	if math.Abs(first-43.8) > 0.02 {
		t.Errorf("energy in %v, want about 43.8 Wh", first)
	}
	if r.Temperature == nil || r.DeviceTime == nil || !r.DeviceTime.Equal(clock.Now()) {
		t.Errorf("temperature %v device time %v", r.Temperature, r.DeviceTime)
	}
	// energy moves with the fridge: 10 minutes later
	clock.Add(10 * time.Minute)
	r = metertest.ReadOne(t, m)
	p := emulate.Fridge(clock.Now())
	// total is whole watt-minutes: allow 1/60 Wh of rounding
	if got, want := *r.EnergyIn-first, p/6; math.Abs(got-want) > 1.0/60+1e-9 {
		t.Errorf("energy grew by %v Wh in 10 min at %v W, want %v", got, p, want)
	}

	metertest.WantErr(t, newTestMeter(t, srv.URL, berlin, func(c *config.Meter) { c.Password = "wrong" }), meter.Auth, "wrong user name or password")
	metertest.WantErr(t, newTestMeter(t, srv.URL, berlin, func(c *config.Meter) { c.Password = "plug€pw"; c.Username = "root" }), meter.Auth, `refused user "root"`)
	metertest.WantErr(t, newTestMeter(t, srv.URL, berlin, func(c *config.Meter) { c.Password = "plug€pw"; c.Channel = 1 }), meter.Config, "not channel 1")

	// /meter/0 gives the one element, /meter/1 does not exist
	req, _ := http.NewRequest("GET", srv.URL+"/meter/0", nil)
	req.SetBasicAuth("admin", "plug€pw")
	var one gen1Meter
	getJSON(t, req, 200, &one)
	if one.Power == nil || one.Total == nil || one.IsValid == nil || !*one.IsValid {
		t.Errorf("/meter/0: %+v", one)
	}
	req, _ = http.NewRequest("GET", srv.URL+"/meter/1", nil)
	req.SetBasicAuth("admin", "plug€pw")
	getJSON(t, req, 404, nil)
}

// With the clock unsynced (unixtime 0), the local-time meter timestamp is
// converted with the configured zone; a wrong zone is off by its offset.
func TestGen1EmulatorLocalTimestamp(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	clock := metertest.NewClock(berlinNoon)
	cfg := DefaultEmulatorConfig()
	cfg.Unsynced = true
	e, err := NewGen1Emulator(emulate.Options{Now: clock.Now, Zone: berlin}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := startEmulator(t, e)
	r := metertest.ReadOne(t, newTestMeter(t, srv.URL, berlin, nil))
	if r.DeviceTime == nil || !r.DeviceTime.Equal(clock.Now()) {
		t.Errorf("device time %v, want %v", r.DeviceTime, clock.Now())
	}
	r = metertest.ReadOne(t, newTestMeter(t, srv.URL, time.UTC, nil))
	if r.DeviceTime == nil || r.DeviceTime.Sub(clock.Now()) != 2*time.Hour {
		t.Errorf("zone UTC configured for a Berlin device: device time %v, want 2 h late", r.DeviceTime)
	}
}

func TestGen1Emulator3EM(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	clock := metertest.NewClock(berlinNoon)
	e := newEmu(t, "shelly-gen1", emulate.Options{Profile: "house3", Now: clock.Now, Zone: berlin})
	srv, _ := startEmulator(t, e)
	m := newTestMeter(t, srv.URL, berlin, nil)
	r := metertest.ReadOne(t, m)
	ph := emulate.House3(clock.Now(), berlin)
	if len(r.Phases) != 3 || r.Phases[0] != ph[0] || r.Phases[1] != ph[1] || r.Phases[2] != ph[2] {
		t.Errorf("phases %v, want %v", r.Phases, ph)
	}
	if ph[2] >= 0 {
		t.Fatalf("L3 %v: the test wants it feeding in at noon", ph[2])
	}
	if math.Abs(r.Power-(ph[0]+ph[1]+ph[2])) > 0.01 {
		t.Errorf("power %v, want the sum of %v", r.Power, ph)
	}
	in0, out0 := *r.EnergyIn, *r.EnergyOut
	clock.Add(time.Hour)
	r = metertest.ReadOne(t, m)
	ph = emulate.House3(clock.Now(), berlin)
	if d := *r.EnergyOut - out0; math.Abs(d-(-ph[2])) > 0.2 {
		t.Errorf("export grew by %v Wh in 1 h, want about %v", d, -ph[2])
	}
	if d := *r.EnergyIn - in0; math.Abs(d-(ph[0]+ph[1])) > 0.2 {
		t.Errorf("import grew by %v Wh in 1 h, want about %v", d, ph[0]+ph[1])
	}
	if r.Voltage == nil || *r.Voltage < 225 || *r.Voltage > 235 {
		t.Errorf("voltage %v", r.Voltage)
	}
	metertest.WantErr(t, newTestMeter(t, srv.URL, berlin, func(c *config.Meter) { c.Channel = 1 }), meter.Config, "leave channel at 0")
}

func TestGen2EmulatorDigest(t *testing.T) {
	clock := metertest.NewClock(berlinNoon)
	cfg := DefaultEmulatorConfig()
	cfg.NonceTTL = time.Hour
	e, err := NewGen2Emulator(emulate.Options{Password: "digest=pw€", Now: clock.Now}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, rc := startEmulator(t, e)
	m := newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Password = "digest=pw€" })

	r := metertest.ReadOne(t, m)
	if want := math.Round(emulate.Fridge(clock.Now())*10) / 10; r.Power != want {
		t.Errorf("power %v, want %v", r.Power, want)
	}
	if r.Temperature == nil || r.Voltage == nil || r.EnergyIn == nil || r.EnergyOut != nil || r.DeviceTime == nil {
		t.Errorf("reading %+v", r)
	}
	reqs := rc.since(0)
	// /shelly, the unauthenticated try, its 401 challenge, the signed retry
	if len(reqs) != 3 || reqs[0].path != "/shelly" || reqs[1].code != 401 || reqs[2].code != 200 {
		t.Fatalf("first read: %+v", reqs)
	}
	nonce := paramOf(t, reqs[1].challenge, "nonce")
	if !strings.HasSuffix(nonce, "=") {
		t.Errorf("nonce %q: want base64 ending in '='", nonce)
	}
	if paramOf(t, reqs[1].challenge, "algorithm") != "SHA-256" || paramOf(t, reqs[1].challenge, "realm") != e.ID() {
		t.Errorf("challenge %q", reqs[1].challenge)
	}

	// nc counts up on the same nonce, one request per read (preemptive)
	for i := 2; i <= 4; i++ {
		n := rc.count()
		metertest.ReadOne(t, m)
		got := rc.since(n)
		if len(got) != 1 || got[0].code != 200 {
			t.Fatalf("read %d: %+v", i, got)
		}
		if nc := paramOf(t, got[0].auth, "nc"); nc != "0000000"+string(rune('0'+i)) {
			t.Errorf("read %d: nc=%s", i, nc)
		}
		if paramOf(t, got[0].auth, "nonce") != nonce {
			t.Errorf("read %d: nonce changed", i)
		}
	}

	// the nonce expires: exactly one re-challenge (stale=true), then nc=1 again
	clock.Add(61 * time.Minute)
	n := rc.count()
	metertest.ReadOne(t, m)
	got := rc.since(n)
	if len(got) != 2 || got[0].code != 401 || !strings.Contains(got[0].challenge, "stale=true") || got[1].code != 200 {
		t.Fatalf("after expiry: %+v", got)
	}
	if paramOf(t, got[1].auth, "nc") != "00000001" || paramOf(t, got[1].auth, "nonce") == nonce {
		t.Errorf("after re-challenge: %s", got[1].auth)
	}

	// wrong password: Auth, and no more than a challenge and one try
	bad := newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Password = "wrong" })
	n = rc.count()
	metertest.WantErr(t, bad, meter.Auth, `refused the password for user "admin"`)
	if got := rc.since(n); len(got) != 3 {
		t.Errorf("wrong password took %d requests: %+v", len(got), got)
	}
	// no password at all
	metertest.WantErr(t, newTestMeter(t, srv.URL, time.UTC, nil), meter.Auth, "no password is configured")

	// Basic auth is refused with a digest challenge
	req, _ := http.NewRequest("GET", srv.URL+"/rpc/Shelly.GetStatus", nil)
	req.SetBasicAuth("admin", "digest=pw€")
	resp := getJSON(t, req, 401, nil)
	if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Digest ") {
		t.Errorf("Basic answered with %q", resp.Header.Get("WWW-Authenticate"))
	}
}

// A device that forgot its nonces (a reboot) answers the preemptive
// request with a plain 401: one new challenge, not a wrong password.
func TestGen2ForgottenNonce(t *testing.T) {
	clock := metertest.NewClock(berlinNoon)
	e, err := NewGen2Emulator(emulate.Options{Password: "pw", Now: clock.Now}, DefaultEmulatorConfig())
	if err != nil {
		t.Fatal(err)
	}
	srv, rc := startEmulator(t, e)
	m := newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Password = "pw" })
	metertest.ReadOne(t, m)
	e.digest.mu.Lock()
	clear(e.digest.nonces)
	e.digest.mu.Unlock()
	n := rc.count()
	metertest.ReadOne(t, m)
	if got := rc.since(n); len(got) != 2 || got[0].code != 401 || got[1].code != 200 {
		t.Errorf("after a forgotten nonce: %+v", got)
	}
}

func TestGen2EmulatorRPC(t *testing.T) {
	clock := metertest.NewClock(berlinNoon)
	e := newEmu(t, "shelly-gen2", emulate.Options{Now: clock.Now})
	srv, _ := startEmulator(t, e)
	get := func(path string, code int, v any) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		getJSON(t, req, code, v)
	}
	var sw gen2Switch
	get("/rpc/Switch.GetStatus?id=0", 200, &sw)
	if sw.APower == nil || sw.AEnergy == nil || sw.AEnergy.Total == nil || sw.Temperature == nil {
		t.Errorf("Switch.GetStatus: %+v", sw)
	}
	var rerr rpcError
	get("/rpc/Switch.GetStatus?id=1", 400, &rerr)
	if rerr.Code != -105 {
		t.Errorf("id=1: %+v", rerr)
	}
	get("/rpc/Switch.GetStatus", 400, &rerr)
	if rerr.Code != -103 {
		t.Errorf("no id: %+v", rerr)
	}
	get("/rpc/Foo.Bar", 404, &rerr)
	if rerr.Code != 404 || !strings.Contains(rerr.Message, "Foo.Bar") {
		t.Errorf("unknown method: %+v", rerr)
	}
	get("/rpc/EM.GetStatus?id=0", 404, nil) // a plug has no em
	var info shellyInfo
	get("/rpc/Shelly.GetDeviceInfo", 200, &info)
	if info.Gen != 2 || info.Model != "SNPL-00112EU" || info.AuthEn {
		t.Errorf("device info %+v", info)
	}

	post := func(body string, code int) map[string]json.RawMessage {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/rpc", strings.NewReader(body))
		var out map[string]json.RawMessage
		getJSON(t, req, code, &out)
		return out
	}
	out := post(`{"id":7,"method":"Switch.GetStatus","params":{"id":0}}`, 200)
	if string(out["id"]) != "7" || string(out["src"]) != `"`+e.(*Gen2Emulator).ID()+`"` || out["result"] == nil {
		t.Errorf("POST /rpc: %s", out)
	}
	out = post(`{"id":8,"method":"Nope.Nothing"}`, 404)
	if out["error"] == nil || out["result"] != nil {
		t.Errorf("POST unknown method: %s", out)
	}
	post(`{"id":`, 400)
}

func TestGen2EmulatorSolarPM(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	clock := metertest.NewClock(berlinNoon)
	e := newEmu(t, "shelly-gen2", emulate.Options{Profile: "solar", Password: "pw", Now: clock.Now, Zone: berlin})
	srv, _ := startEmulator(t, e)
	m := newTestMeter(t, srv.URL, berlin, func(c *config.Meter) { c.Password = "pw" })
	r := metertest.ReadOne(t, m)
	if r.Power >= 0 || m.dev.gen != 3 {
		t.Fatalf("power %v gen %d: want a Gen3 PM feeding in at noon", r.Power, m.dev.gen)
	}
	in0, out0 := *r.EnergyIn, *r.EnergyOut
	if math.Abs(in0-812.25) > 0.01 || math.Abs(out0-15230.5) > 0.01 {
		t.Errorf("import %v export %v, want 812.25 and 15230.5 (aenergy - ret_aenergy)", in0, out0)
	}
	clock.Add(30 * time.Minute)
	r = metertest.ReadOne(t, m)
	if *r.EnergyIn != in0 {
		t.Errorf("import moved from %v to %v while feeding in", in0, *r.EnergyIn)
	}
	if d, want := *r.EnergyOut-out0, -r.Power/2; math.Abs(d-want) > 0.01 {
		t.Errorf("export grew by %v in 30 min, want %v", d, want)
	}
	// invert: reads as production
	r = metertest.ReadOne(t, newTestMeter(t, srv.URL, berlin, func(c *config.Meter) { c.Password = "pw"; c.Invert = true }))
	if r.Power <= 0 || *r.EnergyIn < 15230 {
		t.Errorf("inverted: power %v in %v", r.Power, *r.EnergyIn)
	}
}

func TestPro3EMEmulator(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	clock := metertest.NewClock(berlinNoon)
	e := newEmu(t, "shelly-pro3em", emulate.Options{Password: "pro", Now: clock.Now, Zone: berlin})
	srv, _ := startEmulator(t, e)
	m := newTestMeter(t, srv.URL, berlin, func(c *config.Meter) { c.Password = "pro" })
	r := metertest.ReadOne(t, m)
	ph := emulate.House3(clock.Now(), berlin)
	if len(r.Phases) != 3 || r.Phases[2] != ph[2] || ph[2] >= 0 {
		t.Fatalf("phases %v, want %v with L3 feeding in", r.Phases, ph)
	}
	if math.Abs(r.Power-(ph[0]+ph[1]+ph[2])) > 0.01 {
		t.Errorf("power %v", r.Power)
	}
	if r.Temperature == nil || r.Voltage == nil || r.DeviceTime == nil {
		t.Errorf("reading %+v", r)
	}
	in0, out0 := *r.EnergyIn, *r.EnergyOut
	clock.Add(time.Hour)
	r = metertest.ReadOne(t, m)
	ph = emulate.House3(clock.Now(), berlin)
	if d := *r.EnergyOut - out0; math.Abs(d+ph[2]) > 0.05 {
		t.Errorf("export grew by %v Wh in 1 h at L3 %v W", d, ph[2])
	}
	if d := *r.EnergyIn - in0; math.Abs(d-(ph[0]+ph[1])) > 0.05 {
		t.Errorf("import grew by %v Wh in 1 h at L1+L2 %v W", d, ph[0]+ph[1])
	}

	// monophase profile: em1:N selected by channel
	cfg := DefaultEmulatorConfig()
	cfg.Monophase = true
	mono, err := NewPro3EMEmulator(emulate.Options{Now: clock.Now, Zone: berlin}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv2, _ := startEmulator(t, mono)
	r = metertest.ReadOne(t, newTestMeter(t, srv2.URL, berlin, func(c *config.Meter) { c.Channel = 2 }))
	if r.Power != ph[2] || r.Phases != nil || r.EnergyOut == nil {
		t.Errorf("monophase channel 2: %+v, want power %v", r, ph[2])
	}
}

func TestEmulatorRateLimit(t *testing.T) {
	clock := metertest.NewClock(berlinNoon)
	cfg := DefaultEmulatorConfig()
	cfg.RateLimit = 3
	e, err := NewGen2Emulator(emulate.Options{Now: clock.Now}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv, rc := startEmulator(t, e)
	m := newTestMeter(t, srv.URL, time.UTC, nil)
	m.now = clock.Now
	metertest.ReadOne(t, m) // /shelly + status: 2 of 3
	metertest.ReadOne(t, m) // 3 of 3
	metertest.WantErr(t, m, meter.Busy, "429 Too Many Requests")
	n := rc.count()
	clock.Add(time.Second) // a new second, but the back-off is 2 s
	metertest.WantErr(t, m, meter.Busy, "not asking again")
	if rc.count() != n {
		t.Error("a request went out during the back-off")
	}
	clock.Add(time.Second)
	metertest.ReadOne(t, m)
}

// Every fault gives a typed error and no reading; the meter recovers when
// the fault is cleared.
func TestEmulatorFaults(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	faults := []struct {
		f    emulate.Fault
		kind meter.Kind
		msg  string
	}{
		{emulate.Offline, meter.Unreachable, "not reachable"},
		{emulate.Slow, meter.Unreachable, "did not answer within 150ms"},
		{emulate.HTML, meter.BadAnswer, "answered HTML, not JSON"},
		{emulate.Truncated, meter.BadAnswer, "truncated JSON"},
		{emulate.Status401, meter.Auth, ""},
		{emulate.Status403, meter.Auth, "HTTP 403"},
		{emulate.Status500, meter.BadAnswer, "HTTP 500"},
	}
	for _, kind := range []string{"shelly-gen1", "shelly-gen2", "shelly-pro3em"} {
		for _, fc := range faults {
			t.Run(kind+"/"+string(fc.f), func(t *testing.T) {
				clock := metertest.NewClock(berlinNoon)
				e := newEmu(t, kind, emulate.Options{Password: "pw", Now: clock.Now, Zone: berlin})
				e.Faults().Delay = 2 * time.Second
				srv, _ := startEmulator(t, e)
				m := newTestMeter(t, srv.URL, berlin, func(c *config.Meter) { c.Password = "pw"; c.Timeout.Duration = 150 * time.Millisecond })
				metertest.ReadOne(t, m)
				e.Faults().Set(fc.f)
				metertest.WantErr(t, m, fc.kind, fc.msg)
				metertest.WantErr(t, m, fc.kind, fc.msg) // again, from detection
				e.Faults().Set(emulate.None)
				metertest.ReadOne(t, m)
			})
		}
	}
}

func TestEmulatorInval(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	for _, c := range []struct {
		kind, profile, msg string
	}{
		{"shelly-gen1", "", "meter 0 as not valid"},
		{"shelly-gen1", "house3", "phase 1 as not valid"},
		{"shelly-pro3em", "", "power_meter_failure"},
	} {
		clock := metertest.NewClock(berlinNoon)
		e := newEmu(t, c.kind, emulate.Options{Profile: c.profile, Now: clock.Now, Zone: berlin})
		srv, _ := startEmulator(t, e)
		m := newTestMeter(t, srv.URL, berlin, nil)
		metertest.ReadOne(t, m)
		e.Faults().Set(emulate.Inval)
		metertest.WantErr(t, m, meter.NotPresent, c.msg)
		e.Faults().Set(emulate.None)
		metertest.ReadOne(t, m)
	}
}

// counter-reset restarts the energy counters as a reboot does; the reading
// itself is fine (telling resets from consumption is the energy package's).
func TestEmulatorCounterReset(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	for _, c := range []struct{ kind, profile string }{
		{"shelly-gen1", ""}, {"shelly-gen1", "house3"}, {"shelly-gen2", ""}, {"shelly-gen2", "solar"}, {"shelly-pro3em", ""},
	} {
		clock := metertest.NewClock(berlinNoon)
		e := newEmu(t, c.kind, emulate.Options{Profile: c.profile, Password: "pw", Now: clock.Now, Zone: berlin})
		srv, _ := startEmulator(t, e)
		m := newTestMeter(t, srv.URL, berlin, func(cfg *config.Meter) { cfg.Password = "pw" })
		before := metertest.ReadOne(t, m)
		e.Faults().Set(emulate.CounterReset)
		clock.Add(time.Minute)
		after := metertest.ReadOne(t, m)
		if *after.EnergyIn >= *before.EnergyIn || *after.EnergyIn > 10 {
			t.Errorf("%s %s: import %v → %v, want a restart near 0", c.kind, c.profile, *before.EnergyIn, *after.EnergyIn)
		}
		// the counter grows again from there, reset happens once per switch
		clock.Add(10 * time.Minute)
		again := metertest.ReadOne(t, m)
		if *again.EnergyIn < *after.EnergyIn {
			t.Errorf("%s %s: import fell again %v → %v", c.kind, c.profile, *after.EnergyIn, *again.EnergyIn)
		}
	}
}

func TestEmulatorProfiles(t *testing.T) {
	if _, err := emulate.New("shelly-gen1", emulate.Options{Profile: "wind"}); err == nil {
		t.Error("gen1: unknown profile accepted")
	}
	if _, err := emulate.New("shelly-gen2", emulate.Options{Profile: "house3"}); err == nil {
		t.Error("gen2: house3 accepted")
	}
	if _, err := emulate.New("shelly-pro3em", emulate.Options{Profile: "fridge"}); err == nil {
		t.Error("pro3em: fridge accepted")
	}
}

// getJSON sends req, checks the status and decodes the body into v.
func getJSON(t testing.TB, req *http.Request, code int, v any) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != code {
		t.Fatalf("%s %s: %d %s, want %d", req.Method, req.URL.Path, resp.StatusCode, bytes.TrimSpace(body), code)
	}
	if v != nil {
		if err := json.Unmarshal(body, v); err != nil {
			t.Fatalf("%s: %v in %s", req.URL.Path, err, body)
		}
	}
	return resp
}

// Discover names a multi-channel device's channels after the names the
// user gave them (Shelly.GetConfig).
func TestDiscoverChannelNames(t *testing.T) {
	mono, err := emulate.New("shelly-pro3em", emulate.Options{Profile: "monophase"})
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := startEmulator(t, mono)
	devs, err := newTestMeter(t, srv.URL, time.UTC, nil).Discover(context.Background())
	if err != nil || len(devs) != 3 {
		t.Fatalf("%+v %v", devs, err)
	}
	for i, want := range []string{"Herd", "Waschmaschine", "Wärmepumpe"} {
		if devs[i].Name != want || devs[i].ID != fmt.Sprint(i) || !strings.HasPrefix(devs[i].Note, "em1:") {
			t.Errorf("channel %d: %+v, want %q", i, devs[i], want)
		}
	}
}

// Discover names a Gen1 device's channel after its relay's or its own
// name (/settings), also behind HTTP Basic auth.
func TestDiscoverGen1Names(t *testing.T) {
	for _, c := range []struct{ profile, password, want string }{
		{"", "", "Kühlschrank"},
		{"house3", "geheim", "Hausanschluss"},
	} {
		em, err := emulate.New("shelly-gen1", emulate.Options{Profile: c.profile, Password: c.password})
		if err != nil {
			t.Fatal(err)
		}
		srv, _ := startEmulator(t, em)
		devs, err := newTestMeter(t, srv.URL, time.UTC, func(cfg *config.Meter) { cfg.Password = c.password }).Discover(context.Background())
		if err != nil || len(devs) != 1 {
			t.Fatalf("%s: %+v %v", c.profile, devs, err)
		}
		if devs[0].Name != c.want || devs[0].ID != "0" || !strings.Contains(devs[0].Note, "channel = 0") {
			t.Errorf("%s: %+v, want %q", c.profile, devs[0], c.want)
		}
	}
}
