package dashboard

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/postgres"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
	"github.com/powermeter/powermeter/internal/store/sqlite"
	"github.com/powermeter/powermeter/internal/store/storetest"
)

// benchYearDB returns a copy (in b.TempDir) of a database holding a year of
// 10-s readings (storetest.FillYear, source "home", 2025): the file named by
// POWERMETER_BENCH_YEARDB, else the store benchmarks' file when it is built,
// else one built here on first use (about a minute). A copy, because the
// dashboard writes day summaries into it.
func benchYearDB(b *testing.B) string {
	b.Helper()
	src := os.Getenv("POWERMETER_BENCH_YEARDB")
	if src == "" {
		shared := filepath.Join(os.TempDir(), fmt.Sprintf("powermeter-bench-year-v%d.db", sqlite.SchemaVersion))
		if _, err := os.Stat(shared); err == nil {
			src = shared
		} else {
			src = filepath.Join(os.TempDir(), fmt.Sprintf("powermeter-dashboard-bench-year-v%d.db", sqlite.SchemaVersion))
		}
	}
	if _, err := os.Stat(src); err != nil {
		if err := buildYearDB(b, src); err != nil {
			b.Fatal(err)
		}
	}
	dst := filepath.Join(b.TempDir(), "year.db")
	in, err := os.Open(src)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		b.Fatal(err)
	}
	if err := out.Close(); err != nil {
		b.Fatal(err)
	}
	return dst
}

func buildYearDB(b *testing.B, path string) error {
	ctx := context.Background()
	tmp := path + ".building"
	for _, f := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		os.Remove(f)
	}
	s, err := sqlite.OpenFile(ctx, tmp)
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := storetest.FillYear(ctx, s, "home", 8640*7, nil)
	if err == nil {
		err = s.Checkpoint(ctx)
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	b.Logf("built %s: %d readings in %s", path, n, time.Since(start).Round(time.Millisecond))
	return os.Rename(tmp, path)
}

// pgYearSchema holds the PostgreSQL year for the dashboard benchmarks
// (kept between runs; DROP SCHEMA powermeter_bench_dashboard_year_v1 CASCADE
// removes it).
const pgYearSchema = "powermeter_bench_dashboard_year_v1"

// benchPostgresYear opens the PostgreSQL year (the same readings as the
// SQLite one), filling it through Insert and folding it into chunks on
// first use (a few minutes). Needs POWERMETER_TEST_POSTGRES.
func benchPostgresYear(b *testing.B) store.Store {
	b.Helper()
	dsn := pgtest.Server(b)
	u, err := pgtest.Schema(dsn, pgYearSchema)
	if err != nil {
		b.Fatal(err)
	}
	if err := pgtest.Exec(dsn, `CREATE SCHEMA IF NOT EXISTS `+pgYearSchema); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	st, err := postgres.OpenWith(ctx, u, postgres.Options{FoldEvery: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	srcs, err := st.Sources(ctx)
	if err != nil {
		b.Fatal(err)
	}
	if len(srcs) != 1 || srcs[0].Count != storetest.YearReadings {
		start := time.Now()
		n, err := storetest.FillYear(ctx, st, "home", 8640*7, nil)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Fold(ctx, time.Now()); err != nil {
			b.Fatal(err)
		}
		b.Logf("built the PostgreSQL year in schema %s: %d readings in %s", pgYearSchema, n, time.Since(start).Round(time.Millisecond))
	}
	return st
}

func benchDashboard(b *testing.B) (*Dashboard, store.Store) {
	path := benchYearDB(b)
	st, err := store.Open(context.Background(), "sqlite://"+path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return benchDashboardOn(b, st), st
}

func benchDashboardOn(b *testing.B, st store.Store) *Dashboard {
	now := time.Date(2026, 1, 15, 12, 0, 0, 0, berlin)
	return newTestDashboard(b, st, Options{Now: func() time.Time { return now }, SummaryBudget: 400 * time.Millisecond})
}

// BenchmarkDayPage renders the day page (all 8640 readings of a day read,
// summarized and drawn) of a different day of the year each time: the first
// view of a past day.
func BenchmarkDayPage(b *testing.B) {
	d, _ := benchDashboard(b)
	benchDayPage(b, d)
}

// BenchmarkDayPagePostgres: the same on PostgreSQL (readings in chunks).
func BenchmarkDayPagePostgres(b *testing.B) {
	benchDayPage(b, benchDashboardOn(b, benchPostgresYear(b)))
}

func benchDayPage(b *testing.B, d *Dashboard) {
	h := mux(d)
	i, size := 0, 0
	for b.Loop() {
		day := time.Date(2025, 1, 2+(i*37)%360, 0, 0, 0, 0, time.UTC).Format("2006-01-02")
		i++
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/s/home/day/"+day, nil))
		if rec.Code != 200 {
			b.Fatalf("%s: %d", day, rec.Code)
		}
		size = rec.Body.Len()
	}
	b.ReportMetric(float64(size), "bytes/page")
}

// BenchmarkPastDayWarm renders one past day again and again: served from
// the page cache (one look-up of the day's version in the database). It
// also reports the page's weight gzip'd with its script and style.
func BenchmarkPastDayWarm(b *testing.B) {
	d, _ := benchDashboard(b)
	h := mux(d)
	get := func(path string) []byte {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			b.Fatalf("%s: %d", path, rec.Code)
		}
		return rec.Body.Bytes()
	}
	page := get("/s/home/day/2025-06-21")
	for b.Loop() {
		get("/s/home/day/2025-06-21")
	}
	gz := func(p []byte) float64 {
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		w.Write(p)
		w.Close()
		return float64(buf.Len())
	}
	var static float64
	for _, f := range []string{"app.js", "chart.js", "style.css"} {
		static += gz(get("/static/" + f))
	}
	b.ReportMetric(gz(page), "page-gz-bytes")
	b.ReportMetric(gz(page)+static, "with-assets-gz-bytes")
	b.ReportMetric(gz(get("/s/home/day/2025-06-21/data.json")), "data-json-gz-bytes")
}

// BenchmarkTodayPage renders today's page (noon: 4320 readings) after a new
// reading arrived each time, so it is drawn anew every time.
func BenchmarkTodayPage(b *testing.B) {
	d, st := benchDashboard(b)
	ctx := context.Background()
	noon := time.Date(2026, 1, 15, 12, 0, 0, 0, berlin)
	start := time.Date(2026, 1, 15, 0, 0, 0, 0, berlin)
	var rs []reading.Reading
	for i := 0; start.Add(time.Duration(i) * 10 * time.Second).Before(noon); i++ {
		r := storetest.LegacyReading(start.UTC(), i)
		rs = append(rs, r)
	}
	if _, err := st.Insert(ctx, "home", rs); err != nil {
		b.Fatal(err)
	}
	h := mux(d)
	i := 0
	for b.Loop() {
		b.StopTimer()
		r := storetest.LegacyReading(start.UTC(), len(rs)+i)
		r.Time = noon.Add(time.Duration(i) * time.Second).UTC()
		i++
		if _, err := st.Insert(ctx, "home", []reading.Reading{r}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/s/home/day/2026-01-15", nil))
		if rec.Code != 200 {
			b.Fatalf("today: %d", rec.Code)
		}
	}
}

// BenchmarkYearOverview renders the overview of a year. first-ms is the
// first view right after the year was imported (no day summarized yet: the
// page computes what fits in its budget and leaves the rest to the
// background); bg-ms how long the background took for the rest. Then,
// "memory" with the decoded summaries kept in memory, "database" decoding
// them from the database every time (the first view after a restart).
func BenchmarkYearOverview(b *testing.B) {
	d, _ := benchDashboard(b)
	benchYearOverview(b, d)
}

// BenchmarkYearOverviewPostgres: the same on PostgreSQL. The cold time is
// only cold on the first run: the day summaries stay in the kept schema.
func BenchmarkYearOverviewPostgres(b *testing.B) {
	benchYearOverview(b, benchDashboardOn(b, benchPostgresYear(b)))
}

func benchYearOverview(b *testing.B, d *Dashboard) {
	h := mux(d)
	get := func(b *testing.B) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/s/home/overview?year=2025", nil))
		if rec.Code != 200 {
			b.Fatalf("overview: %d %s", rec.Code, rec.Body.String())
		}
		return rec.Body.Len()
	}
	start := time.Now()
	get(b)
	first := time.Since(start)
	for d.Summarizing("home") {
		time.Sleep(10 * time.Millisecond)
	}
	bg := time.Since(start)
	mem := d.days
	for _, c := range []struct {
		name  string
		cache *energy.Cache
	}{{"memory", mem}, {"database", nil}} {
		b.Run(c.name, func(b *testing.B) {
			d.days = c.cache
			size := 0
			for b.Loop() {
				size = get(b)
			}
			b.ReportMetric(float64(first.Milliseconds()), "first-ms")
			b.ReportMetric(float64(bg.Milliseconds()), "bg-ms")
			b.ReportMetric(float64(size), "bytes/page")
		})
	}
	d.days = mem
}
