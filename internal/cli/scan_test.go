package cli

import (
	"context"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/scan"
)

// The verb, against a read head found by name on 127.0.0.1 (the scan
// itself is tested with mDNS and SSDP responders in internal/scan).
func TestDiscoverScanVerb(t *testing.T) {
	e, err := emulate.New("tasmota", emulate.Options{Profile: "sml"})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e)
	defer srv.Close()
	host := srv.Listener.Addr().String()
	old := newScanner
	t.Cleanup(func() { newScanner = old })
	newScanner = func() *scan.Scanner {
		return &scan.Scanner{Names: []string{"tasmota-hichi:" + host[strings.LastIndex(host, ":")+1:]}, Timeout: time.Second,
			Resolve: func(context.Context, string) ([]string, error) { return []string{"127.0.0.1"}, nil },
			Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+addr[strings.LastIndex(addr, ":")+1:])
			}}
	}
	code, out, errs := run(t, "discover", "--scan", "--timeout", "1s")
	if code != 0 || !strings.Contains(out, "found 1 device(s)") || !strings.Contains(out, "tasmota") || !strings.Contains(out, "Tasmota read head, no password") {
		t.Errorf("exit %d\n%s\n%s", code, out, errs)
	}
	code, out, errs = run(t, "discover", "--scan", "--toml")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	c, err := config.Parse("scan.toml", []byte(out), func(string) (string, bool) { return "", false })
	if err != nil || len(c.Meters) != 1 || c.Meters[0].Name != "tasmota-hichi" || c.Meters[0].Type != "tasmota" || c.Meters[0].Role != "grid" || c.Meters[0].SML == nil {
		t.Errorf("toml %v\n%s", err, out)
	}
	if code, _, _ := run(t, "discover", "--scan", "--timeout", "2h"); code != 2 {
		t.Errorf("a 2 h scan: exit %d", code)
	}
}
