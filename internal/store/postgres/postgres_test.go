package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
)

// open opens a Store on a fresh schema, closed at cleanup.
func open(t testing.TB) (*Store, string) {
	t.Helper()
	u := pgtest.URL(t)
	s := openURL(t, u)
	return s, u
}

func openURL(t testing.TB, u string) *Store {
	t.Helper()
	st, err := store.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st.(*Store)
}

var t0 = time.Date(2026, 3, 29, 0, 0, 0, 0, time.UTC) // Berlin switches to summer time at 01:00 UTC

func rd(dev string, t time.Time, p float64) reading.Reading {
	return reading.Reading{Device: dev, Time: t, Power: p}
}

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	dt := t0.Add(-3 * time.Second)
	full := reading.Reading{
		Device: "meter", Time: t0.Add(500 * time.Millisecond), Power: -1234.567,
		EnergyIn: reading.F(12345678.901), EnergyOut: reading.F(0), Temperature: reading.F(21.37),
		Voltage: reading.F(231.4), Phases: []float64{100.5, -20.25, 0}, DeviceTime: &dt, Backfilled: true,
	}
	res, err := s.Insert(ctx, "home", []reading.Reading{full, rd("a", t0, 1), rd("z", t0, 2), rd("a", t0.Add(10*time.Second), 3)})
	if err != nil {
		t.Fatal(err)
	}
	if res != (store.InsertResult{Inserted: 4}) {
		t.Fatalf("insert: %+v", res)
	}
	var got []reading.Reading
	if err := s.Range(ctx, "home", t0, t0.Add(time.Hour), func(r reading.Reading) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	order := ""
	for _, r := range got {
		order += fmt.Sprintf("%s@%d ", r.Device, r.Time.Sub(t0)/time.Second)
	}
	if order != "a@0 meter@0 z@0 a@10 " {
		t.Fatalf("range order: %s", order)
	}
	m := got[1]
	if !m.Time.Equal(t0) || m.Time.Location() != time.UTC {
		t.Errorf("time %v: want whole second %v in UTC", m.Time, t0)
	}
	if m.Power != -1234.567 || *m.EnergyIn != 12345678.901 || *m.EnergyOut != 0 || *m.Temperature != 21.37 ||
		*m.Voltage != 231.4 || fmt.Sprint(m.Phases) != "[100.5 -20.25 0]" || !m.DeviceTime.Equal(dt) || !m.Backfilled {
		t.Errorf("full reading came back as %+v", m)
	}
	if got[0].EnergyIn != nil || got[0].Temperature != nil || got[0].Phases != nil || got[0].DeviceTime != nil || got[0].Backfilled {
		t.Errorf("absent fields came back set: %+v", got[0])
	}

	// Same instants again (sub-second differences are the same instant).
	res, err = s.Insert(ctx, "home", []reading.Reading{rd("a", t0.Add(900*time.Millisecond), 9), rd("b", t0, 5)})
	if err != nil {
		t.Fatal(err)
	}
	if res != (store.InsertResult{Inserted: 1, Present: 1}) {
		t.Fatalf("re-insert: %+v", res)
	}

	latest, err := s.Latest(ctx, "home")
	if err != nil {
		t.Fatal(err)
	}
	var ls []string
	for _, r := range latest {
		ls = append(ls, fmt.Sprintf("%s@%d=%g", r.Device, r.Time.Sub(t0)/time.Second, r.Power))
	}
	if fmt.Sprint(ls) != "[a@10=3 b@0=5 meter@0=-1234.567 z@0=2]" {
		t.Errorf("latest: %v", ls)
	}
	last, ok, err := s.LastTime(ctx, "home")
	if err != nil || !ok || !last.Equal(t0.Add(10*time.Second)) {
		t.Errorf("last time: %v %v %v", last, ok, err)
	}
	srcs, err := s.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 1 || srcs[0].Name != "home" || srcs[0].Timezone != "Europe/Berlin" || srcs[0].Count != 5 ||
		fmt.Sprint(srcs[0].Devices) != "[a b meter z]" || !srcs[0].First.Equal(t0) || !srcs[0].Last.Equal(t0.Add(10*time.Second)) {
		t.Errorf("sources: %+v", srcs)
	}
}

func TestEmptySourceAndErrors(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	if _, err := s.Insert(ctx, "nobody", []reading.Reading{rd("a", t0, 1)}); !errors.Is(err, store.ErrUnknownSource) {
		t.Errorf("insert into unknown source: %v", err)
	}
	if _, _, err := s.LastTime(ctx, "nobody"); !errors.Is(err, store.ErrUnknownSource) {
		t.Errorf("last time of unknown source: %v", err)
	}
	if err := s.EnsureSource(ctx, "x", "Mars/Olympus"); err == nil {
		t.Error("unknown zone accepted")
	}
	if err := s.EnsureSource(ctx, "empty", "UTC"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.LastTime(ctx, "empty"); ok || err != nil {
		t.Errorf("last time of empty source: %v %v", ok, err)
	}
	srcs, err := s.Sources(ctx)
	if err != nil || len(srcs) != 1 || srcs[0].Count != 0 || len(srcs[0].Devices) != 0 || !srcs[0].First.IsZero() {
		t.Errorf("sources: %+v %v", srcs, err)
	}
	// One invalid reading: nothing of the batch is stored, not even its device.
	bad := []reading.Reading{rd("good", t0, 1), rd("bad", t0, 1e300)}
	if _, err := s.Insert(ctx, "empty", bad); err == nil {
		t.Fatal("out-of-range power accepted")
	}
	bad[1] = reading.Reading{Device: "bad", Time: t0, Power: 1, EnergyIn: reading.F(-1)}
	if _, err := s.Insert(ctx, "empty", bad); err == nil {
		t.Fatal("negative counter accepted")
	}
	if l, _ := s.Latest(ctx, "empty"); len(l) != 0 {
		t.Errorf("failed batches left readings: %v", l)
	}
	if srcs, _ := s.Sources(ctx); len(srcs[0].Devices) != 0 {
		t.Errorf("failed batches left devices: %v", srcs[0].Devices)
	}
}

func TestDays(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	// 22:59 UTC on the 28th is 23:59 in Berlin; 23:00 UTC is the 29th.
	ins := func(rs ...reading.Reading) {
		t.Helper()
		if _, err := s.Insert(ctx, "home", rs); err != nil {
			t.Fatal(err)
		}
	}
	ins(rd("a", t0.Add(-61*time.Minute), 1), rd("a", t0.Add(-59*time.Minute), 1))
	days, err := s.Days(ctx, "home", "2026-03-01", "2026-03-31")
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 2 || days[0].Day != "2026-03-28" || days[1].Day != "2026-03-29" || days[0].Version == 0 || days[0].SummaryVersion != 0 || days[0].Summary != nil {
		t.Fatalf("days: %+v", days)
	}
	v0, v := days[0].Version, days[1].Version
	if ok, err := s.PutDaySummary(ctx, "home", "2026-03-29", v, []byte("sum1")); !ok || err != nil {
		t.Fatalf("put current summary: %v %v", ok, err)
	}
	ins(rd("a", t0.Add(-59*time.Minute), 1)) // already present: the day does not change
	ins(rd("b", t0.Add(time.Hour), 1))
	if ok, err := s.PutDaySummary(ctx, "home", "2026-03-29", v, []byte("stale")); ok || err != nil {
		t.Fatalf("stale summary stored: %v %v", ok, err)
	}
	days, err = s.Days(ctx, "home", "2026-03-29", "2026-03-29")
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != 1 || days[0].Version != v+1 || string(days[0].Summary) != "sum1" || days[0].SummaryVersion != v {
		t.Fatalf("after insert: %+v", days)
	}
	if ok, _ := s.PutDaySummary(ctx, "home", "2026-03-29", v+1, []byte("sum2")); !ok {
		t.Fatal("current summary refused")
	}
	days, _ = s.Days(ctx, "home", "2026-03-28", "2026-03-29")
	if len(days) != 2 || string(days[1].Summary) != "sum2" || days[1].SummaryVersion != days[1].Version || days[0].Version != v0 {
		t.Fatalf("after second summary: %+v", days)
	}
	if ok, err := s.PutDaySummary(ctx, "home", "2026-01-01", 1, []byte("x")); ok || err != nil {
		t.Errorf("summary for a day without readings: %v %v", ok, err)
	}
	if _, err := s.Days(ctx, "home", "2026-3-1", "x"); err == nil {
		t.Error("bad day accepted")
	}
}

func TestRangeStopsAndStreams(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	if err := s.EnsureSource(ctx, "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	var rs []reading.Reading
	for i := range 5000 {
		rs = append(rs, rd("a", t0.Add(time.Duration(i)*10*time.Second), float64(i)))
	}
	if res, err := s.Insert(ctx, "home", rs); err != nil || res.Inserted != 5000 {
		t.Fatal(res, err)
	}
	stop := errors.New("enough")
	n := 0
	err := s.Range(ctx, "home", t0, t0.Add(24*time.Hour), func(r reading.Reading) error {
		if n++; n == 10 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 10 {
		t.Fatalf("stop: %v after %d", err, n)
	}
	// Bounds: from inclusive, to exclusive, sub-second bounds round up.
	n = 0
	err = s.Range(ctx, "home", t0.Add(10*time.Second-time.Nanosecond), t0.Add(30*time.Second+time.Millisecond), func(r reading.Reading) error {
		n++
		return nil
	})
	if err != nil || n != 3 {
		t.Fatalf("bounds: %d readings, %v", n, err)
	}
	// The store still works after the aborted scan.
	if _, ok, err := s.LastTime(ctx, "home"); !ok || err != nil {
		t.Fatal(ok, err)
	}
}

// TestGroupCommit: many concurrent Inserts, overlapping on purpose; each
// reading is stored once and counted once as inserted.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	for _, src := range []string{"h1", "h2"} {
		if err := s.EnsureSource(ctx, src, "Europe/Berlin"); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	var total store.InsertResult
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Go(func() {
			for i := range 20 {
				src := []string{"h1", "h2"}[i%2]
				// Goroutine pairs insert the same readings.
				r := rd(fmt.Sprintf("d%d", g%4), t0.Add(time.Duration(g/8*100+i)*time.Second), 1)
				res, err := s.Insert(ctx, src, []reading.Reading{r})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				total.Inserted += res.Inserted
				total.Present += res.Present
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	srcs, err := s.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// 4 devices × 4 time blocks × 20 instants, 2 goroutines per reading.
	if total.Inserted != 320 || total.Present != 320 || srcs[0].Count+srcs[1].Count != 320 {
		t.Fatalf("inserted %+v, sources %+v", total, srcs)
	}
}

// TestBadBatchFailsAlone: a group whose statement fails fails as a whole
// (all or nothing); the committer then stores each batch alone, so the
// good ones still get in.
func TestBadBatchFailsAlone(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	if err := s.EnsureSource(ctx, "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	sid := s.sources["home"]
	ids, err := s.deviceIDs(ctx, sid, []string{"a"})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := encode(&reading.Reading{Device: "a", Time: t0, Power: 1})
	good := &batch{source: sid, rows: []row{w}, devices: []int32{ids["a"]}}
	// No such device: the statement fails.
	bad := &batch{source: sid, rows: []row{w, w}, devices: []int32{ids["a"], 999999}}
	g := &groupTx{s: s, batches: []*batch{good, bad}}
	if err := g.Prepare(ctx); err == nil {
		g.Commit(ctx)
		t.Fatal("group with a bad batch stored")
	}
	if n := count(t, s, "home"); n != 0 {
		t.Fatalf("failed group left %d readings", n)
	}

	// Through the committer: concurrent good batches and bad ones.
	commit := func(b *batch) (*batch, error) {
		return s.gc.Do(ctx, &batch{source: b.source, rows: b.rows, devices: b.devices}, len(b.rows))
	}
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			if i%10 == 0 {
				if _, err := commit(bad); err == nil {
					t.Error("bad batch stored")
				}
				return
			}
			w, _ := encode(&reading.Reading{Device: "a", Time: t0.Add(time.Duration(i) * time.Second), Power: 1})
			r, err := commit(&batch{source: sid, rows: []row{w}, devices: []int32{ids["a"]}})
			if err != nil || r.res.Inserted != 1 {
				t.Errorf("good batch %d: %+v %v", i, r, err)
			}
		})
	}
	wg.Wait()
	if n := count(t, s, "home"); n != 36 {
		t.Fatalf("%d readings stored, want 36", n)
	}
}

func count(t *testing.T, s *Store, source string) int {
	t.Helper()
	n := 0
	if err := s.Range(context.Background(), source, t0.Add(-time.Hour), t0.Add(time.Hour), func(reading.Reading) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTwoServers: two Stores (two serve processes) on one schema take
// overlapping readings of the same source at the same time.
func TestTwoServers(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	var a, b *Store
	var wg sync.WaitGroup
	wg.Go(func() { a = openURL(t, u) }) // migrations race: the lock serializes them
	wg.Go(func() { b = openURL(t, u) })
	wg.Wait()
	if t.Failed() {
		return
	}
	ctx := context.Background()
	var steps int
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&steps); err != nil || steps != len(migrations)-1 {
		t.Fatalf("schema_migrations holds %d steps (%v), want %d", steps, err, len(migrations)-1)
	}
	for _, s := range []*Store{a, b} {
		if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
			t.Fatal(err)
		}
	}
	const n = 600
	var inserted, present atomic.Int64
	for si, s := range []*Store{a, b} {
		for w := range 4 {
			wg.Go(func() {
				for i := w; i < n; i += 4 {
					// Server b starts in the middle: a third of the instants overlap.
					at := t0.Add(time.Duration(i+si*n/2) * 10 * time.Second)
					res, err := s.Insert(ctx, "home", []reading.Reading{rd("a", at, 1), rd("b", at, 2)})
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
	wg.Wait()
	want := 2 * (n * 3 / 2)
	if inserted.Load() != int64(want) || present.Load() != int64(2*n*2-want) {
		t.Fatalf("inserted %d present %d, want %d and %d", inserted.Load(), present.Load(), want, 2*n*2-want)
	}
	for _, s := range []*Store{a, b} {
		cnt := 0
		var prev time.Time
		err := s.Range(ctx, "home", t0, t0.Add(24*time.Hour), func(r reading.Reading) error {
			if r.Time.Before(prev) {
				return fmt.Errorf("out of order at %v", r.Time)
			}
			prev = r.Time
			cnt++
			return nil
		})
		if err != nil || cnt != want {
			t.Fatalf("range sees %d readings, want %d (%v)", cnt, want, err)
		}
		srcs, _ := s.Sources(ctx)
		if srcs[0].Count != int64(want) {
			t.Fatalf("sources count %d, want %d", srcs[0].Count, want)
		}
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Server(t)
	u, err := pgtest.Schema(dsn, "pm_no_such_schema")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), u); err == nil || !strings.Contains(err.Error(), "no existing schema") {
		t.Errorf("missing schema: %v", err)
	}
	if _, err := Open(context.Background(), "postgres://user:secret@127.0.0.1:1/x?connect_timeout=2"); err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("unreachable server: %v", err)
	}
}

// TestRangePages: a range longer than one page comes back whole and in
// order, also when a page ends between two devices of one instant.
func TestRangePages(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	if err := s.EnsureSource(ctx, "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	const instants = pageTarget + 7
	var rs []reading.Reading
	for i := range instants {
		at := t0.Add(time.Duration(i) * time.Second)
		rs = append(rs, rd("c", at, 1), rd("a", at, 2), rd("b", at, 3)) // ids c < a < b
	}
	if res, err := s.Insert(ctx, "home", rs); err != nil || res.Inserted != len(rs) {
		t.Fatal(res, err)
	}
	// The first hour in chunks, the rest in recent.
	if st, err := s.Fold(ctx, t0.Add(time.Hour)); err != nil || st.Readings != 3*3600 {
		t.Fatalf("fold: %+v %v", st, err)
	}
	i := 0
	err := s.Range(ctx, "home", t0, t0.Add(24*time.Hour), func(r reading.Reading) error {
		want := fmt.Sprintf("%s@%d", []string{"a", "b", "c"}[i%3], i/3)
		if got := fmt.Sprintf("%s@%d", r.Device, r.Time.Sub(t0)/time.Second); got != want {
			return fmt.Errorf("reading %d: %s, want %s", i, got, want)
		}
		i++
		return nil
	})
	if err != nil || i != len(rs) {
		t.Fatalf("%d of %d readings: %v", i, len(rs), err)
	}
}

// TestReadsCannotStarveIngest: with every read connection taken (slow
// dashboard queries), inserts still commit on the committers' own pool.
func TestReadsCannotStarveIngest(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Insert(ctx, "home", []reading.Reading{rd("plug", t0, 1)}); err != nil {
		t.Fatal(err)
	}
	n := int(s.rpool.Config().MaxConns)
	for range n {
		c, err := s.rpool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Release()
	}
	ictx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	res, err := s.Insert(ictx, "home", []reading.Reading{rd("plug", t0.Add(10*time.Second), 2), rd("new", t0, 3)})
	if err != nil || res.Inserted != 2 {
		t.Fatalf("Insert with all %d read connections busy: %+v, %v", n, res, err)
	}
	if w := s.pool.Config().MaxConns; w+int32(n) != 4 {
		t.Errorf("pools of %d + %d connections, want pool_max_conns=4 split", w, n)
	}
}

// TestLastTimes: the newest reading of each named source with readings, in
// one statement per 10 000 sources; unknown sources and sources without
// readings are left out; a fresh Store learns the devices' ids on the way,
// so its first insert registers nothing.
func TestLastTimes(t *testing.T) {
	t.Parallel()
	s, u := open(t)
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c"} {
		if err := s.EnsureSource(ctx, n, "Europe/Berlin"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Insert(ctx, "a", []reading.Reading{rd("x", t0, 1), rd("y", t0.Add(time.Minute), 2)}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Insert(ctx, "c", []reading.Reading{rd("x", t0.Add(-time.Hour), 1)}); err != nil {
		t.Fatal(err)
	}
	s2 := openURL(t, u)
	if err := s2.EnsureSources(ctx, []store.SourceSpec{{Name: "a", Timezone: "Europe/Berlin"}, {Name: "b", Timezone: "Europe/Berlin"}, {Name: "c", Timezone: "Europe/Berlin"}}); err != nil {
		t.Fatal(err)
	}
	got, err := s2.LastTimes(ctx, []string{"a", "b", "c", "nope"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Time{"a": t0.Add(time.Minute), "c": t0.Add(-time.Hour)}
	if len(got) != len(want) || !got["a"].Equal(want["a"]) || !got["c"].Equal(want["c"]) {
		t.Fatalf("LastTimes = %v, want %v", got, want)
	}
	regs := s2.devReg.Stats().Transactions
	if _, err := s2.Insert(ctx, "a", []reading.Reading{rd("y", t0.Add(2*time.Minute), 3)}); err != nil {
		t.Fatal(err)
	}
	if n := s2.devReg.Stats().Transactions - regs; n != 0 {
		t.Errorf("the first insert after LastTimes looked its device up (%d registrations)", n)
	}
	if lt, ok, err := s2.LastTime(ctx, "a"); err != nil || !ok || !lt.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("LastTime after the insert = %v %v %v", lt, ok, err)
	}
}

// TestPanicInGroupReleasesConnection: a group whose writing panics (a
// batch with fewer device ids than rows, a bug upstream) fails its
// callers, ends its transaction and hands the connection back: the
// committers' pool is small, and a connection left in a transaction would
// hold the sources' fold locks.
func TestPanicInGroupReleasesConnection(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	sid := s.sources["home"]
	w, _ := encode(&reading.Reading{Device: "a", Time: t0, Power: 1})
	for range 3 { // more than the pool holds
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, err := s.gc.Do(dctx, &batch{source: sid, rows: []row{w}}, 1)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "panic") {
			t.Fatalf("a batch without device ids: %v, want the recovered panic", err)
		}
	}
	if n := s.pool.Stat().AcquiredConns(); n != 0 {
		t.Fatalf("%d connections still taken after the failed groups", n)
	}
	if _, err := s.Insert(ctx, "home", []reading.Reading{rd("a", t0, 1)}); err != nil {
		t.Fatalf("insert after the failed groups: %v", err)
	}
	// the fold lock is free: a fold of the source goes through
	fctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.Fold(fctx, t0.Add(2*time.Hour)); err != nil {
		t.Fatalf("fold after the failed groups: %v", err)
	}
	if n := count(t, s, "home"); n != 1 {
		t.Fatalf("%d readings, want 1", n)
	}
}
