package devhttp

import (
	"context"
	"encoding/pem"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

func TestTimeoutDefault(t *testing.T) {
	if got := Timeout(config.Meter{}); got != DefaultTimeout {
		t.Errorf("unset: %v", got)
	}
	if got := Timeout(config.Meter{Timeout: config.Duration{Duration: time.Second}}); got != time.Second {
		t.Errorf("set: %v", got)
	}
}

func TestNewClientCAFile(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	srv.StartTLS()
	defer srv.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificate here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	get := func(hc *http.Client) error {
		resp, err := hc.Get(srv.URL)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}

	for _, c := range []struct {
		name string
		cfg  config.Meter
		o    ClientOptions
		ok   bool
	}{
		{"default trust", config.Meter{}, ClientOptions{}, false},
		{"ca_file", config.Meter{CAFile: good}, ClientOptions{}, true},
		{"insecure", config.Meter{Insecure: true}, ClientOptions{}, true},
		{"skip tls", config.Meter{Insecure: true}, ClientOptions{SkipTLS: true}, false},
		{"given transport", config.Meter{CAFile: good}, ClientOptions{Transport: http.DefaultTransport.(*http.Transport).Clone()}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			hc, err := NewClient(c.cfg, c.o)
			if err != nil {
				t.Fatal(err)
			}
			if err := get(hc); (err == nil) != c.ok {
				t.Errorf("GET: %v, want ok = %v", err, c.ok)
			}
		})
	}

	// A bad ca_file is a config error naming the key, with the family's
	// hint; with SkipTLS it is not even read.
	_, err := NewClient(config.Meter{Index: 2, CAFile: empty}, ClientOptions{CAHint: "export it from the device"})
	if !config.IsConfigError(err) || !strings.Contains(err.Error(), "meters[2].ca_file") || !strings.Contains(err.Error(), "holds no PEM certificate (export it from the device)") {
		t.Errorf("empty ca_file: %v", err)
	}
	_, err = NewClient(config.Meter{CAFile: filepath.Join(dir, "missing.pem")}, ClientOptions{})
	if !config.IsConfigError(err) || !strings.Contains(err.Error(), "cannot read") {
		t.Errorf("missing ca_file: %v", err)
	}
	if _, err := NewClient(config.Meter{CAFile: filepath.Join(dir, "missing.pem")}, ClientOptions{SkipTLS: true}); err != nil {
		t.Errorf("SkipTLS read the ca_file: %v", err)
	}
}

func TestNewClientRedirect(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/a" {
			http.Redirect(w, r, "/b", http.StatusFound)
		}
	}))
	defer srv.Close()
	for _, no := range []bool{false, true} {
		hc, err := NewClient(config.Meter{}, ClientOptions{NoRedirect: no})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Get(srv.URL + "/a")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		want := http.StatusOK
		if no {
			want = http.StatusFound
		}
		if resp.StatusCode != want {
			t.Errorf("NoRedirect %v: status %d, want %d", no, resp.StatusCode, want)
		}
	}
}

func TestClassify(t *testing.T) {
	hc, err := NewClient(config.Meter{}, ClientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// A closed port: refused at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/?password=secret"
	ln.Close()
	// A server that never answers.
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer hang.Close()

	do := func(ctx context.Context, u string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("GET %s answered", u)
		}
		return err
	}

	ctx := context.Background()
	err = do(ctx, closed)
	if f := Classify(ctx, err); f != Unreachable {
		t.Errorf("refused: %v", f)
	}
	me := TransportError(ctx, err, "Gadget at x", time.Second)
	if meter.KindOf(me) != meter.Unreachable || !strings.Contains(me.Error(), "Gadget at x is not reachable") || strings.Contains(me.Error(), "secret") {
		t.Errorf("refused: %v", me)
	}

	tctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	err = do(tctx, hang.URL)
	if f := Classify(tctx, err); f != TimedOut {
		t.Errorf("deadline: %v", f)
	}
	if me := TransportError(tctx, err, "Gadget at x", 50*time.Millisecond); !strings.Contains(me.Error(), "did not answer within 50ms") {
		t.Errorf("deadline: %v", me)
	}

	cctx, cancel2 := context.WithCancel(ctx)
	time.AfterFunc(20*time.Millisecond, cancel2)
	err = do(cctx, hang.URL)
	if f := Classify(cctx, err); f != Cancelled {
		t.Errorf("cancelled: %v", f)
	}

	if f := Classify(ctx, &netTimeout{}); f != TimedOut {
		t.Errorf("net timeout: %v", f)
	}
}

type netTimeout struct{}

func (*netTimeout) Error() string   { return "i/o timeout" }
func (*netTimeout) Timeout() bool   { return true }
func (*netTimeout) Temporary() bool { return true }

func TestUnmarshal(t *testing.T) {
	for body, want := range map[string]Problem{
		` {"a": 1} `:              NoProblem,
		"  \n":                    Empty,
		"<!DOCTYPE html><html>":   HTML,
		`{"a": [1, 2`:             Truncated,
		`{"a": 1,}`:               Broken,
		`{"a": "text"}`:           Shape,
		`{"a": 1} trailing stuff`: Broken,
	} {
		var v struct{ A int }
		got, err := Unmarshal([]byte(body), &v)
		if got != want {
			t.Errorf("%q: %v, want %v", body, got, want)
		}
		if (err != nil) != (want >= Truncated) {
			t.Errorf("%q: error %v", body, err)
		}
	}
}

func TestCheckAndResult(t *testing.T) {
	c, err := New(config.Meter{URL: "http://127.0.0.1:9", Invert: true, PowerThreshold: 5}, "Gadget")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	in := 12.0
	r := reading.Reading{Device: "d", Time: now, Power: 100, EnergyIn: &in}
	if err := c.Check(r); err != nil {
		t.Fatalf("valid reading: %v", err)
	}
	bad := r
	bad.Device = ""
	if err := c.Check(bad); meter.KindOf(err) != meter.BadAnswer || !strings.Contains(err.Error(), "Gadget at http://127.0.0.1:9 answered values out of range") {
		t.Errorf("invalid reading: %v", err)
	}

	rs, err := c.Result(r, nil)
	if err != nil || len(rs) != 1 {
		t.Fatalf("Result = %v, %v", rs, err)
	}
	if rs[0].Power != -100 || rs[0].EnergyIn != nil || rs[0].EnergyOut == nil || *rs[0].EnergyOut != 12 {
		t.Errorf("invert not applied: %+v", rs[0])
	}
	small := r
	small.Power = 3
	if rs, _ := c.Result(small, nil); rs[0].Power != 0 {
		t.Errorf("threshold not applied: %v", rs[0].Power)
	}
	parseErr := errors.New("parse failed")
	if rs, err := c.Result(r, parseErr); rs != nil || !errors.Is(err, parseErr) {
		t.Errorf("parse error: %v, %v", rs, err)
	}
}
