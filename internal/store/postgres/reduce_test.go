package postgres

import (
	"encoding/json"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
)

// meanReduce is a ReduceFunc for these tests (the server uses the energy
// package's): per minute the means, min and max power, the last raw
// reading's counters, clock and power, and as energy the raw readings'
// power × 10 s. It checks that prev lies before raw and next after it.
func meanReduce(t *testing.T) store.ReduceFunc {
	return func(prev *reading.Reading, raw []reading.Reading, next *reading.Reading) []reading.Reading {
		if len(raw) == 0 {
			t.Error("reduce function called without raw readings")
			return nil
		}
		if prev != nil && !prev.Time.Before(raw[0].Time) {
			t.Errorf("prev %s not before the first raw reading %s", prev.Time, raw[0].Time)
		}
		if next != nil && !next.Time.After(raw[len(raw)-1].Time) {
			t.Errorf("next %s not after the last raw reading %s", next.Time, raw[len(raw)-1].Time)
		}
		var out []reading.Reading
		for i := 0; i < len(raw); {
			m := raw[i].Time.Truncate(time.Minute)
			j := i
			for j < len(raw) && raw[j].Time.Truncate(time.Minute).Equal(m) {
				j++
			}
			rs := raw[i:j]
			last := rs[len(rs)-1]
			red := &reading.Reduced{Count: len(rs), MinPower: rs[0].Power, MaxPower: rs[0].Power,
				LastTime: last.Time, LastPower: last.Power}
			var sum, temp float64
			var temps int
			for _, r := range rs {
				sum += r.Power
				red.MinPower = min(red.MinPower, r.Power)
				red.MaxPower = max(red.MaxPower, r.Power)
				if r.Power > 0 {
					red.InWh += r.Power * 10 / 3600
				} else {
					red.OutWh -= r.Power * 10 / 3600
				}
				if r.Temperature != nil {
					temp += *r.Temperature
					temps++
				}
			}
			x := reading.Reading{Device: last.Device, Time: m, Power: sum / float64(len(rs)),
				EnergyIn: last.EnergyIn, EnergyOut: last.EnergyOut, DeviceTime: last.DeviceTime, Reduced: red}
			if temps > 0 {
				x.Temperature = reading.F(temp / float64(temps))
			}
			out = append(out, x)
			i = j
		}
		return out
	}
}

// asJSON is readings as JSON, for comparing them whole.
func asJSON(t *testing.T, rs []reading.Reading) string {
	t.Helper()
	b, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// collect is every reading of the source.
func collect(t *testing.T, s store.Store, source string) []reading.Reading {
	t.Helper()
	var out []reading.Reading
	if err := s.Range(t.Context(), source, time.Unix(0, 0), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC), func(r reading.Reading) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// rawCount is how many raw readings the readings stand for.
func rawCount(rs []reading.Reading) int {
	n := 0
	for _, r := range rs {
		if r.Reduced != nil {
			n += r.Reduced.Count
		} else {
			n++
		}
	}
	return n
}

// threeHours inserts 3 hours of 10-s readings of a plug and a meter, the
// first two hours folded into chunks, the last in recent.
func threeHours(t *testing.T, s *Store) {
	t.Helper()
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	var rs []reading.Reading
	for i := range 3 * 360 {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		dt := at.Add(1500 * time.Millisecond)
		rs = append(rs,
			reading.Reading{Device: "plug", Time: at, Power: float64(i%50) + 0.5, Temperature: reading.F(20 + float64(i%3))},
			reading.Reading{Device: "meter", Time: at, Power: float64(i%7) - 3, EnergyIn: reading.F(float64(i) * 1.25),
				EnergyOut: reading.F(float64(i) * 0.5), DeviceTime: &dt, Phases: []float64{1, float64(i % 5), -2}})
	}
	if res, err := s.Insert(ctx, "home", rs); err != nil || res.Inserted != len(rs) {
		t.Fatalf("insert: %+v %v", res, err)
	}
	if _, err := s.Fold(ctx, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
}

func TestReduce(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	s, other := openNoFold(t, u), openNoFold(t, u)
	ctx := t.Context()
	threeHours(t, s)
	if err := other.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err) // the other server knows the source before the reduction
	}
	if _, err := other.Latest(ctx, "home"); err != nil {
		t.Fatal(err) // and its devices
	}
	before := collect(t, s, "home")
	days0, err := s.Days(ctx, "home", "2026-03-28", "2026-03-30")
	if err != nil {
		t.Fatal(err)
	}
	if h, err := s.Horizon(ctx, "home"); err != nil || !h.IsZero() {
		t.Fatalf("horizon before: %v %v", h, err)
	}
	// Up to 02:30:30 (rounded down to 02:30): 2.5 h of chunks and half an
	// hour of recent.
	horizon := t0.Add(150*time.Minute + 30*time.Second)
	res, err := s.Reduce(ctx, "home", horizon, 0, meanReduce(t))
	if err != nil {
		t.Fatal(err)
	}
	want := store.ReduceResult{Raw: 2 * 900, Reduced: 2 * 150, Done: true, Until: t0.Add(150 * time.Minute)}
	if res != want {
		t.Fatalf("reduce: %+v, want %+v", res, want)
	}
	after := collect(t, s, "home")
	if len(after) != 2*150+2*180 || rawCount(after) != len(before) {
		t.Fatalf("after: %d readings standing for %d, want %d for %d", len(after), rawCount(after), 2*150+2*180, len(before))
	}
	// Reduced minutes come back as the function made them.
	fn := meanReduce(t)
	for i, r := range after {
		if r.Time.Before(want.Until) != (r.Reduced != nil) {
			t.Fatalf("reading %d at %s: reduced %v", i, r.Time, r.Reduced != nil)
		}
		if r.Reduced == nil {
			continue
		}
		var raw []reading.Reading
		for _, b := range before {
			if b.Device == r.Device && b.Time.Truncate(time.Minute).Equal(r.Time) {
				raw = append(raw, b)
			}
		}
		w := fn(nil, raw, nil)[0]
		if r.Reduced.Count != w.Reduced.Count || math.Abs(r.Reduced.InWh-w.Reduced.InWh) > 1e-6 ||
			math.Abs(r.Reduced.OutWh-w.Reduced.OutWh) > 1e-6 || r.Reduced.MinPower != w.Reduced.MinPower ||
			r.Reduced.MaxPower != w.Reduced.MaxPower || !r.Reduced.LastTime.Equal(w.Reduced.LastTime) ||
			r.Reduced.LastPower != w.Reduced.LastPower || math.Abs(r.Power-w.Power) > 0.001 {
			t.Fatalf("minute %s %s: %+v %+v, want %+v %+v", r.Device, r.Time, r, *r.Reduced, w, *w.Reduced)
		}
		if r.Device == "meter" && (*r.EnergyIn != *w.EnergyIn || !r.DeviceTime.Equal(*w.DeviceTime) || len(r.Phases) != 0 && r.Phases[0] != 1) {
			t.Fatalf("minute %s %s: counters or clock lost: %+v", r.Device, r.Time, r)
		}
		if r.Device == "plug" && (r.Temperature == nil || math.Abs(*r.Temperature-*w.Temperature) > 0.001) {
			t.Fatalf("minute %s %s: temperature %v", r.Device, r.Time, r.Temperature)
		}
	}
	if h, err := s.Horizon(ctx, "home"); err != nil || !h.Equal(want.Until) {
		t.Fatalf("horizon: %v %v", h, err)
	}
	// Days were renewed; counts and times follow.
	days1, err := s.Days(ctx, "home", "2026-03-28", "2026-03-30")
	if err != nil || len(days1) != len(days0) {
		t.Fatalf("days: %v %v", days1, err)
	}
	for i := range days1 {
		if days1[i].Version == days0[i].Version {
			t.Errorf("day %s: version not renewed", days1[i].Day)
		}
	}
	si, err := s.Sources(ctx)
	if err != nil || si[0].Count != int64(len(after)) || !si[0].First.Equal(t0) {
		t.Fatalf("sources: %+v %v", si, err)
	}
	// A second run over the same horizon changes nothing.
	res, err = s.Reduce(ctx, "home", horizon, 0, meanReduce(t))
	if err != nil || res != (store.ReduceResult{Done: true, Until: want.Until}) {
		t.Fatalf("second reduce: %+v %v", res, err)
	}
	if days2, _ := s.Days(ctx, "home", "2026-03-28", "2026-03-30"); days2[0].Version != days1[0].Version {
		t.Error("second reduce renewed a day")
	}
	// A raw reading older than the horizon is refused as present; a newer
	// one is stored.
	res2, err := s.Insert(ctx, "home", []reading.Reading{rd("plug", t0.Add(time.Minute+5*time.Second), 9), rd("new", t0.Add(5*time.Hour), 1),
		rd("plug", want.Until, 7)})
	if err != nil || res2 != (store.InsertResult{Inserted: 1, Present: 2}) {
		t.Fatalf("insert below the horizon: %+v %v", res2, err)
	}
	// The other server refuses them too: it reads the horizon the first
	// one moved.
	res2, err = other.Insert(ctx, "home", []reading.Reading{rd("plug", t0.Add(2*time.Minute+5*time.Second), 9), rd("meter", t0.Add(149*time.Minute), 9)})
	if err != nil || res2 != (store.InsertResult{Present: 2}) {
		t.Fatalf("insert below the horizon through the other server: %+v %v", res2, err)
	}
	if got := collect(t, s, "home"); len(got) != len(after)+1 {
		t.Fatalf("after refused inserts: %d readings, want %d", len(got), len(after)+1)
	}
	// Latest of a device that has only reduced minutes.
	if _, err := s.Delete(ctx, "home", "plug", want.Until, t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	l, err := s.Latest(ctx, "home")
	if err != nil || len(l) != 3 || l[2].Device != "plug" || l[2].Reduced == nil || !l[2].Time.Equal(want.Until.Add(-time.Minute)) {
		t.Fatalf("latest: %+v %v", l, err)
	}
	// Delete takes reduced minutes too.
	n, err := s.Delete(ctx, "home", "plug", t0, t0.Add(30*time.Minute))
	if err != nil || n != 30 {
		t.Fatalf("delete of reduced minutes: %d %v", n, err)
	}
	if si, _ := s.Sources(ctx); si[0].Count != int64(len(after)+1-180-30) || !si[0].First.Equal(t0) {
		t.Fatalf("sources after delete: %+v", si)
	}
}

// TestReduceLimitAndCopy: reducing in small steps gives what one run
// gives; the reduced source copied by Range + Insert (migrate) into a
// second database stores the reduced minutes as such (its horizon stays),
// and a second copy is all present.
func TestReduceLimitAndCopy(t *testing.T) {
	t.Parallel()
	a := openNoFold(t, pgtest.URL(t))
	b := openNoFold(t, pgtest.URL(t))
	ctx := t.Context()
	threeHours(t, a)
	threeHours(t, b)
	horizon := t0.Add(150 * time.Minute)
	if _, err := a.Reduce(ctx, "home", horizon, 0, meanReduce(t)); err != nil {
		t.Fatal(err)
	}
	calls := 0
	var total store.ReduceResult
	for {
		res, err := b.Reduce(ctx, "home", horizon, 100, meanReduce(t))
		if err != nil {
			t.Fatal(err)
		}
		calls++
		if res.Raw > 100+2*6 { // stops at the minute that reaches the limit
			t.Fatalf("call %d: %d raw readings with limit 100", calls, res.Raw)
		}
		total.Raw += res.Raw
		total.Reduced += res.Reduced
		if res.Done {
			break
		}
		if calls > 100 {
			t.Fatal("no end")
		}
	}
	if calls < 10 || total.Raw != 1800 || total.Reduced != 300 {
		t.Fatalf("%d calls, %+v", calls, total)
	}
	ra, rb := collect(t, a, "home"), collect(t, b, "home")
	if asJSON(t, ra) != asJSON(t, rb) {
		t.Fatal("reducing in steps differs from one run")
	}

	c := openNoFold(t, pgtest.URL(t))
	if err := c.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(ra); i += 97 { // batches straddle the horizon
		res, err := c.Insert(ctx, "home", ra[i:min(i+97, len(ra))])
		if err != nil || res.Inserted != min(97, len(ra)-i) {
			t.Fatalf("copy: %+v %v", res, err)
		}
	}
	if rc := collect(t, c, "home"); asJSON(t, rc) != asJSON(t, ra) {
		t.Fatal("the copy differs")
	}
	if h, err := c.Horizon(ctx, "home"); err != nil || !h.IsZero() {
		t.Fatalf("horizon of the copy: %v %v", h, err)
	}
	if res, err := c.Insert(ctx, "home", ra); err != nil || res.Present != len(ra) {
		t.Fatalf("copy again: %+v %v", res, err)
	}
	if _, err := c.Fold(ctx, t0.Add(24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if rc := collect(t, c, "home"); asJSON(t, rc) != asJSON(t, ra) {
		t.Fatal("the copy differs after folding")
	}
	// The view shows the reduced minutes with their extra columns.
	var n, reduced int
	var in float64
	if err := c.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE reduced), coalesce(sum(minute_in_wh), 0)
		FROM readings WHERE source = 'home' AND device = 'plug'`).Scan(&n, &reduced, &in); err != nil {
		t.Fatal(err)
	}
	var wantIn float64
	for _, r := range ra {
		if r.Device == "plug" && r.Reduced != nil {
			wantIn += r.Reduced.InWh
		}
	}
	if n != 150+180 || reduced != 150 || math.Abs(in-wantIn) > 1e-6 {
		t.Fatalf("view: %d rows, %d reduced, %v Wh (want %v)", n, reduced, in, wantIn)
	}
}

// TestReduceUnderConcurrentIngest: two servers on one database reduce the
// same source in small steps while both insert live readings (each
// instant through both: one inserted, one present), replay old ones, and
// fold. Nothing is lost or doubled: every raw reading ends up either raw or
// counted in exactly one reduced minute, and the counts add up.
func TestReduceUnderConcurrentIngest(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	a, b := openNoFold(t, u), openNoFold(t, u)
	ctx := t.Context()
	threeHours(t, a)
	old := collect(t, a, "home")
	const live = 600
	liveAt := func(i int) reading.Reading {
		return rd("plug", t0.Add(4*time.Hour+time.Duration(i)*10*time.Second), float64(i))
	}
	var inserted, present atomic.Int64
	var writers sync.WaitGroup
	for si, s := range []*Store{a, b} {
		writers.Go(func() {
			for i := range live {
				k := i
				if si == 1 {
					k = live - 1 - i
				}
				// A live reading and a replay of an old one.
				res, err := s.Insert(ctx, "home", []reading.Reading{liveAt(k), old[(k*7)%len(old)]})
				if err != nil {
					t.Error(err)
					return
				}
				inserted.Add(int64(res.Inserted))
				present.Add(int64(res.Present))
			}
		})
	}
	done := make(chan struct{})
	var workers sync.WaitGroup
	var reduced atomic.Int64
	for si, s := range []*Store{a, b} {
		workers.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.Fold(ctx, t0.Add(time.Duration(si+i%5)*time.Hour)); err != nil {
					t.Error(err)
					return
				}
				res, err := s.Reduce(ctx, "home", t0.Add(time.Duration(1+(i+si)%3)*time.Hour), 200, meanReduce(t))
				if err != nil {
					t.Error(err)
					return
				}
				reduced.Add(res.Raw)
			}
		})
	}
	writers.Wait()
	close(done)
	workers.Wait()
	if t.Failed() {
		return
	}
	if _, err := a.Reduce(ctx, "home", t0.Add(3*time.Hour), 0, meanReduce(t)); err != nil {
		t.Fatal(err)
	}
	if reduced.Load() == 0 {
		t.Fatal("no reduction ran while inserting")
	}
	if inserted.Load() != live || present.Load() != live+2*live {
		t.Fatalf("inserted %d, present %d; want %d, %d", inserted.Load(), present.Load(), live, 3*live)
	}
	got := collect(t, b, "home")
	if rawCount(got) != len(old)+live {
		t.Fatalf("%d readings stand for %d raw ones, want %d", len(got), rawCount(got), len(old)+live)
	}
	seen := map[string]bool{}
	for _, r := range got {
		k := r.Device + r.Time.String()
		if seen[k] {
			t.Fatalf("%s at %s twice", r.Device, r.Time)
		}
		seen[k] = true
		if r.Time.Before(t0.Add(3*time.Hour)) != (r.Reduced != nil) {
			t.Fatalf("%s at %s: reduced %v", r.Device, r.Time, r.Reduced != nil)
		}
	}
	si, err := b.Sources(ctx)
	if err != nil || si[0].Count != int64(len(got)) {
		t.Fatalf("sources: %+v %v (have %d)", si, err, len(got))
	}
}

// TestReduceAfterUpgrade: a database of schema step 4 (the compact layout
// before retention) is upgraded by opening it and then reduced.
func TestReduceAfterUpgrade(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	err = migrateTo(ctx, pool, 4)
	pool.Close()
	if err != nil {
		t.Fatal(err)
	}
	s := openNoFold(t, u)
	threeHours(t, s)
	if res, err := s.Reduce(ctx, "home", t0.Add(time.Hour), 0, meanReduce(t)); err != nil || res.Raw != 720 || res.Reduced != 120 {
		t.Fatalf("reduce after upgrade: %+v %v", res, err)
	}
	if got := collect(t, s, "home"); len(got) != 120+2*720 {
		t.Fatalf("%d readings", len(got))
	}
}

// TestReduceDropsEmptiedPartition: a month whose readings are all reduced
// leaves its chunks partition empty, and it is dropped; a late reading of
// another source for that month gets a new one from the folder, also on a
// server that still thought the old one existed.
func TestReduceDropsEmptiedPartition(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	a, b := openNoFold(t, u), openNoFold(t, u)
	ctx := t.Context()
	for _, src := range []string{"home", "other"} {
		if err := a.EnsureSource(ctx, src, "UTC"); err != nil {
			t.Fatal(err)
		}
	}
	feb := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	var rs []reading.Reading
	for i := range 720 { // 23:00 to 01:00
		rs = append(rs, rd("plug", feb.Add(-time.Hour+time.Duration(i)*10*time.Second), float64(i)))
	}
	if _, err := a.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Fold(ctx, feb.Add(2*time.Hour)); err != nil { // b makes (and remembers) both partitions
		t.Fatal(err)
	}
	exists := func(name string) bool {
		var ok bool
		if err := a.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&ok); err != nil {
			t.Fatal(err)
		}
		return ok
	}
	if res, err := a.Reduce(ctx, "home", feb.Add(30*time.Minute), 0, meanReduce(t)); err != nil || res.Raw != 540 {
		t.Fatalf("reduce: %+v %v", res, err)
	}
	if exists("chunks_2026_01") || !exists("chunks_2026_02") {
		t.Fatalf("after reducing January: chunks_2026_01 %v, chunks_2026_02 %v; want dropped, kept",
			exists("chunks_2026_01"), exists("chunks_2026_02"))
	}
	if got := collect(t, a, "home"); len(got) != 90+180 || rawCount(got) != 720 {
		t.Fatalf("after the drop: %d readings for %d", len(got), rawCount(got))
	}
	late := rd("plug", feb.Add(-time.Minute), 5)
	if res, err := b.Insert(ctx, "other", []reading.Reading{late}); err != nil || res.Inserted != 1 {
		t.Fatalf("late reading: %+v %v", res, err)
	}
	if _, err := b.Fold(ctx, feb.Add(2*time.Hour)); err == nil { // its partition was dropped behind its back
		t.Log("first fold after the drop succeeded")
	}
	if _, err := b.Fold(ctx, feb.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if r, _ := layoutCounts(t, b); r != 0 || !exists("chunks_2026_01") {
		t.Fatalf("late reading not folded: %d in recent", r)
	}
	if got := collect(t, b, "other"); len(got) != 1 || !got[0].Time.Equal(late.Time) {
		t.Fatalf("other: %v", got)
	}
}

// TestReduceKeepsDayEnergy: every local day's energy (energy.Calc, the
// dashboard's) is the same to the mWh after the days were reduced with the
// energy rules, including the day the horizon cuts in two and the night
// the clocks go forward.
func TestReduceKeepsDayEnergy(t *testing.T) {
	t.Parallel()
	s := openNoFold(t, pgtest.URL(t))
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 3, 28, 0, 0, 0, 0, berlin)
	var rs []reading.Reading
	in := 5000.0
	for i := range 3 * 8640 {
		at := start.Add(time.Duration(i) * 10 * time.Second)
		if i%8640 > 4000 && i%8640 < 4100 {
			continue // a gap of a quarter of an hour each day
		}
		p := 300 + 250*math.Sin(float64(i)/300)
		in += p * 10 / 3600
		rs = append(rs,
			reading.Reading{Device: "plug", Time: at, Power: math.Round(p*100) / 100},
			reading.Reading{Device: "meter", Time: at.Add(3 * time.Second), Power: math.Round(p*1000) / 1000, EnergyIn: reading.F(math.Round(in*1000) / 1000)})
	}
	for i := 0; i < len(rs); i += 5000 {
		if _, err := s.Insert(ctx, "home", rs[i:min(i+5000, len(rs))]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Fold(ctx, start.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	days := []string{"2026-03-28", "2026-03-29", "2026-03-30"}
	energyOf := func() []float64 {
		calc := &energy.Calc{Store: s, Source: "home", Zone: berlin, Now: func() time.Time { return start.AddDate(0, 0, 10) }}
		var out []float64
		for _, d := range days {
			sum, err := calc.Compute(ctx, d, nil)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, sum.InWh, sum.OutWh)
		}
		return out
	}
	want := energyOf()
	horizon := start.Add(2*24*time.Hour + 5*time.Hour + 17*time.Minute) // into the third day (the second has 23 hours)
	if res, err := s.Reduce(ctx, "home", horizon, 0, energy.Reducer(10*time.Second)); err != nil || !res.Done {
		t.Fatalf("reduce: %+v %v", res, err)
	}
	got := energyOf()
	for i := range got {
		if math.Abs(got[i]-want[i]) > 1e-3 {
			t.Errorf("day %s %s: %.6f Wh after reduction, %.6f before", days[i/2], []string{"in", "out"}[i%2], got[i], want[i])
		}
	}
	t.Logf("energy per day before %v, after %v", want, got)
}

// TestUpgradeMinutesStep6: reduced minutes stored by schema step 5 (offs
// always, the last reading's second in the hour) read the same after
// step 6 (offs NULL for a full hour, that second within its minute).
func TestUpgradeMinutesStep6(t *testing.T) {
	t.Parallel()
	u := pgtest.URL(t)
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(ctx, pool, 5); err != nil {
		pool.Close()
		t.Fatal(err)
	}
	// A full hour and one of 2 minutes, as step 5 stored them: minute i
	// with power i W, its last raw reading at second 50, 6 readings.
	for _, q := range []string{
		`INSERT INTO sources (id, name, timezone) VALUES (1, 'home', 'UTC')`,
		`INSERT INTO devices (id, source_id, name, n, first_t, last_t) VALUES (1, 1, 'plug', 62, $1, $1::timestamptz + interval '1 hour 1 minute')`,
		`CREATE TABLE minutes_2026_03 PARTITION OF minutes FOR VALUES FROM ('2026-03-01 00:00Z') TO ('2026-04-01 00:00Z')`,
		`INSERT INTO minutes (source_id, hour, device_id, offs, n, power, power_min, power_max, in_uwh, out_uwh, last_offs, last_power)
			SELECT 1, $1::timestamptz + h * interval '1 hour', 1, array_agg((i * 60)::int2 ORDER BY i), array_agg(6::int2 ORDER BY i),
				array_agg(i * 1000::int8 ORDER BY i), array_agg(i * 1000::int8 ORDER BY i), array_agg(i * 1000::int8 ORDER BY i),
				array_agg(i * 1000000::int8 ORDER BY i), array_agg(0::int8 ORDER BY i), array_agg((i * 60 + 50)::int2 ORDER BY i),
				array_agg(i * 1000::int8 ORDER BY i)
			FROM generate_series(0, 1) h, generate_series(0, 59) i WHERE h = 0 OR i < 2 GROUP BY h`,
		`INSERT INTO days (source_id, day, version) VALUES (1, $1::timestamptz::date, nextval('day_versions'))`,
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
	got := collect(t, s, "home")
	if len(got) != 62 {
		t.Fatalf("%d readings after the upgrade, want 62", len(got))
	}
	for k, r := range got {
		i := k % 60
		at := t0.Add(time.Duration(k/60)*time.Hour + time.Duration(i)*time.Minute)
		if r.Reduced == nil || !r.Time.Equal(at) || r.Power != float64(i) || r.Reduced.Count != 6 ||
			!r.Reduced.LastTime.Equal(at.Add(50*time.Second)) || r.Reduced.InWh != float64(i) || r.Reduced.Gap {
			t.Fatalf("reading %d: %+v %+v", k, r, r.Reduced)
		}
	}
	// gap arrays out of step with the minutes (a server before step 7
	// rewrote the row) are ignored, not misread
	if _, err := s.pool.Exec(ctx, `UPDATE minutes SET gap_in_uwh = '{5000000}', gap_out_uwh = '{0}' WHERE offs IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	for _, r := range collect(t, s, "home") {
		if r.Reduced == nil || r.Reduced.Gap {
			t.Fatalf("a row with gap arrays out of step: %+v", r.Reduced)
		}
	}
	if _, err := s.pool.Exec(ctx, `UPDATE minutes SET gap_in_uwh = NULL, gap_out_uwh = NULL`); err != nil {
		t.Fatal(err)
	}
	var nulls int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FILTER (WHERE offs IS NULL) FROM minutes`).Scan(&nulls); err != nil || nulls != 1 {
		t.Fatalf("rows without offs: %d %v; want the full hour's", nulls, err)
	}
	var viewN int
	// rows from before step 7 have no gap part (Gap false, the view's
	// minute_gap_in_wh NULL)
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM readings WHERE reduced AND n = 6 AND minute_gap_in_wh IS NULL`).Scan(&viewN); err != nil || viewN != 62 {
		t.Fatalf("view: %d reduced rows, %v", viewN, err)
	}
	if n, err := s.Delete(ctx, "home", "plug", t0.Add(30*time.Minute), t0.Add(90*time.Minute)); err != nil || n != 32 {
		t.Fatalf("delete: %d %v", n, err)
	}
	if got := collect(t, s, "home"); len(got) != 30 || !got[29].Reduced.LastTime.Equal(t0.Add(29*time.Minute+50*time.Second)) {
		t.Fatalf("after delete: %d readings", len(got))
	}
}

// TestReduceDevicesStartingApart: the first chunks of an hour start at
// different minutes (a device that came on late in the hour has the lower
// id): the reduction starts at the earliest of them, nothing is lost.
func TestReduceDevicesStartingApart(t *testing.T) {
	t.Parallel()
	s := openNoFold(t, pgtest.URL(t))
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "UTC"); err != nil {
		t.Fatal(err)
	}
	// "late" is registered first (lower device id) but sends from 00:40.
	if _, err := s.Insert(ctx, "home", []reading.Reading{rd("late", t0.Add(40*time.Minute), 1)}); err != nil {
		t.Fatal(err)
	}
	var rs []reading.Reading
	for i := range 720 {
		rs = append(rs, rd("early", t0.Add(time.Duration(i)*10*time.Second), float64(i)))
		if i >= 241 {
			rs = append(rs, rd("late", t0.Add(time.Duration(i)*10*time.Second), 1))
		}
	}
	if _, err := s.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	total := len(rs) + 1
	if _, err := s.Fold(ctx, t0.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, h := range []time.Duration{50 * time.Minute, 2 * time.Hour} {
		if _, err := s.Reduce(ctx, "home", t0.Add(h), 0, meanReduce(t)); err != nil {
			t.Fatal(err)
		}
		if got := collect(t, s, "home"); rawCount(got) != total {
			t.Fatalf("reduced up to %s: %d readings stand for %d raw ones, want %d", h, len(got), rawCount(got), total)
		}
	}
}
