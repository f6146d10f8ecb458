package postgres

// Benchmarks (run by the bench script; keep -benchtime small):
//
//	POWERMETER_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go test -run '^$' -bench . -benchtime 2000x ./internal/store/postgres/
//
// The year fixture (3.15 M readings) is generated once with COPY into the
// schema powermeter_bench_year_v4 and kept for later runs; drop it with
// DROP SCHEMA powermeter_bench_year_v4 CASCADE.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
	"github.com/powermeter/powermeter/internal/store/storetest"
)

// benchInsert runs b.N single Inserts of per readings each from workers
// goroutines spread over sources sources, and reports readings/s.
//
// The background folder is off: these readings are from 2026 and would be
// folded while the benchmark runs, unlike live ones (folding is measured
// by BenchmarkFold).
func benchInsert(b *testing.B, workers, sources, per int) {
	s, err := OpenWith(context.Background(), pgtest.URL(b), Options{FoldEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	for i := range sources {
		if err := s.EnsureSource(ctx, fmt.Sprintf("home%d", i), "Europe/Berlin"); err != nil {
			b.Fatal(err)
		}
	}
	// Steady state: every source and device already known.
	for i := range sources {
		var warm []reading.Reading
		for d := range min(workers, 8) {
			warm = append(warm, reading.Reading{Device: fmt.Sprintf("dev%d", d), Time: t0.Add(-time.Hour), Power: 1})
		}
		if _, err := s.Insert(ctx, fmt.Sprintf("home%d", i), warm); err != nil {
			b.Fatal(err)
		}
	}
	var txs, batches int64
	txs -= s.gc.Stats().Transactions
	batches -= s.gc.Stats().Batches
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	for w := range workers {
		wg.Go(func() {
			rs := make([]reading.Reading, per)
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				src := fmt.Sprintf("home%d", int(i)%sources)
				for j := range rs {
					rs[j] = reading.Reading{Device: fmt.Sprintf("dev%d", w%8), Time: t0.Add(time.Duration(i*int64(per)+int64(j)) * time.Second),
						Power: float64(i%3000) + 0.5, EnergyIn: reading.F(float64(i) * 0.8)}
				}
				res, err := s.Insert(ctx, src, rs)
				if err != nil || res.Inserted != per {
					b.Errorf("insert: %+v %v", res, err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N*per)/b.Elapsed().Seconds(), "readings/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	txs += s.gc.Stats().Transactions
	batches += s.gc.Stats().Batches
	if txs > 0 {
		b.ReportMetric(float64(batches)/float64(txs), "batches/tx")
	}
}

// 64 goroutines × 1-reading batches on one source: group commit at work.
func BenchmarkInsertConcurrent(b *testing.B) { benchInsert(b, 64, 1, 1) }

// The same spread over 100 sources (homes).
func BenchmarkInsertConcurrentSources100(b *testing.B) { benchInsert(b, 64, 100, 1) }

// One writer, native-style batches of 100 readings.
func BenchmarkInsertBatch100(b *testing.B) { benchInsert(b, 1, 1, 100) }

// 8 writers, batches of 100 readings, 100 sources.
func BenchmarkInsertBatch100x8(b *testing.B) { benchInsert(b, 8, 100, 100) }

const yearSchema = "powermeter_bench_year_v4"

// yearStore opens the year fixture: storetest's year of 10-s legacy
// readings (power and temperature of one plug) for source "home", the data
// set the SQLite benchmarks use too, generated with COPY on first use.
func yearStore(b *testing.B) *Store {
	b.Helper()
	dsn := pgtest.Server(b)
	u, err := pgtest.Schema(dsn, yearSchema)
	if err != nil {
		b.Fatal(err)
	}
	if err := pgtest.Exec(dsn, `CREATE SCHEMA IF NOT EXISTS `+yearSchema); err != nil {
		b.Fatal(err)
	}
	s := openURL(b, u)
	ctx := context.Background()
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(n), 0) FROM devices`).Scan(&n); err != nil {
		b.Fatal(err)
	}
	if n == storetest.YearReadings {
		return s
	}
	b.Logf("generating the year fixture (%d readings) in schema %s", storetest.YearReadings, yearSchema)
	start := time.Now()
	if _, err := s.pool.Exec(ctx, `TRUNCATE recent, chunks, minutes, days, imported_days, devices, sources`); err != nil {
		b.Fatal(err)
	}
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		b.Fatal(err)
	}
	sid := s.sources["home"]
	ids, err := s.deviceIDs(ctx, sid, []string{"plug"})
	if err != nil {
		b.Fatal(err)
	}
	i := 0
	copied, err := s.pool.CopyFrom(ctx, pgx.Identifier{"recent"},
		[]string{"source_id", "t", "device_id", "power", "temperature"},
		pgx.CopyFromFunc(func() ([]any, error) {
			if i == storetest.YearReadings {
				return nil, nil
			}
			r := storetest.LegacyReading(storetest.YearStart, i)
			i++
			w, err := encode(&r)
			return []any{sid, w.t, ids["plug"], w.power, w.temp}, err
		}))
	if err != nil || copied != storetest.YearReadings {
		b.Fatalf("copy: %d rows, %v", copied, err)
	}
	for _, q := range []string{
		`UPDATE devices SET n = x.n, first_t = x.f, last_t = x.l
			FROM (SELECT device_id, count(*) AS n, min(t) AS f, max(t) AS l FROM recent GROUP BY 1) x WHERE devices.id = x.device_id`,
		`INSERT INTO days (source_id, day, version)
			SELECT r.source_id, (r.t AT TIME ZONE s.timezone)::date, nextval('day_versions')
			FROM recent r JOIN sources s ON s.id = r.source_id GROUP BY 1, 2`,
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	// The compact layout: everything folded into chunks, as the background
	// folder does it, a week per transaction.
	f0 := time.Now()
	st, err := s.Fold(ctx, time.Now())
	if err != nil || st.Readings != storetest.YearReadings {
		b.Fatalf("fold: %+v %v", st, err)
	}
	b.Logf("folded %d readings in %s", st.Readings, time.Since(f0).Round(time.Millisecond))
	for _, q := range []string{`VACUUM ANALYZE recent`, `VACUUM ANALYZE chunks`} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("year fixture generated in %s", time.Since(start).Round(time.Second))
	return s
}

// cpuTime is this process's CPU time (user + system): on a shared machine
// it shows the client's cost better than wall time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkYearBytesPerReading: table, TOAST and index size per reading of
// the year once folded (pg_total_relation_size of every chunks partition ÷
// readings). The recent table is not counted: in a live server it holds
// only the last hour or so of readings (docs/postgres.md), here it is
// empty (its dead rows wait for VACUUM).
func BenchmarkYearBytesPerReading(b *testing.B) {
	s := yearStore(b)
	var size int64
	if err := s.pool.QueryRow(context.Background(),
		`SELECT sum(pg_total_relation_size(relid))::int8 FROM pg_partition_tree('chunks')`).Scan(&size); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
	}
	b.ReportMetric(float64(size)/storetest.YearReadings, "bytes/reading")
	b.ReportMetric(float64(size)/(1<<20), "MiB")
}

// One local day (8 640 readings) out of the year, streamed; a different
// day each iteration.
func BenchmarkRangeDay(b *testing.B) {
	s := yearStore(b)
	ctx := context.Background()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	i, n, total := 0, 0, 0
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
		total += n
	}
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "readings/s")
}

// The year overview's query: the versions (and cached summaries) of all
// days of the year.
func BenchmarkDaysOfYear(b *testing.B) {
	s := yearStore(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		days, err := s.Days(ctx, "home", "2025-01-01", "2025-12-31")
		if err != nil || len(days) != 365 {
			b.Fatalf("%d days, %v", len(days), err)
		}
	}
}

// The newest reading of every device and the source list (live page).
func BenchmarkLatestOfYear(b *testing.B) {
	s := yearStore(b)
	ctx := context.Background()
	b.ResetTimer()
	for range b.N {
		l, err := s.Latest(ctx, "home")
		if err != nil || len(l) != 1 {
			b.Fatalf("%v %v", l, err)
		}
	}
}

// grafanaDaySQL is the query of the example Grafana dashboard's power
// panel (docs/grafana-dashboard.json) after Grafana expanded its macros
// ($__timeFilter(time) → time BETWEEN …, $__timeFrom()/$__timeTo() → the
// panel's range): power of one device over one day.
const grafanaDaySQL = `SELECT time AS "time", power_w AS "plug" FROM readings
WHERE time BETWEEN '%[1]s' AND '%[2]s'
  AND hour BETWEEN '%[1]s'::timestamptz - interval '1 hour' AND '%[2]s'
  AND source = 'home' AND device = 'plug'
ORDER BY 1`

// BenchmarkGrafanaDay: the readings view for one device-day, as Grafana's
// PostgreSQL data source sends it (literal times, simple protocol), all
// rows fetched. min-ms is the fastest query: on a machine shared with
// other jobs, the closest to what a quiet one does.
func BenchmarkGrafanaDay(b *testing.B) {
	s := yearStore(b)
	ctx := context.Background()
	i := 0
	best := time.Hour
	defer func() { b.ReportMetric(float64(best.Microseconds())/1000, "min-ms") }()
	for b.Loop() {
		start := time.Now()
		d := time.Date(2025, 1, 2+(i*37)%360, 0, 0, 0, 0, time.UTC)
		i++
		q := fmt.Sprintf(grafanaDaySQL, d.Format(time.RFC3339), d.Add(24*time.Hour-time.Second).Format(time.RFC3339))
		rows, err := s.rpool.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		var t time.Time
		var p float64
		_, err = pgx.ForEachRow(rows, []any{&t, &p}, func() error { n++; return nil })
		if err != nil || n != 8640 {
			b.Fatalf("%s: %d rows, %v", d.Format(time.DateOnly), n, err)
		}
		best = min(best, time.Since(start))
	}
}

// yearCopy is a copy of the year fixture (folded into chunks) in a schema
// of its own, dropped at the end, for benchmarks that change it.
func yearCopy(b *testing.B) *Store {
	b.Helper()
	yearStore(b).Close()
	s, err := OpenWith(context.Background(), pgtest.URL(b), Options{FoldEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	if err := s.ensurePartitions(ctx, storetest.YearStart, storetest.YearStart.AddDate(1, 0, 0)); err != nil {
		b.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO sources SELECT * FROM ` + yearSchema + `.sources`,
		`INSERT INTO devices SELECT * FROM ` + yearSchema + `.devices`,
		`INSERT INTO days SELECT * FROM ` + yearSchema + `.days`,
		`INSERT INTO chunks SELECT * FROM ` + yearSchema + `.chunks`,
		`SELECT setval('day_versions', (SELECT last_value FROM ` + yearSchema + `.day_versions))`,
		`SELECT setval('sources_id_seq', (SELECT max(id) FROM sources))`,
		`SELECT setval('devices_id_seq', (SELECT max(id) FROM devices))`,
		`VACUUM ANALYZE`,
	} {
		if _, err := s.pool.Exec(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	return s
}

// relSize is the size (heap, TOAST, indexes) of the tables: chunks,
// minutes and recent with all their partitions.
func relSize(b *testing.B, s *Store, tables ...string) int64 {
	b.Helper()
	var size int64
	if err := s.pool.QueryRow(context.Background(), `SELECT coalesce(sum(pg_total_relation_size(p.relid)), 0)::int8
		FROM unnest($1::text[]) AS t(name), pg_partition_tree(t.name::regclass) p`, tables).Scan(&size); err != nil {
		b.Fatal(err)
	}
	return size
}

// BenchmarkYearReduce: retention on the year fixture (one device, 3.15 M
// readings of 10 s, folded into chunks): a copy of it in a schema of its
// own is reduced to minutes with the energy rules, a day of chunks per
// transaction. It reports the time, the bytes per raw reading before
// (chunks) and after (minutes and what is left of chunks, after VACUUM),
// and the bytes per reduced minute (the minutes table with its index).
// It reduces once, whatever -benchtime says:
//
//	go test -run '^$' -bench YearReduce -benchtime 1x ./internal/store/postgres/
func BenchmarkYearReduce(b *testing.B) {
	s := yearCopy(b)
	ctx := context.Background()
	// One reduction, whatever -benchtime says (the bench script runs the
	// package with 3000x): its time is the metric reduce-s.
	before := relSize(b, s, "chunks", "minutes", "recent")
	start := time.Now()
	res, err := s.Reduce(ctx, "home", storetest.YearStart.AddDate(1, 0, 0), 0, energy.Reducer(10*time.Second))
	took := time.Since(start)
	if err != nil || !res.Done || res.Raw != storetest.YearReadings {
		b.Fatalf("Reduce: %+v %v", res, err)
	}
	if _, err := s.pool.Exec(ctx, `VACUUM ANALYZE`); err != nil {
		b.Fatal(err)
	}
	after := relSize(b, s, "chunks", "minutes", "recent")
	minutes := relSize(b, s, "minutes")
	// Reading the reduced year: 20 local days through Range (1 440 minutes
	// each) and through the Grafana view; the fastest of each.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		b.Fatal(err)
	}
	rangeBest, viewBest := time.Hour, time.Hour
	for i := range 20 {
		d := time.Date(2025, 1, 2+(i*37)%360, 0, 0, 0, 0, berlin)
		n := 0
		t0 := time.Now()
		if err := s.Range(ctx, "home", d, d.AddDate(0, 0, 1), func(r reading.Reading) error {
			if r.Reduced == nil {
				return fmt.Errorf("a raw reading at %s", r.Time)
			}
			n++
			return nil
		}); err != nil || n < 1380 {
			b.Fatalf("day %s: %d minutes, %v", d.Format(time.DateOnly), n, err)
		}
		rangeBest = min(rangeBest, time.Since(t0))
		du := time.Date(2025, 1, 2+(i*37)%360, 0, 0, 0, 0, time.UTC)
		t0 = time.Now()
		q := fmt.Sprintf(grafanaDaySQL, du.Format(time.RFC3339), du.Add(24*time.Hour-time.Second).Format(time.RFC3339))
		rows, err := s.rpool.Query(ctx, q, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			b.Fatal(err)
		}
		n = 0
		var at time.Time
		var p float64
		if _, err := pgx.ForEachRow(rows, []any{&at, &p}, func() error { n++; return nil }); err != nil || n != 1440 {
			b.Fatalf("view, day %s: %d rows, %v", du.Format(time.DateOnly), n, err)
		}
		viewBest = min(viewBest, time.Since(t0))
	}
	for b.Loop() {
	}
	b.ReportMetric(float64(rangeBest.Microseconds())/1000, "rangeday-reduced-min-ms")
	b.ReportMetric(float64(viewBest.Microseconds())/1000, "grafanaday-reduced-min-ms")
	b.ReportMetric(took.Seconds(), "reduce-s")
	b.ReportMetric(float64(res.Raw)/took.Seconds(), "raw/s")
	b.ReportMetric(float64(before)/storetest.YearReadings, "bytes/raw-reading-before")
	b.ReportMetric(float64(after)/storetest.YearReadings, "bytes/raw-reading-after")
	b.ReportMetric(float64(minutes)/float64(res.Reduced), "bytes/reduced-minute")
	b.ReportMetric(float64(before)/(1<<20), "MiB-before")
	b.ReportMetric(float64(after)/(1<<20), "MiB-after")
}

// BenchmarkInsertWhileReducing: ingest of 100 other sources (32
// goroutines, one reading per insert) for 10 s alone, then while the
// year of "home" is reduced (as BenchmarkYearReduce): readings/s and the
// p99 and longest insert of each phase. It runs once, whatever -benchtime
// says.
func BenchmarkInsertWhileReducing(b *testing.B) {
	s := yearCopy(b)
	ctx := context.Background()
	const sources, workers = 100, 32
	for i := range sources {
		src := fmt.Sprintf("home%d", i)
		if err := s.EnsureSource(ctx, src, "Europe/Berlin"); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Insert(ctx, src, []reading.Reading{{Device: "dev", Time: t0.Add(-time.Hour), Power: 1}}); err != nil {
			b.Fatal(err)
		}
	}
	var next atomic.Int64
	ingest := func(stop <-chan struct{}) (n int, lat []time.Duration) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				var mine []time.Duration
				for {
					select {
					case <-stop:
						mu.Lock()
						lat = append(lat, mine...)
						mu.Unlock()
						return
					default:
					}
					i := next.Add(1)
					r := reading.Reading{Device: "dev", Time: t0.Add(time.Duration(i/sources) * time.Second), Power: float64(i % 3000)}
					start := time.Now()
					if _, err := s.Insert(ctx, fmt.Sprintf("home%d", i%sources), []reading.Reading{r}); err != nil {
						b.Error(err)
					}
					mine = append(mine, time.Since(start))
				}
			})
		}
		wg.Wait()
		return len(lat), lat
	}
	metrics := map[string]float64{} // reported after b.Loop, which resets them
	report := func(name string, n int, lat []time.Duration, took time.Duration) {
		slices.Sort(lat)
		metrics[name+"-readings/s"] = float64(n) / took.Seconds()
		if len(lat) > 0 {
			metrics[name+"-p99-ms"] = float64(lat[len(lat)*99/100].Microseconds()) / 1000
			metrics[name+"-max-ms"] = float64(lat[len(lat)-1].Microseconds()) / 1000
		}
	}
	stop := make(chan struct{})
	time.AfterFunc(10*time.Second, func() { close(stop) })
	start := time.Now()
	n, lat := ingest(stop)
	report("alone", n, lat, time.Since(start))

	stop = make(chan struct{})
	done := make(chan error, 1)
	start = time.Now()
	go func() {
		res, err := s.Reduce(ctx, "home", storetest.YearStart.AddDate(1, 0, 0), 0, energy.Reducer(10*time.Second))
		if err == nil && res.Raw != storetest.YearReadings {
			err = fmt.Errorf("reduce: %+v", res)
		}
		close(stop)
		done <- err
	}()
	n, lat = ingest(stop)
	took := time.Since(start)
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	report("reducing", n, lat, took)
	metrics["reduce-s"] = took.Seconds()
	for b.Loop() {
	}
	for k, v := range metrics {
		b.ReportMetric(v, k)
	}
}
