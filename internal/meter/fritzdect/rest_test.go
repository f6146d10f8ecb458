package fritzdect

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/meter"
)

// A FRITZ!OS 8.2 box is read through the REST API, an older one through
// AHA-HTTP, with the same readings.
func TestRESTAndAHAGiveTheSameReadings(t *testing.T) {
	clk := newClock()
	emu82, srv82 := newEmu(t, EmulatorOptions{FritzOS82: true}, clk)
	emu7, srv7 := newEmu(t, EmulatorOptions{}, clk)
	m82 := newMeter(t, meterCfg(srv82.URL, "home"), clk)
	m7 := newMeter(t, meterCfg(srv7.URL, "home"), clk)
	for round := 0; round < 3; round++ {
		r82, err := m82.Read(bg)
		if err != nil {
			t.Fatal(err)
		}
		r7, err := m7.Read(bg)
		if err != nil {
			t.Fatal(err)
		}
		if len(r82) != 2 || !reflect.DeepEqual(r82, r7) {
			t.Fatalf("round %d: REST %+v\nAHA %+v", round, r82, r7)
		}
		if r82[0].Device != "home/balkon-sued" || r82[0].Voltage == nil || r82[0].Temperature == nil || r82[0].EnergyIn == nil {
			t.Errorf("REST reading %+v", r82[0])
		}
		clk.Add(10 * time.Second)
	}
	s82, s7 := emu82.Stats(), emu7.Stats()
	if s82.Commands["rest:devices"] != 3 || s82.Commands["getdevicelistinfos"] != 0 {
		t.Errorf("8.2 box: %v, want the REST API only", s82.Commands)
	}
	// units learnt in round 1 (4 devices); later rounds ask the 3 with values
	if got := s82.Commands["rest:unit"]; got != 4+3+3 {
		t.Errorf("unit requests %d, want 10", got)
	}
	if s7.Commands["getdevicelistinfos"] != 3 {
		t.Errorf("7.x box: %v", s7.Commands)
	}
	// discover works on both
	d82, err := m82.Discover(bg)
	d7, _ := m7.Discover(bg)
	if err != nil || len(d82) != 3 || !reflect.DeepEqual(d82, d7) {
		t.Errorf("discover REST %+v, AHA %+v, %v", d82, d7, err)
	}
}

func TestRESTSessionSharedAndRenewed(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{FritzOS82: true}, clk)
	a := meterCfg(srv.URL, "balcony")
	a.AIN = EmuAINSolar
	b := meterCfg(srv.URL, "fridge")
	b.AIN = EmuAINFridge
	ma, mb := newMeter(t, a, clk), newMeter(t, b, clk)
	for _, m := range []*Meter{ma, mb} {
		if _, err := m.Read(bg); err != nil {
			t.Fatal(err)
		}
	}
	if s := emu.Stats(); s.Logins != 1 || s.Commands["rest:devices"] != 1 {
		t.Errorf("two meters, one round: %d logins, %d device lists", s.Logins, s.Commands["rest:devices"])
	}
	// the session expires: 401, one new login, the read succeeds
	emu.ExpireSessions()
	clk.Add(10 * time.Second)
	if _, err := ma.Read(bg); err != nil {
		t.Fatal(err)
	}
	if s := emu.Stats(); s.Logins != 2 {
		t.Errorf("logins after expiry %d, want 2", s.Logins)
	}
	// no Smart Home right: an auth error naming it
	emu.SetHomeAuto(false)
	emu.ExpireSessions()
	clk.Add(10 * time.Second)
	_, err := mb.Read(bg)
	wantKind(t, err, meter.Auth)
	if !strings.Contains(err.Error(), "Smart Home right") {
		t.Errorf("message %v", err)
	}
}

func TestRESTUnitDisconnected(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{FritzOS82: true}, clk)
	cfg := meterCfg(srv.URL, "balcony")
	cfg.AIN = EmuAINSolar
	m := newMeter(t, cfg, clk)
	if _, err := m.Read(bg); err != nil {
		t.Fatal(err)
	}
	emu.Faults().Set(emulate.Disconnected)
	clk.Add(10 * time.Second)
	rs, err := m.Read(bg)
	wantKind(t, err, meter.NotPresent)
	if rs != nil || !strings.Contains(err.Error(), "Balkon Süd") {
		t.Errorf("%v %v", rs, err)
	}
	all := newMeter(t, meterCfg(srv.URL, "home"), clk)
	_, err = all.Read(bg)
	wantKind(t, err, meter.NotPresent)
	emu.Faults().Set(emulate.None)
	clk.Add(10 * time.Second)
	if rs, err := m.Read(bg); err != nil || len(rs) != 1 {
		t.Errorf("back: %v %v", rs, err)
	}
	// garbage from the box: bad answers, as over AHA
	for _, f := range []emulate.Fault{emulate.HTML, emulate.Truncated, emulate.Status500} {
		emu.Faults().Set(f)
		clk.Add(10 * time.Second)
		_, err := m.Read(bg)
		wantKind(t, err, meter.BadAnswer)
	}
}

func TestAPISetting(t *testing.T) {
	clk := newClock()
	_, srv7 := newEmu(t, EmulatorOptions{}, clk)
	cfg := meterCfg(srv7.URL, "home")
	cfg.API = "rest"
	_, err := newMeter(t, cfg, clk).Read(bg)
	wantKind(t, err, meter.Config)
	if !strings.Contains(err.Error(), "no smart-home REST API") {
		t.Errorf("message %v", err)
	}
	emu82, srv82 := newEmu(t, EmulatorOptions{FritzOS82: true}, clk)
	cfg = meterCfg(srv82.URL, "home")
	cfg.API = "aha"
	if _, err := newMeter(t, cfg, clk).Read(bg); err != nil {
		t.Fatal(err)
	}
	if s := emu82.Stats(); s.Commands["rest:devices"] != 0 || s.Commands["getdevicelistinfos"] != 1 {
		t.Errorf("api = aha on 8.2: %v", s.Commands)
	}
	// meters of one box must agree on api
	other := meterCfg(srv82.URL, "other")
	other.API = "rest"
	if _, err := New(other, meter.Deps{Log: quiet}); err == nil || !strings.Contains(err.Error(), "api") {
		t.Errorf("disagreeing api: %v", err)
	}
}

// A unit learnt in an earlier round that the box no longer has (a device
// re-paired) is dropped and the device's units are learnt again.
func TestRESTUnitGone(t *testing.T) {
	clk := newClock()
	_, srv := newEmu(t, EmulatorOptions{FritzOS82: true}, clk)
	m := newMeter(t, meterCfg(srv.URL, "home"), clk)
	if _, err := m.Read(bg); err != nil {
		t.Fatal(err)
	}
	uid := "AVM-" + normAIN(EmuAINFridge)
	m.box.mu.Lock()
	m.box.restUnits[uid] = []string{uid + "-9"} // what the box had before
	m.box.mu.Unlock()
	clk.Add(10 * time.Second)
	rs, err := m.Read(bg)
	if err != nil || len(rs) != 1 || rs[0].Device != "home/balkon-sued" {
		t.Fatalf("the round with the gone unit: %+v %v", rs, err)
	}
	clk.Add(10 * time.Second)
	rs, err = m.Read(bg)
	if err != nil || len(rs) != 2 {
		t.Errorf("after learning the units again: %+v %v", rs, err)
	}
}
