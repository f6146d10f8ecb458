package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/storetest"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := OpenFile(t.Context(), filepath.Join(t.TempDir(), "data", "pm.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContract(t *testing.T) {
	storetest.Run(t,
		func(t *testing.T) store.Store { return openTemp(t) },
		storetest.Reopen(func(t *testing.T, closed store.Store) store.Store {
			s, err := OpenFile(t.Context(), closed.(*Store).Path())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { s.Close() })
			return s
		}))
}

func TestOpenURL(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ctx := t.Context()
	abs := filepath.Join(dir, "abs", "deeper", "a.db")
	for _, url := range []string{"sqlite://" + abs, "sqlite://rel/sub/b.db"} {
		s, err := store.Open(ctx, url)
		if err != nil {
			t.Fatalf("Open(%q): %v", url, err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{abs, filepath.Join(dir, "rel", "sub", "b.db")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("database file not created: %v", err)
		}
	}
	for _, bad := range []string{"sqlite://", "sqlite:///tmp/x.db?mode=ro", "sqlite:///tmp/"} {
		if _, err := Open(ctx, bad); err == nil {
			t.Errorf("Open(%q): no error", bad)
		}
	}
}

// TestDurableWithoutClose reads acknowledged readings through a second,
// independent connection while the writer is still open (as another
// process would after a crash): an acknowledged Insert is in the file (WAL
// included), not in a buffer of this process.
func TestDurableWithoutClose(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			r := reading.Reading{Device: "plug", Time: t0.Add(time.Duration(i) * 10 * time.Second), Power: float64(i)}
			if _, err := s.Insert(ctx, "home", []reading.Reading{r}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	other, err := sql.Open("sqlite", s.Path()+"?_pragma=query_only(1)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	var n int
	if err := other.QueryRowContext(ctx, "SELECT count(*) FROM "+readings(1)).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 16 {
		t.Errorf("second connection sees %d readings, want 16", n)
	}
	// The settings that make an acknowledged insert durable.
	var mode string
	var syncLevel int
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if err := s.w.QueryRowContext(ctx, "PRAGMA synchronous").Scan(&syncLevel); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" || syncLevel != 2 {
		t.Errorf("journal_mode=%s synchronous=%d, want wal and 2 (FULL)", mode, syncLevel)
	}
}

// TestGroupCommitShares checks that concurrent inserts share transactions.
func TestGroupCommitShares(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	const n = 400
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			r := reading.Reading{Device: "plug", Time: t0.Add(time.Duration(i) * time.Second), Power: 1}
			if _, err := s.Insert(ctx, "home", []reading.Reading{r}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	st := s.CommitStats()
	if st.Batches != n {
		t.Errorf("stats %+v: want %d batches", st, n)
	}
	if st.Transactions >= n {
		t.Errorf("stats %+v: %d concurrent inserts took %d transactions, want them shared", st, n, st.Transactions)
	}
	t.Logf("%d inserts in %d transactions", n, st.Transactions)
}

// TestRangePlan makes sure Range is an index scan without a sort (which
// would hold the range in a temporary b-tree).
func TestRangePlan(t *testing.T) {
	s := openTemp(t)
	if err := s.EnsureSource(t.Context(), "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	rows, err := s.r.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+rangeQuery(1), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	p := strings.Join(plan, "; ")
	if strings.Contains(p, "TEMP B-TREE") || !strings.Contains(p, "PRIMARY KEY") {
		t.Errorf("Range plan %q: want a primary key range scan without a sort", p)
	}
}

func TestMigrationVersion(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	var v int
	if err := s.w.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != SchemaVersion {
		t.Errorf("user_version = %d, want %d", v, SchemaVersion)
	}
	path := s.Path()
	if _, err := s.w.ExecContext(ctx, "PRAGMA user_version = 999"); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := OpenFile(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("open of a newer schema: err = %v, want a refusal", err)
	}
}

func TestCodecRoundTrip(t *testing.T) {
	dt := time.Date(2026, 5, 1, 9, 59, 58, 123_000_000, time.UTC)
	r := reading.Reading{Device: "x", Time: time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC), Power: -1.5,
		EnergyIn: reading.F(1), EnergyOut: reading.F(2.002), Voltage: reading.F(-3), DeviceTime: &dt,
		Backfilled: true, Phases: []float64{1, 2, 3}}
	rw, err := encodeRow(&r)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeRow("x", rw.ts, rw.p, rw.v)
	if err != nil {
		t.Fatal(err)
	}
	if got.Power != -1.5 || *got.EnergyOut != 2.002 || *got.Voltage != -3 || !got.DeviceTime.Equal(dt) || !got.Backfilled || len(got.Phases) != 3 {
		t.Errorf("round trip: %+v", got)
	}
	// Corrupt blobs are errors, not panics.
	for _, b := range [][]byte{{0x80}, {xEnergyIn}, {xPhases, 200}, append(append([]byte{}, rw.v.([]byte)...), 0)} {
		if _, err := decodeRow("x", rw.ts, rw.p, b); err == nil {
			t.Errorf("decode of corrupt blob %x: no error", b)
		}
	}
	// The common legacy reading is two integers, no blob.
	leg := reading.Reading{Device: "x", Time: r.Time, Power: 523.45, Temperature: reading.F(21.5)}
	if rw, err := encodeRow(&leg); err != nil || rw.p != 523450 || rw.v != int64(2150) {
		t.Errorf("legacy row = %+v, %v; want p=523450 v=2150", rw, err)
	}
	// Temperatures: 2 decimals as an integer, a third decimal in the blob;
	// both exact.
	for _, temp := range []float64{21.5, -5.25, 36.66, 0, -273.15, 21.123, -0.001, 99.999, 1e9 + 0.5} {
		r := reading.Reading{Device: "x", Time: leg.Time, Power: 1, Temperature: reading.F(temp)}
		rw, err := encodeRow(&r)
		if err != nil {
			t.Fatal(err)
		}
		if _, isInt := rw.v.(int64); isInt == (math.Round(temp*1000)/10 != math.Round(temp*100)) {
			t.Errorf("temperature %v stored as %T", temp, rw.v)
		}
		got, err := decodeRow("x", rw.ts, rw.p, rw.v)
		if err != nil || got.Temperature == nil || *got.Temperature != temp {
			t.Errorf("temperature %v came back as %v (%v)", temp, got.Temperature, err)
		}
	}
	if _, err := decodeRow("x", 0, 0, "text"); err == nil {
		t.Error("decode of a text column: no error")
	}
	// Values beyond the integer range are refused, not wrapped.
	big := r
	big.Power = 1e300
	if _, err := encodeRow(&big); err == nil {
		t.Error("encode of 1e300 W: no error")
	}
}

func TestInsertRefusesOutOfRange(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	if err := s.EnsureSource(ctx, "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	_, err := s.Insert(ctx, "home", []reading.Reading{
		{Device: "a", Time: t0, Power: 1},
		{Device: "a", Time: t0.Add(time.Second), Power: 1, EnergyIn: reading.F(1e20)},
	})
	if err == nil || !strings.Contains(err.Error(), "reading 1") || !strings.Contains(err.Error(), "energy_in_wh") {
		t.Errorf("err = %v, want one naming reading 1 and energy_in_wh", err)
	}
}

// TestCrashDurability runs a child process that inserts concurrently,
// reports each acknowledged reading, and exits abruptly (os.Exit: no Close,
// no checkpoint, inserts still in flight). Every acknowledged reading must
// be in the database when it is opened again.
func TestCrashDurability(t *testing.T) {
	if path := os.Getenv("POWERMETER_CRASH_CHILD"); path != "" {
		crashChild(path)
		return
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestCrashDurability$")
	cmd.Env = append(os.Environ(), "POWERMETER_CRASH_CHILD="+path)
	out, err := cmd.Output()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 {
		t.Fatalf("child: %v (want exit code 3); output:\n%s", err, out)
	}
	var acked []int
	for _, line := range strings.Split(string(out), "\n") {
		if n, ok := strings.CutPrefix(line, "acked "); ok {
			i, err := strconv.Atoi(n)
			if err != nil {
				t.Fatal(err)
			}
			acked = append(acked, i)
		}
	}
	if len(acked) < 50 {
		t.Fatalf("child acknowledged only %d inserts:\n%s", len(acked), out)
	}
	s, err := OpenFile(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	stored := map[time.Time]bool{}
	if err := s.Range(t.Context(), "home", crashT0, crashT0.Add(24*time.Hour), func(r reading.Reading) error {
		stored[r.Time] = true
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, i := range acked {
		if !stored[crashT0.Add(time.Duration(i)*time.Second)] {
			t.Errorf("acknowledged reading %d lost in the crash", i)
		}
	}
	t.Logf("%d acknowledged, %d stored", len(acked), len(stored))
}

var crashT0 = time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)

func crashChild(path string) {
	ctx := context.Background()
	s, err := OpenFile(ctx, path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		fmt.Println("ensure:", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var acked atomic.Int64
	for w := range 16 {
		go func() {
			for i := w; ; i += 16 {
				r := reading.Reading{Device: "plug", Time: crashT0.Add(time.Duration(i) * time.Second), Power: float64(i)}
				if _, err := s.Insert(ctx, "home", []reading.Reading{r}); err != nil {
					return
				}
				mu.Lock()
				fmt.Printf("acked %d\n", i)
				mu.Unlock()
				acked.Add(1)
			}
		}()
	}
	for acked.Load() < 300 {
		time.Sleep(time.Millisecond)
	}
	mu.Lock() // no half-written line; other inserts stay in flight
	os.Exit(3)
}

// TestTwoStoresOneFile: two stores on one file (serve and import running
// at once) write concurrently and see each other's sources, devices and
// readings.
func TestTwoStoresOneFile(t *testing.T) {
	ctx := t.Context()
	a := openTemp(t)
	b, err := OpenFile(ctx, a.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := a.EnsureSource(ctx, "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	for w, s := range []*Store{a, b, a, b} {
		wg.Go(func() {
			for i := range 50 {
				r := reading.Reading{Device: fmt.Sprint("dev", w), Time: t0.Add(time.Duration(i) * time.Second), Power: float64(w)}
				if _, err := s.Insert(ctx, "home", []reading.Reading{r}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	for name, s := range map[string]*Store{"a": a, "b": b} {
		n := 0
		devs := map[string]bool{}
		if err := s.Range(ctx, "home", t0, t0.Add(time.Hour), func(r reading.Reading) error {
			n++
			devs[r.Device] = true
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if n != 200 || len(devs) != 4 {
			t.Errorf("store %s sees %d readings of %d devices, want 200 of 4", name, n, len(devs))
		}
	}
	// A device added through b after a cached its device names.
	if _, err := b.Insert(ctx, "home", []reading.Reading{{Device: "late", Time: t0.Add(time.Minute), Power: 1}}); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := a.Range(ctx, "home", t0.Add(time.Minute), t0.Add(time.Minute+time.Second), func(r reading.Reading) error {
		got = append(got, r.Device)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != "[late]" {
		t.Errorf("a's Range after b added a device = %v, want [late]", got)
	}
	// A zone changed through one store files the other's inserts too.
	if err := b.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	late := time.Date(2026, 6, 10, 23, 30, 0, 0, time.UTC)
	if _, err := a.Insert(ctx, "home", []reading.Reading{{Device: "dev0", Time: late, Power: 1}}); err != nil {
		t.Fatal(err)
	}
	ds, err := b.Days(ctx, "home", "2026-06-10", "2026-06-11")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Day != "2026-06-11" {
		t.Errorf("days = %+v, want 2026-06-11 only (Berlin)", ds)
	}
}

// TestDayOfMatchesZone checks the cached day bounds against the time
// package in zones with odd days: DST at midnight (Havana, Santiago), a
// half-hour shift (Lord Howe), a skipped day (Apia, 2011-12-30).
func TestDayOfMatchesZone(t *testing.T) {
	cases := []struct {
		zone     string
		from, to time.Time
	}{
		{"Europe/Berlin", time.Date(2026, 10, 23, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 27, 0, 0, 0, 0, time.UTC)},
		{"Europe/Berlin", time.Date(2026, 3, 27, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)},
		{"America/Havana", time.Date(2026, 10, 30, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 3, 0, 0, 0, 0, time.UTC)},
		{"America/Havana", time.Date(2026, 3, 6, 0, 0, 0, 0, time.UTC), time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)},
		{"America/Santiago", time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 7, 0, 0, 0, 0, time.UTC)},
		{"America/Santiago", time.Date(2026, 9, 4, 0, 0, 0, 0, time.UTC), time.Date(2026, 9, 8, 0, 0, 0, 0, time.UTC)},
		{"Australia/Lord_Howe", time.Date(2026, 4, 3, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 7, 0, 0, 0, 0, time.UTC)},
		{"Pacific/Apia", time.Date(2011, 12, 28, 0, 0, 0, 0, time.UTC), time.Date(2012, 1, 2, 0, 0, 0, 0, time.UTC)},
	}
	for _, c := range cases {
		loc, err := time.LoadLocation(c.zone)
		if err != nil {
			t.Fatal(err)
		}
		src := &txSource{loc: loc, dayStart: 1}
		for x := c.from; x.Before(c.to); x = x.Add(5 * time.Minute) {
			want := x.In(loc).Format(time.DateOnly)
			if got := src.dayOf(x.Unix() - epoch); got != want {
				t.Errorf("%s %s: day %s, want %s", c.zone, x.Format(time.RFC3339), got, want)
			}
		}
	}
}

// TestInsertChunks sends batches larger than the biggest multi-row insert,
// mixing new rows, rows stored before and duplicates inside the batch, so
// that both the multi-row path and the row-by-row fallback are taken, and
// checks the counts, the stored values (the first one wins) and the
// per-device counters.
func TestInsertChunks(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 10, 24, 20, 0, 0, 0, time.UTC) // crosses two local days
	rd := func(dev string, i int, p float64) reading.Reading {
		return reading.Reading{Device: dev, Time: t0.Add(time.Duration(i) * time.Minute), Power: p}
	}
	// Every 7th reading of the first 300 is stored first.
	var early []reading.Reading
	for i := 0; i < 300; i += 7 {
		early = append(early, rd("a", i, float64(i)))
	}
	if res, err := s.Insert(ctx, "home", early); err != nil || res.Inserted != len(early) {
		t.Fatalf("first insert: %+v, %v", res, err)
	}
	// All-new batch of 301 rows (128+128+32+8+4+1).
	var fresh []reading.Reading
	for i := range 301 {
		fresh = append(fresh, rd("b", i, float64(i)))
	}
	if res, err := s.Insert(ctx, "home", fresh); err != nil || res != (store.InsertResult{Inserted: 301}) {
		t.Fatalf("fresh batch: %+v, %v", res, err)
	}
	// 300 readings of a (43 present), one duplicate inside the batch.
	var mixed []reading.Reading
	for i := range 300 {
		mixed = append(mixed, rd("a", i, float64(1000+i)))
	}
	mixed = append(mixed, rd("a", 150, 5)) // 150 is new in this batch: the earlier one wins
	res, err := s.Insert(ctx, "home", mixed)
	if err != nil {
		t.Fatal(err)
	}
	if want := (store.InsertResult{Inserted: 300 - len(early), Present: len(early) + 1}); res != want {
		t.Errorf("mixed batch = %+v, want %+v", res, want)
	}
	got := map[string]float64{}
	n := 0
	err = s.Range(ctx, "home", t0, t0.Add(24*time.Hour), func(r reading.Reading) error {
		n++
		got[fmt.Sprint(r.Device, int(r.Time.Sub(t0)/time.Minute))] = r.Power
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 300+301 {
		t.Errorf("stored %d readings, want %d", n, 300+301)
	}
	for i := range 300 {
		want := float64(1000 + i)
		if i%7 == 0 {
			want = float64(i)
		}
		if p := got[fmt.Sprint("a", i)]; p != want {
			t.Errorf("a %d: power %v, want %v", i, p, want)
		}
	}
	infos, err := s.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(infos) != 1 || infos[0].Count != 601 {
		t.Errorf("sources = %+v, want one with 601 readings", infos)
	}
}

// TestManySourcesBeyondPreparedStatements: sources past the prepared-statement
// bound are stored through statements parsed per transaction.
func TestManySourcesBeyondPreparedStatements(t *testing.T) {
	s := openTemp(t)
	ctx := context.Background()
	start := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	n := maxPreparedSources + 5
	for i := range n {
		name := fmt.Sprintf("home%03d", i)
		if err := s.EnsureSource(ctx, name, "Europe/Berlin"); err != nil {
			t.Fatal(err)
		}
		res, err := s.Insert(ctx, name, []reading.Reading{storetest.LegacyReading(start, i), storetest.LegacyReading(start, i+1)})
		if err != nil || res.Inserted != 2 {
			t.Fatalf("%s: %+v, %v", name, res, err)
		}
	}
	if got := len(s.preparedSrc); got != maxPreparedSources {
		t.Errorf("%d sources prepared, want the bound %d", got, maxPreparedSources)
	}
	infos, err := s.Sources(ctx)
	if err != nil || len(infos) != n {
		t.Fatalf("Sources: %d, %v", len(infos), err)
	}
	for _, in := range infos {
		if in.Count != 2 {
			t.Errorf("%s holds %d readings, want 2", in.Name, in.Count)
		}
	}
}

// TestCodecReducedGap: a reduced reading's gap part (Reduced.Gap) follows
// the summary of schema 3, whose blobs decode as before (Gap false).
func TestCodecReducedGap(t *testing.T) {
	m := time.Date(2026, 6, 1, 23, 1, 0, 0, time.UTC)
	r := reading.Reading{Device: "grid", Time: m, Power: 3000, EnergyIn: reading.F(12345.678),
		Reduced: &reading.Reduced{Count: 6, MinPower: 2900, MaxPower: 3100, InWh: 7500.123456, OutWh: 0.5,
			LastTime: m.Add(53 * time.Second), LastPower: 3050}}
	old, err := encodeRow(&r)
	if err != nil {
		t.Fatal(err)
	}
	// the blob as schema 3 wrote it: flags, counter, then the summary
	const schema3 = "81cec2f10506c09a0cc09a0cc09aabf81ba0c21e6aa08d06"
	if got := fmt.Sprintf("%x", old.v); got != schema3 {
		t.Fatalf("blob without a gap %s, want schema 3's %s", got, schema3)
	}
	got, err := decodeRow("grid", old.ts, old.p, old.v)
	if err != nil || got.Reduced == nil || got.Reduced.Gap || got.Reduced.InWh != 7500.123456 {
		t.Fatalf("schema 3 blob: %+v, %v", got.Reduced, err)
	}
	for _, g := range [][2]float64{{7400.000001, 0.5}, {0, 0}} {
		r.Reduced.Gap, r.Reduced.GapInWh, r.Reduced.GapOutWh = true, g[0], g[1]
		rw, err := encodeRow(&r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeRow("grid", rw.ts, rw.p, rw.v)
		if err != nil || !got.Reduced.Gap || got.Reduced.GapInWh != g[0] || got.Reduced.GapOutWh != g[1] || got.Reduced.InWh != 7500.123456 {
			t.Errorf("gap %v: %+v, %v", g, got.Reduced, err)
		}
		// one of the two values missing: corrupt
		b := rw.v.([]byte)
		if _, err := decodeRow("grid", rw.ts, rw.p, b[:len(b)-1]); err == nil {
			t.Errorf("gap %v: blob without its last byte decoded", g)
		}
	}
	r.Reduced.GapInWh = 8000
	if _, err := encodeRow(&r); err == nil {
		t.Error("a gap part above the minute's energy: no error")
	}
}
