package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/migrate"
	_ "github.com/powermeter/powermeter/internal/store/postgres"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
	_ "github.com/powermeter/powermeter/internal/store/sqlite"
)

var t0 = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

func openStore(t *testing.T, url string) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func sqliteURL(t *testing.T, name string) string {
	return "sqlite://" + filepath.Join(t.TempDir(), name)
}

// fill puts three days of 1-minute readings of two devices for "home" and
// a few readings for "shed" into st; it returns the number of readings.
func fill(t *testing.T, st store.Store) int {
	t.Helper()
	ctx := context.Background()
	for src, zone := range map[string]string{"home": "Europe/Berlin", "shed": "UTC", "empty": "UTC"} {
		if err := st.EnsureSource(ctx, src, zone); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	var batch []reading.Reading
	for i := range 3 * 24 * 60 {
		at := t0.Add(time.Duration(i) * time.Minute)
		dt := at.Add(-1500 * time.Millisecond)
		batch = append(batch,
			reading.Reading{Device: "grid", Time: at, Power: float64(i%500) - 100.25, EnergyIn: reading.F(float64(i) * 1.5), EnergyOut: reading.F(float64(i) / 4), Phases: []float64{1, 2.5, -3}},
			reading.Reading{Device: "fridge", Time: at, Power: 80.5, Temperature: reading.F(4.25), Voltage: reading.F(230.1), DeviceTime: &dt, Backfilled: i%7 == 0})
		if len(batch) >= 1000 {
			n += insert(t, st, "home", batch)
			batch = batch[:0]
		}
	}
	n += insert(t, st, "home", batch)
	n += insert(t, st, "shed", []reading.Reading{{Device: "pv", Time: t0, Power: -500}, {Device: "pv", Time: t0.Add(time.Hour), Power: -600}})
	return n
}

func insert(t *testing.T, st store.Store, src string, rs []reading.Reading) int {
	t.Helper()
	res, err := st.Insert(context.Background(), src, rs)
	if err != nil {
		t.Fatal(err)
	}
	return res.Inserted
}

// same checks that both stores hold the same sources and readings.
func same(t *testing.T, a, b store.Store) {
	t.Helper()
	ctx := context.Background()
	sa, err := a.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := b.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sa) != fmt.Sprint(sb) {
		t.Fatalf("sources differ:\n%v\n%v", sa, sb)
	}
	for _, s := range sa {
		var ra, rb []string
		for st, out := range map[store.Store]*[]string{a: &ra, b: &rb} {
			err := st.Range(ctx, s.Name, t0.Add(-time.Hour), t0.Add(100*24*time.Hour), func(r reading.Reading) error {
				*out = append(*out, fmt.Sprintf("%s %s %g %v %v %v %v %v %v %v", r.Device, r.Time.Format(time.RFC3339), r.Power,
					f(r.EnergyIn), f(r.EnergyOut), f(r.Temperature), f(r.Voltage), r.Phases, r.DeviceTime, r.Backfilled))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if len(ra) != len(rb) {
			t.Fatalf("%s: %d readings vs %d", s.Name, len(ra), len(rb))
		}
		for i := range ra {
			if ra[i] != rb[i] {
				t.Fatalf("%s reading %d differs:\n%s\n%s", s.Name, i, ra[i], rb[i])
			}
		}
	}
}

func f(p *float64) string {
	if p == nil {
		return "-"
	}
	return fmt.Sprint(*p)
}

// targets are the backends copied into: SQLite always, PostgreSQL when
// the test server is configured.
func targets(t *testing.T) map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"sqlite":   func(t *testing.T) string { return sqliteURL(t, "to.db") },
		"postgres": func(t *testing.T) string { return pgtest.URL(t) },
	}
}

func TestCopyResumeVerify(t *testing.T) {
	for name, target := range targets(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			src := openStore(t, sqliteURL(t, "from.db"))
			n := fill(t, src)
			dst := openStore(t, target(t))

			// Interrupted part way.
			cctx, cancel := context.WithCancel(ctx)
			var calls int
			_, err := migrate.Copy(cctx, src, dst, migrate.Options{Chunk: 500, Progress: func(done, total int64, _ string) {
				if total != int64(n) {
					t.Errorf("total %d, want %d", total, n)
				}
				if calls++; calls == 3 {
					cancel()
				}
			}})
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted copy: %v", err)
			}

			// Resumed: starts at the target's end, copies only the rest.
			var last int64
			rep, err := migrate.Copy(ctx, src, dst, migrate.Options{Chunk: 500, Progress: func(done, total int64, _ string) {
				if done < last || done > total {
					t.Errorf("progress %d of %d after %d", done, total, last)
				}
				last = done
			}})
			if err != nil {
				t.Fatal(err)
			}
			if last != int64(n) {
				t.Errorf("progress ended at %d of %d", last, n)
			}
			home := rep.Sources[1]
			if home.Name != "home" || !home.Resumed || home.Read >= int64(n-2) || home.Present > 2 || home.Source != home.Target {
				t.Errorf("resumed copy of home: %+v", home)
			}
			same(t, src, dst)

			// Again: nothing new; a reading added in the middle of the source
			// is missed by resuming, caught by the check, copied by --full.
			insert(t, src, "home", []reading.Reading{{Device: "grid", Time: t0.Add(90 * time.Second), Power: 1}})
			_, err = migrate.Copy(ctx, src, dst, migrate.Options{})
			var mm *migrate.MismatchError
			if !errors.As(err, &mm) || len(mm.Sources) != 1 || mm.Sources[0].Name != "home" || mm.Sources[0].Source != mm.Sources[0].Target+1 {
				t.Fatalf("mismatch not reported: %v", err)
			}
			rep, err = migrate.Copy(ctx, src, dst, migrate.Options{Full: true})
			if err != nil {
				t.Fatal(err)
			}
			if _, ins, _ := rep.Totals(); ins != 1 {
				t.Errorf("full copy inserted %d, want 1", ins)
			}
			same(t, src, dst)

			// Readings the target got on its own after the source's span do
			// not fail the check.
			insert(t, dst, "shed", []reading.Reading{{Device: "pv", Time: t0.Add(50 * 24 * time.Hour), Power: 1}})
			rep, err = migrate.Copy(ctx, src, dst, migrate.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if shed := rep.Sources[2]; shed.Extra != 1 || shed.Read != 0 {
				t.Errorf("shed: %+v", shed)
			}
		})
	}
}

// TestPostgresToSQLite: the copy works in the other direction too.
func TestPostgresToSQLite(t *testing.T) {
	t.Parallel()
	src := openStore(t, pgtest.URL(t))
	fill(t, src)
	dst := openStore(t, sqliteURL(t, "to.db"))
	if _, err := migrate.Copy(context.Background(), src, dst, migrate.Options{Chunk: 777, Window: 7 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	same(t, src, dst)
}

// TestCopyImportedDays: day summaries kept without readings (a PHP app's
// chart_stats.csv) move with their source, both ways, and again unchanged.
func TestCopyImportedDays(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	days := []store.ImportedDay{
		{Day: "2019-05-01", InWh: 1234.5, OutWh: 310, PeakW: 612.5, PeakAt: "12:31:10", First: "06:02:00", Last: "20:45:30", Origin: "chart_stats.csv"},
		{Day: "2019-05-02", InWh: 998, PeakW: 402, Origin: "chart_stats.csv"},
	}
	sq := openStore(t, sqliteURL(t, "from.db"))
	fill(t, sq)
	if _, err := sq.(store.DayImporter).PutImportedDays(ctx, "shed", days); err != nil {
		t.Fatal(err)
	}
	pg := openStore(t, pgtest.URL(t))
	back := openStore(t, sqliteURL(t, "back.db"))
	for i, hop := range [][2]store.Store{{sq, pg}, {pg, back}, {sq, pg}} {
		rep, err := migrate.Copy(ctx, hop[0], hop[1], migrate.Options{})
		if err != nil {
			t.Fatalf("hop %d: %v", i, err)
		}
		for _, sr := range rep.Sources {
			want := int64(0)
			if sr.Name == "shed" {
				want = 2
			}
			if sr.Days != want {
				t.Errorf("hop %d: %s: %d days copied, want %d", i, sr.Name, sr.Days, want)
			}
		}
		got, err := hop[1].(store.DayImporter).ImportedDays(ctx, "shed", "2019-01-01", "2019-12-31")
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(days) {
			t.Errorf("hop %d: target has %+v, want %+v", i, got, days)
		}
	}
}

// TestCopySkipsWhatTheTargetCannotHold: an older SQLite file may hold a
// device name with a NUL (refused since); migrate copies the rest, reports
// the skipped readings by name and still verifies.
func TestCopySkipsWhatTheTargetCannotHold(t *testing.T) {
	for name, target := range targets(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "from.db")
			from := openStore(t, "sqlite://"+path)
			ctx := context.Background()
			if err := from.EnsureSource(ctx, "home", "UTC"); err != nil {
				t.Fatal(err)
			}
			insert(t, from, "home", []reading.Reading{
				{Device: "plug", Time: t0, Power: 1}, {Device: "badXname", Time: t0, Power: 2},
				{Device: "plug", Time: t0.Add(time.Minute), Power: 3}, {Device: "badXname", Time: t0.Add(time.Minute), Power: 4},
			})
			from.Close()
			db, err := sql.Open("sqlite", path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(`UPDATE devices SET name = 'bad' || char(0) || 'name' WHERE name = 'badXname'`); err != nil {
				t.Fatal(err)
			}
			db.Close()
			from = openStore(t, "sqlite://"+path)
			to := openStore(t, target(t))
			rep, err := migrate.Copy(ctx, from, to, migrate.Options{})
			if err != nil {
				t.Fatalf("copy: %v", err)
			}
			sr := rep.Sources[0]
			if sr.Inserted != 2 || sr.Skipped != 2 || len(sr.Invalid) != 2 || !strings.Contains(sr.Invalid[0], `"bad\x00name"`) {
				t.Fatalf("report %+v", sr)
			}
			var got []string
			if err := to.Range(ctx, "home", t0, t0.Add(time.Hour), func(r reading.Reading) error {
				got = append(got, r.Device)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0] != "plug" || got[1] != "plug" {
				t.Fatalf("target holds %q", got)
			}
			// a second run resumes and still verifies
			if _, err := migrate.Copy(ctx, from, to, migrate.Options{Full: true}); err != nil {
				t.Fatalf("second copy: %v", err)
			}
		})
	}
}
