package cli

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/meter/fritzdect"
)

func TestDiscoverTOMLParsedBack(t *testing.T) {
	start := func(kind string, o emulate.Options) string {
		e, err := emulate.New(kind, o)
		if err != nil {
			t.Fatalf("emulator %s: %v", kind, err)
		}
		srv := httptest.NewServer(e)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	box := httptest.NewServer(fritzdect.NewEmulator(fritzdect.EmulatorOptions{Username: "fritz3456", Password: "pw", Iter1: 50, Iter2: 5, FritzOS82: true}))
	t.Cleanup(box.Close)
	cfg := `[[meters]]
name = "home"
type = "fritzdect"
url = "` + box.URL + `"
username = "fritz3456"
password = "${FRITZ_PW}"

[[meters]]
name = "grid"
type = "tasmota"
url = "` + start("tasmota", emulate.Options{Profile: "sml"}) + `"

[[meters]]
name = "house"
type = "shelly"
url = "` + start("shelly-pro3em", emulate.Options{}) + `"

[[meters]]
name = "loads"
type = "shelly"
url = "` + start("shelly-pro3em", emulate.Options{Profile: "monophase"}) + `"

[[meters]]
name = "roof"
type = "opendtu"
url = "` + start("opendtu", emulate.Options{Zone: sunnyZone()}) + `"

[[meters]]
name = "charger"
type = "epever"
url = "` + start("epever", emulate.Options{}) + `"
`
	path := filepath.Join(t.TempDir(), "pm.toml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var outb, errb strings.Builder
	env := &Env{Stdout: &outb, Stderr: &errb, LookupEnv: func(k string) (string, bool) {
		if k == "FRITZ_PW" {
			return "pw", true
		}
		return "", false
	}}
	if code := Main([]string{"discover", "--config", path, "--toml"}, env); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	out := outb.String()
	if strings.Contains(out, `"pw"`) {
		t.Errorf("the password is printed:\n%s", out)
	}
	// the loader takes the output as it is
	parsed, err := config.Parse("discovered.toml", []byte(out), func(k string) (string, bool) { return "secret", k == "HOME_PASSWORD" })
	if err != nil {
		t.Fatalf("the config loader refuses the output: %v\n%s", err, out)
	}
	byName := map[string]config.Meter{}
	for _, m := range parsed.Meters {
		byName[m.Name] = m
	}
	want := map[string]struct{ typ, role, id string }{
		"balkon-sued":         {"fritzdect", "pv", fritzdect.EmuAINSolar},
		"kuehlschrank":        {"fritzdect", "consumer", fritzdect.EmuAINFridge},
		"werkstatt":           {"fritzdect", "consumer", fritzdect.EmuAINUnplugged},
		"grid":                {"tasmota", "grid", ""},
		"house":               {"shelly", "grid", ""},
		"hm-800":              {"opendtu", "pv", "114182912345"},
		"hm-400":              {"opendtu", "pv", "112183456789"},
		"charger":             {"epever", "pv", ""},
		"loads-herd":          {"shelly", "consumer", ""},
		"loads-waschmaschine": {"shelly", "consumer", ""},
		"loads-waermepumpe":   {"shelly", "consumer", ""},
	}
	if len(parsed.Meters) != len(want) {
		t.Errorf("%d meters, want %d:\n%s", len(parsed.Meters), len(want), out)
	}
	for name, w := range want {
		m, ok := byName[name]
		if !ok {
			t.Errorf("no meter %q in:\n%s", name, out)
			continue
		}
		id := m.AIN + m.Serial
		if m.Type != w.typ || m.Role != w.role || id != w.id {
			t.Errorf("%s: type %s role %s id %q, want %+v", name, m.Type, m.Role, id, w)
		}
	}
	if m := byName["balkon-sued"]; m.Password != "secret" || m.Username != "fritz3456" {
		t.Errorf("credentials of a box device: %q %q", m.Username, m.Password)
	}
	if byName["loads-waermepumpe"].Channel != 2 {
		t.Errorf("channel of the third load: %d", byName["loads-waermepumpe"].Channel)
	}
	if byName["grid"].SML == nil {
		t.Errorf("the read head's block has no [meters.sml]:\n%s", out)
	}
	if c := strings.Count(out, "# guess: "); c != len(want) {
		t.Errorf("%d roles marked as guesses, want %d", c, len(want))
	}
}
