package scaleout_test

// Legacy log.php ingest over real HTTP into each backend, durable, with 1,
// 10 000 and 100 000 sources (keys):
//
//	POWERMETER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test -run '^$' -bench LegacyIngest -benchtime 3000x ./internal/store/postgres/scaleout/

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/server"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
	_ "github.com/powermeter/powermeter/internal/store/sqlite"
)

// clientCounts are the numbers of loggers sending at once, each on its
// own keep-alive connection, each waiting for its answer before it sends
// again (POWERMETER_BENCH_CLIENTS=n[,n…] overrides them): 64; 256, about
// as many requests as are in flight at 15 000 readings/s and 15 ms each;
// 2000, "a few thousand sending at once" of issue 15, as when loggers
// send on the same second. A closed loop of few clients is bound by the
// commit latency (all of them wait in one group while it is flushed), not
// by the CPU: the idle share shows it.
var clientCounts = func() []int {
	var out []int
	for f := range strings.SplitSeq(os.Getenv("POWERMETER_BENCH_CLIENTS"), ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && n > 0 {
			out = append(out, n)
		}
	}
	if len(out) == 0 {
		out = []int{64, 256, 2000}
	}
	return out
}()

func BenchmarkLegacyIngest(b *testing.B) {
	// The ceiling of this machine at this moment: the same load generator
	// against a handler that answers "stored" and does nothing else.
	b.Run("noop", func(b *testing.B) {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "stored\n")
		}))
		defer hs.Close()
		drive(b, hs.Listener.Addr().String(), hs.URL, 1, time.Now(), new(atomic.Int64))
	})
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

// processCPU is the CPU time (user + system) this process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU is the busy and idle CPU time of the whole machine so far
// (from /proc/stat; zero where there is none).
func machineCPU() (busy, idle time.Duration) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0
	}
	var v [7]int64
	for i := range v {
		v[i], _ = strconv.ParseInt(f[i+1], 10, 64)
	}
	// user nice system idle iowait irq softirq, in USER_HZ (100 on Linux)
	const tick = 10 * time.Millisecond
	return time.Duration(v[0]+v[1]+v[2]+v[5]+v[6]) * tick, time.Duration(v[3]+v[4]) * tick
}

func benchLegacy(b *testing.B, url string, sources int) {
	ctx := context.Background()
	var cfg strings.Builder
	cfg.WriteString("timezone = \"UTC\"\n[server]\nlisten = \"127.0.0.1:0\"\ndatabase = \"sqlite:///unused.db\"\n")
	for i := range sources {
		fmt.Fprintf(&cfg, "[[server.sources]]\nname = \"s%05d\"\nkey = \"key-%05d\"\n", i, i)
	}
	// Live readings (the server refuses readings from the future); on
	// PostgreSQL they stay in recent during the run, as live ones do.
	base := time.Now().UTC().Add(-2 * time.Minute).Truncate(time.Second)
	target := targets(sources, base)
	var next atomic.Int64
	// start starts a server on the database and sends each source one
	// reading; it logs how long that took.
	start := func(what string) (addr, base string, stop func()) {
		t0 := time.Now()
		c, err := config.Parse("bench.toml", []byte(cfg.String()), func(string) (string, bool) { return "", false })
		if err != nil {
			b.Fatal(err)
		}
		parsed := time.Since(t0)
		st, err := store.Open(ctx, url)
		if err != nil {
			b.Fatal(err)
		}
		srv, err := server.New(ctx, c, st, nil)
		if err != nil {
			b.Fatal(err)
		}
		registered := time.Since(t0)
		hs := httptest.NewServer(srv.Handler())
		addr = hs.Listener.Addr().String()
		newClient := clientMaker(addr, hs.URL)
		var wg sync.WaitGroup
		end := next.Load() + int64(sources)
		for range 64 {
			wg.Go(func() {
				c := newClient()
				defer c.Close()
				var buf []byte
				for i := next.Add(1) - 1; i < end; i = next.Add(1) - 1 {
					buf = target(buf[:0], i)
					if err := c.Get(buf); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		next.Store(end)
		b.Logf("%d sources, %s: config parsed in %s, server started by %s, one reading of each by %s",
			sources, what, parsed.Round(time.Millisecond), registered.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
		return addr, hs.URL, func() { hs.Close(); st.Close() }
	}
	// Steady state: every source has its device and first reading; then
	// the server restarts (as after an upgrade) and every source sends
	// again before the measured run.
	_, _, stop := start("new database")
	stop()
	addr, hsURL, stop := start("restarted")
	defer stop()
	drive(b, addr, hsURL, sources, base, &next)
}

// targets returns the request target of the i-th reading: sources take
// turns, each sending one line a second from base on.
func targets(sources int, base time.Time) func(buf []byte, i int64) []byte {
	return func(buf []byte, i int64) []byte {
		src := int(i) % sources
		t := base.Add(time.Duration(i/int64(sources)) * time.Second)
		buf = fmt.Appendf(buf, "/powermeter/log.php?key=key-%05d&stats=", src)
		buf = t.AppendFormat(buf, "02.01.2006,15:04:05")
		return fmt.Appendf(buf, ",%d.%02d,21.5", i%4000, i%100)
	}
}

// clientMaker returns the load generator's connections: raw ones, or
// net/http's client with POWERMETER_BENCH_CLIENT=nethttp.
func clientMaker(addr, url string) func() benchClient {
	if os.Getenv("POWERMETER_BENCH_CLIENT") == "nethttp" {
		hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute,
			DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		}}
		return func() benchClient { return &netHTTPClient{c: hc, base: url} }
	}
	return func() benchClient { return newRawClient(addr) }
}

// drive runs one sub-benchmark per client count against the server at
// addr: readings/s, p99 latency, and where the CPU went. seq numbers the
// readings across them.
func drive(b *testing.B, addr, url string, sources int, base time.Time, seq *atomic.Int64) {
	newClient := clientMaker(addr, url)
	target := targets(sources, base)
	for _, clients := range clientCounts {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			var mu sync.Mutex
			var lat []time.Duration
			b.SetParallelism(max(1, clients/runtime.GOMAXPROCS(0)))
			// POWERMETER_BENCH_CPUPROFILE=file profiles the steady state only.
			if f := os.Getenv("POWERMETER_BENCH_CPUPROFILE"); f != "" {
				out, err := os.Create(f)
				if err != nil {
					b.Fatal(err)
				}
				defer out.Close()
				if err := pprof.StartCPUProfile(out); err != nil {
					b.Fatal(err)
				}
				defer pprof.StopCPUProfile()
			}
			b.ResetTimer()
			cpu0 := processCPU()
			busy0, idle0 := machineCPU()
			b.RunParallel(func(pb *testing.PB) {
				var mine []time.Duration
				c := newClient()
				defer c.Close()
				var buf []byte
				for pb.Next() {
					t0 := time.Now()
					buf = target(buf[:0], seq.Add(1)-1)
					if err := c.Get(buf); err != nil {
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
			cpu1 := processCPU()
			busy1, idle1 := machineCPU()
			if len(lat) == 0 {
				return
			}
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(len(lat))/b.Elapsed().Seconds(), "readings/s")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			// Where the CPU went, per reading: this process (the load
			// generator and the server) and the rest of the machine
			// (PostgreSQL, the kernel's work for other processes); idle is
			// the machine's unused share.
			n := float64(len(lat))
			b.ReportMetric(float64(cpu1-cpu0)/n/1000, "go-cpu-µs/op")
			if busy1 > busy0 {
				b.ReportMetric(max(0, float64(busy1-busy0-(cpu1-cpu0)))/n/1000, "other-cpu-µs/op")
				b.ReportMetric(100*float64(idle1-idle0)/float64(busy1-busy0+idle1-idle0), "idle-%")
			}
		})
	}
}

// benchClient sends GETs of a path and query to the server under test and
// wants 200.
type benchClient interface {
	Get(target []byte) error
	Close()
}

// rawClient is one keep-alive HTTP/1.1 connection whose requests are
// written by hand, as the ESP8266 loggers write theirs: the load generator
// shares the machine with the server and the database, so it should cost
// them as little CPU as it can (net/http's client took a third of the
// machine). It expects what the log.php receiver answers: a status line,
// headers with Content-Length, a short body.
type rawClient struct {
	addr string
	conn net.Conn
	r    *bufio.Reader
	req  []byte
}

func newRawClient(addr string) *rawClient { return &rawClient{addr: addr} }

func (c *rawClient) Get(target []byte) error {
	if c.conn == nil {
		conn, err := net.DialTimeout("tcp", c.addr, 5*time.Second)
		if err != nil {
			return err
		}
		c.conn, c.r = conn, bufio.NewReaderSize(conn, 4096)
	}
	c.req = append(c.req[:0], "GET "...)
	c.req = append(c.req, target...)
	c.req = append(c.req, " HTTP/1.1\r\nHost: "...)
	c.req = append(c.req, c.addr...)
	c.req = append(c.req, "\r\nUser-Agent: powermeter-bench\r\n\r\n"...)
	c.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := c.conn.Write(c.req); err != nil {
		return c.fail(err)
	}
	status, err := c.r.ReadSlice('\n')
	if err != nil {
		return c.fail(err)
	}
	code := 0
	if len(status) >= 12 && bytes.HasPrefix(status, []byte("HTTP/1.1 ")) {
		code, _ = strconv.Atoi(string(status[9:12]))
	}
	length := -1
	for {
		h, err := c.r.ReadSlice('\n')
		if err != nil {
			return c.fail(err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		if k, v, ok := bytes.Cut(h, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length < 0 {
		return c.fail(fmt.Errorf("status %d: no Content-Length", code))
	}
	body := make([]byte, length)
	if _, err := io.ReadFull(c.r, body); err != nil {
		return c.fail(err)
	}
	if code != 200 {
		return fmt.Errorf("status %d: %s", code, body)
	}
	return nil
}

// fail drops a broken connection; the next Get dials again.
func (c *rawClient) fail(err error) error {
	c.Close()
	return err
}

func (c *rawClient) Close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn = nil
	}
}

// netHTTPClient is net/http's client (POWERMETER_BENCH_CLIENT=nethttp).
type netHTTPClient struct {
	c    *http.Client
	base string
}

func (c *netHTTPClient) Get(target []byte) error {
	resp, err := c.c.Get(c.base + string(target))
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

func (c *netHTTPClient) Close() {}
