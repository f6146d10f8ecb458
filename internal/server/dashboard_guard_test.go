package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// TestDashboardWrongCredentialsBlocked: wrong dashboard credentials count
// with the wrong-key limiter, and the block covers ingest too.
func TestDashboardWrongCredentialsBlocked(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := baseConfig + "[server.dashboard]\nusers = [\"anna:" + string(hash) + "\"]\nread_token = \"read-token-0001\"\n"
	ts := startServer(t, cfg, nil, func(s *Server) {
		s.lim.free, s.lim.delay, s.lim.maxDelay, s.lim.blockAt = 2, time.Millisecond, 2*time.Millisecond, 5
	})
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }
	if code, _, _ := do(t, "GET", ts.base+"/", "", "", "Authorization", basic("anna", "pw")); code != 200 {
		t.Fatalf("right password: %d", code)
	}
	// no credentials: asked for them, not counted
	for range 6 {
		if code, _, _ := do(t, "GET", ts.base+"/", "", ""); code != 401 {
			t.Fatalf("no credentials: %d", code)
		}
	}
	for i, c := range []struct{ path, auth string }{
		{"/", basic("anna", "guess1")},
		{"/", basic("nobody", "pw")},
		{"/s/home?token=guess", ""},
		{"/", "Bearer guess"},
	} {
		var hdr []string
		if c.auth != "" {
			hdr = []string{"Authorization", c.auth}
		}
		if code, _, _ := do(t, "GET", ts.base+c.path, "", "", hdr...); code != 401 {
			t.Fatalf("wrong credential %d: %d, want 401", i+1, code)
		}
	}
	code, _, h := do(t, "GET", ts.base+"/", "", "", "Authorization", basic("anna", "guess2"))
	if code != 429 || h.Get("Retry-After") != "60" {
		t.Fatalf("5th wrong credential: %d Retry-After %q, want 429 and 60", code, h.Get("Retry-After"))
	}
	// the block covers every credential not seen succeeding from this
	// address — the read API and ingest here — but not the right password
	// that got in before
	if code, _, _ := do(t, "GET", ts.base+"/", "", "", "Authorization", basic("anna", "pw")); code != 200 {
		t.Fatalf("right password that got in before, while blocked: %d", code)
	}
	if code, _, _ := do(t, "GET", ts.base+"/api/v1/sources", "", "", "Authorization", "Bearer read-token-0001"); code != 429 {
		t.Fatalf("read API while blocked: %d", code)
	}
	if code, _ := sendLine(t, ts, "26.11.2026,12:00:00,1.00", false); code != 429 {
		t.Fatalf("ingest while blocked: %d", code)
	}
}

// wideListener reports an unspecified address while listening on loopback.
type wideListener struct{ net.Listener }

func (wideListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4zero, Port: 8080} }

// syncBuf is a log sink safe for concurrent writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestOpenReadWarning: open read access on a non-loopback address is
// warned about at start; with credentials or on loopback it is not.
func TestOpenReadWarning(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		cfg  string
		wide bool
		warn bool
	}{
		{"open, all addresses", baseConfig, true, true},
		{"open, loopback", baseConfig, false, false},
		{"users, all addresses", baseConfig + "[server.dashboard]\nusers = [\"anna:" + string(hash) + "\"]\n", true, false},
		{"token, all addresses", baseConfig + "[server.dashboard]\nread_token = \"read-token-0001\"\n", true, false},
	} {
		var buf syncBuf
		srv, err := New(context.Background(), parseConfig(t, c.cfg), openStore(t), slog.New(slog.NewTextHandler(&buf, nil)))
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var l net.Listener = ln
		if c.wide {
			l = wideListener{ln}
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, l) }()
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(buf.String(), "serving") && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("%s: Serve: %v", c.name, err)
		}
		if got := strings.Contains(buf.String(), "read access is open"); got != c.warn {
			t.Errorf("%s: warning %v, want %v; log:\n%s", c.name, got, c.warn, buf.String())
		}
	}
}

// TestShutdownClosesDashboard: Serve's shutdown closes the dashboard, so a
// live stream opened on the handler afterwards ends at once instead of
// streaming on.
func TestShutdownClosesDashboard(t *testing.T) {
	st := openStore(t)
	ts := startServer(t, baseConfig, st, nil)
	ts.stop()
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatal(err)
		}
		ts.done <- nil // for the cleanup
	case <-time.After(40 * time.Second):
		t.Fatal("Serve did not return")
	}
	hs := httptest.NewServer(ts.Handler())
	defer hs.Close()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(hs.URL + "/s/home/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("live stream after shutdown did not end: %v", err)
	}
}
