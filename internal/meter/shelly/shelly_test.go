package shelly

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin without /usr/share/zoneinfo

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/metertest"
)

func zone(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// device serves testdata files by path; mw may intercept a request.
type fakeDevice struct {
	files    map[string][]byte
	user     string
	pass     string // Basic auth on all but /shelly when set
	requests atomic.Int64
	mw       func(w http.ResponseWriter, r *http.Request) bool
}

func (d *fakeDevice) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.requests.Add(1)
	if d.mw != nil && d.mw(w, r) {
		return
	}
	if d.pass != "" && r.URL.Path != "/shelly" {
		u, p, ok := r.BasicAuth()
		if !ok || u != d.user || p != d.pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="shelly"`)
			http.Error(w, "401 Unauthorized", http.StatusUnauthorized)
			return
		}
	}
	b, ok := d.files[r.URL.Path]
	if !ok {
		http.Error(w, "Not Found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func serve(t testing.TB, d *fakeDevice) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	return srv
}

func gen1Files(t testing.TB, shelly, status string) map[string][]byte {
	return map[string][]byte{"/shelly": testdata(t, shelly), "/status": testdata(t, status)}
}

// withFile adds a file to a fake device's files.
func withFile(files map[string][]byte, path string, body []byte) map[string][]byte {
	files[path] = body
	return files
}

func gen2Files(t testing.TB, shelly, status string) map[string][]byte {
	return map[string][]byte{"/shelly": testdata(t, shelly), gen2StatusPath: testdata(t, status)}
}

func newTestMeter(t testing.TB, url string, loc *time.Location, edit func(*config.Meter)) *Meter {
	t.Helper()
	cfg := config.Meter{Name: "test", Type: "shelly", URL: url, Timeout: config.Duration{Duration: 2 * time.Second}}
	if edit != nil {
		edit(&cfg)
	}
	m, err := New(cfg, meter.Deps{Zone: loc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func wantNil(t testing.TB, name string, got *float64) {
	t.Helper()
	if got != nil {
		t.Errorf("%s = %v, want nil", name, *got)
	}
}

func TestGen1PlugS(t *testing.T) {
	srv := serve(t, &fakeDevice{files: gen1Files(t, "gen1_plugs_shelly.json", "gen1_plugs_status.json")})
	m := newTestMeter(t, srv.URL, zone(t, "Europe/Berlin"), nil)
	r := metertest.ReadOne(t, m)
	if r.Device != "test" || r.Time.IsZero() || r.Time.Location() != time.UTC {
		t.Errorf("device %q time %v", r.Device, r.Time)
	}
	if !near(r.Power, 84.62) {
		t.Errorf("power %v", r.Power)
	}
	metertest.Eq(t, "energy in (5190 watt-minutes)", r.EnergyIn, 86.5)
	wantNil(t, "energy out", r.EnergyOut)
	metertest.Eq(t, "temperature", r.Temperature, 27.31)
	wantNil(t, "voltage", r.Voltage)
	if r.Phases != nil {
		t.Errorf("phases %v", r.Phases)
	}
	// unixtime is UTC and preferred over the local timestamp
	if r.DeviceTime == nil || !r.DeviceTime.Equal(time.Unix(1719838800, 0)) {
		t.Errorf("device time %v, want 2024-07-01 13:00:00 UTC", r.DeviceTime)
	}
	if m.dev == nil || m.dev.gen != 1 || m.dev.model != "SHPLG-S" {
		t.Errorf("detected %+v", m.dev)
	}
}

func TestGen1LocalTimestampWithoutUnixtime(t *testing.T) {
	// The clock is not synced (unixtime 0): the meter's local timestamp is
	// converted with the configured zone. 1719846000 read as UTC is
	// 2024-07-01 15:00:00, Berlin wall clock in summer (UTC+2).
	status := strings.Replace(string(testdata(t, "gen1_plugs_status.json")), `"unixtime": 1719838800`, `"unixtime": 0`, 1)
	files := gen1Files(t, "gen1_plugs_shelly.json", "gen1_plugs_status.json")
	files["/status"] = []byte(status)
	srv := serve(t, &fakeDevice{files: files})

	r := metertest.ReadOne(t, newTestMeter(t, srv.URL, zone(t, "Europe/Berlin"), nil))
	if r.DeviceTime == nil || !r.DeviceTime.Equal(time.Date(2024, 7, 1, 13, 0, 0, 0, time.UTC)) {
		t.Errorf("Berlin: device time %v, want 13:00 UTC", r.DeviceTime)
	}
	r = metertest.ReadOne(t, newTestMeter(t, srv.URL, zone(t, "America/New_York"), nil))
	if r.DeviceTime == nil || !r.DeviceTime.Equal(time.Date(2024, 7, 1, 19, 0, 0, 0, time.UTC)) {
		t.Errorf("New York: device time %v, want 19:00 UTC", r.DeviceTime)
	}
	// a timestamp before 2000 (clock never set) gives no device time
	files["/status"] = []byte(strings.Replace(status, `"timestamp": 1719846000`, `"timestamp": 86000`, 1))
	if r := metertest.ReadOne(t, newTestMeter(t, srv.URL, zone(t, "Europe/Berlin"), nil)); r.DeviceTime != nil {
		t.Errorf("unset clock: device time %v, want nil", r.DeviceTime)
	}
}

func TestLocalEpoch(t *testing.T) {
	berlin := zone(t, "Europe/Berlin")
	for _, c := range []struct {
		wall string
		loc  *time.Location
		utc  string
	}{
		{"2024-01-15 12:00:00", berlin, "2024-01-15 11:00:00"}, // CET
		{"2024-07-15 12:00:00", berlin, "2024-07-15 10:00:00"}, // CEST
		{"2024-03-31 03:30:00", berlin, "2024-03-31 01:30:00"}, // just after the spring gap
		{"2024-10-27 02:30:00", berlin, "2024-10-27 00:30:00"}, // repeated hour: the earlier
		{"2024-10-27 03:30:00", berlin, "2024-10-27 02:30:00"}, // after it
		{"2024-07-15 12:00:00", time.UTC, "2024-07-15 12:00:00"},
	} {
		w, _ := time.Parse(time.DateTime, c.wall)
		want, _ := time.Parse(time.DateTime, c.utc)
		if got := localEpoch(w.Unix(), c.loc); !got.Equal(want) {
			t.Errorf("localEpoch(%s in %v) = %v, want %v", c.wall, c.loc, got, want)
		}
	}
}

func TestGen1IsValidFalse(t *testing.T) {
	status := strings.Replace(string(testdata(t, "gen1_plugs_status.json")), `"is_valid": true, "timestamp"`, `"is_valid": false, "timestamp"`, 1)
	files := gen1Files(t, "gen1_plugs_shelly.json", "gen1_plugs_status.json")
	files["/status"] = []byte(status)
	srv := serve(t, &fakeDevice{files: files})
	m := newTestMeter(t, srv.URL, time.UTC, nil)
	metertest.WantErr(t, m, meter.NotPresent, "is_valid=false")
	if m.dev == nil {
		t.Error("a NotPresent answer dropped the detected device")
	}
}

func TestGen1TemperatureSensorInvalid(t *testing.T) {
	files := gen1Files(t, "gen1_plugs_shelly.json", "gen1_plugs_status.json")
	files["/status"] = []byte(strings.Replace(string(files["/status"]), `"tF": 81.16, "is_valid": true`, `"tF": 81.16, "is_valid": false`, 1))
	srv := serve(t, &fakeDevice{files: files})
	r := metertest.ReadOne(t, newTestMeter(t, srv.URL, time.UTC, nil))
	wantNil(t, "temperature of a failed sensor", r.Temperature)
	metertest.Eq(t, "energy in", r.EnergyIn, 86.5)
}

func TestGen1WrongChannel(t *testing.T) {
	srv := serve(t, &fakeDevice{files: gen1Files(t, "gen1_plugs_shelly.json", "gen1_plugs_status.json")})
	m := newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Channel = 1 })
	metertest.WantErr(t, m, meter.Config, "has 1 meter(s) (channel 0..0), not channel 1")
}

func TestGen1ThreeEM(t *testing.T) {
	d := &fakeDevice{files: gen1Files(t, "gen1_3em_shelly.json", "gen1_3em_status.json"), user: "admin", pass: "s3cret€"}
	srv := serve(t, d)

	// auth enabled, no password configured: said before /status is asked
	metertest.WantErr(t, newTestMeter(t, srv.URL, time.UTC, nil), meter.Auth, "no password is configured")

	// wrong password
	wrong := newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Password = "nope" })
	metertest.WantErr(t, wrong, meter.Auth, `refused user "admin": wrong user name or password`)

	m := newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Password = "s3cret€" })
	r := metertest.ReadOne(t, m)
	if len(r.Phases) != 3 || r.Phases[0] != 412.35 || r.Phases[1] != 128.02 || r.Phases[2] != -233.61 {
		t.Errorf("phases %v", r.Phases)
	}
	if !near(r.Power, 306.76) {
		t.Errorf("power %v, want total_power 306.76", r.Power)
	}
	metertest.Eq(t, "energy in", r.EnergyIn, 812344.1+402911.7+150220.9)
	metertest.Eq(t, "energy out", r.EnergyOut, 0+12.5+9821.4)
	metertest.Eq(t, "voltage (average)", r.Voltage, (231.2+230.4+232.0)/3)
	if r.DeviceTime == nil || r.DeviceTime.Unix() != 1706182200 {
		t.Errorf("device time %v", r.DeviceTime)
	}

	// invert: the phase feeding in reads positive, counters swap
	inv := newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Password = "s3cret€"; c.Invert = true })
	r = metertest.ReadOne(t, inv)
	if !near(r.Power, -306.76) || r.Phases[2] != 233.61 {
		t.Errorf("inverted: power %v phases %v", r.Power, r.Phases)
	}
	metertest.Eq(t, "inverted energy in", r.EnergyIn, 0+12.5+9821.4)

	// the 3EM is read as a whole
	ch := newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Password = "s3cret€"; c.Channel = 2 })
	metertest.WantErr(t, ch, meter.Config, "leave channel at 0")
}

func TestGen1ThreeEMPhaseInvalid(t *testing.T) {
	files := gen1Files(t, "gen1_3em_shelly.json", "gen1_3em_status.json")
	files["/status"] = []byte(strings.Replace(string(files["/status"]), `"voltage": 230.4, "is_valid": true`, `"voltage": 230.4, "is_valid": false`, 1))
	srv := serve(t, &fakeDevice{files: files})
	m := newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Password = "x" })
	metertest.WantErr(t, m, meter.NotPresent, "phase 2 as not valid")
}

func TestGen2Plus1PM(t *testing.T) {
	srv := serve(t, &fakeDevice{files: gen2Files(t, "gen2_plus1pm_shelly.json", "gen2_plus1pm_status.json")})
	m := newTestMeter(t, srv.URL, time.UTC, nil)
	r := metertest.ReadOne(t, m)
	if !near(r.Power, 1503.4) {
		t.Errorf("power %v", r.Power)
	}
	metertest.Eq(t, "energy in", r.EnergyIn, 3110.046)
	wantNil(t, "energy out (no ret_aenergy)", r.EnergyOut)
	metertest.Eq(t, "voltage", r.Voltage, 229.7)
	metertest.Eq(t, "temperature", r.Temperature, 41.2)
	if r.DeviceTime == nil || r.DeviceTime.Unix() != 1707326945 {
		t.Errorf("device time %v", r.DeviceTime)
	}
	if m.dev.gen != 2 || m.dev.model != "SNSW-001P16EU" {
		t.Errorf("detected %+v", m.dev)
	}
}

func TestGen2PlusPlugSNullFields(t *testing.T) {
	// auth_en is true here but the fake does not ask: a password must be set
	srv := serve(t, &fakeDevice{files: gen2Files(t, "gen2_plusplugs_shelly.json", "gen2_plusplugs_status.json")})
	metertest.WantErr(t, newTestMeter(t, srv.URL, time.UTC, nil), meter.Auth, "set password")

	r := metertest.ReadOne(t, newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Password = "pw" }))
	if !near(r.Power, 3.1) {
		t.Errorf("power %v", r.Power)
	}
	metertest.Eq(t, "energy in", r.EnergyIn, 9812.337)
	wantNil(t, "temperature (tC null)", r.Temperature)
	if r.DeviceTime != nil {
		t.Errorf("device time %v, want nil (sys.unixtime null)", r.DeviceTime)
	}
	// threshold: 3.1 W below 5 W reads 0
	r = metertest.ReadOne(t, newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Password = "pw"; c.PowerThreshold = 5 }))
	if r.Power != 0 {
		t.Errorf("power %v below the threshold, want 0", r.Power)
	}
}

func TestGen2Pro3EM(t *testing.T) {
	srv := serve(t, &fakeDevice{files: gen2Files(t, "gen2_pro3em_shelly.json", "gen2_pro3em_status.json")})
	r := metertest.ReadOne(t, newTestMeter(t, srv.URL, time.UTC, nil))
	if len(r.Phases) != 3 || r.Phases[0] != 402.7 || r.Phases[1] != 121.9 || r.Phases[2] != -389.4 {
		t.Errorf("phases %v (L3 feeds in)", r.Phases)
	}
	if !near(r.Power, 135.2) {
		t.Errorf("power %v, want total_act_power", r.Power)
	}
	metertest.Eq(t, "energy in", r.EnergyIn, 1604066.4)
	metertest.Eq(t, "energy out", r.EnergyOut, 412922.05)
	metertest.Eq(t, "voltage", r.Voltage, (230.1+229.5+231.0)/3)
	metertest.Eq(t, "temperature", r.Temperature, 44.8)
	if r.DeviceTime == nil || r.DeviceTime.Unix() != 1719839100 {
		t.Errorf("device time %v", r.DeviceTime)
	}

	// channel 1 does not exist on a triphase Pro 3EM
	metertest.WantErr(t, newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Channel = 1 }), meter.Config, "it has em:0")
}

func TestGen2Pro3EMMonophase(t *testing.T) {
	srv := serve(t, &fakeDevice{files: gen2Files(t, "gen2_pro3em_shelly.json", "gen2_pro3em_monophase_status.json")})
	r := metertest.ReadOne(t, newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Channel = 1 }))
	if !near(r.Power, -612.9) || r.Phases != nil {
		t.Errorf("power %v phases %v", r.Power, r.Phases)
	}
	metertest.Eq(t, "energy in", r.EnergyIn, 310.77)
	metertest.Eq(t, "energy out", r.EnergyOut, 88412.05)
	metertest.Eq(t, "voltage", r.Voltage, 230.4)
	metertest.WantErr(t, newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Channel = 3 }), meter.Config, "em1:0, em1:1, em1:2")
}

func TestGen3RetAEnergy(t *testing.T) {
	srv := serve(t, &fakeDevice{files: gen2Files(t, "gen3_pmmini_shelly.json", "gen3_pmmini_status.json")})
	m := newTestMeter(t, srv.URL, time.UTC, nil)
	r := metertest.ReadOne(t, m)
	if !near(r.Power, -531.6) {
		t.Errorf("power %v", r.Power)
	}
	// aenergy counts both directions: import = 16042.75 - 15230.5
	metertest.Eq(t, "energy in", r.EnergyIn, 812.25)
	metertest.Eq(t, "energy out", r.EnergyOut, 15230.5)
	if m.dev.gen != 3 {
		t.Errorf("gen %d", m.dev.gen)
	}
}

func TestGen2SwitchWithoutPowerMeter(t *testing.T) {
	files := gen2Files(t, "gen2_plus1pm_shelly.json", "gen2_plus1pm_status.json")
	files[gen2StatusPath] = []byte(`{"switch:0":{"id":0,"source":"init","output":false,"temperature":{"tC":33.1,"tF":91.6}},"sys":{"unixtime":1707326945}}`)
	srv := serve(t, &fakeDevice{files: files})
	metertest.WantErr(t, newTestMeter(t, srv.URL, time.UTC, nil), meter.Config, "does not measure power")
}

func TestBadAnswers(t *testing.T) {
	for _, c := range []struct {
		name, body, ctype string
		code              int
		kind              meter.Kind
		msg               string
	}{
		{"html", "<!DOCTYPE html><html><body>Login</body></html>", "text/html", 200, meter.BadAnswer, "answered HTML, not JSON"},
		{"truncated", `{"switch:0":{"id":0,"apower":12.5,"aenergy":{"tot`, "application/json", 200, meter.BadAnswer, "truncated JSON"},
		{"garbage", `{"switch:0":}`, "application/json", 200, meter.BadAnswer, "broken JSON"},
		{"shape", `[1,2,3]`, "application/json", 200, meter.BadAnswer, "unexpected shape"},
		{"empty", ``, "application/json", 200, meter.BadAnswer, "empty body"},
		{"500", `{"code":-114,"message":"Resource unavailable"}`, "application/json", 500, meter.BadAnswer, "HTTP 500 Internal Server Error (Resource unavailable, code -114)"},
		{"403", `forbidden`, "text/plain", 403, meter.Auth, "refused access (HTTP 403)"},
		{"404", `{"code":404,"message":"No handler for Shelly.GetStatus"}`, "application/json", 404, meter.BadAnswer, "404 Not Found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			files := gen2Files(t, "gen2_plus1pm_shelly.json", "gen2_plus1pm_status.json")
			d := &fakeDevice{files: files, mw: func(w http.ResponseWriter, r *http.Request) bool {
				if r.URL.Path != gen2StatusPath {
					return false
				}
				w.Header().Set("Content-Type", c.ctype)
				w.WriteHeader(c.code)
				w.Write([]byte(c.body))
				return true
			}}
			srv := serve(t, d)
			m := newTestMeter(t, srv.URL, time.UTC, nil)
			err := metertest.WantErr(t, m, c.kind, c.msg)
			if !strings.Contains(err.Error(), "Shelly at "+srv.URL) {
				t.Errorf("error %q does not name the device", err)
			}
			if m.dev != nil {
				t.Error("device not re-detected after a failure")
			}
			before := d.requests.Load()
			metertest.WantErr(t, m, c.kind, c.msg)
			if got := d.requests.Load() - before; got != 2 {
				t.Errorf("second read sent %d requests, want 2 (/shelly again, then the status)", got)
			}
		})
	}
}

func TestDetectFailures(t *testing.T) {
	srv := serve(t, &fakeDevice{files: map[string][]byte{"/shelly": []byte(`{"name":"router"}`)}})
	metertest.WantErr(t, newTestMeter(t, srv.URL, time.UTC, nil), meter.BadAnswer, "without \"gen\" or \"type\"")

	srv = serve(t, &fakeDevice{files: map[string][]byte{}})
	metertest.WantErr(t, newTestMeter(t, srv.URL, time.UTC, nil), meter.BadAnswer, "no /shelly endpoint")

	srv = serve(t, &fakeDevice{files: map[string][]byte{"/shelly": []byte("<html>FRITZ!Box</html>")}})
	metertest.WantErr(t, newTestMeter(t, srv.URL, time.UTC, nil), meter.BadAnswer, "answered HTML, not JSON")

	// nothing listening
	dead := httptest.NewServer(http.NotFoundHandler())
	url := dead.URL
	dead.Close()
	metertest.WantErr(t, newTestMeter(t, url, time.UTC, nil), meter.Unreachable, "is not reachable")
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	d := &fakeDevice{files: gen1Files(t, "gen1_plugs_shelly.json", "gen1_plugs_status.json"), mw: func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/status" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return true
		}
		return false
	}}
	srv := serve(t, d)
	defer close(release)
	m := newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Timeout.Duration = 100 * time.Millisecond })
	metertest.WantErr(t, m, meter.Unreachable, "did not answer within 100ms")
}

func TestTooManyRequests(t *testing.T) {
	clock := metertest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	var busy atomic.Bool
	var retryAfter atomic.Value
	retryAfter.Store("")
	d := &fakeDevice{files: gen2Files(t, "gen2_plus1pm_shelly.json", "gen2_plus1pm_status.json"), mw: func(w http.ResponseWriter, r *http.Request) bool {
		if !busy.Load() {
			return false
		}
		if s := retryAfter.Load().(string); s != "" {
			w.Header().Set("Retry-After", s)
		}
		http.Error(w, "Too many requests", http.StatusTooManyRequests)
		return true
	}}
	srv := serve(t, d)
	m := newTestMeter(t, srv.URL, time.UTC, nil)
	m.now = clock.Now
	metertest.ReadOne(t, m)

	busy.Store(true)
	metertest.WantErr(t, m, meter.Busy, "429")
	if m.dev == nil {
		t.Error("429 dropped the detected device")
	}
	// no request at all until the back-off (2 s) ends
	sent := d.requests.Load()
	for i := 0; i < 3; i++ {
		metertest.WantErr(t, m, meter.Busy, "not asking again before 12:00:02 UTC")
		clock.Add(500 * time.Millisecond)
	}
	if got := d.requests.Load(); got != sent {
		t.Fatalf("%d requests sent during the back-off", got-sent)
	}
	clock.Add(500 * time.Millisecond) // 12:00:02: allowed again; still busy → 4 s
	metertest.WantErr(t, m, meter.Busy, "waiting 4s")
	if got := d.requests.Load(); got != sent+1 {
		t.Fatalf("%d requests after the back-off, want 1", got-sent)
	}
	// Retry-After wins
	retryAfter.Store("30")
	clock.Add(4 * time.Second)
	metertest.WantErr(t, m, meter.Busy, "waiting 30s")
	clock.Add(29 * time.Second)
	metertest.WantErr(t, m, meter.Busy, "not asking again")
	busy.Store(false)
	clock.Add(time.Second)
	metertest.ReadOne(t, m)
	if m.backoff != 0 {
		t.Errorf("back-off %v after success, want 0", m.backoff)
	}
}

func TestConfigErrors(t *testing.T) {
	for _, c := range []struct {
		edit func(*config.Meter)
		key  string
	}{
		{func(c *config.Meter) { c.URL = "192.168.1.5" }, "meters[3].url"},
		{func(c *config.Meter) { c.URL = "http://x/?a=b" }, "meters[3].url"},
		{func(c *config.Meter) { c.Channel = -1 }, "meters[3].channel"},
		{func(c *config.Meter) { c.URL = "https://x"; c.CAFile = "/nonexistent/ca.pem" }, "meters[3].ca_file"},
	} {
		cfg := config.Meter{Name: "x", Type: "shelly", URL: "http://127.0.0.1", Index: 3}
		c.edit(&cfg)
		_, err := meter.New(cfg, meter.Deps{})
		var ce *config.Error
		if !errors.As(err, &ce) || ce.Key != c.key {
			t.Errorf("%+v: error %v, want a config error on %s", cfg, err, c.key)
		}
	}
	m, err := meter.New(config.Meter{Name: "x", Type: "shelly", URL: "http://127.0.0.1/"}, meter.Deps{})
	if err != nil || m == nil {
		t.Fatalf("registered factory: %v", err)
	}
}

func TestHTTPSWithCAFile(t *testing.T) {
	srv := httptest.NewUnstartedServer(&fakeDevice{files: gen1Files(t, "gen1_plugs_shelly.json", "gen1_plugs_status.json")})
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	t.Cleanup(srv.Close)
	// without the CA: a certificate error, said as unreachable
	metertest.WantErr(t, newTestMeter(t, srv.URL, time.UTC, nil), meter.Unreachable, "not reachable")
	// insecure
	metertest.ReadOne(t, newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.Insecure = true }))
	// ca_file with the server's certificate
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pemCert(srv), 0o600); err != nil {
		t.Fatal(err)
	}
	metertest.ReadOne(t, newTestMeter(t, srv.URL, time.UTC, func(c *config.Meter) { c.CAFile = ca }))
}

func pemCert(srv *httptest.Server) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
}

func TestDiscover(t *testing.T) {
	for _, c := range []struct {
		files map[string][]byte
		pass  string
		want  string
	}{
		{gen1Files(t, "gen1_plugs_shelly.json", "gen1_plugs_status.json"), "", "0 meter 0 SHPLG-S channel = 0"},
		{gen1Files(t, "gen1_3em_shelly.json", "gen1_3em_status.json"), "x", "0 emeters 0..2 (three phases) SHEM-3 read as a whole; channel = 0"},
		// the relay's name where the owner gave one (before the device's)
		{withFile(gen1Files(t, "gen1_plugs_shelly.json", "gen1_plugs_status.json"), "/settings", testdata(t, "gen1_plugs_settings.json")), "",
			"0 Gefriertruhe SHPLG-S meter 0; channel = 0"},
		// else the device's own name; a null name changes nothing
		{withFile(gen1Files(t, "gen1_plugs_shelly.json", "gen1_plugs_status.json"), "/settings", []byte(`{"name":"Keller","relays":[{"name":null}]}`)), "",
			"0 Keller SHPLG-S meter 0; channel = 0"},
		{withFile(gen1Files(t, "gen1_plugs_shelly.json", "gen1_plugs_status.json"), "/settings", []byte(`{"name":null,"relays":[{"name":" "}]}`)), "",
			"0 meter 0 SHPLG-S channel = 0"},
		{gen2Files(t, "gen2_plus1pm_shelly.json", "gen2_plus1pm_status.json"), "", "0 switch:0 SNSW-001P16EU channel = 0"},
		{gen2Files(t, "gen2_pro3em_shelly.json", "gen2_pro3em_monophase_status.json"), "",
			"0 em1:0 SPEM-003CEBEU channel = 0|1 em1:1 SPEM-003CEBEU channel = 1|2 em1:2 SPEM-003CEBEU channel = 2"},
	} {
		srv := serve(t, &fakeDevice{files: c.files})
		m := newTestMeter(t, srv.URL, time.UTC, func(cfg *config.Meter) { cfg.Password = c.pass })
		var d meter.Discoverer = m
		devs, err := d.Discover(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, dv := range devs {
			got = append(got, strings.Join([]string{dv.ID, dv.Name, dv.Model, dv.Note}, " "))
		}
		if strings.Join(got, "|") != c.want {
			t.Errorf("Discover:\n got %q\nwant %q", strings.Join(got, "|"), c.want)
		}
	}
	// a Plus 1 without power metering measures nothing
	files := gen2Files(t, "gen2_plus1pm_shelly.json", "gen2_plus1pm_status.json")
	files[gen2StatusPath] = []byte(`{"switch:0":{"id":0,"output":false},"sys":{"unixtime":null}}`)
	srv := serve(t, &fakeDevice{files: files})
	if _, err := newTestMeter(t, srv.URL, time.UTC, nil).Discover(context.Background()); meter.KindOf(err) != meter.Config {
		t.Errorf("Plus 1: %v, want a config error", err)
	}
}
