package fritzdect

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
	"sync"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/metertest"
)

var bg = context.Background()

func TestReadOneAIN(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{}, clk)
	cfg := meterCfg(srv.URL, "balcony")
	cfg.AIN = EmuAINSolar
	m := newMeter(t, cfg, clk)
	rs, err := m.Read(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 {
		t.Fatalf("%d readings, want 1", len(rs))
	}
	r := rs[0]
	if r.Device != "balcony" {
		t.Errorf("device %q, want the meter's name", r.Device)
	}
	want := emu.PowerAt(EmuAINSolar, clk.Now().Truncate(10*time.Second))
	if want <= 0 || math.Abs(r.Power-want) > 0.0005 {
		t.Errorf("power %v W, want %v W", r.Power, want)
	}
	if r.EnergyIn == nil || *r.EnergyIn < 412345 || r.EnergyOut != nil {
		t.Errorf("energy in %v out %v", r.EnergyIn, r.EnergyOut)
	}
	if r.Voltage == nil || *r.Voltage < 225 || *r.Voltage > 235 {
		t.Errorf("voltage %v", r.Voltage)
	}
	if r.Temperature == nil || r.DeviceTime != nil || r.Backfilled {
		t.Errorf("temperature %v devicetime %v backfilled %v", r.Temperature, r.DeviceTime, r.Backfilled)
	}
	if !r.Time.Equal(clk.Now()) || r.Time.Location() != time.UTC {
		t.Errorf("time %v, want %v UTC", r.Time, clk.Now())
	}
	if err := r.Validate(); err != nil {
		t.Error(err)
	}
}

func TestPasswordWithEuroOverMD5AndPBKDF2(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    EmulatorOptions
	}{
		{"pbkdf2", EmulatorOptions{}},
		{"md5", EmulatorOptions{MD5Only: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			emu, srv := newEmu(t, tc.o, nil)
			cfg := meterCfg(srv.URL, "fridge")
			cfg.AIN = EmuAINFridge
			m := newMeter(t, cfg, nil)
			if _, err := m.Read(bg); err != nil {
				t.Fatal(err)
			}
			if s := emu.Stats(); s.Logins != 1 || s.FailedLogins != 0 {
				t.Errorf("stats %+v", s)
			}
		})
	}
	// MD5 maps € to '.', so the box takes ".uro" for "€uro" as well; PBKDF2
	// uses UTF-8 and must not.
	_, srv := newEmu(t, EmulatorOptions{Username: testUser, Password: "€uro"}, nil)
	cfg := meterCfg(srv.URL, "x")
	cfg.Password = ".uro"
	m := newMeter(t, cfg, nil)
	if _, err := m.Read(bg); meter.KindOf(err) != meter.Auth {
		t.Errorf("PBKDF2 with .uro for €uro: %v, want an auth error", err)
	}
}

func TestBoxWithoutLoginProtection(t *testing.T) {
	emu := NewEmulator(EmulatorOptions{})
	srv := httptest.NewServer(emu)
	defer srv.Close()
	cfg := meterCfg(srv.URL, "fridge")
	cfg.AIN = EmuAINFridge
	m := newMeter(t, cfg, nil)
	if _, err := m.Read(bg); err != nil {
		t.Fatal(err)
	}
	if s := emu.Stats(); s.LoginAttempts != 0 || s.LoginRequests != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestSessionExpiryReloginOnce(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{SessionIdle: 10 * time.Minute}, clk)
	cfg := meterCfg(srv.URL, "fridge")
	cfg.AIN = EmuAINFridge
	m := newMeter(t, cfg, clk)
	for i := 0; i < 3; i++ {
		if _, err := m.Read(bg); err != nil {
			t.Fatal(err)
		}
		clk.Add(10 * time.Second)
	}
	if s := emu.Stats(); s.Logins != 1 {
		t.Fatalf("logins %d after 3 rounds, want 1", s.Logins)
	}
	clk.Add(11 * time.Minute) // the session times out on the box
	if _, err := m.Read(bg); err != nil {
		t.Fatalf("read after expiry: %v", err)
	}
	s := emu.Stats()
	// The 403 answer is not counted as a served command.
	if s.Logins != 2 || s.Forbidden != 1 || s.Commands["getdevicelistinfos"] != 4 {
		t.Errorf("after expiry: logins %d (want 2), 403s %d (want 1), lists %d (want 4)", s.Logins, s.Forbidden, s.Commands["getdevicelistinfos"])
	}
	// ExpireSessions does the same at once.
	clk.Add(10 * time.Second)
	emu.ExpireSessions()
	if _, err := m.Read(bg); err != nil {
		t.Fatal(err)
	}
	if s := emu.Stats(); s.Logins != 3 {
		t.Errorf("logins %d, want 3", s.Logins)
	}
}

func TestForbiddenAfterReloginIsAnError(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{}, clk)
	cfg := meterCfg(srv.URL, "fridge")
	cfg.AIN = EmuAINFridge
	m := newMeter(t, cfg, clk)
	if _, err := m.Read(bg); err != nil {
		t.Fatal(err)
	}
	emu.SetHomeAuto(false) // the admin takes the right away mid-run
	clk.Add(10 * time.Second)
	rs, err := m.Read(bg)
	wantKind(t, err, meter.Auth)
	if rs != nil {
		t.Errorf("readings with an error: %v", rs)
	}
	if !strings.Contains(err.Error(), "Smart Home right") {
		t.Errorf("message does not name the missing right: %v", err)
	}
	if s := emu.Stats(); s.Logins != 2 || s.Forbidden != 2 {
		t.Errorf("logins %d (want 2: one re-login, no second), 403s %d (want 2)", s.Logins, s.Forbidden)
	}
	// The next rounds do not log in again for a while; then one try.
	clk.Add(10 * time.Second)
	_, err = m.Read(bg)
	wantKind(t, err, meter.Auth)
	if s := emu.Stats(); s.Logins != 2 || s.LoginRequests != 4 {
		t.Errorf("login during the rights back-off: %+v", s)
	}
	emu.SetHomeAuto(true)
	clk.Add(time.Minute)
	if _, err := m.Read(bg); err != nil {
		t.Fatal(err)
	}
	if s := emu.Stats(); s.Logins != 3 {
		t.Errorf("logins %d after the back-off, want 3", s.Logins)
	}
}

func TestUserWithoutHomeAuto(t *testing.T) {
	emu, srv := newEmu(t, EmulatorOptions{Username: testUser, Password: testPass, NoHomeAuto: true}, nil)
	cfg := meterCfg(srv.URL, "fridge")
	cfg.AIN = EmuAINFridge
	m := newMeter(t, cfg, nil)
	_, err := m.Read(bg)
	wantKind(t, err, meter.Auth)
	if !strings.Contains(err.Error(), "lacks the Smart Home right") {
		t.Errorf("message: %v", err)
	}
	// A fresh session that gets 403 is not retried with another login.
	if s := emu.Stats(); s.Logins != 1 || s.Forbidden != 1 {
		t.Errorf("logins %d, 403s %d; want 1 and 1", s.Logins, s.Forbidden)
	}
}

func TestWrongPasswordHonoursBlockTime(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{Username: testUser, Password: "right", BlockBase: 32 * time.Second}, clk)
	cfg := meterCfg(srv.URL, "fridge")
	cfg.AIN = EmuAINFridge
	cfg.Password = "wrong"
	m := newMeter(t, cfg, clk)

	_, err := m.Read(bg)
	wantKind(t, err, meter.Auth)
	if want := "FRITZ!Box refused the login for user fritz3456: wrong password; it blocks new logins for 32 s"; !strings.Contains(err.Error(), want) {
		t.Errorf("message %q\nwant it to contain %q", err, want)
	}
	if !strings.Contains(err.Error(), "fritz1234") {
		t.Errorf("message lacks the hint to the auto-created user: %v", err)
	}
	base := emu.Stats()
	if base.LoginAttempts != 1 || base.FailedLogins != 1 {
		t.Fatalf("stats %+v", base)
	}
	// Rounds during the block send nothing to the box.
	for _, step := range []time.Duration{0, 10 * time.Second, 10 * time.Second, 11 * time.Second} {
		clk.Add(step)
		_, err := m.Read(bg)
		wantKind(t, err, meter.Blocked)
		if !strings.Contains(err.Error(), "wrong password") {
			t.Errorf("blocked error hides the cause: %v", err)
		}
	}
	if s := emu.Stats(); s.LoginRequests != base.LoginRequests || s.LoginAttempts != 1 || s.Commands["getdevicelistinfos"] != 0 {
		t.Fatalf("requests during the block: %+v (before: %+v)", s, base)
	}
	// After the block: one new try, refused again; the box doubles the block.
	clk.Add(2 * time.Second)
	_, err = m.Read(bg)
	wantKind(t, err, meter.Auth)
	if !strings.Contains(err.Error(), "blocks new logins for 64 s") {
		t.Errorf("second refusal: %v", err)
	}
	if s := emu.Stats(); s.LoginAttempts != 2 || s.BlockedAttempts != 0 {
		t.Errorf("stats %+v", s)
	}
	// The user fixes the password on the box; after the block we get in.
	emu.SetPassword("wrong")
	clk.Add(63 * time.Second)
	wantKind(t, func() error { _, err := m.Read(bg); return err }(), meter.Blocked)
	clk.Add(2 * time.Second)
	if _, err := m.Read(bg); err != nil {
		t.Fatalf("after the block: %v", err)
	}
	if s := emu.Stats(); s.LoginAttempts != 3 || s.Logins != 1 || s.BlockedAttempts != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestWrongUserNamesLastUser(t *testing.T) {
	_, srv := newEmu(t, EmulatorOptions{Username: testUser, Password: testPass, OtherUsers: []string{"admin"}}, nil)
	cfg := meterCfg(srv.URL, "fridge")
	cfg.Username = "fritz9999"
	m := newMeter(t, cfg, nil)
	_, err := m.Read(bg)
	wantKind(t, err, meter.Auth)
	for _, want := range []string{`no user "fritz9999"`, `"fritz3456"`, "blocks new logins for 2 s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
}

func TestBoxAlreadyBlocking(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{BlockBase: 30 * time.Second}, clk)
	bad := meterCfg(srv.URL, "a")
	bad.Username = "someone"
	m1 := newMeter(t, bad, clk)
	if _, err := m1.Read(bg); meter.KindOf(err) != meter.Auth {
		t.Fatalf("want auth error, got %v", err)
	}
	// Another client (right password) sees BlockTime in the challenge and
	// does not send its answer into the block.
	m2 := newMeter(t, meterCfg(srv.URL, "b"), clk)
	_, err := m2.Read(bg)
	wantKind(t, err, meter.Blocked)
	if s := emu.Stats(); s.LoginAttempts != 1 || s.BlockedAttempts != 0 {
		t.Errorf("stats %+v", s)
	}
}

func TestThermostatIsNotAMeter(t *testing.T) {
	clk := newClock()
	_, srv := newEmu(t, EmulatorOptions{}, clk)
	m := newMeter(t, meterCfg(srv.URL, "box"), clk)
	rs, err := m.Read(bg)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range rs {
		ids = append(ids, r.Device)
	}
	if got := strings.Join(ids, " "); got != "box/balkon-sued box/kuehlschrank" {
		t.Errorf("devices %q: want the two present energy meters, no thermostat, no unplugged socket", got)
	}

	cfg := meterCfg(srv.URL, "heating")
	cfg.AIN = EmuAINThermostat
	_, err = newMeter(t, cfg, clk).Read(bg)
	wantKind(t, err, meter.Config)
	if !strings.Contains(err.Error(), "FRITZ!DECT 301 without energy meter") {
		t.Errorf("message: %v", err)
	}

	cfg.AIN = "12345 6789012"
	_, err = newMeter(t, cfg, clk).Read(bg)
	wantKind(t, err, meter.Config)
	if !strings.Contains(err.Error(), "no device with AIN 123456789012") || !strings.Contains(err.Error(), EmuAINSolar) {
		t.Errorf("message: %v", err)
	}
}

func TestUnpluggedSocket(t *testing.T) {
	clk := newClock()
	_, srv := newEmu(t, EmulatorOptions{}, clk)
	cfg := meterCfg(srv.URL, "workshop")
	cfg.AIN = EmuAINUnplugged
	rs, err := newMeter(t, cfg, clk).Read(bg)
	wantKind(t, err, meter.NotPresent)
	if rs != nil || !strings.Contains(err.Error(), `"Werkstatt"`) {
		t.Errorf("readings %v, err %v", rs, err)
	}

	cfg = meterCfg(srv.URL, "two")
	cfg.AINs = []string{EmuAINUnplugged, "087610000434"}
	rs, err = newMeter(t, cfg, clk).Read(bg)
	if err != nil || len(rs) != 1 || rs[0].Device != "two/kuehlschrank" {
		t.Fatalf("several AINs with one absent: %v, %v", rs, err)
	}
}

func TestAINForms(t *testing.T) {
	clk := newClock()
	_, srv := newEmu(t, EmulatorOptions{}, clk)
	for _, ain := range []string{"116570020838", "11657 0020838", " 11657 0020838 "} {
		cfg := meterCfg(srv.URL, "b"+strings.ReplaceAll(ain, " ", "_"))
		cfg.Username = "fritz3456"
		cfg.AIN = ain
		rs, err := newMeter(t, cfg, clk).Read(bg)
		if err != nil || len(rs) != 1 {
			t.Errorf("AIN %q: %v %v", ain, rs, err)
		}
	}
}

func TestSharedSessionOneListPerRound(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{}, clk)
	c1 := meterCfg(srv.URL, "balcony")
	c1.AIN = EmuAINSolar
	c2 := meterCfg(srv.URL+"/", "fridge") // same box written differently
	c2.AIN = EmuAINFridge
	m1, err := New(c1, meter.Deps{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := New(c2, meter.Deps{Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if m1.box != m2.box {
		t.Fatal("two meters on one box do not share the session")
	}
	m1.box.mu.Lock()
	m1.box.now = clk.Now
	m1.box.mu.Unlock()
	for round := 1; round <= 3; round++ {
		var wg sync.WaitGroup
		for _, m := range []*Meter{m1, m2} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if rs, err := m.Read(bg); err != nil || len(rs) != 1 {
					t.Errorf("round %d: %v %v", round, rs, err)
				}
			}()
		}
		wg.Wait()
		s := emu.Stats()
		if s.Logins != 1 || s.Commands["getdevicelistinfos"] != round {
			t.Fatalf("round %d: logins %d (want 1), getdevicelistinfos %d (want %d)", round, s.Logins, s.Commands["getdevicelistinfos"], round)
		}
		clk.Add(10 * time.Second)
	}
	if err := m1.Close(bg); err != nil {
		t.Fatal(err)
	}
	if s := emu.Stats(); s.Logouts != 0 || emu.Sessions() != 1 {
		t.Fatalf("first Close logged out: %+v", s)
	}
	if err := m2.Close(bg); err != nil {
		t.Fatal(err)
	}
	if s := emu.Stats(); s.Logouts != 1 || emu.Sessions() != 0 {
		t.Fatalf("last Close: logouts %d, sessions %d", s.Logouts, emu.Sessions())
	}
	if err := m2.Close(bg); err != nil {
		t.Fatal(err)
	}
	if s := emu.Stats(); s.Logouts != 1 || s.LoginRequests != 3 {
		t.Errorf("second Close did more: %+v", s)
	}
	// A new meter after the last Close starts a new session.
	m3 := newMeter(t, c1, clk)
	if m3.box == m1.box {
		t.Error("box reused after the last Close")
	}
}

func TestLegacyFirmwareSingleCommands(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{LegacyOS: true}, clk)
	m := newMeter(t, meterCfg(srv.URL, "old"), clk)
	for round := 0; round < 2; round++ {
		rs, err := m.Read(bg)
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 2 || rs[0].Device != "old/balkon-sued" || rs[1].Device != "old/kuehlschrank" {
			t.Fatalf("readings %+v", rs)
		}
		want := emu.PowerAt(EmuAINFridge, clk.Now().Truncate(10*time.Second))
		if math.Abs(rs[1].Power-want) > 0.0005 || rs[1].EnergyIn == nil || rs[1].Temperature == nil || *rs[1].Temperature != 21.5 || rs[1].Voltage != nil {
			t.Errorf("fridge %+v, want %v W", rs[1], want)
		}
		clk.Add(10 * time.Second)
	}
	s := emu.Stats()
	if s.Commands["getdevicelistinfos"] != 1 || s.Commands["getswitchlist"] != 2 || s.Commands["getswitchpower"] != 4 {
		t.Errorf("commands %v", s.Commands)
	}
	if s.Logins != 1 {
		t.Errorf("logins %d", s.Logins)
	}

	cfg := meterCfg(srv.URL, "gone")
	cfg.AIN = EmuAINUnplugged
	_, err := newMeter(t, cfg, clk).Read(bg)
	wantKind(t, err, meter.NotPresent)

	_, err = m.History(bg, clk.Now().Add(-time.Hour))
	wantKind(t, err, meter.Config)

	devs, err := m.Discover(bg)
	if err != nil || len(devs) != 3 || devs[1].Name != "Kühlschrank" {
		t.Errorf("discover on old FRITZ!OS: %+v %v", devs, err)
	}
}

// A several-device meter's discover says what name each device's readings
// carry.
func TestDiscoverNamesTheReadings(t *testing.T) {
	_, srv := newEmu(t, EmulatorOptions{}, nil)
	devs, err := newMeter(t, meterCfg(srv.URL, "home"), nil).Discover(bg)
	if err != nil || len(devs) != 3 {
		t.Fatalf("%+v %v", devs, err)
	}
	for i, want := range []string{"reads as home/balkon-sued", "reads as home/kuehlschrank", "not present; reads as home/werkstatt"} {
		if devs[i].Note != want {
			t.Errorf("device %d note %q, want %q", i, devs[i].Note, want)
		}
	}
}

func TestDiscover(t *testing.T) {
	_, srv := newEmu(t, EmulatorOptions{}, nil)
	cfg := meterCfg(srv.URL, "any")
	cfg.AIN = EmuAINFridge
	devs, err := newMeter(t, cfg, nil).Discover(bg)
	if err != nil {
		t.Fatal(err)
	}
	want := []meter.Device{
		{ID: EmuAINSolar, Name: "Balkon Süd", Model: "FRITZ!DECT 210"},
		{ID: EmuAINFridge, Name: "Kühlschrank", Model: "FRITZ!DECT 200"},
		{ID: EmuAINUnplugged, Name: "Werkstatt", Model: "FRITZ!DECT 200", Note: "not present"},
	}
	if len(devs) != len(want) {
		t.Fatalf("devices %+v", devs)
	}
	for i := range want {
		if devs[i] != want[i] {
			t.Errorf("device %d: %+v, want %+v", i, devs[i], want[i])
		}
	}
}

func TestApplyThresholdAndInvert(t *testing.T) {
	// The fridge idles at 3.1 W from minute 12 to 40 of its cycle.
	clk := metertest.NewClock(time.Unix((start.Unix()/2400)*2400+1000, 0).UTC())
	_, srv := newEmu(t, EmulatorOptions{}, clk)
	cfg := meterCfg(srv.URL, "fridge")
	cfg.AIN = EmuAINFridge
	cfg.PowerThreshold = 5
	rs, err := newMeter(t, cfg, clk).Read(bg)
	if err != nil || rs[0].Power != 0 {
		t.Errorf("threshold: %+v %v", rs, err)
	}
	cfg = meterCfg(srv.URL, "balcony")
	cfg.AIN = EmuAINSolar
	cfg.Invert = true
	rs, err = newMeter(t, cfg, clk).Read(bg)
	if err != nil || rs[0].Power >= 0 || rs[0].EnergyIn != nil || rs[0].EnergyOut == nil {
		t.Errorf("invert: %+v %v", rs, err)
	}
}

// Every fault ends in a typed error and no readings, or (counter-reset) in
// complete readings.
func TestEmulatorFaults(t *testing.T) {
	for _, tc := range []struct {
		fault emulate.Fault
		kind  meter.Kind
		text  string
	}{
		{emulate.Offline, meter.Unreachable, "FRITZ!Box at"},
		{emulate.Slow, meter.Unreachable, "did not answer within"},
		{emulate.HTML, meter.BadAnswer, "answered HTML"},
		{emulate.Truncated, meter.BadAnswer, "cannot read"},
		{emulate.Status401, meter.Auth, "401"},
		{emulate.Status403, meter.Auth, "403"},
		{emulate.Status500, meter.BadAnswer, "500"},
		{emulate.Inval, meter.NotPresent, "not present"},
	} {
		t.Run(string(tc.fault), func(t *testing.T) {
			for _, fresh := range []bool{false, true} {
				clk := newClock()
				emu, srv := newEmu(t, EmulatorOptions{}, clk)
				cfg := meterCfg(srv.URL, "solar")
				cfg.AINs = []string{EmuAINSolar, EmuAINFridge}
				cfg.Timeout.Duration = 300 * time.Millisecond
				m := newMeter(t, cfg, clk)
				if !fresh {
					if _, err := m.Read(bg); err != nil {
						t.Fatal(err)
					}
					clk.Add(10 * time.Second)
				}
				emu.Faults().Set(tc.fault)
				rs, err := m.Read(bg)
				if rs != nil {
					t.Errorf("fresh=%v: readings with an error: %+v", fresh, rs)
				}
				wantKind(t, err, tc.kind)
				if strings.Contains(err.Error(), "sid=") {
					t.Errorf("error shows the session id: %v", err)
				}
				if !strings.Contains(err.Error(), tc.text) {
					t.Errorf("fresh=%v: message %q lacks %q", fresh, err, tc.text)
				}
				// The client recovers when the fault is gone.
				emu.Faults().Set(emulate.None)
				clk.Add(10 * time.Second)
				if _, err := m.Read(bg); err != nil && meter.KindOf(err) != meter.Blocked {
					t.Errorf("fresh=%v: after the fault: %v", fresh, err)
				}
			}
		})
	}
	t.Run("counter-reset", func(t *testing.T) {
		clk := newClock()
		emu, srv := newEmu(t, EmulatorOptions{}, clk)
		cfg := meterCfg(srv.URL, "fridge")
		cfg.AIN = EmuAINFridge
		m := newMeter(t, cfg, clk)
		before, err := m.Read(bg)
		if err != nil {
			t.Fatal(err)
		}
		emu.Faults().Set(emulate.CounterReset)
		clk.Add(10 * time.Second)
		after, err := m.Read(bg)
		if err != nil {
			t.Fatal(err)
		}
		if *after[0].EnergyIn >= *before[0].EnergyIn || *after[0].EnergyIn > 1 {
			t.Errorf("energy %v → %v: want a counter back near 0", *before[0].EnergyIn, *after[0].EnergyIn)
		}
		if err := after[0].Validate(); err != nil {
			t.Error(err)
		}
	})
}

func TestInvalOneDevice(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{}, clk)
	cfg := meterCfg(srv.URL, "fridge")
	cfg.AIN = EmuAINFridge
	emu.Faults().Set(emulate.Inval)
	rs, err := newMeter(t, cfg, clk).Read(bg)
	wantKind(t, err, meter.NotPresent)
	if rs != nil {
		t.Error("readings with an error")
	}
}

func TestHTTPSWithCAFile(t *testing.T) {
	emu := NewEmulator(EmulatorOptions{Username: testUser, Password: testPass, Iter1: 50, Iter2: 5})
	srv := httptest.NewUnstartedServer(emu)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake is expected
	srv.StartTLS()
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "box.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := meterCfg(srv.URL, "untrusted")
	cfg.AIN = EmuAINFridge
	untrusted := newMeter(t, cfg, nil)
	_, err := untrusted.Read(bg)
	wantKind(t, err, meter.Unreachable)
	if !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("message gives no hint to ca_file: %v", err)
	}
	untrusted.Close(bg) // the next meter brings other TLS settings

	cfg.CAFile = caFile
	if _, err := newMeter(t, cfg, nil).Read(bg); err != nil {
		t.Errorf("with ca_file: %v", err)
	}
}

func TestHTTPSInsecure(t *testing.T) {
	emu := NewEmulator(EmulatorOptions{Username: testUser, Password: testPass, Iter1: 50, Iter2: 5})
	srv := httptest.NewTLSServer(emu)
	defer srv.Close()
	cfg := meterCfg(srv.URL, "insecure")
	cfg.AIN = EmuAINFridge
	cfg.Insecure = true
	if _, err := newMeter(t, cfg, nil).Read(bg); err != nil {
		t.Errorf("insecure: %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	base := meterCfg("http://127.0.0.1:1", "m")
	for _, tc := range []struct {
		name string
		mod  func(*config.Meter)
		key  string
		text string
	}{
		{"no user", func(c *config.Meter) { c.Username = "" }, "meters[3].username", "fritz1234"},
		{"ain and ains", func(c *config.Meter) { c.AIN = "116570020838"; c.AINs = []string{"087610000434"} }, "meters[3].ain", "not both"},
		{"bad ain", func(c *config.Meter) { c.AIN = "11657/0020838" }, "meters[3].ain", "not an AIN"},
		{"twice", func(c *config.Meter) { c.AINs = []string{"11657 0020838", "116570020838"} }, "meters[3].ains", "twice"},
		{"bad url", func(c *config.Meter) { c.URL = "ftp://fritz.box" }, "meters[3].url", "http"},
		{"missing ca", func(c *config.Meter) { c.URL = "https://127.0.0.1:1"; c.CAFile = "/nonexistent/box.pem" }, "meters[3].ca_file", "cannot read"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			cfg.Index = 3
			tc.mod(&cfg)
			m, err := New(cfg, meter.Deps{Log: quiet})
			if err == nil {
				m.Close(bg)
				t.Fatal("no error")
			}
			var ce *config.Error
			if !errors.As(err, &ce) || ce.Key != tc.key || !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %v (%T), want key %s and %q", err, err, tc.key, tc.text)
			}
		})
	}
	// Two meters on one box and user must agree on the password.
	m1 := newMeter(t, base, nil)
	other := base
	other.Password = "different"
	if _, err := New(other, meter.Deps{Log: quiet}); err == nil || !strings.Contains(err.Error(), "password") {
		t.Errorf("different password on a shared session: %v", err)
	}
	_ = m1
}

func TestRegistered(t *testing.T) {
	cfg := meterCfg("http://127.0.0.1:1", "reg")
	m, err := meter.New(cfg, meter.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(bg)
	if _, ok := m.(meter.Historian); !ok {
		t.Error("not a Historian")
	}
	if _, ok := m.(meter.Discoverer); !ok {
		t.Error("not a Discoverer")
	}
	e, err := emulate.New("fritzbox", emulate.Options{Username: "u", Password: "p"})
	if err != nil || e.Faults() == nil {
		t.Fatalf("emulator: %v", err)
	}
	for _, p := range []string{"md5", "legacy", "no-datatime", "solar"} {
		if _, err := emulate.New("fritzbox", emulate.Options{Profile: p}); err != nil {
			t.Errorf("profile %s: %v", p, err)
		}
	}
	if e, err := emulate.New("fritzbox", emulate.Options{Profile: "legacy"}); err != nil || !e.(*Emulator).opts.LegacyOS {
		t.Errorf("profile legacy: %v", err)
	}
	if _, err := emulate.New("fritzbox", emulate.Options{Profile: "bogus"}); err == nil {
		t.Error("unknown profile accepted")
	}
}

// Very old firmware put the error status inside a 200 answer.
func TestStatusInsideBody(t *testing.T) {
	emu := NewEmulator(EmulatorOptions{Username: testUser, Password: testPass, Iter1: 50, Iter2: 5})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("switchcmd") == "getdevicelistinfos" {
			io.WriteString(w, "HTTP/1.0 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n")
			return
		}
		emu.ServeHTTP(w, r)
	}))
	defer srv.Close()
	cfg := meterCfg(srv.URL, "x")
	cfg.AIN = EmuAINFridge
	_, err := newMeter(t, cfg, nil).Read(bg)
	wantKind(t, err, meter.BadAnswer)
	if !strings.Contains(err.Error(), "500") {
		t.Errorf("message: %v", err)
	}
}

func TestEmulatorEscapesNames(t *testing.T) {
	emu, srv := newEmu(t, EmulatorOptions{}, nil)
	cfg := meterCfg(srv.URL, "x")
	cfg.AIN = EmuAINFridge
	m := newMeter(t, cfg, nil)
	if _, err := m.Read(bg); err != nil {
		t.Fatal(err)
	}
	m.box.mu.Lock()
	sid := m.box.sid
	m.box.mu.Unlock()
	resp, err := http.Get(srv.URL + "/webservices/homeautoswitch.lua?switchcmd=getdevicelistinfos&sid=" + sid)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "<name>K&#252;hlschrank</name>") || !strings.Contains(string(body), "Balkon S&#252;d") {
		t.Errorf("names not escaped as the box does: %s", body)
	}
	_ = emu
}

// The emulator takes the login answer as query or as form POST.
func TestEmulatorLoginGETAndPOST(t *testing.T) {
	_, srv := newEmu(t, EmulatorOptions{MD5Only: true}, nil)
	challenge := func() string {
		resp, err := http.Get(srv.URL + "/login_sid.lua")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		si, err := parseSessionInfo(b)
		if err != nil {
			t.Fatal(err)
		}
		return si.Challenge
	}
	check := func(resp *http.Response, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		si, err := parseSessionInfo(b)
		if err != nil || !si.loggedIn() || len(si.SID) != 16 {
			t.Errorf("login: %s %v", b, err)
		}
	}
	c := challenge()
	check(http.Get(srv.URL + "/login_sid.lua?username=" + testUser + "&response=" + md5Response(c, testPass)))
	c = challenge()
	check(http.PostForm(srv.URL+"/login_sid.lua", map[string][]string{"username": {testUser}, "response": {md5Response(c, testPass)}}))
}

func TestReadingsAreComplete(t *testing.T) {
	clk := newClock()
	_, srv := newEmu(t, EmulatorOptions{}, clk)
	m := newMeter(t, meterCfg(srv.URL, "all"), clk)
	for i := 0; i < 30; i++ {
		rs, err := m.Read(bg)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if err := r.Validate(); err != nil {
				t.Fatalf("%+v: %v", r, err)
			}
			if r.EnergyIn == nil || r.Temperature == nil || r.Voltage == nil {
				t.Fatalf("half-filled reading %+v", r)
			}
		}
		clk.Add(7 * time.Minute)
	}
}

// The fridge-flip case: a meter without ain names its devices after the
// box and flips only the devices named in invert_ains.
func TestNamesAndInvertPerDevice(t *testing.T) {
	clk := newClock()
	_, srv := newEmu(t, EmulatorOptions{}, clk)
	cfg := meterCfg(srv.URL, "home")
	cfg.Invert = true
	if _, err := New(cfg, meter.Deps{}); err == nil || !strings.Contains(err.Error(), "meters[0].invert: would flip every device") {
		t.Fatalf("invert on an ain-less meter: %v", err)
	}
	for _, entry := range []string{"Balkon Süd", "11657 0020838", "balkon-sued", "116570020838"} {
		cfg := meterCfg(srv.URL, "home")
		cfg.InvertAINs = []string{entry}
		rs, err := newMeter(t, cfg, clk).Read(bg)
		if err != nil || len(rs) != 2 {
			t.Fatalf("%s: %v %v", entry, rs, err)
		}
		byName := map[string]float64{}
		for _, r := range rs {
			byName[r.Device] = r.Power
			if r.Device == "home/balkon-sued" && (r.EnergyIn != nil || r.EnergyOut == nil) {
				t.Errorf("%s: inverted solar keeps its counter as energy in: %+v", entry, r)
			}
		}
		if byName["home/balkon-sued"] >= 0 || byName["home/kuehlschrank"] <= 0 {
			t.Errorf("invert_ains = [%q]: %v: want the solar device negative, the fridge positive", entry, byName)
		}
	}
	// names = "ain" keeps the AINs
	cfg = meterCfg(srv.URL, "home")
	cfg.Names = "ain"
	rs, err := newMeter(t, cfg, clk).Read(bg)
	if err != nil || rs[0].Device != "home/116570020838" {
		t.Errorf("names = ain: %v %v", rs, err)
	}
}

func TestNamesAndInvertOnOldFirmware(t *testing.T) {
	clk := newClock()
	_, srv := newEmu(t, EmulatorOptions{LegacyOS: true}, clk)
	cfg := meterCfg(srv.URL, "old")
	cfg.InvertAINs = []string{"Kühlschrank"}
	rs, err := newMeter(t, cfg, clk).Read(bg)
	if err != nil || len(rs) != 2 || rs[1].Device != "old/kuehlschrank" || rs[1].Power >= 0 || rs[0].Power <= 0 {
		t.Errorf("old firmware: %+v %v", rs, err)
	}
}
