package ahoydtu

import (
	"context"
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

func newMeter(t *testing.T, cfg config.Meter, clk *metertest.Clock) *Meter {
	t.Helper()
	cfg.Name, cfg.Type = "balcony", "ahoydtu"
	if cfg.Timeout.Duration == 0 {
		cfg.Timeout.Duration = 2 * time.Second
	}
	m, err := meter.New(cfg, meter.Deps{Zone: berlin})
	if err != nil {
		t.Fatalf("meter.New: %v", err)
	}
	am := m.(*Meter)
	if clk != nil {
		am.now = clk.Now
	}
	return am
}

// serveFiles answers each path with a test data file.
func serveFiles(t *testing.T, files map[string]string) *httptest.Server {
	t.Helper()
	bodies := map[string][]byte{}
	for path, f := range files {
		b, err := os.ReadFile("testdata/" + f)
		if err != nil {
			t.Fatal(err)
		}
		bodies[path] = b
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

const tsProducing = 1782900005 // ts_last_success in inverter_producing.json

func TestProducing(t *testing.T) {
	srv := serveFiles(t, map[string]string{"/api/inverter/id/0": "inverter_producing.json"})
	clk := metertest.NewClock(time.Unix(tsProducing+12, 0))
	r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL}, clk))
	if r.Power != 427.4 {
		t.Errorf("power %v", r.Power)
	}
	metertest.Eq(t, "temperature", r.Temperature, 38.6)
	metertest.Eq(t, "voltage", r.Voltage, 229.8)
	metertest.Eq(t, "energy", r.EnergyIn, 812544)
	if len(r.Phases) != 2 || r.Phases[0] != 229.1 || r.Phases[1] != 219.8 {
		t.Errorf("DC inputs %v", r.Phases)
	}
	if r.DeviceTime == nil || r.DeviceTime.Unix() != tsProducing || r.DeviceTime.Location() != time.UTC {
		t.Errorf("device time %v", r.DeviceTime)
	}
}

func TestStaleTimestampReadsZero(t *testing.T) {
	srv := serveFiles(t, map[string]string{"/api/inverter/id/0": "inverter_producing.json"})
	clk := metertest.NewClock(time.Unix(tsProducing+5, 0))
	m := newMeter(t, config.Meter{URL: srv.URL}, clk)
	metertest.ReadOne(t, m)
	clk.Add(StaleAfter - time.Second)
	if r := metertest.ReadOne(t, m); r.Power != 427.4 {
		t.Errorf("before StaleAfter: power %v, want the value still", r.Power)
	}
	clk.Add(time.Second)
	r := metertest.ReadOne(t, m)
	if r.Power != 0 || r.Temperature != nil || r.Voltage != nil {
		t.Errorf("stale: power %v temp %v voltage %v, want 0 W and no temperature/voltage", r.Power, r.Temperature, r.Voltage)
	}
	if len(r.Phases) != 2 || r.Phases[0] != 0 || r.Phases[1] != 0 {
		t.Errorf("stale DC inputs %v, want zeros", r.Phases)
	}
	metertest.Eq(t, "stale energy keeps the counter", r.EnergyIn, 812544)

	// a first read long after the last success: asleep at once
	clk2 := metertest.NewClock(time.Unix(tsProducing, 0).Add(MaxAge + time.Minute))
	if r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL}, clk2)); r.Power != 0 {
		t.Errorf("old ts_last_success: power %v, want 0", r.Power)
	}
}

func TestNeverReached(t *testing.T) {
	srv := serveFiles(t, map[string]string{"/api/inverter/id/1": "inverter_fresh.json"})
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL, Channel: 1}, nil), meter.NotPresent, "Garage")
}

func TestNotFoundAndBadShapes(t *testing.T) {
	srv := serveFiles(t, map[string]string{"/api/inverter/id/5": "not_found.json", "/api/inverter/id/0": "short_ch.json"})
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL, Channel: 5}, nil), meter.Config, "no inverter with id 5")
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL}, nil), meter.BadAnswer, "ch[0] too short")
	// an old firmware without this endpoint
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL, Channel: 2}, nil), meter.BadAnswer, "404")
}

func TestInvertAndThreshold(t *testing.T) {
	srv := serveFiles(t, map[string]string{"/api/inverter/id/0": "inverter_producing.json"})
	clk := metertest.NewClock(time.Unix(tsProducing, 0))
	r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, Invert: true}, clk))
	if r.Power != -427.4 || r.EnergyIn != nil || r.Phases[0] != -229.1 {
		t.Errorf("inverted: %+v", r)
	}
	metertest.Eq(t, "inverted: production as export", r.EnergyOut, 812544)
	r = metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, PowerThreshold: 500}, clk))
	if r.Power != 0 {
		t.Errorf("threshold: %v", r.Power)
	}
}

func TestDiscover(t *testing.T) {
	srv := serveFiles(t, map[string]string{"/api/inverter/list": "list.json"})
	devs, err := newMeter(t, config.Meter{URL: srv.URL}, nil).Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].ID != "0" || devs[0].Name != "Balkon" || devs[0].Model != "serial 116181234567" || !strings.Contains(devs[1].Note, "disabled") {
		t.Errorf("devices %+v", devs)
	}
}

func startEmulator(t *testing.T, clk *metertest.Clock) (*Emulator, string) {
	t.Helper()
	e := NewEmulator(clk.Now, berlin)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv.URL
}

func TestEmulatorDayAndNight(t *testing.T) {
	// 14:00 CEST at midsummer: the sun is up
	clk := metertest.NewClock(time.Date(2026, 6, 21, 12, 0, 0, 0, time.UTC))
	_, url := startEmulator(t, clk)
	m := newMeter(t, config.Meter{URL: url}, clk)
	r := metertest.ReadOne(t, m)
	if want := emulate.Solar(clk.Now(), berlin, 580); r.Power != want || want <= 0 {
		t.Errorf("power %v, want the solar curve's %v", r.Power, want)
	}
	metertest.Eq(t, "counter", r.EnergyIn, 1234567)
	if len(r.Phases) != 2 || r.Phases[0] <= 0 || r.Temperature == nil {
		t.Errorf("reading %+v", r)
	}
	// the second inverter
	if r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: url, Channel: 1}, clk)); r.Power <= 0 || len(r.Phases) != 1 {
		t.Errorf("inverter 1: %+v", r)
	}
	// night: values persist, ts_last_success stands still → 0 W, counter kept
	clk.Add(11 * time.Hour)
	r = metertest.ReadOne(t, m)
	if r.Power != 0 || r.EnergyIn == nil || *r.EnergyIn < 1234567 {
		t.Errorf("night: %+v", r)
	}
	if r.DeviceTime == nil || r.DeviceTime.After(clk.Now().Add(-time.Hour)) {
		t.Errorf("night: device time %v should be the evening's last success", r.DeviceTime)
	}
	metertest.WantErr(t, newMeter(t, config.Meter{URL: url, Channel: 7}, clk), meter.Config, "no inverter with id 7")
}

func TestEmulatorStartedAtNight(t *testing.T) {
	clk := metertest.NewClock(time.Date(2026, 12, 1, 1, 0, 0, 0, time.UTC))
	_, url := startEmulator(t, clk)
	metertest.WantErr(t, newMeter(t, config.Meter{URL: url}, clk), meter.NotPresent, "since it started")
}

func TestEmulatorStaleFault(t *testing.T) {
	clk := metertest.NewClock(time.Date(2026, 6, 21, 10, 0, 0, 0, time.UTC))
	e, url := startEmulator(t, clk)
	m := newMeter(t, config.Meter{URL: url}, clk)
	first := metertest.ReadOne(t, m)
	e.Faults().Set(emulate.Stale)
	clk.Add(time.Minute)
	if r := metertest.ReadOne(t, m); r.Power != first.Power {
		t.Errorf("frozen values: %v, want %v", r.Power, first.Power)
	}
	clk.Add(StaleAfter)
	if r := metertest.ReadOne(t, m); r.Power != 0 || r.EnergyIn == nil {
		t.Errorf("stale: %+v, want 0 W with the counter", r)
	}
	e.Faults().Set(emulate.None)
	clk.Add(PollInterval)
	if r := metertest.ReadOne(t, m); r.Power <= 0 {
		t.Errorf("after the fault: power %v", r.Power)
	}
}

func TestEmulatorFaults(t *testing.T) {
	clk := metertest.NewClock(time.Date(2026, 6, 21, 10, 0, 0, 0, time.UTC))
	e, url := startEmulator(t, clk)
	e.Faults().Delay = 400 * time.Millisecond
	m := newMeter(t, config.Meter{URL: url, Timeout: config.Duration{Duration: 150 * time.Millisecond}}, clk)
	for _, c := range []struct {
		f    emulate.Fault
		kind meter.Kind
	}{
		{emulate.Offline, meter.Unreachable}, {emulate.Slow, meter.Unreachable}, {emulate.HTML, meter.BadAnswer},
		{emulate.Truncated, meter.BadAnswer}, {emulate.Status401, meter.Auth}, {emulate.Status403, meter.Auth},
		{emulate.Status500, meter.BadAnswer},
	} {
		t.Run(string(c.f), func(t *testing.T) {
			e.Faults().Set(c.f)
			metertest.WantErr(t, m, c.kind, "AhoyDTU at ")
		})
	}
	e.Faults().Set(emulate.None)
	metertest.ReadOne(t, m)
}
