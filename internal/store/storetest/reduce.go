package storetest

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// reduceTests run for a backend that implements store.Reducer.
//
// What Count means after a reduction: SourceInfo.Count is the number of
// readings stored, and a reduced reading counts as one (it stands for its
// minute's raw readings, Reduced.Count of them). First and Last are
// stored readings' times: a reduced reading's time is the start of its
// minute.
var reduceTests = []struct {
	name string
	fn   func(t *testing.T, open func(*testing.T) store.Store, c *config)
}{
	{"Reduce", testReduce},
	{"ReduceLimit", testReduceLimit},
	{"ReduceMigrate", testReduceMigrate},
	{"ReduceDurable", testReduceReopen},
	{"ReduceWhileInserting", testReduceWhileInserting},
}

// The retention data set: three hours of readings from 23:30 Berlin time
// on the night the clocks go forward (two local days, the DST jump in
// between) of four devices: a plug (power with two decimals, temperature),
// an energy meter with every optional field (counters, voltage, phases,
// device clock, feeding in at times), one that stops after 30 minutes and
// one that starts after 90, both off the 10-s grid.
var reduceT0 = at("2026-03-28T22:30:00Z")

func reduceData() []reading.Reading {
	var rs []reading.Reading
	in, out := 1000.0, 50.0
	for i := range 3 * 360 {
		t := reduceT0.Add(time.Duration(i) * 10 * time.Second)
		rs = append(rs, reading.Reading{Device: "plug", Time: t, Power: float64(100+i%37) + 0.25*float64(i%4),
			Temperature: reading.F(20 + 0.1*float64(i%9))})
		p := 400*math.Sin(float64(i)/50) + 0.5
		p = math.Round(p*1000) / 1000
		if p > 0 {
			in += p * 10 / 3600
		} else {
			out -= p * 10 / 3600
		}
		dt := t.Add(-1500 * time.Millisecond)
		rs = append(rs, reading.Reading{Device: "em", Time: t, Power: p,
			EnergyIn: reading.F(math.Round(in*1000) / 1000), EnergyOut: reading.F(math.Round(out*1000) / 1000),
			Voltage: reading.F(230 + 0.1*float64(i%7)), Phases: []float64{math.Round(p*500) / 1000, math.Round(p*250) / 1000, math.Round(p*250) / 1000},
			DeviceTime: &dt, Backfilled: i%50 == 7})
		if i < 180 {
			rs = append(rs, rd("gone", t.Add(3*time.Second), 7.5))
		}
		if i >= 540 && i%2 == 0 {
			rs = append(rs, rd("late", t.Add(7*time.Second), float64(i%11)))
		}
	}
	return sortReadings(rs)
}

// reduceMinutes is the suite's ReduceFunc, free of the energy rules: per
// device and UTC minute the mean power (min, max), the means of
// temperature, voltage and each phase (over the readings that have them),
// the last counters and device clock, whether any was backfilled, and as
// energy the positive and negative power times 10 s (in Wh, many
// decimals: the µWh precision is tested with it); every tenth minute has
// a gap's part of it (Reduced.Gap), every other tenth a gap without
// energy. It ignores prev and
// next; the suite checks them separately.
func reduceMinutes(_ *reading.Reading, raw []reading.Reading, _ *reading.Reading) []reading.Reading {
	var out []reading.Reading
	for len(raw) > 0 {
		m := raw[0].Time.Truncate(time.Minute)
		n := 1
		for n < len(raw) && raw[n].Time.Truncate(time.Minute).Equal(m) {
			n++
		}
		out = append(out, reduceMinute(m, raw[:n]))
		raw = raw[n:]
	}
	return out
}

func reduceMinute(m time.Time, raw []reading.Reading) reading.Reading {
	last := raw[len(raw)-1]
	r := reading.Reading{Device: last.Device, Time: m, EnergyIn: last.EnergyIn, EnergyOut: last.EnergyOut, DeviceTime: last.DeviceTime}
	x := &reading.Reduced{Count: len(raw), MinPower: raw[0].Power, MaxPower: raw[0].Power, LastTime: last.Time, LastPower: last.Power}
	mean := func(get func(reading.Reading) *float64) *float64 {
		sum, n := 0.0, 0
		for _, q := range raw {
			if v := get(q); v != nil {
				sum += *v
				n++
			}
		}
		if n == 0 {
			return nil
		}
		return reading.F(sum / float64(n))
	}
	for _, q := range raw {
		r.Power += q.Power / float64(len(raw))
		x.MinPower = min(x.MinPower, q.Power)
		x.MaxPower = max(x.MaxPower, q.Power)
		x.InWh += max(q.Power, 0) / 360
		x.OutWh += max(-q.Power, 0) / 360
		r.Backfilled = r.Backfilled || q.Backfilled
	}
	r.Temperature = mean(func(q reading.Reading) *float64 { return q.Temperature })
	r.Voltage = mean(func(q reading.Reading) *float64 { return q.Voltage })
	for i := range len(last.Phases) {
		r.Phases = append(r.Phases, *mean(func(q reading.Reading) *float64 {
			if i < len(q.Phases) {
				return &q.Phases[i]
			}
			return nil
		}))
	}
	// some minutes as if they followed minutes without readings: the
	// gap's part of the energy round-trips, also when it is none
	switch m.Unix() / 60 % 10 {
	case 2:
		x.Gap, x.GapInWh, x.GapOutWh = true, x.InWh*0.375, x.OutWh
	case 7:
		x.Gap = true
	}
	r.Reduced = x
	return r
}

// sameReduced compares a read-back reduction with what was stored: the
// powers to the milliwatt, the energies to the µWh.
func sameReduced(got, want *reading.Reduced) bool {
	if got == nil || want == nil {
		return got == nil && want == nil
	}
	wh := func(g, w float64) bool { return math.Abs(g-w) <= 0.5e-6+1e-12*math.Abs(w) }
	return got.Count == want.Count && sameValue(got.MinPower, want.MinPower) && sameValue(got.MaxPower, want.MaxPower) &&
		wh(got.InWh, want.InWh) && wh(got.OutWh, want.OutWh) &&
		got.Gap == want.Gap && wh(got.GapInWh, want.GapInWh) && wh(got.GapOutWh, want.GapOutWh) &&
		got.LastTime.Equal(want.LastTime.Truncate(time.Second)) && sameValue(got.LastPower, want.LastPower)
}

// reduced is what the store must hold after everything of data before
// horizon was reduced with reduceMinutes: the reduced readings, then the
// raw ones from horizon on, in Range order.
func reduced(data []reading.Reading, horizon time.Time) []reading.Reading {
	byDev := map[string][]reading.Reading{}
	var out []reading.Reading
	for _, r := range data {
		if r.Time.Before(horizon) {
			byDev[r.Device] = append(byDev[r.Device], r)
		} else {
			out = append(out, r)
		}
	}
	for _, raw := range byDev {
		out = append(out, reduceMinutes(nil, raw, nil)...)
	}
	return sortReadings(out)
}

// reduceCall is one call of a ReduceFunc as the store made it.
type reduceCall struct {
	prev, next *reading.Reading
	raw        []reading.Reading
}

// recorder wraps reduceMinutes and records its calls.
type recorder struct {
	mu    sync.Mutex
	calls []reduceCall
}

func (rec *recorder) fn(prev *reading.Reading, raw []reading.Reading, next *reading.Reading) []reading.Reading {
	c := reduceCall{raw: slices.Clone(raw)}
	if prev != nil {
		p := *prev
		c.prev = &p
	}
	if next != nil {
		n := *next
		c.next = &n
	}
	rec.mu.Lock()
	rec.calls = append(rec.calls, c)
	rec.mu.Unlock()
	return reduceMinutes(prev, raw, next)
}

// check checks every recorded call against data (all raw readings of the
// source, in order): raw is a run of one device's readings in whole UTC
// minutes; prev is the device's reduced reading of the minute before
// (everything before raw is reduced by then), nil for the device's first
// readings; next is its raw reading right after raw, nil after its last.
func (rec *recorder) check(t *testing.T, data []reading.Reading) {
	t.Helper()
	byDev := map[string][]reading.Reading{}
	for _, r := range data {
		byDev[r.Device] = append(byDev[r.Device], r)
	}
	if len(rec.calls) == 0 {
		t.Error("the reduce function was never called")
	}
	for ci, c := range rec.calls {
		what := fmt.Sprintf("call %d of the reduce function", ci)
		if len(c.raw) == 0 {
			t.Errorf("%s: no raw readings", what)
			continue
		}
		dev := byDev[c.raw[0].Device]
		i := slices.IndexFunc(dev, func(r reading.Reading) bool { return r.Time.Equal(c.raw[0].Time) })
		if i < 0 || i+len(c.raw) > len(dev) {
			t.Errorf("%s: raw readings from %s not stored", what, fmtReading(c.raw[0]))
			continue
		}
		checkReadings(t, what+": raw", c.raw, dev[i:i+len(c.raw)])
		j := i + len(c.raw)
		m0, m1 := c.raw[0].Time.Truncate(time.Minute), c.raw[len(c.raw)-1].Time.Truncate(time.Minute)
		if (i > 0 && dev[i-1].Time.Truncate(time.Minute).Equal(m0)) || (j < len(dev) && dev[j].Time.Truncate(time.Minute).Equal(m1)) {
			t.Errorf("%s: raw readings %s..%s are not whole minutes", what, fmtReading(c.raw[0]), fmtReading(c.raw[len(c.raw)-1]))
		}
		var wantPrev, wantNext *reading.Reading
		if i > 0 {
			before := reduceMinutes(nil, dev[:i], nil)
			wantPrev = &before[len(before)-1]
		}
		if j < len(dev) {
			wantNext = &dev[j]
		}
		checkNeighbour(t, what+": prev", c.prev, wantPrev)
		checkNeighbour(t, what+": next", c.next, wantNext)
	}
}

func checkNeighbour(t *testing.T, what string, got, want *reading.Reading) {
	t.Helper()
	switch {
	case got == nil && want == nil:
	case got == nil:
		t.Errorf("%s: nil, want %s", what, fmtReading(*want))
	case want == nil:
		t.Errorf("%s: %s, want nil", what, fmtReading(*got))
	case !sameReading(*got, *want):
		t.Errorf("%s: %s, want %s", what, fmtReading(*got), fmtReading(stored(*want)))
	}
}

func reducer(t *testing.T, s store.Store) store.Reducer {
	t.Helper()
	r, ok := s.(store.Reducer)
	if !ok {
		t.Fatal("the backend does not implement store.Reducer")
	}
	return r
}

func horizonOf(t *testing.T, r store.Reducer, src string) time.Time {
	t.Helper()
	h, err := r.Horizon(ctxOf(t), src)
	if err != nil {
		t.Fatalf("Horizon(%q): %v", src, err)
	}
	return h
}

func countBefore(data []reading.Reading, t time.Time) (raw int64, minutes int64) {
	seen := map[string]bool{}
	for _, r := range data {
		if r.Time.Before(t) {
			raw++
			k := r.Device + r.Time.Truncate(time.Minute).String()
			if !seen[k] {
				seen[k] = true
				minutes++
			}
		}
	}
	return raw, minutes
}

// testReduce: Reduce replaces the raw readings before the horizon (rounded
// down to a minute) by the function's reduced readings, which read back
// with every field; later readings stay raw; the function sees the right
// neighbours; a second run changes nothing; the touched days get new
// versions; Latest, LastTime, Sources and Delete follow; raw readings
// older than the horizon count as present and are not stored.
func testReduce(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	red := reducer(t, s)
	ctx := ctxOf(t)
	ensure(t, s, "home", "Europe/Berlin")
	ensure(t, s, "other", "UTC")
	data := reduceData()
	if got := insert(t, s, "home", data...); got.Inserted != len(data) {
		t.Fatalf("insert: %+v, want %d inserted", got, len(data))
	}
	insert(t, s, "other", rd("plug", reduceT0, 1))
	if h := horizonOf(t, red, "home"); !h.IsZero() {
		t.Fatalf("Horizon before any reduction = %s, want zero", h)
	}
	ds := days(t, s, "home", "2026-03-28", "2026-03-29")
	if fmt.Sprint(dayNames(ds)) != "[2026-03-28 2026-03-29]" {
		t.Fatalf("days: %v", dayNames(ds))
	}
	for _, d := range ds {
		if ok, err := s.PutDaySummary(ctx, "home", d.Day, d.Version, []byte("raw")); err != nil || !ok {
			t.Fatalf("PutDaySummary %s: %v %v", d.Day, ok, err)
		}
	}
	latestBefore, err := s.Latest(ctx, "home")
	if err != nil {
		t.Fatal(err)
	}

	h1 := reduceT0.Add(2 * time.Hour)
	rec := &recorder{}
	res, err := red.Reduce(ctx, "home", h1.Add(25*time.Second+time.Millisecond), 0, rec.fn)
	if err != nil {
		t.Fatalf("Reduce: %v", err)
	}
	raw, minutes := countBefore(data, h1)
	if res.Raw != raw || res.Reduced != minutes || !res.Done || !res.Until.Equal(h1) {
		t.Fatalf("Reduce = %+v, want %d raw, %d reduced, done, until %s (the horizon rounded down to a minute)", res, raw, minutes, h1)
	}
	if h := horizonOf(t, red, "home"); !h.Equal(h1) {
		t.Errorf("Horizon = %s, want %s", h, h1)
	}
	if h := horizonOf(t, red, "other"); !h.IsZero() {
		t.Errorf("Horizon of another source = %s, want zero", h)
	}
	want := reduced(data, h1)
	checkReadings(t, "after Reduce", all(t, s, "home"), want)
	rec.check(t, data)
	if got := all(t, s, "other"); len(got) != 1 || got[0].Reduced != nil {
		t.Errorf("another source changed: %v", got)
	}

	// The days: the same ones, each with a new version.
	ds2 := days(t, s, "home", "2026-03-28", "2026-03-29")
	if fmt.Sprint(dayNames(ds2)) != fmt.Sprint(dayNames(ds)) {
		t.Errorf("days after Reduce: %v, want %v", dayNames(ds2), dayNames(ds))
	}
	for i, d := range ds2 {
		if i < len(ds) && (d.Version == ds[i].Version || d.SummaryVersion == d.Version) {
			t.Errorf("day %s keeps version %d (summary at %d) after Reduce: its cached summary would be taken", d.Day, d.Version, d.SummaryVersion)
		}
	}

	// Latest, LastTime, Sources.
	latest, err := s.Latest(ctx, "home")
	if err != nil {
		t.Fatal(err)
	}
	wantLatest := slices.Clone(latestBefore)
	for i, r := range wantLatest {
		if r.Device == "gone" { // its readings are all reduced now
			var gone []reading.Reading // its last minute
			for _, q := range data {
				if q.Device == "gone" && !q.Time.Before(reduceT0.Add(29*time.Minute)) {
					gone = append(gone, q)
				}
			}
			wantLatest[i] = reduceMinutes(nil, gone, nil)[0]
		}
	}
	checkReadings(t, "Latest after Reduce", latest, wantLatest)
	if last, ok, err := s.LastTime(ctx, "home"); err != nil || !ok || !last.Equal(data[len(data)-1].Time) {
		t.Errorf("LastTime after Reduce = %s %v %v, want %s", last, ok, err, data[len(data)-1].Time)
	}
	si := sourceInfo(t, s, "home")
	if si.Count != int64(len(want)) || !si.First.Equal(reduceT0) || !si.Last.Equal(data[len(data)-1].Time) || len(si.Devices) != 4 {
		t.Errorf("Sources after Reduce = %+v, want %d readings (a reduced one counts once) from %s to %s", si, len(want), reduceT0, data[len(data)-1].Time)
	}

	// A second run over the same horizon, or an earlier one, changes
	// nothing.
	for _, before := range []time.Time{h1.Add(59 * time.Second), h1.Add(-time.Hour)} {
		rec2 := &recorder{}
		res, err := red.Reduce(ctx, "home", before, 0, rec2.fn)
		if err != nil || res.Raw != 0 || res.Reduced != 0 || !res.Done || !res.Until.Equal(h1) || len(rec2.calls) != 0 {
			t.Errorf("Reduce again before %s = %+v %v (%d calls), want nothing done, done, until %s", before, res, err, len(rec2.calls), h1)
		}
	}
	checkReadings(t, "after a second Reduce", all(t, s, "home"), want)
	for i, d := range days(t, s, "home", "2026-03-28", "2026-03-29") {
		if d.Version != ds2[i].Version {
			t.Errorf("day %s: version %d after a Reduce that did nothing, was %d", d.Day, d.Version, ds2[i].Version)
		}
	}

	// Raw readings older than the horizon: present, not stored (a replay
	// of a reduced one, one that never was there); a reduced reading is
	// stored; a batch mixing them with a new one stores the new one.
	if got := insert(t, s, "home", data[0], rd("plug", reduceT0.Add(10*time.Minute+3*time.Second), 5)); got != (store.InsertResult{Present: 2}) {
		t.Errorf("insert of raw readings older than the horizon = %+v, want 2 present", got)
	}
	late := rd("plug", h1.Add(time.Hour+3*time.Second), 6)
	if got := insert(t, s, "home", rd("em", reduceT0.Add(time.Second), 1), late); got != (store.InsertResult{Inserted: 1, Present: 1}) {
		t.Errorf("insert of an old and a new raw reading = %+v, want 1 inserted, 1 present", got)
	}
	data = sortReadings(append(data, late))
	want = sortReadings(append(want, late))
	checkReadings(t, "after inserting old raw readings", all(t, s, "home"), want)

	// Reducing the rest: prev is now a reading reduced by the first run.
	rec3 := &recorder{}
	end := data[len(data)-1].Time.Add(time.Hour)
	res, err = red.Reduce(ctx, "home", end, 0, rec3.fn)
	raw2, minutes2 := countBefore(data, end)
	if err != nil || !res.Done || res.Raw != raw2-raw || res.Reduced != minutes2-minutes {
		t.Fatalf("Reduce the rest = %+v %v, want %d raw, %d reduced, done", res, err, raw2-raw, minutes2-minutes)
	}
	rec3.check(t, data)
	want = reduced(data, end)
	checkReadings(t, "after reducing everything", all(t, s, "home"), want)
	if si := sourceInfo(t, s, "home"); si.Count != int64(len(want)) || !si.Last.Equal(data[len(data)-1].Time.Truncate(time.Minute)) {
		t.Errorf("Sources after reducing everything = %+v, want %d readings, the last at %s", si, len(want), data[len(data)-1].Time.Truncate(time.Minute))
	}

	// Delete works on reduced readings.
	d, ok := s.(store.Deleter)
	if !ok {
		t.Fatal("the backend does not implement store.Deleter")
	}
	n, err := d.Delete(ctx, "home", "gone", reduceT0, reduceT0.Add(10*time.Minute))
	if err != nil || n != 10 {
		t.Fatalf("Delete 10 reduced minutes of gone = %d %v, want 10", n, err)
	}
	want = slices.DeleteFunc(want, func(r reading.Reading) bool {
		return r.Device == "gone" && r.Time.Before(reduceT0.Add(10*time.Minute))
	})
	checkReadings(t, "after Delete", all(t, s, "home"), want)
	if si := sourceInfo(t, s, "home"); si.Count != int64(len(want)) {
		t.Errorf("Sources after Delete: %d readings, want %d", si.Count, len(want))
	}
}

// testReduceLimit: with a limit Reduce stops early, reports how far it
// got, and later calls go on from there until the result is the same as
// one call's.
func testReduceLimit(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	red := reducer(t, s)
	ctx := ctxOf(t)
	ensure(t, s, "home", "Europe/Berlin")
	data := reduceData()
	insert(t, s, "home", data...)
	h := reduceT0.Add(2 * time.Hour)
	const limit = 200
	rec := &recorder{}
	var total, written int64
	var calls int
	until := time.Time{}
	for calls = 1; ; calls++ {
		if calls > 100 {
			t.Fatalf("Reduce with limit %d: not done after 100 calls", limit)
		}
		res, err := red.Reduce(ctx, "home", h, limit, rec.fn)
		if err != nil {
			t.Fatalf("Reduce call %d: %v", calls, err)
		}
		total += res.Raw
		written += res.Reduced
		// A whole minute of the four devices is the most it may go beyond
		// the limit.
		if res.Raw > limit+4*6 || (!res.Done && res.Raw == 0) {
			t.Fatalf("Reduce call %d with limit %d: %+v", calls, limit, res)
		}
		if res.Until.Before(until) || !res.Until.Equal(res.Until.Truncate(time.Minute)) || res.Until.After(h) {
			t.Fatalf("Reduce call %d: until %s after %s (want whole minutes, forward, up to %s)", calls, res.Until, until, h)
		}
		until = res.Until
		if got := horizonOf(t, red, "home"); !got.Equal(res.Until) {
			t.Fatalf("Reduce call %d: until %s, Horizon %s", calls, res.Until, got)
		}
		if res.Done {
			if !res.Until.Equal(h) {
				t.Fatalf("Reduce call %d: done at %s, want %s", calls, res.Until, h)
			}
			break
		}
		// Between the calls the store is a coherent whole: reduced up to
		// its horizon, raw from there on.
		checkReadings(t, fmt.Sprintf("after Reduce call %d", calls), all(t, s, "home"), reduced(data, res.Until))
	}
	raw, minutes := countBefore(data, h)
	if calls < 3 || total != raw || written != minutes {
		t.Errorf("Reduce with limit %d: %d calls, %d raw, %d reduced; want several calls, %d raw, %d reduced", limit, calls, total, written, raw, minutes)
	}
	checkReadings(t, "after the limited Reduce calls", all(t, s, "home"), reduced(data, h))
	rec.check(t, data)
}

// testReduceMigrate: reduced readings copied into another store (migrate)
// are stored as reduced, even with no horizon there, count as present the
// second time, and a later Reduce there keeps them and reduces the raw
// readings after them; an invalid reduced reading is refused.
func testReduceMigrate(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	a, b := open(t), open(t)
	ctx := ctxOf(t)
	data := reduceData()
	h := reduceT0.Add(time.Hour)
	for _, s := range []store.Store{a, b} {
		ensure(t, s, "home", "Europe/Berlin")
	}
	insert(t, a, "home", data...)
	if _, err := reducer(t, a).Reduce(ctx, "home", h, 0, reduceMinutes); err != nil {
		t.Fatal(err)
	}
	moved := all(t, a, "home")
	if got := insert(t, b, "home", moved...); got.Inserted != len(moved) {
		t.Fatalf("insert of %d reduced and raw readings into another store = %+v", len(moved), got)
	}
	checkReadings(t, "copied", all(t, b, "home"), moved)
	if got := insert(t, b, "home", moved[:50]...); got != (store.InsertResult{Present: 50}) {
		t.Errorf("copied again = %+v, want 50 present", got)
	}
	if hb := horizonOf(t, reducer(t, b), "home"); !hb.IsZero() {
		t.Errorf("Horizon of the copy = %s: inserting reduced readings moved it", hb)
	}
	h2 := reduceT0.Add(2 * time.Hour)
	res, err := reducer(t, b).Reduce(ctx, "home", h2, 0, reduceMinutes)
	raw, _ := countBefore(data, h2)
	raw1, _ := countBefore(data, h)
	if err != nil || !res.Done || res.Raw != raw-raw1 {
		t.Errorf("Reduce of the copy = %+v %v, want %d raw", res, err, raw-raw1)
	}
	checkReadings(t, "the copy reduced further", all(t, b, "home"), reduced(data, h2))

	bad := moved[0]
	x := *bad.Reduced
	x.Count = 0
	bad.Reduced = &x
	bad.Time = h2.Add(time.Hour)
	if _, err := b.Insert(ctx, "home", []reading.Reading{bad}); err == nil {
		t.Error("a reduced reading of 0 raw readings was stored")
	}
	x.Count, x.InWh = 1, math.NaN()
	if _, err := b.Insert(ctx, "home", []reading.Reading{bad}); err == nil {
		t.Error("a reduced reading with a NaN energy was stored")
	}
	// A reduce function that breaks the contract is an error, not data.
	ensure(t, b, "other", "UTC")
	insert(t, b, "other", rd("plug", reduceT0, 1), rd("plug", reduceT0.Add(time.Minute), 2))
	_, err = reducer(t, b).Reduce(ctx, "other", reduceT0.Add(time.Hour), 0,
		func(_ *reading.Reading, raw []reading.Reading, _ *reading.Reading) []reading.Reading { return raw })
	if err == nil {
		t.Error("Reduce with a function returning raw readings: no error")
	}
	if got := all(t, b, "other"); len(got) != 2 || got[0].Reduced != nil {
		t.Errorf("a failed Reduce changed the readings: %v", got)
	}
}

// testReduceReopen: the reduced readings and the horizon survive a
// reopen.
func testReduceReopen(t *testing.T, open func(*testing.T) store.Store, c *config) {
	if c.reopen == nil {
		t.Fatal("storetest.Run needs the storetest.Reopen option to test durability")
	}
	s := open(t)
	ctx := ctxOf(t)
	ensure(t, s, "home", "Europe/Berlin")
	data := reduceData()
	insert(t, s, "home", data...)
	h := reduceT0.Add(90 * time.Minute)
	if res, err := reducer(t, s).Reduce(ctx, "home", h, 0, reduceMinutes); err != nil || !res.Done {
		t.Fatalf("Reduce: %+v %v", res, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2 := c.reopen(t, s)
	checkReadings(t, "after reopen", all(t, s2, "home"), reduced(data, h))
	if got := horizonOf(t, reducer(t, s2), "home"); !got.Equal(h) {
		t.Errorf("Horizon after reopen = %s, want %s", got, h)
	}
	if got := insert(t, s2, "home", rd("plug", reduceT0.Add(time.Second), 1)); got != (store.InsertResult{Present: 1}) {
		t.Errorf("insert of a raw reading older than the horizon after reopen = %+v, want present", got)
	}
	if res, err := reducer(t, s2).Reduce(ctx, "home", h, 0, reduceMinutes); err != nil || res.Raw != 0 || !res.Done {
		t.Errorf("Reduce again after reopen = %+v %v, want nothing to do", res, err)
	}
	if !errors.Is(func() error { _, err := reducer(t, s2).Horizon(ctx, "nowhere"); return err }(), store.ErrUnknownSource) {
		t.Error("Horizon of an unknown source: want store.ErrUnknownSource")
	}
}

// testReduceWhileInserting: inserts of new readings go on while Reduce
// works in small slices; every acknowledged one is stored, and the
// reduced part is what one call gives.
func testReduceWhileInserting(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	red := reducer(t, s)
	ctx := ctxOf(t)
	ensure(t, s, "home", "Europe/Berlin")
	data := reduceData()
	insert(t, s, "home", data...)
	h := reduceT0.Add(2 * time.Hour)
	t1 := data[len(data)-1].Time.Add(time.Minute)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var acked []reading.Reading
	stop, started := make(chan struct{}), make(chan struct{}, 4)
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				r := rd(fmt.Sprintf("new%d", g), t1.Add(time.Duration(i)*10*time.Second), float64(i))
				if _, err := s.Insert(ctx, "home", []reading.Reading{r}); err != nil {
					t.Errorf("insert during Reduce: %v", err)
					return
				}
				mu.Lock()
				acked = append(acked, r)
				mu.Unlock()
				if i == 0 {
					started <- struct{}{}
				}
			}
		})
	}
	select { // the inserts are under way
	case <-started:
	case <-ctx.Done():
	}
	// the inserters end before the test does, also when it fails
	stopAll := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopAll()
	for calls := 0; ; calls++ {
		res, err := red.Reduce(ctx, "home", h, 100, reduceMinutes)
		if err != nil {
			t.Fatalf("Reduce during inserts: %v", err)
		}
		if res.Done {
			break
		}
		if calls > 1000 {
			t.Fatal("Reduce: not done after 1000 calls of 100")
		}
	}
	stopAll()
	want := sortReadings(append(reduced(data, h), acked...))
	checkReadings(t, "after Reduce during inserts", all(t, s, "home"), want)
}
