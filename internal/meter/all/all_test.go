package all

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/fritzdect"
	"github.com/powermeter/powermeter/internal/meter/metertest"
	"github.com/powermeter/powermeter/internal/meter/opendtu"
	"github.com/powermeter/powermeter/internal/meter/shelly"
)

// The fleet: 50 devices of every family, each its own emulator.
var mix = []struct {
	kind string
	n    int
}{
	{"tasmota", 6}, {"tasmota-sml", 5}, {"ahoydtu", 6}, {"opendtu", 6}, {"fritzbox", 5},
	{"fritzbox-rest", 5}, {"shelly-gen1", 5}, {"shelly-gen2", 4}, {"shelly-pro3em", 4},
	{"epever", 4},
}

const benchPassword = "bench-pw"

// sunnyZone is a zone where it is about 13:00 now: the inverter emulators
// follow the sun in their zone, so the fleet is awake at any hour.
func sunnyZone() *time.Location {
	now := time.Now().UTC()
	return time.FixedZone("sunny", (13-now.Hour())*3600-now.Minute()*60)
}

func emulatorOptions(kind string) emulate.Options {
	o := emulate.Options{Zone: sunnyZone()}
	if kind == "fritzbox" || kind == "fritzbox-rest" {
		o.Username, o.Password = "fritz3456", benchPassword
	}
	return o
}

// meterConfig is the [[meters]] entry for the i-th device of kind at url.
func meterConfig(kind string, i int, url string) config.Meter {
	c := config.Meter{Name: fmt.Sprintf("%s-%d", kind, i), URL: url, Timeout: config.Duration{Duration: 5 * time.Second}}
	switch kind {
	case "tasmota", "ahoydtu", "opendtu", "epever":
		c.Type = kind
	case "tasmota-sml":
		c.Type, c.SML = "tasmota", &config.SML{}
	case "fritzbox", "fritzbox-rest":
		c.Type, c.Username, c.Password, c.AIN = "fritzdect", "fritz3456", benchPassword, fritzdect.EmuAINFridge
	default:
		c.Type = "shelly"
	}
	switch kind {
	case "ahoydtu":
		c.Channel = i % 2
	case "opendtu":
		if i%2 == 0 {
			c.Serial = opendtu.Serial800
		}
	}
	return c
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newEmulator builds the emulator of kind. Shelly devices answer 429 above
// 20 requests per second; back-to-back benchmark rounds are faster than any
// logger polls, so their limit is lifted here.
func newEmulator(kind string) (emulate.Emulator, error) {
	o := emulatorOptions(kind)
	cfg := shelly.DefaultEmulatorConfig()
	cfg.RateLimit = 0
	switch kind {
	case "fritzbox", "fritzbox-rest": // cheap PBKDF2: logins are not what is measured
		return fritzdect.NewEmulator(fritzdect.EmulatorOptions{Username: o.Username, Password: o.Password, Zone: o.Zone, Iter1: 50, Iter2: 5, FritzOS82: kind == "fritzbox-rest"}), nil
	case "tasmota-sml":
		o.Profile = "sml"
		return emulate.New("tasmota", o)
	case "shelly-gen1":
		return shelly.NewGen1Emulator(o, cfg)
	case "shelly-gen2":
		return shelly.NewGen2Emulator(o, cfg)
	case "shelly-pro3em":
		return shelly.NewPro3EMEmulator(o, cfg)
	}
	return emulate.New(kind, o)
}

// startServers serves one emulator per device on 127.0.0.1 and returns the
// devices' kinds and URLs, in mix order, and a function stopping them.
func startServers() (kinds, urls []string, stop func(), err error) {
	var srvs []*http.Server
	stop = func() {
		for _, s := range srvs {
			s.Close()
		}
	}
	for _, m := range mix {
		for i := 0; i < m.n; i++ {
			e, err := newEmulator(m.kind)
			if err != nil {
				stop()
				return nil, nil, nil, err
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				stop()
				return nil, nil, nil, err
			}
			s := &http.Server{Handler: e, ReadHeaderTimeout: 5 * time.Second}
			srvs = append(srvs, s)
			go s.Serve(ln)
			kinds = append(kinds, m.kind)
			urls = append(urls, "http://"+ln.Addr().String())
		}
	}
	return kinds, urls, stop, nil
}

func openFleet(tb testing.TB, kinds, urls []string) []meter.Meter {
	tb.Helper()
	ms := make([]meter.Meter, len(urls))
	for i := range urls {
		m, err := meter.New(meterConfig(kinds[i], i, urls[i]), meter.Deps{Zone: metertest.MustZone("Europe/Berlin"), Log: quiet})
		if err != nil {
			tb.Fatalf("meter %d (%s): %v", i, kinds[i], err)
		}
		ms[i] = m
	}
	tb.Cleanup(func() {
		for _, m := range ms {
			m.Close(context.Background())
		}
	})
	return ms
}

// round reads every meter once, concurrently, as the logger does.
func round(ctx context.Context, ms []meter.Meter) (readings int, errs []error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs, err := m.Read(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("meter %d: %w", i, err))
				return
			}
			for _, r := range rs {
				if err := r.Validate(); err != nil {
					errs = append(errs, fmt.Errorf("meter %d: invalid reading: %w", i, err))
				}
			}
			readings += len(rs)
		}()
	}
	wg.Wait()
	return readings, errs
}

func TestEveryFamilyRegistered(t *testing.T) {
	types := strings.Join(meter.Types(), ",")
	for _, want := range config.MeterTypes {
		if !strings.Contains(types, want) {
			t.Errorf("meter type %q is not registered (have %s)", want, types)
		}
	}
	kinds := strings.Join(emulate.Kinds(), ",")
	for _, m := range mix {
		// variants of an emulator: tasmota-sml, fritzbox-rest
		if k := strings.TrimSuffix(strings.TrimSuffix(m.kind, "-sml"), "-rest"); !strings.Contains(kinds, k) {
			t.Errorf("emulator %q is not registered (have %s)", m.kind, kinds)
		}
	}
}

func TestRoundOverFleet(t *testing.T) {
	kinds, urls, stop, err := startServers()
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if len(urls) != 50 {
		t.Fatalf("fleet of %d, want 50", len(urls))
	}
	ms := openFleet(t, kinds, urls)
	for r := 0; r < 2; r++ { // the second round reuses sessions
		n, errs := round(context.Background(), ms)
		for _, err := range errs {
			t.Error(err)
		}
		if n < 50 {
			t.Errorf("round %d: %d readings from 50 meters", r, n)
		}
	}
}

// The benchmark's emulators run in a child process (this test binary with
// POWERMETER_BENCH_EMULATORS=1), so allocations counted here are the
// clients' alone.
func TestMain(m *testing.M) {
	if os.Getenv("POWERMETER_BENCH_EMULATORS") == "1" {
		serveChild()
		return
	}
	os.Exit(m.Run())
}

func serveChild() {
	kinds, urls, stop, err := startServers()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	for i := range urls {
		fmt.Println(kinds[i], urls[i])
	}
	fmt.Println("ready")
	io.Copy(io.Discard, os.Stdin) // until the parent closes stdin
	stop()
}

func startChild(b *testing.B) (kinds, urls []string) {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), "POWERMETER_BENCH_EMULATORS=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		if line == "ready" {
			return kinds, urls
		}
		k, u, ok := strings.Cut(line, " ")
		if !ok || k == "error" {
			b.Fatalf("emulator process: %s", line)
		}
		kinds, urls = append(kinds, k), append(urls, u)
	}
	b.Fatalf("emulator process ended early: %v", sc.Err())
	return nil, nil
}

// BenchmarkRound reads 50 meters of all families concurrently; one op is
// one round. allocs/read is the clients' allocations per meter read.
func BenchmarkRound(b *testing.B) {
	kinds, urls := startChild(b)
	ms := openFleet(b, kinds, urls)
	ctx := context.Background()
	if _, errs := round(ctx, ms); len(errs) > 0 { // logins, connections
		b.Fatalf("warm-up round: %v", errs)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	rounds := 0
	for b.Loop() {
		if _, errs := round(ctx, ms); len(errs) > 0 {
			b.Fatalf("round: %v", errs)
		}
		rounds++
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/float64(rounds*len(ms)), "allocs/read")
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(rounds*len(ms)), "B/read")
}

// BenchmarkRead reads one device of each family in turn: the clients'
// cost per read, family by family.
func BenchmarkRead(b *testing.B) {
	kinds, urls := startChild(b)
	ms := openFleet(b, kinds, urls)
	seen := map[string]bool{}
	for i, kind := range kinds {
		if seen[kind] {
			continue
		}
		seen[kind] = true
		m := ms[i]
		b.Run(kind, func(b *testing.B) {
			ctx := context.Background()
			if _, err := m.Read(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
