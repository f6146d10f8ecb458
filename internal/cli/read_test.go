package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/meter/fritzdect"
)

// emulators starts a Tasmota (constant 100 W), an AhoyDTU and an OpenDTU
// emulator on 127.0.0.1 and writes a config file pointing at them.
type emuSet struct {
	cfg     string
	tasmota emulate.Emulator
}

func startEmulators(t *testing.T, extra string) emuSet {
	t.Helper()
	start := func(kind string, o emulate.Options) (emulate.Emulator, string) {
		e, err := emulate.New(kind, o)
		if err != nil {
			t.Fatalf("emulator %s: %v", kind, err)
		}
		srv := httptest.NewServer(e)
		t.Cleanup(srv.Close)
		return e, srv.URL
	}
	tas, tasURL := start("tasmota", emulate.Options{Profile: "constant"})
	_, ahoyURL := start("ahoydtu", emulate.Options{Zone: sunnyZone()})
	_, dtuURL := start("opendtu", emulate.Options{Password: "dtu-pw", Zone: sunnyZone()})
	cfg := `timezone = "Europe/Berlin"

[[meters]]
name = "plug"
type = "tasmota"
url = "` + tasURL + `"

[[meters]]
name = "balcony"
type = "ahoydtu"
url = "` + ahoyURL + `"

[[meters]]
name = "roof"
type = "opendtu"
url = "` + dtuURL + `"
password = "${DTU_PASSWORD}"
serial = "114182912345"
` + extra
	path := filepath.Join(t.TempDir(), "powermeter.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return emuSet{cfg: path, tasmota: tas}
}

// sunnyZone is a zone where it is about 13:00 now: the inverter emulators
// follow the sun in their zone, so the tests find them awake at any hour.
func sunnyZone() *time.Location {
	now := time.Now().UTC()
	off := (13-now.Hour())*3600 - now.Minute()*60
	return time.FixedZone("sunny", off)
}

func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := &Env{Stdout: &out, Stderr: &errb, LookupEnv: func(k string) (string, bool) {
		if k == "DTU_PASSWORD" {
			return "dtu-pw", true
		}
		return "", false
	}}
	code = Main(args, env)
	return code, out.String(), errb.String()
}

var lineRE = regexp.MustCompile(`^(\d{2}\.\d{2}\.\d{4},\d{2}:\d{2}:\d{2}),-?\d+\.\d{2}(,(-?\d+\.\d)?(,-?\d+\.\d{2})*)?$`)

func TestReadAll(t *testing.T) {
	es := startEmulators(t, "")
	code, out, errs := run(t, "read", "--config", es.cfg)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines, want 3:\n%s", len(lines), out)
	}
	for i, name := range []string{"plug", "balcony", "roof"} {
		dev, line, ok := strings.Cut(lines[i], "\t")
		if !ok || dev != name || !lineRE.MatchString(line) {
			t.Errorf("line %d = %q, want %q TAB a stats line", i, lines[i], name)
		}
	}
	if !strings.HasSuffix(lines[0], ",100.00") {
		t.Errorf("tasmota line %q, want 100.00 W and no temperature", lines[0])
	}
	// AhoyDTU and OpenDTU lines carry the two DC inputs after the temperature field
	for _, l := range lines[1:] {
		if strings.Count(l, ",") != 5 {
			t.Errorf("%q: want power, temperature and two DC inputs", l)
		}
	}
}

func TestReadOneBareLineInZone(t *testing.T) {
	es := startEmulators(t, "")
	code, out, errs := run(t, "read", "--config", es.cfg, "plug")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	line := strings.TrimSpace(out)
	m := lineRE.FindStringSubmatch(line)
	if m == nil || !strings.HasSuffix(line, ",100.00") {
		t.Fatalf("output %q, want one stats line with 100.00 W", out)
	}
	berlin, _ := time.LoadLocation("Europe/Berlin")
	wall, err := time.ParseInLocation("02.01.2006,15:04:05", m[1], berlin)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(wall); d < -time.Second || d > time.Minute {
		t.Errorf("line time %s is not now in Europe/Berlin (off by %v)", m[1], d)
	}
}

func TestReadJSONAfterName(t *testing.T) {
	es := startEmulators(t, "")
	code, out, errs := run(t, "read", "--config", es.cfg, "plug", "roof", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res []struct {
		Meter    string `json:"meter"`
		Type     string `json:"type"`
		Readings []struct {
			Device string   `json:"device"`
			Power  float64  `json:"power_w"`
			In     *float64 `json:"energy_in_wh"`
		} `json:"readings"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if len(res) != 2 || res[0].Meter != "plug" || res[1].Meter != "roof" || res[1].Type != "opendtu" {
		t.Fatalf("result %+v", res)
	}
	if len(res[0].Readings) != 1 || res[0].Readings[0].Power != 100 || res[0].Readings[0].In == nil {
		t.Errorf("plug readings %+v", res[0].Readings)
	}
}

func TestReadFailureExit1(t *testing.T) {
	es := startEmulators(t, "")
	es.tasmota.Faults().Set(emulate.HTML)
	code, out, errs := run(t, "read", "--config", es.cfg)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errs)
	}
	if !strings.Contains(errs, "plug: Tasmota at http://127.0.0.1:") || !strings.Contains(errs, "answered HTML") || !strings.Contains(errs, "1 of 3 meter(s) could not be read: plug") {
		t.Errorf("stderr does not name the meter and the reason:\n%s", errs)
	}
	if strings.Count(out, "\n") != 2 || strings.Contains(out, "plug") {
		t.Errorf("the other two meters should still print:\n%s", out)
	}
	code, out, _ = run(t, "read", "--config", es.cfg, "--json", "plug")
	if code != 1 || !strings.Contains(out, `"error_kind": "bad answer"`) {
		t.Errorf("--json failure: exit %d\n%s", code, out)
	}
}

func TestReadUsageErrors(t *testing.T) {
	es := startEmulators(t, "")
	if code, _, errs := run(t, "read", "--config", es.cfg, "plug", "nosuch"); code != 2 || !strings.Contains(errs, `no meter named nosuch`) || !strings.Contains(errs, "known: plug, balcony, roof") {
		t.Errorf("unknown name: exit %d\n%s", code, errs)
	}
	if code, _, errs := run(t, "read"); code != 2 || !strings.Contains(errs, "--config FILE is required") {
		t.Errorf("no config: exit %d\n%s", code, errs)
	}
	if code, _, _ := run(t, "read", "--config", es.cfg, "--bogus"); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
	bad := startEmulators(t, "\n[[meters]]\nname = \"broken\"\ntype = \"tasmota\"\nurl = \"http://127.0.0.1:1\"\nca_file = \"/nonexistent/ca.pem\"\n")
	if code, _, errs := run(t, "read", "--config", bad.cfg, "broken"); code != 2 || !strings.Contains(errs, "meters[3].ca_file") {
		t.Errorf("bad ca_file: exit %d\n%s", code, errs)
	}
}

func TestDiscover(t *testing.T) {
	es := startEmulators(t, "")
	code, out, errs := run(t, "discover", "--config", es.cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{
		"plug (tasmota at http://127.0.0.1:",
		"one device, it reads:\n  plug: power 100.00 W, energy in 1290.396 kWh",
		"balcony (ahoydtu at http://127.0.0.1:",
		"2 device(s)\n  0\tHM-600\tserial 116180214522\t(2 DC input(s); channel = 0)\n  1\tHM-300",
		"  114182912345\tHM-800\t(",
		"serial = \"112183456789\"",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	es.tasmota.Faults().Set(emulate.Status401)
	code, _, errs = run(t, "discover", "--config", es.cfg, "plug")
	if code != 1 || !strings.Contains(errs, "plug: Tasmota at") || !strings.Contains(errs, "401") || !strings.Contains(errs, "1 of 1 meter(s) failed: plug") {
		t.Errorf("failed discover: exit %d\n%s", code, errs)
	}
	if code, _, _ := run(t, "discover", "--config", es.cfg, "zzz"); code != 2 {
		t.Errorf("unknown meter: exit %d", code)
	}
}

func TestEmulateVerb(t *testing.T) {
	if code, _, errs := run(t, "emulate", "nosuch"); code != 2 || !strings.Contains(errs, "unknown emulator") || !strings.Contains(errs, "tasmota") {
		t.Errorf("unknown kind: exit %d\n%s", code, errs)
	}
	if code, _, _ := run(t, "emulate"); code != 2 {
		t.Errorf("no kind: exit %d", code)
	}
	if code, _, errs := run(t, "emulate", "tasmota", "--profile", "bogus"); code != 2 || !strings.Contains(errs, "bogus") {
		t.Errorf("bad profile: exit %d\n%s", code, errs)
	}

	for _, kind := range emulate.Kinds() {
		t.Run(kind, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			var out bytes.Buffer
			env := &Env{Stdout: &out, Stderr: &out}
			env.Log = discardLog()
			urls := make(chan string, 1)
			done := make(chan error, 1)
			go func() {
				done <- serveEmulator(ctx, env, kind, "127.0.0.1:0", emulate.Options{}, func(u string) { urls <- u })
			}()
			var url string
			select {
			case url = <-urls:
			case err := <-done:
				t.Fatalf("emulator did not start: %v", err)
			}
			if !strings.HasPrefix(url, "http://127.0.0.1:") || !strings.Contains(out.String(), kind+" emulator listening on "+url) {
				t.Errorf("url %q, output %q", url, out.String())
			}
			resp, err := http.Get(url + "/_emulator/fault")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("fault control: %s", resp.Status)
			}
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("stopping: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("emulator did not stop on cancel")
			}
		})
	}
}

func TestReadClosesMeters(t *testing.T) {
	e, err := emulate.New("fritzbox", emulate.Options{Username: "fritz3456", Password: "box-pw"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	es := startEmulators(t, "\n[[meters]]\nname = \"fridge\"\ntype = \"fritzdect\"\nurl = \""+srv.URL+"\"\nusername = \"fritz3456\"\npassword = \"box-pw\"\nain = \""+fritzdect.EmuAINFridge+"\"\n")
	code, out, errs := run(t, "read", "--config", es.cfg, "fridge", "plug")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	// the FRITZ!DECT temperature has one decimal
	if !regexp.MustCompile(`(?m)^fridge\t\d{2}\.\d{2}\.\d{4},\d{2}:\d{2}:\d{2},\d+\.\d{2},-?\d+\.\d$`).MatchString(out) {
		t.Errorf("no FRITZ!DECT line with a 1-decimal temperature:\n%s", out)
	}
	fb := e.(*fritzdect.Emulator)
	if s := fb.Stats(); s.Logins != 1 || s.Logouts != 1 || fb.Sessions() != 0 {
		t.Errorf("logins %d logouts %d open sessions %d: read must close (log out) its meters", s.Logins, s.Logouts, fb.Sessions())
	}
}
