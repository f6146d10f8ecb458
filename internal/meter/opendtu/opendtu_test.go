package opendtu

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

func newMeter(t *testing.T, cfg config.Meter) *Meter {
	t.Helper()
	cfg.Name, cfg.Type = "roof", "opendtu"
	if cfg.Timeout.Duration == 0 {
		cfg.Timeout.Duration = 2 * time.Second
	}
	m, err := meter.New(cfg, meter.Deps{Zone: berlin})
	if err != nil {
		t.Fatalf("meter.New: %v", err)
	}
	return m.(*Meter)
}

// serve answers /api/livedata/status with a test data file; it checks the
// inv parameter and, when pass is set, Basic auth as admin.
func serve(t *testing.T, file, wantInv, pass string) *httptest.Server {
	t.Helper()
	body, err := os.ReadFile("testdata/" + file)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/livedata/status" {
			http.NotFound(w, r)
			return
		}
		if got := r.URL.Query().Get("inv"); got != wantInv {
			t.Errorf("inv=%q, want %q", got, wantInv)
		}
		if pass != "" {
			if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != pass {
				http.Error(w, "Unauthorized", http.StatusUnauthorized)
				return
			}
		}
		w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestTotal(t *testing.T) {
	srv := serve(t, "status_all.json", "", "")
	r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL}))
	if r.Power != 512.3 || r.Device != "roof" {
		t.Errorf("power %v device %q", r.Power, r.Device)
	}
	metertest.Eq(t, "total energy", r.EnergyIn, 3456789)
}

func TestOneInverter(t *testing.T) {
	srv := serve(t, "status_inv.json", "114184020874", "s3cret")
	r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, Serial: "114184020874", Password: "s3cret"}))
	if r.Power != 512.3 {
		t.Errorf("power %v", r.Power)
	}
	metertest.Eq(t, "energy", r.EnergyIn, 3017402)
	metertest.Eq(t, "temperature", r.Temperature, 41.3)
	metertest.Eq(t, "voltage", r.Voltage, 232.1)
	if len(r.Phases) != 2 || r.Phases[0] != 270.1 || r.Phases[1] != 261.5 {
		t.Errorf("DC inputs %v", r.Phases)
	}
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL, Serial: "114184020874", Password: "wrong"}), meter.Auth, `refused access for user "admin" (HTTP 401)`)
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL, Serial: "114184020874"}), meter.Auth, "without a password")
}

func TestUnknownSerial(t *testing.T) {
	srv := serve(t, "status_all.json", "999", "")
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL, Serial: "999"}), meter.Config, "no inverter with serial \"999\" (it has: 114184020874, 112182211234)")
	empty := serve(t, "status_empty.json", "", "")
	metertest.WantErr(t, newMeter(t, config.Meter{URL: empty.URL}), meter.Config, "no inverters configured")
}

func TestCounterResetPassedAsZero(t *testing.T) {
	srv := serve(t, "status_inv_restart.json", "114184020874", "")
	r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, Serial: "114184020874"}))
	if r.Power != 35.7 {
		t.Errorf("power %v", r.Power)
	}
	metertest.Eq(t, "energy after the inverter's restart", r.EnergyIn, 0)
	all := serve(t, "status_inv_restart.json", "", "")
	r = metertest.ReadOne(t, newMeter(t, config.Meter{URL: all.URL}))
	metertest.Eq(t, "total after restart", r.EnergyIn, 0)
}

func TestUnreachable(t *testing.T) {
	// evening: the inverter went to sleep, its last values persist
	srv := serve(t, "status_evening.json", "114184020874", "")
	r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, Serial: "114184020874"}))
	if r.Power != 0 || r.Temperature != nil || len(r.Phases) != 2 || r.Phases[0] != 0 {
		t.Errorf("sleeping inverter: %+v, want 0 W and no temperature", r)
	}
	metertest.Eq(t, "sleeping inverter keeps the counter", r.EnergyIn, 3018146)

	// night after a DTU restart: all zero, the 0 counter is no counter
	night := serve(t, "status_night_after_boot.json", "114184020874", "")
	r = metertest.ReadOne(t, newMeter(t, config.Meter{URL: night.URL, Serial: "114184020874"}))
	if r.Power != 0 || r.EnergyIn != nil {
		t.Errorf("night after boot: %+v, want 0 W and no counter", r)
	}
	nightAll := serve(t, "status_night_after_boot.json", "", "")
	r = metertest.ReadOne(t, newMeter(t, config.Meter{URL: nightAll.URL}))
	if r.Power != 0 || r.EnergyIn != nil {
		t.Errorf("night after boot, total: %+v", r)
	}
}

func TestDiscover(t *testing.T) {
	srv := serve(t, "status_all.json", "", "")
	devs, err := newMeter(t, config.Meter{URL: srv.URL}).Discover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(devs) != 2 || devs[0].ID != "114184020874" || devs[0].Name != "Dach Ost" ||
		!strings.Contains(devs[0].Note, "reachable, producing") || !strings.Contains(devs[1].Note, "not reachable") {
		t.Errorf("devices %+v", devs)
	}
}

func startEmulator(t *testing.T, o emulate.Options) (*Emulator, string) {
	t.Helper()
	e := NewEmulator(o)
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv.URL
}

func TestEmulator(t *testing.T) {
	clk := metertest.NewClock(time.Date(2026, 6, 21, 11, 0, 0, 0, time.UTC))
	e, url := startEmulator(t, emulate.Options{Now: clk.Now, Zone: berlin, Password: "pw"})
	one := newMeter(t, config.Meter{URL: url, Serial: Serial800, Password: "pw"})
	total := newMeter(t, config.Meter{URL: url, Password: "pw"})
	r := metertest.ReadOne(t, one)
	if want := emulate.Solar(clk.Now(), berlin, 780); r.Power != want || want <= 0 {
		t.Errorf("power %v, want %v", r.Power, want)
	}
	metertest.Eq(t, "counter", r.EnergyIn, 2345678)
	if len(r.Phases) != 2 || r.Temperature == nil || r.Voltage == nil {
		t.Errorf("reading %+v", r)
	}
	tr := metertest.ReadOne(t, total)
	want := emulate.Solar(clk.Now(), berlin, 780) + emulate.Solar(clk.Now(), berlin, 390)
	if d := tr.Power - want; d > 0.051 || d < -0.051 {
		t.Errorf("total %v, want %v", tr.Power, want)
	}
	metertest.WantErr(t, newMeter(t, config.Meter{URL: url, Serial: Serial800}), meter.Auth, "401")
	metertest.WantErr(t, newMeter(t, config.Meter{URL: url, Serial: "1", Password: "pw"}), meter.Config, "no inverter with serial")

	// counter reset: YieldTotal drops to 0, is passed on, never negative
	e.Faults().Set(emulate.CounterReset)
	clk.Add(10 * time.Second)
	r = metertest.ReadOne(t, one)
	metertest.Eq(t, "after counter reset", r.EnergyIn, 0)
	if r.Power <= 0 {
		t.Errorf("power after reset %v", r.Power)
	}
	clk.Add(time.Hour)
	r = metertest.ReadOne(t, one)
	if r.EnergyIn == nil || *r.EnergyIn <= 0 || *r.EnergyIn > 780 {
		t.Errorf("counter after an hour from 0: %v", r.EnergyIn)
	}
	e.Faults().Set(emulate.None)

	// night: unreachable, values persist → 0 W, counter kept
	clk.Add(12 * time.Hour)
	r = metertest.ReadOne(t, one)
	if r.Power != 0 || r.EnergyIn == nil || *r.EnergyIn <= 0 {
		t.Errorf("night: %+v", r)
	}
	if tr := metertest.ReadOne(t, total); tr.Power != 0 || tr.EnergyIn == nil {
		t.Errorf("night total: %+v", tr)
	}
}

func TestEmulatorStale(t *testing.T) {
	clk := metertest.NewClock(time.Date(2026, 6, 21, 11, 0, 0, 0, time.UTC))
	e, url := startEmulator(t, emulate.Options{Now: clk.Now, Zone: berlin})
	m := newMeter(t, config.Meter{URL: url, Serial: Serial400})
	first := metertest.ReadOne(t, m)
	e.Faults().Set(emulate.Stale)
	clk.Add(time.Minute)
	if r := metertest.ReadOne(t, m); r.Power != first.Power {
		t.Errorf("frozen: %v, want %v", r.Power, first.Power)
	}
	clk.Add(StaleAfter)
	if r := metertest.ReadOne(t, m); r.Power != 0 || r.EnergyIn == nil {
		t.Errorf("stale: %+v, want 0 W and the counter", r)
	}
}

func TestEmulatorFaults(t *testing.T) {
	e, url := startEmulator(t, emulate.Options{})
	e.Faults().Delay = 400 * time.Millisecond
	m := newMeter(t, config.Meter{URL: url, Timeout: config.Duration{Duration: 150 * time.Millisecond}})
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
			metertest.WantErr(t, m, c.kind, "OpenDTU at ")
		})
	}
	e.Faults().Set(emulate.None)
	metertest.ReadOne(t, m)
}

func TestTotalOfOneInverterCarriesItsTemperature(t *testing.T) {
	clk := metertest.NewClock(time.Date(2026, 6, 21, 11, 0, 0, 0, time.UTC))
	e := NewSingleEmulator(emulate.Options{Now: clk.Now, Zone: berlin})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	total := newMeter(t, config.Meter{URL: srv.URL})
	tr := metertest.ReadOne(t, total)
	one := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, Serial: Serial800}))
	if tr.Temperature == nil || one.Temperature == nil || *tr.Temperature != *one.Temperature || *tr.Temperature < 20 {
		t.Errorf("total temperature %v, inverter's %v", tr.Temperature, one.Temperature)
	}
	if tr.Power != one.Power {
		t.Errorf("total %v, inverter %v", tr.Power, one.Power)
	}
	// two inverters: a total has no one temperature
	_, url := startEmulator(t, emulate.Options{Now: clk.Now, Zone: berlin})
	if tr := metertest.ReadOne(t, newMeter(t, config.Meter{URL: url})); tr.Temperature != nil {
		t.Errorf("total of two inverters with temperature %v", *tr.Temperature)
	}
	// night: asleep, no temperature (last values are stale)
	clk.Add(12 * time.Hour)
	if tr := metertest.ReadOne(t, total); tr.Temperature != nil || tr.Power != 0 {
		t.Errorf("night total %+v", tr)
	}
}
