package cli

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/powermeter/powermeter/internal/emulate"
)

// `read` prints an Epever in the PHP app's layout.
func TestReadEpeverLine(t *testing.T) {
	e, err := emulate.New("epever", emulate.Options{Zone: sunnyZone()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	es := startEmulators(t, "\n[[meters]]\nname = \"charger\"\ntype = \"epever\"\nurl = \""+srv.URL+"\"\n")
	code, out, errs := run(t, "read", "--config", es.cfg, "charger")
	// PanelP,BatteryV,BatteryI,PanelV,PanelI: five values, the second a battery voltage
	f := strings.Split(strings.TrimSpace(out), ",")
	if code != 0 || len(f) != 7 || !strings.HasPrefix(f[3], "1") || len(strings.SplitN(f[3], ".", 2)[1]) != 2 {
		t.Errorf("exit %d: %q %s", code, out, errs)
	}
}
