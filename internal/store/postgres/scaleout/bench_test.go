package scaleout_test

// Legacy log.php ingest over real HTTP into each backend, durable, with 1,
// 10 000 and 100 000 sources (keys):
//
//	POWERMETER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test -run '^$' -bench LegacyIngest -benchtime 3000x ./internal/store/postgres/scaleout/

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/server"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
	_ "github.com/powermeter/powermeter/internal/store/sqlite"
)

const clients = 64

func BenchmarkLegacyIngest(b *testing.B) {
	backends := []struct {
		name    string
		url     func(b *testing.B) string
		sources []int
	}{
		// SQLite keeps a table per source: registering 100 000 took more
		// than 17 minutes on the shared machine (docs/postgres.md), so it
		// runs up to 10 000.
		{"sqlite", func(b *testing.B) string { return "sqlite://" + filepath.Join(b.TempDir(), "pm.db") }, []int{1, 10000}},
		{"postgres", func(b *testing.B) string { return pgtest.URL(b) }, []int{1, 10000, 100000}},
	}
	for _, be := range backends {
		for _, n := range be.sources {
			b.Run(fmt.Sprintf("%s/sources=%d", be.name, n), func(b *testing.B) {
				benchLegacy(b, be.url(b), n)
			})
		}
	}
}

func benchLegacy(b *testing.B, url string, sources int) {
	ctx := context.Background()
	st, err := store.Open(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	var cfg strings.Builder
	cfg.WriteString("timezone = \"UTC\"\n[server]\nlisten = \"127.0.0.1:0\"\ndatabase = \"sqlite:///unused.db\"\n")
	for i := range sources {
		fmt.Fprintf(&cfg, "[[server.sources]]\nname = \"s%05d\"\nkey = \"key-%05d\"\n", i, i)
	}
	setup := time.Now()
	c, err := config.Parse("bench.toml", []byte(cfg.String()), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	parsed := time.Since(setup)
	srv, err := server.New(ctx, c, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	registered := time.Since(setup)
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: clients, MaxIdleConnsPerHost: clients, IdleConnTimeout: time.Minute,
		DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
	}}
	// Live readings (the server refuses readings from the future); on
	// PostgreSQL they stay in recent during the run, as live ones do.
	base := time.Now().UTC().Add(-2 * time.Minute).Truncate(time.Second)
	get := func(i int64) error {
		src := int(i) % sources
		t := base.Add(time.Duration(i/int64(sources)) * time.Second)
		u := fmt.Sprintf("%s/powermeter/log.php?key=key-%05d&stats=%s,%d.%02d,21.5", hs.URL, src, t.Format("02.01.2006,15:04:05"), i%4000, i%100)
		resp, err := client.Get(u)
		if err != nil {
			return err
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d: %s", resp.StatusCode, body)
		}
		return nil
	}
	// Steady state: every source has its device and first reading.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(sources); i = next.Add(1) - 1 {
				if err := get(i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.Logf("%d sources: config parsed in %s, registered by %s, first reading of each by %s",
		sources, parsed.Round(time.Millisecond), registered.Round(time.Millisecond), time.Since(setup).Round(time.Millisecond))
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var mine []time.Duration
		for pb.Next() {
			t0 := time.Now()
			if err := get(next.Add(1) - 1); err != nil {
				b.Error(err)
				return
			}
			mine = append(mine, time.Since(t0))
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
