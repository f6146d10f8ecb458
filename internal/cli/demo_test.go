package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"
)

type demoBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (d *demoBuf) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.b.Write(p)
}

func (d *demoBuf) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.b.String()
}

func TestDemoServesReadingsAndCleansUp(t *testing.T) {
	var out demoBuf
	env := &Env{Stdout: &out, Stderr: io.Discard, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), LookupEnv: func(string) (string, bool) { return "", false }}
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	commands["demo"].Flags(fs)
	if err := fs.Parse([]string{"--listen", "127.0.0.1:0"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- runDemo(ctx, env, fs) }()

	urlRE := regexp.MustCompile(`dashboard at (http://127\.0\.0\.1:\d+/)\n\s+data in (\S+)`)
	var base, dir string
	deadline := time.Now().Add(20 * time.Second)
	for base == "" {
		if m := urlRE.FindStringSubmatch(out.String()); m != nil {
			base, dir = m[1], m[2]
		} else if time.Now().After(deadline) {
			t.Fatalf("no dashboard address printed:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The first round comes at the next 10-s mark: wait for all three
	// devices in the server's store.
	deadline = time.Now().Add(25 * time.Second)
	for {
		var latest struct {
			Readings []struct {
				Device string `json:"device"`
			} `json:"readings"`
		}
		resp, err := http.Get(base + "api/v1/sources/demo/latest")
		if err == nil {
			json.NewDecoder(resp.Body).Decode(&latest)
			resp.Body.Close()
		}
		if len(latest.Readings) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("latest readings: %+v (err %v)", latest, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("data folder: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("demo did not stop")
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("temporary folder %s left behind (%v)", dir, err)
	}
}
