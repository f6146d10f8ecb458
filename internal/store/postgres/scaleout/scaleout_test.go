// Package scaleout_test runs two powermeter HTTP servers on one PostgreSQL
// database, as two `serve` processes behind a load balancer would.
package scaleout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/server"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/postgres"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
)

const cfgText = `
timezone = "Europe/Berlin"
[server]
listen = "127.0.0.1:0"
database = "sqlite:///unused.db"
[[server.sources]]
name = "home"
key = "home-key-0001"
`

// startServer opens its own Store on url (its own pool and group
// committers, like a separate process) and serves it on 127.0.0.1.
func startServer(t *testing.T, url string) string {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	cfg, err := config.Parse("test.toml", []byte(cfgText), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(ctx, cfg, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs.URL
}

func TestTwoServersOneDatabase(t *testing.T) {
	url := pgtest.URL(t)
	var bases [2]string
	var wg sync.WaitGroup
	for i := range bases {
		wg.Go(func() { bases[i] = startServer(t, url) }) // both migrate at once
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	client := &http.Client{Timeout: 30 * time.Second}
	t0 := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	const n, per = 400, 10 // instants per server, readings per request
	var inserted, present atomic.Int64
	for si, base := range bases {
		for w := range 4 {
			wg.Go(func() {
				// Server 1 starts half way: n/2 instants reach both servers.
				for i := w * per; i < n; i += 4 * per {
					var rs []reading.Reading
					for j := range per {
						at := t0.Add(time.Duration(si*n/2+i+j) * 10 * time.Second)
						rs = append(rs, reading.Reading{Device: "grid", Time: at, Power: float64(si*n/2 + i + j)}) // one value per instant
					}
					body, _ := json.Marshal(map[string]any{"readings": rs})
					req, _ := http.NewRequest("POST", base+"/api/v1/readings", bytes.NewReader(body))
					req.Header.Set("Authorization", "Bearer home-key-0001")
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						t.Error(err)
						return
					}
					var res struct{ Inserted, Present int64 }
					err = json.NewDecoder(resp.Body).Decode(&res)
					resp.Body.Close()
					if err != nil || resp.StatusCode != 200 {
						t.Errorf("POST to server %d: %d %v", si, resp.StatusCode, err)
						return
					}
					inserted.Add(res.Inserted)
					present.Add(res.Present)
				}
			})
		}
	}
	wg.Wait()
	want := int64(n * 3 / 2)
	if inserted.Load() != want || present.Load() != 2*n-want {
		t.Fatalf("inserted %d, present %d; want %d and %d", inserted.Load(), present.Load(), want, 2*n-want)
	}
	// Each server shows everything.
	for si, base := range bases {
		req, _ := http.NewRequest("GET", base+"/api/v1/sources", nil)
		req.Header.Set("Authorization", "Bearer home-key-0001")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var srcs []store.SourceInfo
		err = json.NewDecoder(resp.Body).Decode(&srcs)
		resp.Body.Close()
		if err != nil || len(srcs) != 1 || srcs[0].Count != want ||
			!srcs[0].First.Equal(t0) || !srcs[0].Last.Equal(t0.Add(time.Duration(want-1)*10*time.Second)) {
			t.Errorf("server %d sources: %+v %v", si, srcs, err)
		}
		req, _ = http.NewRequest("GET", fmt.Sprintf("%s/api/v1/sources/home/readings?from=%s&to=%s&format=csv", base,
			t0.Format(time.RFC3339), t0.Add(24*time.Hour).Format(time.RFC3339)), nil)
		req.Header.Set("Authorization", "Bearer home-key-0001")
		resp, err = client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if lines := bytes.Count(buf.Bytes(), []byte("\n")); resp.StatusCode != 200 || int64(lines) != want+1 {
			t.Errorf("server %d CSV: status %d, %d lines, want %d readings + header", si, resp.StatusCode, lines, want)
		}
	}
}
