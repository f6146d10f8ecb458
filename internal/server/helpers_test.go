package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/sqlite"
)

const (
	homeKey  = "abc12345"
	cabinKey = "cabin-key-0001"
)

var berlin = mustZone("Europe/Berlin")

func mustZone(name string) *time.Location {
	z, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return z
}

// baseConfig has two sources: home (Europe/Berlin) and cabin (UTC).
const baseConfig = `
timezone = "Europe/Berlin"
[server]
listen = "127.0.0.1:0"
database = "sqlite:///unused.db"
max_body_bytes = 2048
metrics = true
[[server.sources]]
name = "home"
key = "abc12345"
[[server.sources]]
name = "cabin"
key = "cabin-key-0001"
timezone = "UTC"
`

func parseConfig(t testing.TB, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

// openStore opens a real SQLite file in a temporary folder.
func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := sqlite.OpenFile(context.Background(), filepath.Join(t.TempDir(), "pm.db"))
	if err != nil {
		t.Fatalf("opening the store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// testServer runs srv on a real listener on 127.0.0.1 until the test ends.
type testServer struct {
	*Server
	st   store.Store
	base string // http://127.0.0.1:port
	addr string
	stop context.CancelFunc
	done chan error
}

func testLog(t testing.TB) *slog.Logger {
	if os.Getenv("POWERMETER_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

func startServer(t testing.TB, cfgText string, st store.Store, tune func(*Server)) *testServer {
	t.Helper()
	return startServerLog(t, cfgText, st, tune, testLog(t))
}

// startServerLog is startServer with the server's logger.
func startServerLog(t testing.TB, cfgText string, st store.Store, tune func(*Server), log *slog.Logger) *testServer {
	t.Helper()
	if st == nil {
		st = openStore(t)
	}
	cfg := parseConfig(t, cfgText)
	srv, err := New(context.Background(), cfg, st, log)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if tune != nil {
		tune(srv)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts := &testServer{Server: srv, st: st, base: "http://" + ln.Addr().String(), addr: ln.Addr().String(), stop: cancel, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-ts.done:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(40 * time.Second):
			t.Errorf("Serve did not return after shutdown")
		}
	})
	return ts
}

var client = &http.Client{Timeout: 30 * time.Second}

// do sends a request and returns status, body and headers.
func do(t testing.TB, method, url, contentType, body string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatalf("request %s %s: %v", method, url, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// stored returns the readings of source in [from, to).
func stored(t testing.TB, st store.Store, source string, from, to time.Time) []reading.Reading {
	t.Helper()
	var out []reading.Reading
	if err := st.Range(context.Background(), source, from, to, func(r reading.Reading) error {
		out = append(out, r)
		return nil
	}); err != nil && !errors.Is(err, store.ErrUnknownSource) {
		t.Fatalf("Range: %v", err)
	}
	return out
}

// at is a wall-clock time in Berlin as UTC.
func at(y int, mo time.Month, d, h, mi, s int) time.Time {
	return time.Date(y, mo, d, h, mi, s, 0, berlin).UTC()
}
