package tasmota

import (
	"context"
	"encoding/base64"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/metertest"
)

var berlin = metertest.MustZone("Europe/Berlin")

func newMeter(t *testing.T, cfg config.Meter) *Meter {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "plug"
	}
	cfg.Type = "tasmota"
	if cfg.Timeout.Duration == 0 {
		cfg.Timeout.Duration = 2 * time.Second
	}
	m, err := meter.New(cfg, meter.Deps{Zone: berlin})
	if err != nil {
		t.Fatalf("meter.New: %v", err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m.(*Meter)
}

// serveFile answers every request with a test data file and status code,
// after checking the request is Status 8 with the expected credentials.
func serveFile(t *testing.T, file string, code int, wantUser, wantPass string) *httptest.Server {
	t.Helper()
	body, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/cm" || q.Get("cmnd") != "Status 8" {
			t.Errorf("request %s, want /cm?cmnd=Status 8", r.URL)
		}
		if q.Get("user") != wantUser || q.Get("password") != wantPass {
			t.Errorf("user=%q password=%q, want %q %q", q.Get("user"), q.Get("password"), wantUser, wantPass)
		}
		w.WriteHeader(code)
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestScalarAnswerAndLocalTime(t *testing.T) {
	srv := serveFile(t, "status8_single.json", 200, "", "")
	m := newMeter(t, config.Meter{URL: srv.URL + "/"})
	r := metertest.ReadOne(t, m)
	// Power is whole watts (63); V × I × PF = 229 × 0.310 × 0.89 is finer
	if r.Power != 63.18 || r.Device != "plug" {
		t.Errorf("power %v device %q", r.Power, r.Device)
	}
	metertest.Eq(t, "energy in", r.EnergyIn, 842117)
	metertest.Eq(t, "voltage", r.Voltage, 229)
	if r.EnergyOut != nil || r.Phases != nil || r.Temperature != nil {
		t.Errorf("unexpected fields: %+v", r)
	}
	// 01:59:58 CET on the night the clocks go forward is 00:59:58 UTC
	want := time.Date(2026, 3, 29, 0, 59, 58, 0, time.UTC)
	if r.DeviceTime == nil || !r.DeviceTime.Equal(want) {
		t.Errorf("device time %v, want %v", r.DeviceTime, want)
	}
}

func TestArraysPickChannel(t *testing.T) {
	srv := serveFile(t, "status8_2ch_totals.json", 200, "", "")
	m := newMeter(t, config.Meter{URL: srv.URL, Channel: 1})
	r := metertest.ReadOne(t, m)
	if r.Power != 15.06 {
		t.Errorf("power %v, want channel 1's 15.06", r.Power)
	}
	if len(r.Phases) != 2 || r.Phases[0] != 120.4 || r.Phases[1] != 15.06 {
		t.Errorf("phases %v", r.Phases)
	}
	metertest.Eq(t, "energy in", r.EnergyIn, 3250)
	metertest.Eq(t, "energy out", r.EnergyOut, 0)
	metertest.Eq(t, "voltage", r.Voltage, 230)
	// summer time: 13:05:10 CEST = 11:05:10 UTC
	if want := time.Date(2026, 7, 14, 11, 5, 10, 0, time.UTC); !r.DeviceTime.Equal(want) {
		t.Errorf("device time %v, want %v", r.DeviceTime, want)
	}

	m0 := newMeter(t, config.Meter{URL: srv.URL})
	r = metertest.ReadOne(t, m0)
	if r.Power != 120.4 {
		t.Errorf("channel 0 power %v", r.Power)
	}
	metertest.Eq(t, "energy in ch0", r.EnergyIn, 12500)
	metertest.Eq(t, "energy out ch0", r.EnergyOut, 750)
}

func TestArrayPowerScalarTotal(t *testing.T) {
	// A scalar Total on a two-channel device counts both channels: it is no
	// counter of channel 0 and must not be reported as one.
	srv := serveFile(t, "status8_2ch_sum.json", 200, "", "")
	r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL}))
	if r.Power != 8.15 || r.EnergyIn != nil {
		t.Errorf("power %v energy %v, want 8.15 and no counter", r.Power, r.EnergyIn)
	}
	metertest.Eq(t, "voltage", r.Voltage, 231)
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL, Channel: 2}), meter.Config, "channel = 2 does not exist")
}

func TestScalarDeviceHasOneChannel(t *testing.T) {
	srv := serveFile(t, "status8_single.json", 200, "", "")
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL, Channel: 1}), meter.Config, "1 channel")
}

func TestAuthSentAndRefused(t *testing.T) {
	srv := serveFile(t, "status8_single.json", 200, "admin", "p&ss word€")
	metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, Password: "p&ss word€"}))

	srv401 := serveFile(t, "warning.json", 401, "admin", "wrong")
	m := newMeter(t, config.Meter{URL: srv401.URL, Password: "wrong"})
	metertest.WantErr(t, m, meter.Auth, "401")

	srv200 := serveFile(t, "warning.json", 200, "", "")
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv200.URL}), meter.Auth, "demands a user and password")
	srv200b := serveFile(t, "warning.json", 200, "admin", "old")
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv200b.URL, Password: "old"}), meter.Auth, `refused user "admin"`)
}

func TestNoEnergySection(t *testing.T) {
	// a read head without [meters.sml]: the common script's group is read
	srv := serveFile(t, "status8_sml.json", 200, "", "")
	r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL}))
	if r.Power != -412 {
		t.Errorf("power %v, want -412 (Power_curr's sign: export)", r.Power)
	}
	metertest.Eq(t, "import", r.EnergyIn, 9876543.2)
	metertest.Eq(t, "export", r.EnergyOut, 123400)
	// neither ENERGY nor an SML group
	srv1 := serveBody(t, `{"StatusSNS":{"Time":"2026-02-01T08:30:00","AM2301":{"Temperature":20.1,"Humidity":40}}}`)
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv1.URL}), meter.Config, "no ENERGY section in Status 8 (it reports: AM2301)")
	srv2 := serveFile(t, "unknown_command.json", 200, "", "")
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv2.URL}), meter.BadAnswer, "does not know the command")
}

func TestThresholdAndInvert(t *testing.T) {
	srv := serveFile(t, "status8_single.json", 200, "", "")
	r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, PowerThreshold: 70}))
	if r.Power != 0 {
		t.Errorf("power %v below threshold, want 0", r.Power)
	}
	r = metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, Invert: true}))
	if r.Power != -63.18 || r.EnergyIn != nil {
		t.Errorf("inverted: power %v in %v", r.Power, r.EnergyIn)
	}
	metertest.Eq(t, "inverted energy out", r.EnergyOut, 842117)
}

func startEmulator(t *testing.T, ec EmulatorConfig) (*Emulator, *httptest.Server) {
	t.Helper()
	e := NewEmulator(ec)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv
}

func TestEmulatorSingleChannel(t *testing.T) {
	clk := metertest.NewClock(time.Date(2026, 11, 26, 12, 0, 5, 0, time.UTC))
	_, srv := startEmulator(t, EmulatorConfig{Now: clk.Now, Zone: berlin})
	m := newMeter(t, config.Meter{URL: srv.URL})
	r := metertest.ReadOne(t, m)
	// the emulator reports whole watts; V × I × PF is within 0.15 W
	if want := emulate.Fridge(clk.Now()); math.Abs(r.Power-want) > 0.15 || r.Power == math.Round(r.Power) {
		t.Errorf("power %v, want the fridge's %v from V × I × PF", r.Power, want)
	}
	metertest.Eq(t, "energy", r.EnergyIn, 1290396)
	if r.DeviceTime == nil || !r.DeviceTime.Equal(clk.Now()) {
		t.Errorf("device time %v, want %v (local time read back in the zone)", r.DeviceTime, clk.Now())
	}
	clk.Add(time.Hour)
	r = metertest.ReadOne(t, m)
	if *r.EnergyIn <= 1290396 {
		t.Errorf("counter did not grow: %v", *r.EnergyIn)
	}
}

func TestEmulatorTwoChannels(t *testing.T) {
	ec, err := ParseProfile("constant,2ch")
	if err != nil {
		t.Fatal(err)
	}
	_, srv := startEmulator(t, ec)
	r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, Channel: 1}))
	if math.Abs(r.Power-42) > 0.15 || len(r.Phases) != 2 || r.Phases[0] != 100 {
		t.Errorf("power %v phases %v", r.Power, r.Phases)
	}
	metertest.Eq(t, "ch1 energy", r.EnergyIn, 1290396+52110)
	if _, err := ParseProfile("3ch"); err == nil {
		t.Error("ParseProfile accepted 3ch")
	}
}

func TestEmulatorAuth(t *testing.T) {
	for _, legacyAuth := range []bool{false, true} {
		_, srv := startEmulator(t, EmulatorConfig{Password: "secret", LegacyAuth: legacyAuth})
		metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, Password: "secret"}))
		metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL, Password: "wrong"}), meter.Auth, "admin")
		metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL}), meter.Auth, "")
	}
}

func TestEmulatorFaults(t *testing.T) {
	e, srv := startEmulator(t, EmulatorConfig{})
	e.Faults().Delay = 400 * time.Millisecond
	m := newMeter(t, config.Meter{URL: srv.URL, Timeout: config.Duration{Duration: 150 * time.Millisecond}})
	for _, c := range []struct {
		f    emulate.Fault
		kind meter.Kind
		msg  string
	}{
		{emulate.Offline, meter.Unreachable, "not reachable"},
		{emulate.Slow, meter.Unreachable, "did not answer within"},
		{emulate.HTML, meter.BadAnswer, "HTML"},
		{emulate.Truncated, meter.BadAnswer, "truncated"},
		{emulate.Status401, meter.Auth, "401"},
		{emulate.Status403, meter.Auth, "403"},
		{emulate.Status500, meter.BadAnswer, "500"},
	} {
		t.Run(string(c.f), func(t *testing.T) {
			e.Faults().Set(c.f)
			metertest.WantErr(t, m, c.kind, c.msg)
		})
	}
	e.Faults().Set(emulate.None)
	metertest.ReadOne(t, m)
}

func TestEmulatorCounterReset(t *testing.T) {
	clk := metertest.NewClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	e, srv := startEmulator(t, EmulatorConfig{Load: "constant", Now: clk.Now})
	m := newMeter(t, config.Meter{URL: srv.URL})
	metertest.ReadOne(t, m)
	e.Faults().Set(emulate.CounterReset)
	clk.Add(time.Minute)
	r := metertest.ReadOne(t, m)
	metertest.Eq(t, "energy after reset", r.EnergyIn, 0)
	clk.Add(time.Hour)
	r = metertest.ReadOne(t, m)
	metertest.Eq(t, "energy counts on from 0", r.EnergyIn, 100)
}

func TestBadConfig(t *testing.T) {
	_, err := meter.New(config.Meter{Name: "x", Type: "tasmota", URL: "ftp://x"}, meter.Deps{})
	if !config.IsConfigError(err) {
		t.Errorf("bad url: %v, want a config error", err)
	}
	_, err = meter.New(config.Meter{Name: "x", Type: "tasmota", URL: "http://127.0.0.1", CAFile: "/nonexistent.pem"}, meter.Deps{})
	if !config.IsConfigError(err) || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("bad ca_file: %v", err)
	}
}

func TestTLSOptions(t *testing.T) {
	body, _ := os.ReadFile("testdata/status8_single.json")
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(body) }))
	defer srv.Close()
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL}), meter.Unreachable, "not reachable")
	metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, Insecure: true}))

	pem := "-----BEGIN CERTIFICATE-----\n" + base64Lines(srv.Certificate().Raw) + "-----END CERTIFICATE-----\n"
	ca := t.TempDir() + "/ca.pem"
	if err := os.WriteFile(ca, []byte(pem), 0o600); err != nil {
		t.Fatal(err)
	}
	metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, CAFile: ca}))
}

func base64Lines(der []byte) string {
	s := base64.StdEncoding.EncodeToString(der)
	var b strings.Builder
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	b.WriteString(s + "\n")
	return b.String()
}

func TestPasswordNotInErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	_, err = newMeter(t, config.Meter{URL: "http://" + addr, Password: "topsecret"}).Read(context.Background())
	if meter.KindOf(err) != meter.Unreachable || strings.Contains(err.Error(), "topsecret") {
		t.Errorf("error %v: want unreachable, without the password", err)
	}
}
