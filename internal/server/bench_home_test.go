package server

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/sqlite"
)

// homeYearConfig is a three-device home (Pro 3EM at the grid, a balcony
// plant, a fridge) with a tariff; role is the plant's role.
func homeYearConfig(path, role string) string {
	return fmt.Sprintf(`
timezone = "Europe/Berlin"
[server]
listen = "127.0.0.1:0"
database = "sqlite://%s"
[[server.sources]]
name = "home"
key = "home-bench-key"
[[server.sources.devices]]
name = "grid"
role = "grid"
[[server.sources.devices]]
name = "balcony"
role = %q
[[server.sources.devices]]
name = "fridge"
role = "consumer"
[server.sources.tariff]
base_fee = 12.5
investment = 600
invested_on = "2025-01-01"
[[server.sources.tariff.import]]
price = 0.32
[[server.sources.tariff.import.windows]]
from = 22
to = 6
price = 0.27
[[server.sources.tariff.import]]
from = "2025-07-15"
price = 0.35
[[server.sources.tariff.feed_in]]
price = 0.08
`, path, role)
}

// homeYearDB returns a copy of a database with a year (2025) of 10-s
// readings of the three devices, from the emulators' load models, with
// counters (9.5 M readings; built once in the temp folder, a minute or
// two).
func homeYearDB(b *testing.B) string {
	b.Helper()
	src := filepath.Join(os.TempDir(), fmt.Sprintf("powermeter-bench-home-year-v%d.db", sqlite.SchemaVersion))
	if _, err := os.Stat(src); err != nil {
		if err := buildHomeYear(b, src); err != nil {
			b.Fatal(err)
		}
	}
	dst := filepath.Join(b.TempDir(), "home.db")
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

func buildHomeYear(b *testing.B, path string) error {
	ctx := context.Background()
	tmp := path + ".building"
	for _, f := range []string{tmp, tmp + "-wal", tmp + "-shm"} {
		os.Remove(f)
	}
	st, err := sqlite.OpenFile(ctx, tmp)
	if err != nil {
		return err
	}
	if err := st.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		return err
	}
	start := time.Now()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, berlin)
	t1 := time.Date(2026, 1, 1, 0, 0, 0, 0, berlin)
	var pv, fr, gin, gout float64
	k := 10.0 / 3600
	batch := make([]reading.Reading, 0, 30000)
	n := 0
	for t := t0; t.Before(t1); t = t.Add(10 * time.Second) {
		solar, fridge, ph := emulate.Solar(t, berlin, 600), math.Round(emulate.Fridge(t)*100)/100, emulate.House3(t, berlin)
		grid := math.Round((ph[0]+ph[1]+ph[2])*100) / 100
		pv += solar * k
		fr += fridge * k
		if grid > 0 {
			gin += grid * k
		} else {
			gout -= grid * k
		}
		r3 := func(v float64) *float64 { return reading.F(math.Round(v*1000) / 1000) }
		batch = append(batch,
			reading.Reading{Device: "balcony", Time: t.UTC(), Power: solar, EnergyIn: r3(pv)},
			reading.Reading{Device: "fridge", Time: t.UTC(), Power: fridge, EnergyIn: r3(fr)},
			reading.Reading{Device: "grid", Time: t.UTC(), Power: grid, EnergyIn: r3(gin), EnergyOut: r3(gout), Phases: []float64{ph[0], ph[1], ph[2]}})
		if len(batch) >= 29997 {
			if _, err := st.Insert(ctx, "home", batch); err != nil {
				return err
			}
			n += len(batch)
			batch = batch[:0]
		}
	}
	if _, err := st.Insert(ctx, "home", batch); err != nil {
		return err
	}
	n += len(batch)
	if err := st.Checkpoint(ctx); err != nil {
		return err
	}
	if err := st.Close(); err != nil {
		return err
	}
	b.Logf("built %s: %d readings in %s", path, n, time.Since(start).Round(time.Second))
	return os.Rename(tmp, path)
}

func homeServer(b *testing.B, path, role string) (*Server, store.Store) {
	b.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	srv, err := New(context.Background(), parseConfig(b, homeYearConfig(path, role)), st, testLog(b))
	if err != nil {
		b.Fatal(err)
	}
	return srv, st
}

// loop runs fn b.N times and reports the CPU time per run.
func loop(b *testing.B, fn func()) {
	c0 := cpuTime()
	for b.Loop() {
		fn()
	}
	b.ReportMetric(float64((cpuTime()-c0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
}

func getOK(b *testing.B, srv *Server, path, want string) int {
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
		b.Fatalf("%s: %d %.300s", path, rec.Code, rec.Body.String())
	}
	return rec.Body.Len()
}

// BenchmarkHomeYear: a three-device home with a year of 10-s readings and
// a tariff. The year overview with flows and money (the household table,
// payback) and the energy API for the year by day, warm (summaries
// decoded in memory); the first, cold rendering that computes every day
// from the readings is reported as cold-ms.
func BenchmarkHomeYear(b *testing.B) {
	path := homeYearDB(b)
	srv, _ := homeServer(b, path, "pv")
	// the first view computes every day from the readings (the API does so
	// before it answers; the overview would do it in the background)
	start := time.Now()
	getOK(b, srv, "/api/v1/sources/home/energy?from=2025-01-01&to=2025-12-31&step=day", `"2025-12-31"`)
	cold := time.Since(start)
	getOK(b, srv, "/s/home/overview?year=2025&month=2025-12", `id="home-months"`)
	b.Run("overview", func(b *testing.B) {
		size := 0
		loop(b, func() { size = getOK(b, srv, "/s/home/overview?year=2025&month=2025-12", `id="payback"`) })
		b.ReportMetric(float64(cold.Milliseconds()), "cold-ms")
		b.ReportMetric(float64(size), "bytes/page")
	})
	b.Run("energy-api-day", func(b *testing.B) {
		size := 0
		loop(b, func() {
			size = getOK(b, srv, "/api/v1/sources/home/energy?from=2025-01-01&to=2025-12-31&step=day", `"2025-12-31"`)
		})
		b.ReportMetric(float64(size), "bytes/answer")
	})
	b.Run("energy-api-hour", func(b *testing.B) {
		loop(b, func() {
			getOK(b, srv, "/api/v1/sources/home/energy?from=2025-01-01&to=2025-12-31&step=hour", `"2025-12-31T23"`)
		})
	})
}

// BenchmarkHomeRoleChange: the plant's role changes (pv → consumer and
// back): every cached day summary of the year carries the old roles'
// fingerprint, so the first year view recomputes all 365 days from the
// readings. One iteration is one role change.
func BenchmarkHomeRoleChange(b *testing.B) {
	path := homeYearDB(b)
	srv, _ := homeServer(b, path, "pv")
	getOK(b, srv, "/api/v1/sources/home/energy?from=2025-01-01&to=2025-12-31&step=month", `"2025-12"`)
	roles := []string{"consumer", "pv"}
	i := 0
	loop(b, func() {
		srv, st := homeServer(b, path, roles[i%2])
		i++
		getOK(b, srv, "/api/v1/sources/home/energy?from=2025-01-01&to=2025-12-31&step=month", `"2025-12"`)
		st.Close()
	})
}
