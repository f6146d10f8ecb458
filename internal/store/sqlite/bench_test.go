package sqlite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/storetest"
)

// BenchmarkInsertConcurrent: 64 goroutines each inserting 1-reading batches,
// every one durable (fsync'd) before it returns; group commit shares the
// transactions. Reports readings/s and readings per transaction.
func BenchmarkInsertConcurrent(b *testing.B) {
	s, err := OpenFile(b.Context(), filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.EnsureSource(b.Context(), "home", "Europe/Berlin"); err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var next atomic.Int64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			i := next.Add(1)
			r := reading.Reading{Device: fmt.Sprint("d", i%8), Time: t0.Add(time.Duration(i) * time.Second), Power: float64(i%5000) / 100, Temperature: reading.F(21.5)}
			if _, err := s.Insert(ctx, "home", []reading.Reading{r}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	el := time.Since(start)
	b.StopTimer()
	st := s.CommitStats()
	b.ReportMetric(float64(b.N)/el.Seconds(), "readings/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	if st.Transactions > 0 {
		b.ReportMetric(float64(st.Batches)/float64(st.Transactions), "batches/tx")
	}
}

// yearDB returns the path of a database holding storetest.FillYear's year
// of 10-s legacy readings for source "home", creating it on first use.
// POWERMETER_BENCH_YEARDB names the file (default: in the temp folder), so
// a bench script builds it once and reuses it.
func yearDB(b *testing.B) string {
	b.Helper()
	path := os.Getenv("POWERMETER_BENCH_YEARDB")
	if path == "" {
		path = filepath.Join(os.TempDir(), fmt.Sprintf("powermeter-bench-year-v%d.db", SchemaVersion))
	}
	if _, err := os.Stat(path); err == nil {
		return path
	}
	if err := createYearDB(b, path); err != nil {
		b.Fatal(err)
	}
	return path
}

// BenchmarkYearBytesPerReading reports the file size per reading of the
// year database (after a checkpoint). The first run builds the year.
func BenchmarkYearBytesPerReading(b *testing.B) {
	path := yearDB(b)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
	}
	b.ReportMetric(float64(st.Size())/storetest.YearReadings, "bytes/reading")
	b.ReportMetric(float64(st.Size())/(1<<20), "MiB")
}

// BenchmarkYearReduce reduces a copy of the year database (one device,
// 10-s legacy readings) to 1-minute rows with energy.Reducer, all
// of it in one Reduce call, then vacuums it. It reports the file's bytes
// per raw reading before, the time the reduction took, the file's bytes
// per reduced row and per raw reading it replaced after the vacuum, and
// the file sizes (before, after the reduction, after the vacuum). Run it
// with -benchtime 1x: each iteration copies the year.
func BenchmarkYearReduce(b *testing.B) {
	src := yearDB(b)
	ctx := b.Context()
	var before, reduced, vacuumed int64
	var res store.ReduceResult
	var took time.Duration
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "year.db")
		if err := copyFile(src, path); err != nil {
			b.Fatal(err)
		}
		s, err := OpenFile(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		before = fileSize(b, path)
		b.StartTimer()
		start := time.Now()
		res, err = s.Reduce(ctx, "home", storetest.YearStart.AddDate(1, 0, 0), 0, energy.Reducer(10*time.Second))
		took = time.Since(start)
		if err != nil || !res.Done || res.Raw != storetest.YearReadings {
			b.Fatalf("Reduce: %+v %v", res, err)
		}
		b.StopTimer()
		if err := s.Checkpoint(ctx); err != nil {
			b.Fatal(err)
		}
		reduced = fileSize(b, path)
		if err := s.Vacuum(ctx); err != nil {
			b.Fatal(err)
		}
		vacuumed = fileSize(b, path)
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(before)/storetest.YearReadings, "raw-bytes/reading")
	b.ReportMetric(took.Seconds(), "reduce-s")
	b.ReportMetric(float64(vacuumed)/float64(res.Reduced), "bytes/reduced-row")
	b.ReportMetric(float64(vacuumed)/storetest.YearReadings, "bytes/raw-reading-after")
	b.ReportMetric(float64(before)/(1<<20), "MiB-before")
	b.ReportMetric(float64(reduced)/(1<<20), "MiB-reduced")
	b.ReportMetric(float64(vacuumed)/(1<<20), "MiB-vacuumed")
}

// BenchmarkInsertDuringReduce measures what retention costs ingest: 8
// goroutines insert 1-reading batches (each durable) into a copy of the
// year database, first alone for 3 s, then while the year is reduced (in
// transactions of ReduceStep raw readings, as the server's job does). It
// reports the inserts' median and 99th percentile latency in both phases.
// Run it with -benchtime 1x.
func BenchmarkInsertDuringReduce(b *testing.B) {
	src := yearDB(b)
	ctx := b.Context()
	for b.Loop() {
		b.StopTimer()
		path := filepath.Join(b.TempDir(), "year.db")
		if err := copyFile(src, path); err != nil {
			b.Fatal(err)
		}
		s, err := OpenFile(ctx, path)
		if err != nil {
			b.Fatal(err)
		}
		measure := func(while func() bool) []time.Duration {
			var mu sync.Mutex
			var lat []time.Duration
			var wg sync.WaitGroup
			var next atomic.Int64
			t0 := storetest.YearStart.AddDate(2, 0, 0).Add(time.Duration(len(lat)) * time.Hour)
			for g := range 8 {
				wg.Go(func() {
					for while() {
						i := next.Add(1)
						r := reading.Reading{Device: fmt.Sprint("live", g), Time: t0.Add(time.Duration(i) * time.Second), Power: 1}
						start := time.Now()
						if _, err := s.Insert(ctx, "home", []reading.Reading{r}); err != nil {
							b.Error(err)
							return
						}
						d := time.Since(start)
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			return lat
		}
		deadline := time.Now().Add(3 * time.Second)
		alone := measure(func() bool { return time.Now().Before(deadline) })
		var done atomic.Bool
		start := time.Now()
		var took time.Duration
		go func() {
			defer done.Store(true)
			defer func() { took = time.Since(start) }()
			if _, err := s.Reduce(ctx, "home", storetest.YearStart.AddDate(1, 0, 0), 0, energy.Reducer(10*time.Second)); err != nil {
				b.Error(err)
			}
		}()
		during := measure(func() bool { return !done.Load() })
		s.Close()
		q := func(l []time.Duration, p float64) float64 {
			slices.Sort(l)
			return float64(l[int(p*float64(len(l)-1))].Microseconds()) / 1000
		}
		b.ReportMetric(q(alone, 0.5), "alone-p50-ms")
		b.ReportMetric(q(alone, 0.99), "alone-p99-ms")
		b.ReportMetric(q(during, 0.5), "reducing-p50-ms")
		b.ReportMetric(q(during, 0.99), "reducing-p99-ms")
		b.ReportMetric(float64(len(during)), "inserts-while-reducing")
		b.ReportMetric(took.Seconds(), "reduce-s")
		b.StartTimer()
	}
}

func fileSize(b *testing.B, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	return st.Size()
}

// BenchmarkRangeDay reads one local day (8640 readings) out of the year,
// a different day each iteration.
func BenchmarkRangeDay(b *testing.B) {
	path := yearDB(b)
	s, err := OpenFile(b.Context(), path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := b.Context()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	i, n := 0, 0
	cpu0 := cpuTime()
	for b.Loop() {
		d := time.Date(2025, 1, 2+(i*37)%360, 0, 0, 0, 0, berlin)
		i++
		n = 0
		if err := s.Range(ctx, "home", d, d.AddDate(0, 0, 1), func(reading.Reading) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if n < 8000 {
			b.Fatalf("day %s: %d readings", d.Format(time.DateOnly), n)
		}
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(n), "readings/day")
}

// cpuTime is the CPU time (user + system) this process used so far: on a
// shared machine it shows the cost of an operation better than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// createYearDB fills a new database at path (via a temporary name, so an
// interrupted run leaves nothing half built) and checkpoints it.
func createYearDB(b *testing.B, path string) error {
	ctx := context.Background()
	tmp := path + ".building"
	for _, f := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		os.Remove(f)
	}
	s, err := OpenFile(ctx, tmp)
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := storetest.FillYear(ctx, s, "home", 8640*7, nil)
	if err != nil {
		s.Close()
		return err
	}
	el := time.Since(start)
	b.Logf("built year database %s: %d readings in %s (%.0f readings/s)", path, n, el.Round(time.Millisecond), float64(n)/el.Seconds())
	if err := s.Checkpoint(ctx); err != nil {
		s.Close()
		return err
	}
	if err := s.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// BenchmarkInsertBulk inserts one batch of a week of 10-s legacy readings
// (60 480, as an import does) per iteration into a growing table.
func BenchmarkInsertBulk(b *testing.B) {
	s, err := OpenFile(b.Context(), filepath.Join(b.TempDir(), "bulk.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.EnsureSource(b.Context(), "home", "Europe/Berlin"); err != nil {
		b.Fatal(err)
	}
	const week = 7 * 8640
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]reading.Reading, week)
	n := 0
	start, cpu0 := time.Now(), cpuTime()
	for b.Loop() {
		for j := range batch {
			batch[j] = reading.Reading{Device: "legacy", Time: t0.Add(time.Duration(n*week+j) * 10 * time.Second),
				Power: float64(j%5000) / 100, Temperature: reading.F(21.5)}
		}
		n++
		res, err := s.Insert(b.Context(), "home", batch)
		if err != nil || res.Inserted != week {
			b.Fatalf("insert: %+v, %v", res, err)
		}
	}
	el := time.Since(start)
	b.ReportMetric(float64(n*week)/el.Seconds(), "readings/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(n*week), "cpu-ns/reading")
}
