package fritzdect

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/meter"
)

// rawLogin logs in to the emulator by hand and returns the SID.
func rawLogin(t *testing.T, base, user, pass string) *sessionInfo {
	t.Helper()
	get := func(q url.Values) *sessionInfo {
		resp, err := http.Get(base + "/login_sid.lua?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		si, err := parseSessionInfo(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return si
	}
	ch := get(url.Values{"version": {"2"}})
	r, err := loginResponse(ch.Challenge, pass)
	if err != nil {
		t.Fatal(err)
	}
	return get(url.Values{"version": {"2"}, "username": {user}, "response": {r}})
}

func aha(t *testing.T, base, sid, cmd, ain string) (int, string) {
	t.Helper()
	q := url.Values{"switchcmd": {cmd}, "sid": {sid}}
	if ain != "" {
		q.Set("ain", ain)
	}
	resp, err := http.Get(base + "/webservices/homeautoswitch.lua?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestEmulatorCommands(t *testing.T) {
	clk := newClock()
	_, srv := newEmu(t, EmulatorOptions{}, clk)
	si := rawLogin(t, srv.URL, testUser, testPass)
	if !si.loggedIn() {
		t.Fatalf("login refused: %+v", si)
	}
	if has, _ := si.hasRight("HomeAuto"); !has {
		t.Error("no HomeAuto right listed")
	}
	sid := si.SID
	for _, tc := range []struct {
		cmd, ain string
		code     int
		body     string // prefix
	}{
		{"getswitchlist", "", 200, "116570020838,087610000434,087610999999\n"},
		{"getswitchpresent", EmuAINFridge, 200, "1\n"},
		{"getswitchpresent", EmuAINUnplugged, 200, "0\n"},
		{"getswitchpower", EmuAINUnplugged, 200, "inval\n"},
		{"getswitchpower", EmuAINThermostat, 500, ""},
		{"getswitchpower", "99999 9999999", 400, ""},
		{"getswitchname", "087610000434", 200, "Kühlschrank\n"},
		{"gettemperature", EmuAINThermostat, 200, "205\n"},
		{"getswitchenergy", EmuAINFridge, 200, "98765\n"},
		{"getdeviceinfos", EmuAINThermostat, 200, `<device identifier="09995 0123456" id="18" functionbitmask="320"`},
		{"getbasicdevicestats", EmuAINFridge, 200, "<devicestats><temperature><stats count=\"96\" grid=\"900\" datatime="},
		{"nosuchcommand", EmuAINFridge, 400, ""},
	} {
		code, body := aha(t, srv.URL, sid, tc.cmd, tc.ain)
		if code != tc.code || !strings.HasPrefix(body, tc.body) {
			t.Errorf("%s %s: %d %q, want %d %q…", tc.cmd, tc.ain, code, clip(body), tc.code, tc.body)
		}
	}
	// The thermostat's device info carries its hkr, not a powermeter.
	_, body := aha(t, srv.URL, sid, "getdeviceinfos", EmuAINThermostat)
	if !strings.Contains(body, "<hkr>") || strings.Contains(body, "powermeter") {
		t.Errorf("thermostat: %s", body)
	}
	// A bad SID is refused and ends every session of the client.
	if code, _ := aha(t, srv.URL, "0123456789abcdef", "getswitchlist", ""); code != 403 {
		t.Errorf("bad SID: %d", code)
	}
	if code, _ := aha(t, srv.URL, sid, "getswitchlist", ""); code != 403 {
		t.Errorf("session survived a bad SID: %d", code)
	}
}

func TestEmulatorSessionsAndLogout(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{SessionIdle: time.Minute}, clk)
	sid := rawLogin(t, srv.URL, testUser, testPass).SID
	clk.Add(50 * time.Second)
	if code, _ := aha(t, srv.URL, sid, "getswitchlist", ""); code != 200 {
		t.Fatalf("session gone after 50 s: %d", code)
	}
	clk.Add(50 * time.Second) // used 50 s ago: still alive
	if code, _ := aha(t, srv.URL, sid, "getswitchlist", ""); code != 200 {
		t.Fatalf("use did not keep the session: %d", code)
	}
	clk.Add(61 * time.Second)
	if code, _ := aha(t, srv.URL, sid, "getswitchlist", ""); code != 403 {
		t.Fatalf("idle session still valid: %d", code)
	}
	sid = rawLogin(t, srv.URL, testUser, testPass).SID
	resp, err := http.Get(srv.URL + "/login_sid.lua?logout=1&sid=" + sid)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if code, _ := aha(t, srv.URL, sid, "getswitchlist", ""); code != 403 || emu.Stats().Logouts != 1 {
		t.Errorf("after logout: %d, logouts %d", code, emu.Stats().Logouts)
	}
}

func TestEmulatorBlockTimeDoubles(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{BlockBase: 4 * time.Second}, clk)
	for i, want := range []time.Duration{4, 8, 16, 32} {
		si := rawLogin(t, srv.URL, testUser, "wrong")
		if si.loggedIn() || si.blockTime() != want*time.Second {
			t.Fatalf("failure %d: BlockTime %v, want %v s", i+1, si.blockTime(), want)
		}
		clk.Add(want * time.Second)
	}
	// During a block even the right password is refused.
	rawLogin(t, srv.URL, testUser, "wrong")
	clk.Add(10 * time.Second)
	if si := rawLogin(t, srv.URL, testUser, testPass); si.loggedIn() || si.blockTime() != 54*time.Second {
		t.Errorf("login during the block: %+v", si)
	}
	if s := emu.Stats(); s.BlockedAttempts != 1 || s.FailedLogins != 5 {
		t.Errorf("stats %+v", s)
	}
	clk.Add(54 * time.Second)
	if si := rawLogin(t, srv.URL, testUser, testPass); !si.loggedIn() {
		t.Errorf("login after the block: %+v", si)
	}
}

func TestReadAfterClose(t *testing.T) {
	_, srv := newEmu(t, EmulatorOptions{}, nil)
	cfg := meterCfg(srv.URL, "x")
	cfg.AIN = EmuAINFridge
	m := newMeter(t, cfg, nil)
	if err := m.Close(bg); err != nil {
		t.Fatal(err)
	}
	_, err := m.Read(bg)
	wantKind(t, err, meter.Config)
}
