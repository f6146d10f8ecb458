package postgres

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
)

// openNoFold opens a Store on u whose background folder is off.
func openNoFold(t *testing.T, u string) *Store {
	t.Helper()
	s, err := OpenWith(context.Background(), u, Options{FoldEvery: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// layoutCounts is how many readings recent and chunks hold.
func layoutCounts(t *testing.T, s *Store) (recent, chunked int64) {
	t.Helper()
	err := s.pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM recent),
		(SELECT coalesce(sum(cardinality(offs)), 0) FROM chunks)`).Scan(&recent, &chunked)
	if err != nil {
		t.Fatal(err)
	}
	return recent, chunked
}

// TestFoldUnderConcurrentIngest: two servers on one database insert the
// same readings (each instant once through each), in opposite orders, so
// half of the second copies arrive after their hour was folded, while both
// servers fold again and again. Every reading is stored exactly once,
// counted once as inserted and once as present, and comes back whole.
func TestFoldUnderConcurrentIngest(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	a, b := openNoFold(t, u), openNoFold(t, u)
	ctx := t.Context()
	for _, s := range []*Store{a, b} {
		if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
			t.Fatal(err)
		}
	}
	const instants, step = 1080, 20 * time.Second // 6 hours
	batchOf := func(i int) []reading.Reading {
		at := t0.Add(time.Duration(i) * step)
		return []reading.Reading{
			{Device: "plug", Time: at, Power: float64(i) + 0.25, Temperature: reading.F(20 + float64(i%7))},
			{Device: "meter", Time: at, Power: -float64(i), EnergyIn: reading.F(float64(i) * 1.5)},
		}
	}
	var inserted, present atomic.Int64
	var writers sync.WaitGroup
	for si, s := range []*Store{a, b} {
		for w := range 3 {
			writers.Go(func() {
				for k := w; k < instants; k += 3 {
					i := k
					if si == 1 {
						i = instants - 1 - k // server b goes backwards: late replays
					}
					res, err := s.Insert(ctx, "home", batchOf(i))
					if err != nil {
						t.Error(err)
						return
					}
					inserted.Add(int64(res.Inserted))
					present.Add(int64(res.Present))
				}
			})
		}
	}
	done := make(chan struct{})
	var folders sync.WaitGroup
	var folded atomic.Int64
	for fi, s := range []*Store{a, b} {
		folders.Go(func() {
			for h := 1 + fi; ; h = h%7 + 1 {
				select {
				case <-done:
					return
				default:
				}
				st, err := s.Fold(ctx, t0.Add(time.Duration(h)*time.Hour))
				if err != nil {
					t.Error(err)
					return
				}
				folded.Add(st.Readings)
			}
		})
	}
	writers.Wait()
	close(done)
	folders.Wait()
	if t.Failed() {
		return
	}
	if _, err := a.Fold(ctx, t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	const want = 2 * instants
	if inserted.Load() != want || present.Load() != want {
		t.Fatalf("inserted %d, present %d; want %d each", inserted.Load(), present.Load(), want)
	}
	if folded.Load() == 0 {
		t.Fatal("no fold ran while inserting")
	}
	if r, c := layoutCounts(t, a); r != 0 || c != want {
		t.Fatalf("recent holds %d, chunks %d readings; want 0 and %d", r, c, want)
	}
	n := 0
	err := b.Range(ctx, "home", t0, t0.Add(24*time.Hour), func(r reading.Reading) error {
		i, dev := n/2, []string{"meter", "plug"}[n%2]
		w := batchOf(i)[1-n%2]
		if r.Device != dev || !r.Time.Equal(w.Time) || r.Power != w.Power {
			return fmt.Errorf("reading %d: %s %v %v, want %s %v %v", n, r.Device, r.Time, r.Power, dev, w.Time, w.Power)
		}
		n++
		return nil
	})
	if err != nil || n != want {
		t.Fatalf("range: %d readings, %v", n, err)
	}
	src, err := a.Sources(ctx)
	if err != nil || len(src) != 1 || src[0].Count != want {
		t.Fatalf("sources: %+v %v", src, err)
	}
	folded.Store(0)
}

// TestFoldMergesLateReadings: readings for an hour already folded are
// merged into its chunk in time order, with their optional fields.
func TestFoldMergesLateReadings(t *testing.T) {
	t.Parallel()
	s := openNoFold(t, pgtest.URL(t))
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "Asia/Kolkata"); err != nil { // +05:30: an hour spans two local days
		t.Fatal(err)
	}
	dt := t0.Add(5*time.Minute + 1500*time.Millisecond)
	early := []reading.Reading{rd("plug", t0.Add(10*time.Minute), 1), rd("plug", t0.Add(30*time.Minute), 3)}
	late := []reading.Reading{
		{Device: "plug", Time: t0.Add(5 * time.Minute), Power: 0.5, Phases: []float64{1, -2.5, 3}, DeviceTime: &dt, Backfilled: true, Voltage: reading.F(230.1)},
		rd("plug", t0.Add(20*time.Minute), 2),
	}
	if _, err := s.Insert(ctx, "home", early); err != nil {
		t.Fatal(err)
	}
	if st, err := s.Fold(ctx, t0.Add(time.Hour)); err != nil || st.Readings != 2 {
		t.Fatalf("fold: %+v %v", st, err)
	}
	res, err := s.Insert(ctx, "home", append(late, early[0]))
	if err != nil || res.Inserted != 2 || res.Present != 1 {
		t.Fatalf("late insert: %+v %v", res, err)
	}
	if st, err := s.Fold(ctx, t0.Add(time.Hour)); err != nil || st.Readings != 2 {
		t.Fatalf("fold: %+v %v", st, err)
	}
	var chunks int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM chunks`).Scan(&chunks); err != nil || chunks != 1 {
		t.Fatalf("%d chunks, %v", chunks, err)
	}
	var got []reading.Reading
	if err := s.Range(ctx, "home", t0, t0.Add(time.Hour), func(r reading.Reading) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []float64{0.5, 1, 2, 3}
	if len(got) != len(want) {
		t.Fatalf("%d readings, want %d", len(got), len(want))
	}
	for i, r := range got {
		if r.Power != want[i] {
			t.Errorf("reading %d: power %v, want %v", i, r.Power, want[i])
		}
	}
	g := got[0]
	if !g.Backfilled || g.DeviceTime == nil || !g.DeviceTime.Equal(dt) || len(g.Phases) != 3 || g.Phases[1] != -2.5 || g.Voltage == nil || *g.Voltage != 230.1 {
		t.Errorf("optional fields after merge: %+v", g)
	}
	if got[1].Backfilled || got[1].Phases != nil || got[1].DeviceTime != nil {
		t.Errorf("fields leaked to a neighbour: %+v", got[1])
	}
	// The zone change refiles days from chunks: 00:05–00:30 UTC is 05:35–06:00 in Kolkata.
	if err := s.EnsureSource(ctx, "home", "America/New_York"); err != nil {
		t.Fatal(err)
	}
	days, err := s.Days(ctx, "home", "2026-03-01", "2026-03-31")
	if err != nil || len(days) != 1 || days[0].Day != "2026-03-28" {
		t.Fatalf("days after zone change: %+v %v", days, err)
	}
	l, err := s.Latest(ctx, "home")
	if err != nil || len(l) != 1 || l[0].Power != 3 {
		t.Fatalf("latest from a chunk: %+v %v", l, err)
	}
}

// TestUpgradeFromRowLayout: a database written by the previous layout
// (schema step 1, one row per reading in table readings) is upgraded in
// place when a new server opens it, its readings are folded into chunks,
// and nothing is lost on the way.
func TestUpgradeFromRowLayout(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(ctx, pool, 1); err != nil {
		t.Fatal(err)
	}
	// What the previous code stored: 2 devices, 3 hours of 10-s readings.
	const n = 3 * 360
	for _, q := range []string{
		`INSERT INTO sources (id, name, timezone) VALUES (1, 'home', 'Europe/Berlin')`,
		`INSERT INTO devices (id, source_id, name) VALUES (1, 1, 'plug'), (2, 1, 'meter')`,
		fmt.Sprintf(`INSERT INTO readings (source_id, t, device_id, power, temperature, energy_in, phases)
			SELECT 1, $1::timestamptz + i * interval '10 s', d, i * 1000 + d, CASE WHEN d = 1 THEN 21500 END,
			       CASE WHEN d = 2 THEN i * 10 END, CASE WHEN d = 2 AND i %% 100 = 0 THEN ARRAY[i, -i, 7]::int8[] END
			FROM generate_series(0, %d) i, generate_series(1, 2) d`, n-1),
		`UPDATE devices SET n = x.n, first_t = x.f, last_t = x.l
			FROM (SELECT device_id, count(*) n, min(t) f, max(t) l FROM readings GROUP BY 1) x WHERE id = x.device_id`,
		`INSERT INTO days (source_id, day, version) SELECT 1, (t AT TIME ZONE 'Europe/Berlin')::date, nextval('day_versions') FROM readings GROUP BY 2`,
		`SELECT setval('sources_id_seq', 1), setval('devices_id_seq', 2)`,
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, t0)
		}
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			pool.Close()
			t.Fatalf("%s: %v", q, err)
		}
	}
	pool.Close()
	s := openNoFold(t, u)
	check := func(when string) {
		t.Helper()
		i := 0
		err := s.Range(ctx, "home", t0, t0.Add(24*time.Hour), func(r reading.Reading) error {
			k, d := i/2, 2-i%2 // meter (2) sorts before plug (1)
			want := float64(k) + float64(d)/1000
			if r.Power != want || !r.Time.Equal(t0.Add(time.Duration(k)*10*time.Second)) {
				return fmt.Errorf("reading %d: %+v, want power %v", i, r, want)
			}
			if d == 2 && k%100 == 0 && (len(r.Phases) != 3 || r.Phases[1] != -float64(k)/1000) {
				return fmt.Errorf("reading %d: phases %v", i, r.Phases)
			}
			if d == 1 && (r.Temperature == nil || *r.Temperature != 21.5) {
				return fmt.Errorf("reading %d: temperature lost", i)
			}
			i++
			return nil
		})
		if err != nil || i != 2*n {
			t.Fatalf("%s: %d readings of %d, %v", when, i, 2*n, err)
		}
	}
	check("after the upgrade")
	if r, c := layoutCounts(t, s); r != 2*n || c != 0 {
		t.Fatalf("after the upgrade: recent %d, chunks %d", r, c)
	}
	// New readings and replays on the upgraded database.
	res, err := s.Insert(ctx, "home", []reading.Reading{rd("plug", t0, 99), rd("plug", t0.Add(-10*time.Second), 5)})
	if err != nil || res.Inserted != 1 || res.Present != 1 {
		t.Fatalf("insert after the upgrade: %+v %v", res, err)
	}
	if _, err := s.Fold(ctx, t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r, c := layoutCounts(t, s); r != 0 || c != 2*n+1 {
		t.Fatalf("after folding: recent %d, chunks %d", r, c)
	}
	var early bool
	if err := s.Range(ctx, "home", t0.Add(-time.Minute), t0, func(r reading.Reading) error { early = r.Power == 5; return nil }); err != nil || !early {
		t.Fatalf("new reading lost: %v", err)
	}
	check("after folding")
	if res, err := s.Insert(ctx, "home", []reading.Reading{rd("meter", t0.Add(time.Hour), 1)}); err != nil || res.Present != 1 {
		t.Fatalf("replay into a chunk: %+v %v", res, err)
	}
}

// TestReadingsView: the view shows every reading, folded or recent, in SI
// units, and a device-day query with time and hour filters reads only its
// chunks.
func TestReadingsView(t *testing.T) {
	t.Parallel()
	s := openNoFold(t, pgtest.URL(t))
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	dt := t0.Add(2 * time.Second)
	var rs []reading.Reading
	for i := range 720 { // 2 hours
		rs = append(rs, reading.Reading{Device: "plug", Time: t0.Add(time.Duration(i) * 10 * time.Second), Power: float64(i) + 0.5,
			Temperature: reading.F(21.25), EnergyIn: reading.F(float64(i) * 2)})
	}
	rs = append(rs, reading.Reading{Device: "em", Time: t0, Power: 1, Phases: []float64{0.5, 0.25, 0.125}, Voltage: reading.F(229.9), DeviceTime: &dt})
	if _, err := s.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fold(ctx, t0.Add(time.Hour)); err != nil { // the first hour folded, the second recent
		t.Fatal(err)
	}
	rows, err := s.pool.Query(ctx, `SELECT time, power_w, temperature_c, energy_in_wh FROM readings
		WHERE source = 'home' AND device = 'plug' AND time BETWEEN $1 AND $2
		  AND hour BETWEEN $1::timestamptz - interval '1 hour' AND $2 ORDER BY time`, t0, t0.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for rows.Next() {
		var at time.Time
		var p, temp, e float64
		if err := rows.Scan(&at, &p, &temp, &e); err != nil {
			t.Fatal(err)
		}
		if !at.Equal(rs[i].Time) || p != rs[i].Power || temp != 21.25 || math.Abs(e-2*float64(i)) > 1e-9 {
			t.Fatalf("row %d: %v %v %v %v", i, at, p, temp, e)
		}
		i++
	}
	if rows.Err() != nil || i != 720 {
		t.Fatalf("%d rows, %v", i, rows.Err())
	}
	var phases []float64
	var volt float64
	var devTime time.Time
	if err := s.pool.QueryRow(ctx, `SELECT phases_w, voltage_v, device_time FROM readings WHERE device = 'em'`).Scan(&phases, &volt, &devTime); err != nil {
		t.Fatal(err)
	}
	if len(phases) != 3 || phases[2] != 0.125 || volt != 229.9 || !devTime.Equal(dt) {
		t.Fatalf("em: %v %v %v", phases, volt, devTime)
	}
	if _, err := s.Fold(ctx, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.pool.QueryRow(ctx, `SELECT phases_w, voltage_v, device_time FROM readings WHERE device = 'em'`).Scan(&phases, &volt, &devTime); err != nil {
		t.Fatal(err)
	}
	if len(phases) != 3 || phases[2] != 0.125 || volt != 229.9 || !devTime.Equal(dt) {
		t.Fatalf("em folded: %v %v %v", phases, volt, devTime)
	}
}

// TestDayVersionsAcrossFolds: a day's version counts its readings in recent
// on top of the stored one (dayversion.go). Folding moves readings out of
// recent without changing the day, so the version and a summary stored
// under it stay current; a reading inserted after the fold (into the
// folded hour: a late one) changes the version, and a summary computed
// before is refused.
func TestDayVersionsAcrossFolds(t *testing.T) {
	t.Parallel()
	s := openNoFold(t, pgtest.URL(t))
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	day := t0.In(time.FixedZone("CET", 3600)).Format(dayLayout)
	version := func() int64 {
		t.Helper()
		ds, err := s.Days(ctx, "home", day, day)
		if err != nil || len(ds) != 1 {
			t.Fatalf("days: %v %v", ds, err)
		}
		return ds[0].Version
	}
	for i := range 30 {
		if _, err := s.Insert(ctx, "home", []reading.Reading{rd("a", t0.Add(time.Duration(i)*time.Minute), float64(i))}); err != nil {
			t.Fatal(err)
		}
	}
	v := version()
	if ok, err := s.PutDaySummary(ctx, "home", day, v, []byte("sum")); !ok || err != nil {
		t.Fatalf("put summary: %v %v", ok, err)
	}
	st, err := s.Fold(ctx, t0.Add(2*time.Hour))
	if err != nil || st.Readings != 30 {
		t.Fatalf("fold: %+v %v", st, err)
	}
	if r, c := layoutCounts(t, s); r != 0 || c != 30 {
		t.Fatalf("after fold: %d in recent, %d in chunks", r, c)
	}
	ds, _ := s.Days(ctx, "home", day, day)
	if ds[0].Version != v || ds[0].SummaryVersion != v || string(ds[0].Summary) != "sum" {
		t.Fatalf("after fold: %+v, want version %d with its summary", ds[0], v)
	}
	// a replay changes nothing; a late reading does
	if _, err := s.Insert(ctx, "home", []reading.Reading{rd("a", t0, 0)}); err != nil {
		t.Fatal(err)
	}
	if got := version(); got != v {
		t.Fatalf("replay: version %d → %d", v, got)
	}
	if _, err := s.Insert(ctx, "home", []reading.Reading{rd("a", t0.Add(30*time.Second), 7)}); err != nil {
		t.Fatal(err)
	}
	v2 := version()
	if v2 == v {
		t.Fatal("late reading after a fold: version stayed")
	}
	if ok, _ := s.PutDaySummary(ctx, "home", day, v, []byte("stale")); ok {
		t.Fatal("summary at the version before the late reading stored")
	}
	// folding the late reading keeps the new version
	if _, err := s.Fold(ctx, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := version(); got != v2 {
		t.Fatalf("second fold: version %d → %d", v2, got)
	}
	if ok, err := s.PutDaySummary(ctx, "home", day, v2, []byte("sum2")); !ok || err != nil {
		t.Fatalf("put current summary: %v %v", ok, err)
	}
}
