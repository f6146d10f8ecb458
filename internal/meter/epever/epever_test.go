package epever

import (
	"context"
	"net/http"
	"net/http/httptest"
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
	cfg.Name, cfg.Type = "charger", "epever"
	if cfg.Timeout.Duration == 0 {
		cfg.Timeout.Duration = 2 * time.Second
	}
	m, err := meter.New(cfg, meter.Deps{Zone: berlin})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m.(*Meter)
}

func TestEmulator(t *testing.T) {
	clk := metertest.NewClock(time.Date(2026, 6, 21, 11, 0, 0, 0, time.UTC))
	e := NewEmulator(emulate.Options{Now: clk.Now, Zone: berlin, Username: "admin", Password: "pw"})
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	m := newMeter(t, config.Meter{URL: srv.URL, Username: "admin", Password: "pw"})
	r := metertest.ReadOne(t, m)
	pp, pv, pi, bv, bi := e.Values(clk.Now())
	if r.Power != pp || pp <= 0 {
		t.Errorf("power %v, want panel power %v", r.Power, pp)
	}
	metertest.Eq(t, "battery voltage", r.Voltage, bv)
	if len(r.Phases) != 3 || r.Phases[0] != bi || r.Phases[1] != pv || r.Phases[2] != pi {
		t.Errorf("values 3-5 %v, want battery current %v, panel voltage %v, panel current %v", r.Phases, bi, pv, pi)
	}
	// night: 0 W, battery still there
	clk.Add(12 * time.Hour)
	r = metertest.ReadOne(t, m)
	if r.Power != 0 || r.Voltage == nil || *r.Voltage != 12.9 {
		t.Errorf("night %+v", r)
	}
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL}), meter.Auth, "401")
}

func TestFaults(t *testing.T) {
	e := NewEmulator(emulate.Options{})
	e.Faults().Delay = 400 * time.Millisecond
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	m := newMeter(t, config.Meter{URL: srv.URL, Timeout: config.Duration{Duration: 150 * time.Millisecond}})
	for _, c := range []struct {
		f    emulate.Fault
		kind meter.Kind
		msg  string
	}{
		{emulate.Slow, meter.Unreachable, "did not answer within"}, // the Epever timeout
		{emulate.Offline, meter.Unreachable, "not reachable"},
		{emulate.HTML, meter.BadAnswer, "HTML"},
		{emulate.Truncated, meter.BadAnswer, "truncated"},
		{emulate.Status500, meter.BadAnswer, "500"},
	} {
		e.Faults().Set(c.f)
		metertest.WantErr(t, m, c.kind, c.msg)
	}
	e.Faults().Set(emulate.None)
	metertest.ReadOne(t, m)
}

func TestStringsAndMissingFields(t *testing.T) {
	for _, c := range []struct {
		body string
		ok   bool
		msg  string
	}{
		{`{"PanelP":"12.50","PanelV":"18.1","PanelI":"0.69","BatteryV":"13.2","BatteryI":"0.92"}`, true, ""},
		{`{"PanelP":12.5,"BatteryV":13.2}`, false, "without BatteryI, PanelV, PanelI"},
		{`{"PanelP":"n/a","PanelV":1,"PanelI":1,"BatteryV":1,"BatteryI":1}`, false, "unexpected shape"},
	} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != Path {
				t.Errorf("asked %s", r.URL.Path)
			}
			w.Write([]byte(c.body))
		}))
		m := newMeter(t, config.Meter{URL: srv.URL})
		if c.ok {
			if r := metertest.ReadOne(t, m); r.Power != 12.5 || r.Phases[2] != 0.69 {
				t.Errorf("%s: %+v", c.body, r)
			}
		} else {
			metertest.WantErr(t, m, meter.BadAnswer, c.msg)
		}
		srv.Close()
	}
}
