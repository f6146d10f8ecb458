package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/store/groupcommit"
)

// benchClients is the number of parallel clients (POWERMETER_BENCH_CLIENTS
// overrides it).
var benchClients = func() int {
	if n, err := strconv.Atoi(os.Getenv("POWERMETER_BENCH_CLIENTS")); err == nil && n > 0 {
		return n
	}
	return 64
}()

// benchClient keeps connections alive for parallel clients.
func benchClient() *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns:        benchClients,
			MaxIdleConnsPerHost: benchClients,
			IdleConnTimeout:     time.Minute,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		},
	}
}

// runHTTPBench runs parallel keep-alive GETs of url(i) and reports
// readings/s and latency percentiles.
func runHTTPBench(b *testing.B, url func(i int64) string) {
	c := benchClient()
	var seq atomic.Int64
	var mu sync.Mutex
	var lat []time.Duration
	b.SetParallelism(benchClients / runtime.GOMAXPROCS(0))
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		mine := make([]time.Duration, 0, 1024)
		for pb.Next() {
			u := url(seq.Add(1))
			t0 := time.Now()
			resp, err := c.Get(u)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mine = append(mine, time.Since(t0))
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
		mu.Lock()
		lat = append(lat, mine...)
		mu.Unlock()
	})
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	if len(lat) == 0 {
		return
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) / 1000 }
	b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "readings/s")
	b.ReportMetric(pct(0.50), "p50-ms")
	b.ReportMetric(pct(0.99), "p99-ms")
	// CPU per request (clients and server, the whole process): on a shared
	// machine it shows the cost of a request better than the wall time.
	b.ReportMetric(float64(cpu)/float64(len(lat)), "cpu-ns/op")
}

// cpuTime is the CPU time (user + system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkLegacyIngest measures GET /log.php over real HTTP with
// keep-alive and parallel clients into a real SQLite file: every 200 is a
// durable (fsync'd) reading at a new instant.
func BenchmarkLegacyIngest(b *testing.B) {
	ts := startServer(b, baseConfig, nil, nil)
	// the cabin source runs on UTC: one line per second from 2020 on never
	// meets a doubled hour however large b.N grows
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	prefix := ts.base + "/powermeter/log.php?key=" + cabinKey + "&stats="
	cs, _ := ts.st.(interface{ CommitStats() groupcommit.Stats })
	var before groupcommit.Stats
	if cs != nil {
		before = cs.CommitStats()
	}
	runHTTPBench(b, func(i int64) string {
		t := base.Add(time.Duration(i) * time.Second)
		return prefix + t.Format("02.01.2006,15:04:05") + fmt.Sprintf(",%d.%02d,21.5", i%4000, i%100)
	})
	if cs != nil {
		after := cs.CommitStats()
		if tx := after.Transactions - before.Transactions; tx > 0 {
			b.ReportMetric(float64(after.Batches-before.Batches)/float64(tx), "readings/commit")
		}
	}
}

// BenchmarkNoopHandler is the ceiling: the same clients against a handler
// that does nothing.
func BenchmarkNoopHandler(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	runHTTPBench(b, func(i int64) string { return srv.URL + "/log.php?key=x&stats=y" })
}
