package logger

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
	_ "github.com/powermeter/powermeter/internal/meter/all"
	"github.com/powermeter/powermeter/internal/meter/fritzdect"
	"github.com/powermeter/powermeter/internal/meter/shelly"
)

// benchResult is what the child process of BenchmarkLogger10Meters reports.
type benchResult struct {
	Rounds     int     `json:"rounds"`
	Readings   uint64  `json:"readings"`
	PeakRSSKB  int64   `json:"peak_rss_kb"` // VmHWM
	RSSKB      int64   `json:"rss_kb"`      // VmRSS at the end
	AnonKB     int64   `json:"anon_kb"`     // RssAnon at the end (heap, stacks)
	FileKB     int64   `json:"file_kb"`     // RssFile at the end (the binary's pages)
	HeapMB     float64 `json:"heap_mb"`     // live heap objects after a GC
	GoTotalMB  float64 `json:"go_total_mb"` // runtime/metrics /memory/classes/total:bytes
	CPUSeconds float64 `json:"cpu_s"`       // user + system
	WallS      float64 `json:"wall_s"`
}

func procStatusKB(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, field+":") {
			f := strings.Fields(line)
			if len(f) >= 2 {
				v, _ := strconv.ParseInt(f[1], 10, 64)
				return v
			}
		}
	}
	return -1
}

// TestHelperLoggerBench is not a test: BenchmarkLogger10Meters runs the
// test binary again with POWERMETER_BENCH_CONFIG set, so the logger's
// memory is measured in a process of its own (the emulators and the
// receiving server stay in the parent).
func TestHelperLoggerBench(t *testing.T) {
	path := os.Getenv("POWERMETER_BENCH_CONFIG")
	if path == "" {
		return
	}
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	rounds, _ := strconv.Atoi(os.Getenv("POWERMETER_BENCH_ROUNDS"))
	TuneForSmallDevice() // as `powermeter run` does without [server]
	var ru0 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	began := time.Now()
	l, err := New(cfg, Options{
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Clock:  NewFakeClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), true),
		Rounds: rounds,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	if err := l.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if p := os.Getenv("POWERMETER_BENCH_HEAPPROF"); p != "" {
		if f, err := os.Create(p); err == nil {
			runtime.GC()
			pprof.WriteHeapProfile(f)
			f.Close()
		}
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	res := benchResult{
		Rounds: rounds, Readings: l.Status().Counters.Readings,
		PeakRSSKB: procStatusKB("VmHWM"), RSSKB: procStatusKB("VmRSS"),
		AnonKB: procStatusKB("RssAnon"), FileKB: procStatusKB("RssFile"),
		HeapMB:     float64(sample[1].Value.Uint64()) / (1 << 20),
		GoTotalMB:  float64(sample[0].Value.Uint64()) / (1 << 20),
		CPUSeconds: tv(ru.Utime) + tv(ru.Stime) - tv(ru0.Utime) - tv(ru0.Stime),
		WallS:      time.Since(began).Seconds(),
	}
	if os.Getenv("POWERMETER_BENCH_CLASSES") != "" {
		var all []metrics.Sample
		for _, d := range metrics.All() {
			if strings.HasPrefix(d.Name, "/memory/classes/") || strings.HasPrefix(d.Name, "/gc/heap/goal") || d.Name == "/gc/cycles/total:gc-cycles" {
				all = append(all, metrics.Sample{Name: d.Name})
			}
		}
		metrics.Read(all)
		for _, m := range all {
			fmt.Fprintf(os.Stderr, "%s %d\n", m.Name, m.Value.Uint64())
		}
	}
	json.NewEncoder(os.Stdout).Encode(res)
	os.Exit(0)
}

// newReceiver accepts native batches (like our server, without storing).
func newReceiver(b testing.TB) string {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Readings []json.RawMessage `json:"readings"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintf(w, `{"inserted":%d}`, len(body.Readings))
	}))
	b.Cleanup(hs.Close)
	return hs.URL
}

// BenchmarkLogger10Meters runs a logger process with 10 meters (3
// FRITZ!DECT behind FRITZ!Box emulators, 4 Shelly Plug S, 3 Shelly Pro
// 3EM) for 1000 rounds as fast as they go (a fake clock that never waits),
// sending natively to a receiver, and reports its peak RSS and CPU per
// round. LOGGER_BENCH_ROUNDS changes the rounds; for a closer look,
// POWERMETER_BENCH_HEAPPROF=FILE writes the child's heap profile and
// POWERMETER_BENCH_CLASSES=1 prints its runtime memory classes.
func BenchmarkLogger10Meters(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Fatal("needs /proc for the RSS")
	}
	rounds := 1000
	if v, err := strconv.Atoi(os.Getenv("LOGGER_BENCH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	dir := b.TempDir()
	url := newReceiver(b)
	var meters strings.Builder
	for i := 0; i < 3; i++ {
		box := httptest.NewServer(fritzdect.NewEmulator(fritzdect.EmulatorOptions{Username: "u", Password: "p", Iter1: 10, Iter2: 10}))
		b.Cleanup(box.Close)
		fmt.Fprintf(&meters, "[[meters]]\nname = \"dect%d\"\ntype = \"fritzdect\"\nurl = %q\nusername = \"u\"\npassword = \"p\"\nain = %q\n", i, box.URL, fritzdect.EmuAINSolar)
	}
	for i := 0; i < 7; i++ {
		var em emulate.Emulator
		var err error
		if i < 4 {
			em, err = shelly.NewGen1Emulator(emulate.Options{Profile: "fridge", Now: time.Now, Zone: time.UTC}, shelly.EmulatorConfig{})
		} else {
			em, err = shelly.NewPro3EMEmulator(emulate.Options{Profile: "house3", Now: time.Now, Zone: time.UTC}, shelly.EmulatorConfig{NonceTTL: time.Hour, NonceUses: 30000})
		}
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(em)
		b.Cleanup(srv.Close)
		fmt.Fprintf(&meters, "[[meters]]\nname = \"shelly%d\"\ntype = \"shelly\"\nurl = %q\n", i, srv.URL)
	}
	b.ResetTimer()
	var last benchResult
	for n := 0; n < b.N; n++ {
		data := filepath.Join(dir, fmt.Sprintf("run%d", n))
		cfgPath := filepath.Join(dir, fmt.Sprintf("logger%d.toml", n))
		toml := fmt.Sprintf("data_dir = %q\n[logger]\ninterval = \"10s\"\n[[uplinks]]\nname = \"ours\"\nurl = %q\nprotocol = \"native\"\nkey = \"bench-key-1\"\n%s", data, url+"/", meters.String())
		if err := os.WriteFile(cfgPath, []byte(toml), 0o644); err != nil {
			b.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHelperLoggerBench$", "-test.bench=^$")
		cmd.Env = append(os.Environ(), "POWERMETER_BENCH_CONFIG="+cfgPath, "POWERMETER_BENCH_ROUNDS="+strconv.Itoa(rounds))
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if os.Getenv("POWERMETER_BENCH_CLASSES") != "" {
			cmd.Stderr = io.MultiWriter(&stderr, os.Stderr)
		}
		out, err := cmd.Output()
		if err != nil {
			b.Fatalf("logger process: %v\n%s", err, stderr.String())
		}
		if err := json.Unmarshal(out[:strings.IndexByte(string(out), '\n')+1], &last); err != nil {
			b.Fatalf("logger process said %q: %v", out, err)
		}
		if last.Readings < uint64(rounds)*9 {
			b.Fatalf("only %d readings in %d rounds of 10 meters", last.Readings, rounds)
		}
	}
	b.ReportMetric(float64(last.PeakRSSKB)/1024, "peak-RSS-MB")
	b.ReportMetric(float64(last.RSSKB)/1024, "end-RSS-MB")
	b.ReportMetric(last.GoTotalMB, "go-total-MB")
	b.ReportMetric(float64(last.AnonKB)/1024, "anon-RSS-MB")
	b.ReportMetric(float64(last.FileKB)/1024, "file-RSS-MB")
	b.ReportMetric(last.HeapMB, "live-heap-MB")
	b.ReportMetric(last.CPUSeconds/float64(last.Rounds)*1000, "cpu-ms/round")
	b.ReportMetric(last.WallS/float64(last.Rounds)*1000, "wall-ms/round")
	b.ReportMetric(float64(last.Readings)/float64(last.Rounds), "readings/round")
}
