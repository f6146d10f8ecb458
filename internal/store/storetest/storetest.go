// Package storetest is the one contract test suite every store.Store
// backend must pass. A backend's test calls
//
//	storetest.Run(t, func(t *testing.T) store.Store { … fresh empty store … },
//		storetest.Reopen(func(t *testing.T, closed store.Store) store.Store { … same database … }))
//
// Precision the suite holds every backend to: Time to the second (sub-second
// parts are dropped; the key is source + device + second); power,
// temperature, energy, voltage and phases exact when they have at most 3
// decimals, otherwise within half a milli-unit; DeviceTime to the
// millisecond.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// Option configures Run.
type Option func(*config)

type config struct {
	reopen func(t *testing.T, closed store.Store) store.Store
}

// Reopen gives the suite a way to open again the database of a store that
// open returned and the suite closed (for the durability tests). Without
// it those tests fail: durability is part of the contract.
func Reopen(fn func(t *testing.T, closed store.Store) store.Store) Option {
	return func(c *config) { c.reopen = fn }
}

// Run runs every contract test against the backend. open must return a
// fresh, empty store each call (and close it in t.Cleanup; Close must then
// tolerate a store the suite already closed). The retention tests
// (reduce.go) run when the stores open returns implement store.Reducer.
func Run(t *testing.T, open func(t *testing.T) store.Store, opts ...Option) {
	var c config
	for _, o := range opts {
		o(&c)
	}
	tests := []struct {
		name string
		fn   func(t *testing.T, open func(*testing.T) store.Store, c *config)
	}{
		{"EnsureSource", testEnsureSource},
		{"InsertCounts", testInsertCounts},
		{"SubSecondKey", testSubSecondKey},
		{"UnknownSource", testUnknownSource},
		{"InvalidBatchAllOrNothing", testInvalidBatch},
		{"CancelledContext", testCancelled},
		{"ConcurrentInserts", testConcurrent},
		{"RangeOrderAndBounds", testRangeOrder},
		{"RangeEarlyStop", testRangeEarlyStop},
		{"RangeDoesNotBlockInsert", testRangeWhileInsert},
		{"StalledRangesDoNotStarve", testStalledRanges},
		{"RangeLong", testRangeLong},
		{"OptionalFieldsRoundTrip", testOptionalFields},
		{"Latest", testLatest},
		{"SourcesCounts", testSources},
		{"LastTime", testLastTime},
		{"DaysDST", testDaysDST},
		{"DaysLocalMidnight", testDaysLocalMidnight},
		{"DayVersions", testDayVersions},
		{"DaySummaryVersionCheck", testDaySummary},
		{"ZoneChangeRefilesDays", testZoneChange},
		{"Delete", testDelete},
		{"ImportedDays", testImportedDays},
		{"DurableAfterReopen", testReopen},
		{"Close", testClose},
	}
	// The retention tests, for a backend that reduces (store.Reducer).
	if _, ok := open(t).(store.Reducer); ok {
		tests = append(tests, reduceTests...)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open, &c) })
	}
}

// --- helpers ---

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		panic(err)
	}
	return t
}

func rd(dev string, t time.Time, p float64) reading.Reading {
	return reading.Reading{Device: dev, Time: t, Power: p}
}

func ensure(t *testing.T, s store.Store, name, zone string) {
	t.Helper()
	if err := s.EnsureSource(ctxOf(t), name, zone); err != nil {
		t.Fatalf("EnsureSource(%q, %q): %v", name, zone, err)
	}
}

func insert(t *testing.T, s store.Store, src string, rs ...reading.Reading) store.InsertResult {
	t.Helper()
	res, err := s.Insert(ctxOf(t), src, rs)
	if err != nil {
		t.Fatalf("Insert(%q, %d readings): %v", src, len(rs), err)
	}
	return res
}

func all(t *testing.T, s store.Store, src string) []reading.Reading {
	t.Helper()
	return rangeOf(t, s, src, at("2000-01-01T00:00:00Z"), at("2200-01-01T00:00:00Z"))
}

func rangeOf(t *testing.T, s store.Store, src string, from, to time.Time) []reading.Reading {
	t.Helper()
	var out []reading.Reading
	if err := s.Range(ctxOf(t), src, from, to, func(r reading.Reading) error {
		out = append(out, r)
		return nil
	}); err != nil {
		t.Fatalf("Range(%q, %s, %s): %v", src, from, to, err)
	}
	return out
}

func days(t *testing.T, s store.Store, src, from, to string) []store.Day {
	t.Helper()
	ds, err := s.Days(ctxOf(t), src, from, to)
	if err != nil {
		t.Fatalf("Days(%q, %s, %s): %v", src, from, to, err)
	}
	return ds
}

func dayNames(ds []store.Day) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Day
	}
	return out
}

func dayOf(ds []store.Day, day string) (store.Day, bool) {
	for _, d := range ds {
		if d.Day == day {
			return d, true
		}
	}
	return store.Day{}, false
}

func sourceInfo(t *testing.T, s store.Store, name string) store.SourceInfo {
	t.Helper()
	infos, err := s.Sources(ctxOf(t))
	if err != nil {
		t.Fatalf("Sources: %v", err)
	}
	for _, si := range infos {
		if si.Name == name {
			return si
		}
	}
	t.Fatalf("Sources: %q missing from %v", name, infos)
	return store.SourceInfo{}
}

// fmtReading shows every field of a reading for failure messages.
func fmtReading(r reading.Reading) string {
	var b strings.Builder
	fmt.Fprintf(&b, "{%s %s P=%v", r.Device, r.Time.Format(time.RFC3339Nano), r.Power)
	opt := func(name string, p *float64) {
		if p != nil {
			fmt.Fprintf(&b, " %s=%v", name, *p)
		}
	}
	opt("Ein", r.EnergyIn)
	opt("Eout", r.EnergyOut)
	opt("T", r.Temperature)
	opt("U", r.Voltage)
	if r.Phases != nil {
		fmt.Fprintf(&b, " phases=%v", r.Phases)
	}
	if r.DeviceTime != nil {
		fmt.Fprintf(&b, " devtime=%s", r.DeviceTime.Format(time.RFC3339Nano))
	}
	if r.Backfilled {
		b.WriteString(" backfilled")
	}
	if x := r.Reduced; x != nil {
		fmt.Fprintf(&b, " reduced{n=%d min=%v max=%v in=%v out=%v last=%s/%v", x.Count, x.MinPower, x.MaxPower,
			x.InWh, x.OutWh, x.LastTime.Format(time.RFC3339Nano), x.LastPower)
		if x.Gap {
			fmt.Fprintf(&b, " gap=%v/%v", x.GapInWh, x.GapOutWh)
		}
		b.WriteString("}")
	}
	b.WriteString("}")
	return b.String()
}

// closeTo is the precision contract: exact for up to 3 decimals (the
// caller passes such values), else within half a milli-unit.
func closeTo(got, want float64) bool {
	if got == want {
		return true
	}
	return math.Abs(got-want) <= 0.0005+1e-9*math.Abs(want)
}

func hasAtMost3Decimals(v float64) bool {
	m := math.Round(v * 1000)
	return m/1000 == v
}

func sameValue(got, want float64) bool {
	if hasAtMost3Decimals(want) {
		return got == want
	}
	return closeTo(got, want)
}

func samePtr(got, want *float64) bool {
	if got == nil || want == nil {
		return got == nil && want == nil
	}
	return sameValue(*got, *want)
}

// stored is what a backend must give back for r: time to the second, UTC.
func stored(r reading.Reading) reading.Reading {
	r.Time = r.Time.Truncate(time.Second).UTC()
	if len(r.Phases) == 0 {
		r.Phases = nil
	}
	return r
}

// sameReading compares a read-back reading with what was stored.
func sameReading(got, want reading.Reading) bool {
	want = stored(want)
	if got.Device != want.Device || !got.Time.Equal(want.Time) || got.Time.Location() != time.UTC {
		return false
	}
	if !sameValue(got.Power, want.Power) || !samePtr(got.EnergyIn, want.EnergyIn) ||
		!samePtr(got.EnergyOut, want.EnergyOut) || !samePtr(got.Temperature, want.Temperature) ||
		!samePtr(got.Voltage, want.Voltage) || got.Backfilled != want.Backfilled {
		return false
	}
	if len(got.Phases) != len(want.Phases) || (got.Phases == nil) != (want.Phases == nil) {
		return false
	}
	for i := range want.Phases {
		if !sameValue(got.Phases[i], want.Phases[i]) {
			return false
		}
	}
	if (got.DeviceTime == nil) != (want.DeviceTime == nil) {
		return false
	}
	if want.DeviceTime != nil {
		d := got.DeviceTime.Sub(*want.DeviceTime)
		if d <= -time.Millisecond || d >= time.Millisecond {
			return false
		}
	}
	return sameReduced(got.Reduced, want.Reduced)
}

func checkReadings(t *testing.T, what string, got, want []reading.Reading) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		ok = sameReading(got[i], want[i])
	}
	if ok {
		return
	}
	var b strings.Builder
	for i := 0; i < max(len(got), len(want)); i++ {
		g, w := "-", "-"
		if i < len(got) {
			g = fmtReading(got[i])
		}
		if i < len(want) {
			w = fmtReading(stored(want[i]))
		}
		mark := " "
		if i >= len(got) || i >= len(want) || !sameReading(got[i], want[i]) {
			mark = "!"
		}
		fmt.Fprintf(&b, "\n%s %3d got  %s\n      want %s", mark, i, g, w)
	}
	t.Errorf("%s: %d readings, want %d:%s", what, len(got), len(want), b.String())
}

// sortReadings orders readings as Range must: by (time, device).
func sortReadings(rs []reading.Reading) []reading.Reading {
	out := slices.Clone(rs)
	sort.SliceStable(out, func(i, j int) bool {
		ti, tj := out[i].Time.Truncate(time.Second), out[j].Time.Truncate(time.Second)
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return out[i].Device < out[j].Device
	})
	return out
}

// --- tests ---

func testEnsureSource(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ctx := ctxOf(t)
	ensure(t, s, "home", "Europe/Berlin")
	ensure(t, s, "home", "Europe/Berlin") // idempotent
	ensure(t, s, "cabin", "UTC")
	if err := s.EnsureSource(ctx, "bad", "Mars/Olympus_Mons"); err == nil {
		t.Error("EnsureSource with an unknown zone: no error")
	}
	if err := s.EnsureSource(ctx, "", "UTC"); err == nil {
		t.Error("EnsureSource with an empty name: no error")
	}
	infos, err := s.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, si := range infos {
		names = append(names, si.Name)
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{"cabin", "home"}) {
		t.Fatalf("Sources = %v, want cabin and home only", names)
	}
	if si := sourceInfo(t, s, "home"); si.Timezone != "Europe/Berlin" || si.Count != 0 || !si.First.IsZero() || !si.Last.IsZero() || len(si.Devices) != 0 {
		t.Errorf("new source = %+v, want zone Europe/Berlin and nothing stored", si)
	}
	ensure(t, s, "home", "America/New_York")
	if si := sourceInfo(t, s, "home"); si.Timezone != "America/New_York" {
		t.Errorf("zone after change = %q, want America/New_York", si.Timezone)
	}
}

func testInsertCounts(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "Europe/Berlin")
	t0 := at("2026-05-01T10:00:00Z")
	a := rd("plug", t0, 100)
	b := rd("plug", t0.Add(10*time.Second), 110.5)
	c := rd("plug", t0.Add(20*time.Second), 120.25)
	if got := insert(t, s, "home", a, b, c); got != (store.InsertResult{Inserted: 3}) {
		t.Errorf("first insert = %+v, want 3 inserted", got)
	}
	if got := insert(t, s, "home", a, b, c); got != (store.InsertResult{Present: 3}) {
		t.Errorf("replay = %+v, want 3 present", got)
	}
	d := rd("plug", t0.Add(30*time.Second), 130)
	other := rd("fridge", t0, 80) // same instant, other device: a different reading
	if got := insert(t, s, "home", c, d, other); got != (store.InsertResult{Inserted: 2, Present: 1}) {
		t.Errorf("mixed insert = %+v, want 2 inserted 1 present", got)
	}
	// A changed value for a stored instant is present, not an update.
	changed := b
	changed.Power = 999
	e := rd("plug", t0.Add(40*time.Second), 140)
	if got := insert(t, s, "home", changed, e, e); got != (store.InsertResult{Inserted: 1, Present: 2}) {
		t.Errorf("insert with duplicates in the batch = %+v, want 1 inserted 2 present", got)
	}
	if got, err := s.Insert(ctxOf(t), "home", nil); err != nil || got != (store.InsertResult{}) {
		t.Errorf("empty insert = %+v, %v; want zero counts, no error", got, err)
	}
	checkReadings(t, "stored", all(t, s, "home"), sortReadings([]reading.Reading{a, other, b, c, d, e}))
	if si := sourceInfo(t, s, "home"); si.Count != 6 {
		t.Errorf("Sources count = %d, want 6", si.Count)
	}
}

func testSubSecondKey(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "UTC")
	a := rd("plug", at("2026-05-01T10:00:00.300Z"), 1)
	b := rd("plug", at("2026-05-01T10:00:00.900Z"), 2)
	if got := insert(t, s, "home", a); got.Inserted != 1 {
		t.Fatalf("insert = %+v", got)
	}
	if got := insert(t, s, "home", b); got != (store.InsertResult{Present: 1}) {
		t.Errorf("same second again = %+v, want present (the key is the second)", got)
	}
	got := all(t, s, "home")
	checkReadings(t, "stored", got, []reading.Reading{a})
	if len(got) == 1 && !got[0].Time.Equal(at("2026-05-01T10:00:00Z")) {
		t.Errorf("time = %s, want the whole second", got[0].Time)
	}
}

func testUnknownSource(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ctx := ctxOf(t)
	ensure(t, s, "home", "UTC")
	r := rd("plug", at("2026-05-01T10:00:00Z"), 1)
	check := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, store.ErrUnknownSource) {
			t.Errorf("%s on an unknown source: err = %v, want store.ErrUnknownSource", what, err)
		}
	}
	_, err := s.Insert(ctx, "nobody", []reading.Reading{r})
	check("Insert", err)
	_, err = s.Latest(ctx, "nobody")
	check("Latest", err)
	check("Range", s.Range(ctx, "nobody", r.Time, r.Time.Add(time.Hour), func(reading.Reading) error { return nil }))
	_, _, err = s.LastTime(ctx, "nobody")
	check("LastTime", err)
	_, err = s.Days(ctx, "nobody", "2026-05-01", "2026-05-02")
	check("Days", err)
	_, err = s.PutDaySummary(ctx, "nobody", "2026-05-01", 1, []byte("x"))
	check("PutDaySummary", err)
	// Concurrent inserts to a known source are not harmed by one to an
	// unknown source.
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			src := "home"
			if i == 3 {
				src = "nobody"
			}
			_, errs[i] = s.Insert(ctx, src, []reading.Reading{rd("plug", r.Time.Add(time.Duration(i)*time.Second), float64(i))})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 3 {
			check("concurrent Insert", err)
		} else if err != nil {
			t.Errorf("concurrent insert %d to a known source: %v", i, err)
		}
	}
	if n := len(all(t, s, "home")); n != 7 {
		t.Errorf("stored %d readings, want 7", n)
	}
}

func testInvalidBatch(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ctx := ctxOf(t)
	ensure(t, s, "home", "Europe/Berlin")
	t0 := at("2026-05-01T10:00:00Z")
	present := rd("plug", t0, 5)
	insert(t, s, "home", present)
	beforeDays := days(t, s, "home", "2026-01-01", "2026-12-31")
	bad := map[string]reading.Reading{
		"empty device":      rd("", t0.Add(time.Minute), 1),
		"zero time":         {Device: "plug", Power: 1},
		"year 1999":         rd("plug", at("1999-12-31T23:00:00Z"), 1),
		"NaN power":         rd("plug", t0.Add(time.Minute), math.NaN()),
		"Inf temperature":   {Device: "plug", Time: t0.Add(time.Minute), Temperature: reading.F(math.Inf(1))},
		"negative energy":   {Device: "plug", Time: t0.Add(time.Minute), EnergyIn: reading.F(-1)},
		"17 phases":         {Device: "plug", Time: t0.Add(time.Minute), Phases: make([]float64, 17)},
		"NaN phase":         {Device: "plug", Time: t0.Add(time.Minute), Phases: []float64{1, math.NaN()}},
		"device > 128 byte": rd(strings.Repeat("d", 129), t0.Add(time.Minute), 1),
	}
	for name, r := range bad {
		batch := []reading.Reading{
			rd("plug", t0.Add(2*time.Hour), 1),  // new
			present,                             // already stored
			r,                                   // invalid
			rd("other", t0.Add(3*time.Hour), 2), // new device
			rd("plug", at("2026-06-01T00:00:00Z"), 3), // another day
		}
		if res, err := s.Insert(ctx, "home", batch); err == nil {
			t.Errorf("%s: Insert accepted the batch (%+v), want an error", name, res)
		}
	}
	checkReadings(t, "after refused batches", all(t, s, "home"), []reading.Reading{present})
	si := sourceInfo(t, s, "home")
	if si.Count != 1 || len(si.Devices) != 1 {
		t.Errorf("Sources after refused batches = %+v, want 1 reading of 1 device", si)
	}
	after := days(t, s, "home", "2026-01-01", "2026-12-31")
	if !reflect.DeepEqual(after, beforeDays) {
		t.Errorf("Days changed by refused batches: %v → %v", beforeDays, after)
	}
	// The store still works.
	if got := insert(t, s, "home", present, rd("plug", t0.Add(time.Minute), 7)); got != (store.InsertResult{Inserted: 1, Present: 1}) {
		t.Errorf("valid insert after refusals = %+v", got)
	}
}

func testCancelled(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "UTC")
	ctx, cancel := context.WithCancel(ctxOf(t))
	cancel()
	_, err := s.Insert(ctx, "home", []reading.Reading{rd("plug", at("2026-05-01T10:00:00Z"), 1)})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Insert with a cancelled context: err = %v, want context.Canceled", err)
	}
	if got := all(t, s, "home"); len(got) != 0 {
		t.Errorf("cancelled insert stored %d readings", len(got))
	}
}

func testConcurrent(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ctx := ctxOf(t)
	ensure(t, s, "a", "Europe/Berlin")
	ensure(t, s, "b", "UTC")
	const (
		workers = 24
		rounds  = 30
	)
	t0 := at("2026-03-29T00:00:00Z")
	// Worker w writes device d<w/2> of source a or b; workers 2k and 2k+1
	// write the same readings, so half of everything is a duplicate.
	type total struct{ ins, pres int }
	totals := make([]total, workers)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			src := []string{"a", "b"}[w%4/2]
			dev := fmt.Sprintf("d%02d", w/2)
			for i := range rounds {
				n := 1 + (i+w)%4 // batch sizes 1..4
				batch := make([]reading.Reading, n)
				for j := range batch {
					batch[j] = rd(dev, t0.Add(time.Duration(i*4+j)*10*time.Second), float64(w/2*1000+i*4+j))
				}
				res, err := s.Insert(ctx, src, batch)
				if err != nil {
					errs <- fmt.Errorf("worker %d round %d: %w", w, i, err)
					return
				}
				totals[w].ins += res.Inserted
				totals[w].pres += res.Present
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Both workers of a pair send identical readings for the same instant,
	// so what must be stored is the union of everything sent.
	want := map[string][]reading.Reading{}
	seen := map[string]bool{}
	sent, unique := 0, 0
	for w := range workers {
		src := []string{"a", "b"}[w%4/2]
		dev := fmt.Sprintf("d%02d", w/2)
		for i := range rounds {
			n := 1 + (i+w)%4
			sent += n
			for j := range n {
				r := rd(dev, t0.Add(time.Duration(i*4+j)*10*time.Second), float64(w/2*1000+i*4+j))
				if k := src + "/" + dev + "/" + r.Time.String(); !seen[k] {
					seen[k] = true
					want[src] = append(want[src], r)
					unique++
				}
			}
		}
	}
	for src := range want {
		want[src] = sortReadings(want[src])
	}
	var ins, pres int
	for _, tt := range totals {
		ins += tt.ins
		pres += tt.pres
	}
	if ins != unique || ins+pres != sent {
		t.Errorf("counted %d inserted + %d present, want %d inserted of %d sent", ins, pres, unique, sent)
	}
	for _, src := range []string{"a", "b"} {
		checkReadings(t, "source "+src, all(t, s, src), want[src])
		if si := sourceInfo(t, s, src); si.Count != int64(len(want[src])) {
			t.Errorf("source %s count = %d, want %d", src, si.Count, len(want[src]))
		}
	}
}

func testRangeOrder(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "Europe/Berlin")
	ensure(t, s, "other", "Europe/Berlin")
	t0 := at("2026-05-01T10:00:00Z")
	var rs []reading.Reading
	for i := 9; i >= 0; i-- { // newest first, devices out of order
		for _, dev := range []string{"c", "a", "b"} {
			rs = append(rs, rd(dev, t0.Add(time.Duration(i)*10*time.Second), float64(i)))
		}
	}
	insert(t, s, "home", rs[:12]...)
	insert(t, s, "home", rs[12:]...)
	insert(t, s, "other", rd("a", t0.Add(5*time.Second), 42))
	want := sortReadings(rs)
	checkReadings(t, "whole range", all(t, s, "home"), want)
	// [from, to): from inclusive, to exclusive.
	got := rangeOf(t, s, "home", t0.Add(20*time.Second), t0.Add(50*time.Second))
	checkReadings(t, "[t0+20s, t0+50s)", got, want[6:15])
	// Sub-second bounds: from after a reading's second excludes it, to
	// after it includes it.
	got = rangeOf(t, s, "home", t0.Add(20*time.Second+time.Millisecond), t0.Add(50*time.Second+time.Millisecond))
	checkReadings(t, "[t0+20.001s, t0+50.001s)", got, want[9:18])
	if got := rangeOf(t, s, "home", t0.Add(30*time.Second), t0.Add(30*time.Second)); len(got) != 0 {
		t.Errorf("empty range gave %d readings", len(got))
	}
	if got := rangeOf(t, s, "home", t0.Add(time.Hour), t0); len(got) != 0 {
		t.Errorf("reversed range gave %d readings", len(got))
	}
	// Bounds in another zone are the same instants.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	got = rangeOf(t, s, "home", t0.Add(20*time.Second).In(berlin), t0.Add(50*time.Second).In(berlin))
	checkReadings(t, "bounds in Europe/Berlin", got, want[6:15])
}

func testRangeEarlyStop(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "UTC")
	t0 := at("2026-05-01T10:00:00Z")
	var rs []reading.Reading
	for i := range 500 {
		rs = append(rs, rd("plug", t0.Add(time.Duration(i)*10*time.Second), float64(i)))
	}
	insert(t, s, "home", rs...)
	stop := errors.New("enough")
	calls := 0
	err := s.Range(ctxOf(t), "home", t0, t0.Add(24*time.Hour), func(reading.Reading) error {
		calls++
		if calls == 3 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 3 {
		t.Errorf("Range with fn failing at the 3rd reading: err = %v after %d calls, want the fn error after 3", err, calls)
	}
	// A cancelled context stops the scan too.
	ctx, cancel := context.WithCancel(ctxOf(t))
	calls = 0
	err = s.Range(ctx, "home", t0, t0.Add(24*time.Hour), func(reading.Reading) error {
		calls++
		if calls == 2 {
			cancel()
		}
		return nil
	})
	if err == nil || calls >= len(rs) {
		t.Errorf("Range cancelled at the 2nd reading: err = %v after %d calls, want an error before the end", err, calls)
	}
	// The store is still usable after the abandoned scans.
	if got := all(t, s, "home"); len(got) != len(rs) {
		t.Errorf("full range after early stops: %d readings, want %d", len(got), len(rs))
	}
}

func testRangeWhileInsert(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "UTC")
	t0 := at("2026-05-01T10:00:00Z")
	var rs []reading.Reading
	for i := range 100 {
		rs = append(rs, rd("plug", t0.Add(time.Duration(i)*10*time.Second), float64(i)))
	}
	insert(t, s, "home", rs...)
	n := 0
	err := s.Range(ctxOf(t), "home", t0, t0.Add(time.Hour), func(r reading.Reading) error {
		n++
		if n != 1 {
			return nil
		}
		// A long read must not block writers (or other readers).
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := s.Insert(ctx, "home", []reading.Reading{rd("plug", t0.Add(2*time.Hour), 1)}); err != nil {
			return fmt.Errorf("insert during Range: %w", err)
		}
		if _, ok, err := s.LastTime(ctx, "home"); err != nil || !ok {
			return fmt.Errorf("LastTime during Range: %v, %v", ok, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != 100 {
		t.Errorf("Range saw %d readings, want the 100 in its bounds", n)
	}
	if got := all(t, s, "home"); len(got) != 101 {
		t.Errorf("stored %d readings, want 101", len(got))
	}
}

// testStalledRanges: many Ranges whose callback blocks (a client that stops
// reading a download) must not hold database connections, so reads and
// inserts from other goroutines keep working whatever the pool size.
func testStalledRanges(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "UTC")
	t0 := at("2026-05-01T10:00:00Z")
	var rs []reading.Reading
	for i := range 300 {
		rs = append(rs, rd("plug", t0.Add(time.Duration(i)*10*time.Second), float64(i)))
	}
	insert(t, s, "home", rs...)
	const stalled = 24 // more than any backend's pool
	release := make(chan struct{})
	started := make(chan struct{}, stalled)
	errs := make(chan error, stalled)
	for range stalled {
		go func() {
			n := 0
			err := s.Range(ctxOf(t), "home", t0, t0.Add(time.Hour), func(reading.Reading) error {
				if n++; n == 1 {
					started <- struct{}{}
					<-release
				}
				return nil
			})
			if err == nil && n != len(rs) {
				err = fmt.Errorf("stalled Range saw %d readings, want %d", n, len(rs))
			}
			errs <- err
		}()
	}
	defer func() {
		close(release)
		for range stalled {
			if err := <-errs; err != nil {
				t.Errorf("stalled Range after release: %v", err)
			}
		}
	}()
	// Every Range reaches its callback (a store that holds a connection
	// per Range lets only a pool's worth in).
	wait := time.After(10 * time.Second)
	for i := 0; i < stalled; i++ {
		select {
		case <-started:
		case <-wait:
			t.Errorf("only %d of %d concurrent Ranges reached their callback", i, stalled)
			i = stalled
		}
	}
	ctx, cancel := context.WithTimeout(ctxOf(t), 10*time.Second)
	defer cancel()
	if _, err := s.Latest(ctx, "home"); err != nil {
		t.Errorf("Latest while %d Ranges stall in their callback: %v", stalled, err)
	}
	if _, _, err := s.LastTime(ctx, "home"); err != nil {
		t.Errorf("LastTime while %d Ranges stall in their callback: %v", stalled, err)
	}
	if _, err := s.Insert(ctx, "home", []reading.Reading{rd("plug", t0.Add(2*time.Hour), 1)}); err != nil {
		t.Errorf("Insert while %d Ranges stall in their callback: %v", stalled, err)
	}
	n := 0
	if err := s.Range(ctx, "home", t0, t0.Add(100*time.Second), func(reading.Reading) error { n++; return nil }); err != nil || n != 10 {
		t.Errorf("Range while %d others stall: %d readings, %v; want 10", stalled, n, err)
	}
}

// testRangeLong reads more readings than a backend fetches at once, with
// several devices per second, so internal page edges fall inside a second.
func testRangeLong(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "UTC")
	t0 := at("2026-05-01T00:00:00Z")
	devs := []string{"c", "a", "b"} // inserted out of name order
	const secs = 8339               // 25017 readings: not a multiple of a round page size
	var want []reading.Reading
	for i := range secs {
		for _, d := range devs {
			want = append(want, rd(d, t0.Add(time.Duration(i)*10*time.Second), float64(i)))
		}
	}
	for lo := 0; lo < len(want); lo += 5000 {
		insert(t, s, "home", want[lo:min(lo+5000, len(want))]...)
	}
	want = sortReadings(want)
	got := rangeOf(t, s, "home", t0, t0.Add(secs*10*time.Second))
	if len(got) != len(want) {
		t.Fatalf("Range: %d readings, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Device != want[i].Device || !got[i].Time.Equal(want[i].Time) || got[i].Power != want[i].Power {
			t.Fatalf("reading %d: %s, want %s", i, fmtReading(got[i]), fmtReading(want[i]))
		}
	}
	// Bounds inside the data still hold across page edges.
	got = rangeOf(t, s, "home", t0.Add(5*time.Second), t0.Add(30000*time.Second))
	if len(got) != 3*2999 || got[0].Power != 1 || got[len(got)-1].Power != 2999 {
		t.Errorf("Range (5 s, 30000 s): %d readings from %v to %v, want 8997 from 1 to 2999",
			len(got), got[0].Power, got[len(got)-1].Power)
	}
}

func testOptionalFields(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "UTC")
	t0 := at("2026-05-01T10:00:00Z")
	dt := at("2026-05-01T09:59:58.123Z")
	dtFar := at("2019-01-01T00:00:00.999Z") // a device clock far off
	rs := []reading.Reading{
		{Device: "bare", Time: t0, Power: 0},
		{Device: "legacy", Time: t0, Power: 523.45, Temperature: reading.F(21.5)},
		{Device: "native", Time: t0, Power: -1234.567,
			EnergyIn: reading.F(98765432.123), EnergyOut: reading.F(0.001),
			Temperature: reading.F(-5.25), Voltage: reading.F(230.1),
			Phases:     []float64{1.5, -2.25, 0, 999999.999},
			DeviceTime: &dt, Backfilled: true},
		{Device: "zeros", Time: t0, Power: 0, EnergyIn: reading.F(0), EnergyOut: reading.F(0),
			Temperature: reading.F(0), Voltage: reading.F(0), Phases: []float64{0}},
		{Device: "fine", Time: t0, Power: 1.23456, EnergyIn: reading.F(1e9 + 0.0004),
			Temperature: reading.F(36.6666), Voltage: reading.F(229.98765), Phases: []float64{0.00049, -0.33333}},
		{Device: "only-phases", Time: t0, Power: 600, Phases: []float64{200, 200.5, 199.5}},
		{Device: "only-devtime", Time: t0, Power: 1, DeviceTime: &dtFar},
		{Device: "only-backfilled", Time: t0, Power: 2, Backfilled: true},
		{Device: "only-energy-out", Time: t0, Power: -300, EnergyOut: reading.F(12.5)},
		{Device: "big", Time: t0, Power: 99999.999, Temperature: reading.F(-273.15), Voltage: reading.F(400000)},
		{Device: "empty-phases", Time: t0, Power: 3, Phases: []float64{}},
	}
	insert(t, s, "home", rs...)
	checkReadings(t, "round trip", all(t, s, "home"), sortReadings(rs))
	latest, err := s.Latest(ctxOf(t), "home")
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(latest, func(i, j int) bool { return latest[i].Device < latest[j].Device })
	checkReadings(t, "Latest", latest, sortReadings(rs))
}

func testLatest(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ctx := ctxOf(t)
	ensure(t, s, "home", "UTC")
	ensure(t, s, "empty", "UTC")
	t0 := at("2026-05-01T10:00:00Z")
	newestA := reading.Reading{Device: "a", Time: t0.Add(time.Hour), Power: 3, Temperature: reading.F(20)}
	insert(t, s, "home", newestA, rd("b", t0, 1))
	insert(t, s, "home", rd("a", t0, 1), rd("a", t0.Add(30*time.Minute), 2)) // older than newestA
	newestB := rd("b", t0.Add(10*time.Second), 5)
	insert(t, s, "home", newestB)
	got, err := s.Latest(ctx, "home")
	if err != nil {
		t.Fatal(err)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].Device < got[j].Device })
	checkReadings(t, "Latest", got, []reading.Reading{newestA, newestB})
	got, err = s.Latest(ctx, "empty")
	if err != nil || len(got) != 0 {
		t.Errorf("Latest of a source without readings = %v, %v; want none", got, err)
	}
}

func testSources(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "Europe/Berlin")
	ensure(t, s, "cabin", "America/New_York")
	ensure(t, s, "empty", "UTC")
	t0 := at("2026-05-01T10:00:00Z")
	insert(t, s, "home", rd("plug", t0, 1), rd("fridge", t0.Add(-time.Hour), 1), rd("plug", t0.Add(2*time.Hour), 1))
	insert(t, s, "home", rd("plug", t0, 1)) // present: not counted twice
	insert(t, s, "cabin", rd("pv", t0.Add(24*time.Hour), -500))
	home := sourceInfo(t, s, "home")
	devs := slices.Clone(home.Devices)
	sort.Strings(devs)
	if home.Count != 3 || !slices.Equal(devs, []string{"fridge", "plug"}) ||
		!home.First.Equal(t0.Add(-time.Hour)) || !home.Last.Equal(t0.Add(2*time.Hour)) || home.Timezone != "Europe/Berlin" {
		t.Errorf("home = %+v, want 3 readings of fridge+plug from %s to %s", home, t0.Add(-time.Hour), t0.Add(2*time.Hour))
	}
	cabin := sourceInfo(t, s, "cabin")
	if cabin.Count != 1 || !slices.Equal(cabin.Devices, []string{"pv"}) || !cabin.First.Equal(t0.Add(24*time.Hour)) ||
		!cabin.Last.Equal(cabin.First) || cabin.Timezone != "America/New_York" {
		t.Errorf("cabin = %+v", cabin)
	}
	if empty := sourceInfo(t, s, "empty"); empty.Count != 0 || len(empty.Devices) != 0 || !empty.First.IsZero() || !empty.Last.IsZero() {
		t.Errorf("empty = %+v, want nothing", empty)
	}
}

func testLastTime(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ctx := ctxOf(t)
	ensure(t, s, "home", "UTC")
	if _, ok, err := s.LastTime(ctx, "home"); err != nil || ok {
		t.Errorf("LastTime without readings: ok=%v err=%v, want false, nil", ok, err)
	}
	t0 := at("2026-05-01T10:00:00Z")
	insert(t, s, "home", rd("a", t0, 1), rd("b", t0.Add(time.Minute), 1))
	insert(t, s, "home", rd("a", t0.Add(-time.Hour), 1)) // older: no change
	last, ok, err := s.LastTime(ctx, "home")
	if err != nil || !ok || !last.Equal(t0.Add(time.Minute)) {
		t.Errorf("LastTime = %s, %v, %v; want %s", last, ok, err, t0.Add(time.Minute))
	}
}

// localDays lists the local days in zone of the given instants, sorted,
// without duplicates, computed with the time package alone.
func localDays(t *testing.T, zone string, ts []time.Time) []string {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		t.Fatal(err)
	}
	set := map[string]bool{}
	for _, x := range ts {
		set[x.In(loc).Format(time.DateOnly)] = true
	}
	out := make([]string, 0, len(set))
	for d := range set {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}

func testDaysDST(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "Europe/Berlin")
	// Autumn: 2026-10-25 has 25 h in Berlin (22:00Z on the 24th to 23:00Z
	// on the 25th); spring: 2026-03-29 has 23 h (23:00Z on the 28th to
	// 22:00Z on the 29th).
	cases := []struct {
		day        string
		start, end time.Time // the local day in UTC
	}{
		{"2026-10-25", at("2026-10-24T22:00:00Z"), at("2026-10-25T23:00:00Z")},
		{"2026-03-29", at("2026-03-28T23:00:00Z"), at("2026-03-29T22:00:00Z")},
	}
	for _, c := range cases {
		if h := c.end.Sub(c.start).Hours(); (c.day == "2026-10-25" && h != 25) || (c.day == "2026-03-29" && h != 23) {
			t.Fatalf("test data: %s has %v h", c.day, h)
		}
		// Readings at the edges and through the day.
		ts := []time.Time{c.start.Add(-time.Second), c.start, c.end.Add(-time.Second), c.end}
		for x := c.start.Add(30 * time.Minute); x.Before(c.end); x = x.Add(time.Hour) {
			ts = append(ts, x)
		}
		var rs []reading.Reading
		for _, x := range ts {
			rs = append(rs, rd("plug", x, 1))
		}
		insert(t, s, "home", rs...)
		prev := c.start.Add(-24 * time.Hour).Format(time.DateOnly)
		next := c.end.Add(24 * time.Hour).Format(time.DateOnly)
		got := dayNames(days(t, s, "home", prev, next))
		want := localDays(t, "Europe/Berlin", ts)
		if !slices.Equal(got, want) {
			t.Errorf("Days around %s = %v, want %v", c.day, got, want)
		}
		if !slices.Contains(got, c.day) {
			t.Errorf("Days misses %s", c.day)
		}
		// The readings of the local day, by its UTC bounds.
		inDay := rangeOf(t, s, "home", c.start, c.end)
		if wantN := 2 + int(c.end.Sub(c.start).Hours()); len(inDay) != wantN {
			t.Errorf("%s: %d readings in the local day, want %d", c.day, len(inDay), wantN)
		}
	}
	// Inclusive bounds, order, empty and bad ranges.
	got := dayNames(days(t, s, "home", "2026-03-29", "2026-10-25"))
	if len(got) < 2 || got[0] != "2026-03-29" || got[len(got)-1] != "2026-10-25" || !slices.IsSorted(got) {
		t.Errorf("Days(2026-03-29, 2026-10-25) = %v, want from 2026-03-29 to 2026-10-25 inclusive, in order", got)
	}
	if got := days(t, s, "home", "2026-10-25", "2026-10-25"); len(got) != 1 || got[0].Day != "2026-10-25" {
		t.Errorf("Days of one day = %v", dayNames(got))
	}
	if got := days(t, s, "home", "2026-05-01", "2026-05-31"); len(got) != 0 {
		t.Errorf("Days without readings = %v, want none", dayNames(got))
	}
	if got := days(t, s, "home", "2026-12-31", "2026-01-01"); len(got) != 0 {
		t.Errorf("reversed Days = %v, want none", dayNames(got))
	}
	if _, err := s.Days(ctxOf(t), "home", "2026-13-01", "2026-12-31"); err == nil {
		t.Error("Days with a bad date: no error")
	}
}

func testDaysLocalMidnight(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "berlin", "Europe/Berlin")
	ensure(t, s, "utc", "UTC")
	ensure(t, s, "ny", "America/New_York")
	late := at("2026-06-10T23:30:00Z")  // 01:30 on the 11th in Berlin
	early := at("2026-06-11T02:00:00Z") // 22:00 on the 10th in New York
	for _, src := range []string{"berlin", "utc", "ny"} {
		insert(t, s, src, rd("plug", late, 1), rd("plug", early, 2))
	}
	for src, want := range map[string][]string{
		"berlin": {"2026-06-11"},
		"utc":    {"2026-06-10", "2026-06-11"},
		"ny":     {"2026-06-10"},
	} {
		if got := dayNames(days(t, s, src, "2026-06-01", "2026-06-30")); !slices.Equal(got, want) {
			t.Errorf("%s: Days = %v, want %v", src, got, want)
		}
	}
}

func testDayVersions(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "Europe/Berlin")
	d1 := at("2026-10-24T12:00:00Z") // 2026-10-24
	d2 := at("2026-10-25T12:00:00Z") // 2026-10-25
	insert(t, s, "home", rd("plug", d1, 1), rd("plug", d2, 1))
	v0 := days(t, s, "home", "2026-10-24", "2026-10-25")
	if len(v0) != 2 {
		t.Fatalf("Days = %v", dayNames(v0))
	}
	// A new reading on day 2 only.
	insert(t, s, "home", rd("plug", d2.Add(time.Minute), 1))
	v1 := days(t, s, "home", "2026-10-24", "2026-10-25")
	if v1[0].Version != v0[0].Version {
		t.Errorf("untouched day: version %d → %d", v0[0].Version, v1[0].Version)
	}
	if v1[1].Version == v0[1].Version {
		t.Errorf("touched day: version stayed %d", v1[1].Version)
	}
	// Present readings change nothing.
	insert(t, s, "home", rd("plug", d1, 1), rd("plug", d2.Add(time.Minute), 1))
	v2 := days(t, s, "home", "2026-10-24", "2026-10-25")
	if v2[0].Version != v1[0].Version || v2[1].Version != v1[1].Version {
		t.Errorf("replay changed versions: %d,%d → %d,%d", v1[0].Version, v1[1].Version, v2[0].Version, v2[1].Version)
	}
	// A new device on day 1 is a new reading too.
	insert(t, s, "home", rd("fridge", d1, 1))
	v3 := days(t, s, "home", "2026-10-24", "2026-10-25")
	if v3[0].Version == v2[0].Version {
		t.Errorf("new device on day 1: version stayed %d", v3[0].Version)
	}
}

func testDaySummary(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ctx := ctxOf(t)
	ensure(t, s, "home", "Europe/Berlin")
	d := at("2026-10-25T12:00:00Z")
	insert(t, s, "home", rd("plug", d, 1))
	day := days(t, s, "home", "2026-10-25", "2026-10-25")[0]
	if day.Summary != nil || day.SummaryVersion == day.Version {
		t.Errorf("fresh day = %+v, want no current summary", day)
	}
	ok, err := s.PutDaySummary(ctx, "home", "2026-10-25", day.Version, []byte("v1"))
	if err != nil || !ok {
		t.Fatalf("PutDaySummary at the current version = %v, %v; want stored", ok, err)
	}
	got := days(t, s, "home", "2026-10-25", "2026-10-25")[0]
	if string(got.Summary) != "v1" || got.SummaryVersion != got.Version || got.Version != day.Version {
		t.Errorf("after put: %+v, want summary v1 current at version %d", got, day.Version)
	}
	// A new reading makes the summary stale; a put computed before it is refused.
	insert(t, s, "home", rd("plug", d.Add(time.Minute), 2))
	got = days(t, s, "home", "2026-10-25", "2026-10-25")[0]
	if got.Version == day.Version || got.SummaryVersion != day.Version || string(got.Summary) != "v1" {
		t.Errorf("after insert: %+v, want a new version and the old summary marked at %d", got, day.Version)
	}
	if ok, err := s.PutDaySummary(ctx, "home", "2026-10-25", day.Version, []byte("stale")); err != nil || ok {
		t.Errorf("stale PutDaySummary = %v, %v; want refused", ok, err)
	}
	if g := days(t, s, "home", "2026-10-25", "2026-10-25")[0]; string(g.Summary) != "v1" {
		t.Errorf("stale put overwrote the summary: %q", g.Summary)
	}
	if ok, err := s.PutDaySummary(ctx, "home", "2026-10-25", got.Version, []byte("v2")); err != nil || !ok {
		t.Errorf("PutDaySummary at the new version = %v, %v; want stored", ok, err)
	}
	if g := days(t, s, "home", "2026-10-25", "2026-10-25")[0]; string(g.Summary) != "v2" || g.SummaryVersion != g.Version {
		t.Errorf("after second put: %+v", g)
	}
	if ok, err := s.PutDaySummary(ctx, "home", "2026-10-25", got.Version+1000, []byte("future")); err != nil || ok {
		t.Errorf("PutDaySummary at a version the day never had = %v, %v; want refused", ok, err)
	}
	if ok, err := s.PutDaySummary(ctx, "home", "2026-10-26", 1, []byte("x")); err != nil || ok {
		t.Errorf("PutDaySummary for a day without readings = %v, %v; want refused", ok, err)
	}
	// A replayed reading does not invalidate the summary.
	insert(t, s, "home", rd("plug", d, 1))
	if g := days(t, s, "home", "2026-10-25", "2026-10-25")[0]; g.SummaryVersion != g.Version {
		t.Errorf("a present reading made the summary stale: %+v", g)
	}
}

func testZoneChange(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ctx := ctxOf(t)
	ensure(t, s, "home", "UTC")
	late := at("2026-06-10T23:30:00Z")
	insert(t, s, "home", rd("plug", late, 1), rd("plug", at("2026-06-12T12:00:00Z"), 1))
	before := days(t, s, "home", "2026-06-01", "2026-06-30")
	if got := dayNames(before); !slices.Equal(got, []string{"2026-06-10", "2026-06-12"}) {
		t.Fatalf("UTC days = %v", got)
	}
	if ok, err := s.PutDaySummary(ctx, "home", "2026-06-12", before[1].Version, []byte("utc")); err != nil || !ok {
		t.Fatalf("PutDaySummary: %v, %v", ok, err)
	}
	ensure(t, s, "home", "Europe/Berlin")
	after := days(t, s, "home", "2026-06-01", "2026-06-30")
	if got := dayNames(after); !slices.Equal(got, []string{"2026-06-11", "2026-06-12"}) {
		t.Errorf("days after the zone change = %v, want 2026-06-11 and 2026-06-12", got)
	}
	if d, ok := dayOf(after, "2026-06-12"); ok && d.SummaryVersion == d.Version {
		t.Errorf("summary computed under the old zone is still current: %+v", d)
	}
	if ok, err := s.PutDaySummary(ctx, "home", "2026-06-12", before[1].Version, []byte("stale")); err != nil || ok {
		t.Errorf("PutDaySummary at a version from before the zone change = %v, %v; want refused", ok, err)
	}
	// New readings use the new zone.
	insert(t, s, "home", rd("plug", at("2026-06-20T23:30:00Z"), 1))
	if got := dayNames(days(t, s, "home", "2026-06-20", "2026-06-21")); !slices.Equal(got, []string{"2026-06-21"}) {
		t.Errorf("new reading filed under %v, want 2026-06-21", got)
	}
}

func testReopen(t *testing.T, open func(*testing.T) store.Store, c *config) {
	if c.reopen == nil {
		t.Fatal("storetest.Run needs the storetest.Reopen option to test durability")
	}
	s := open(t)
	ensure(t, s, "home", "Europe/Berlin")
	t0 := at("2026-10-25T00:30:00Z")
	dt := t0.Add(-1500 * time.Millisecond)
	rs := []reading.Reading{
		{Device: "plug", Time: t0, Power: 12.34, Temperature: reading.F(21.5)},
		{Device: "em", Time: t0, Power: 1500.5, EnergyIn: reading.F(1234.5), Phases: []float64{500, 500.25, 500.25}, DeviceTime: &dt, Backfilled: true},
	}
	// Many concurrent inserts: each acknowledged one must survive.
	var wg sync.WaitGroup
	var mu sync.Mutex
	acked := append([]reading.Reading(nil), rs...)
	insert(t, s, "home", rs...)
	for i := range 20 {
		wg.Go(func() {
			r := rd("plug", t0.Add(time.Duration(i+1)*10*time.Second), float64(i))
			if _, err := s.Insert(ctxOf(t), "home", []reading.Reading{r}); err != nil {
				t.Errorf("insert %d: %v", i, err)
				return
			}
			mu.Lock()
			acked = append(acked, r)
			mu.Unlock()
		})
	}
	wg.Wait()
	day := days(t, s, "home", "2026-10-25", "2026-10-25")[0]
	if ok, err := s.PutDaySummary(ctxOf(t), "home", day.Day, day.Version, []byte("sum")); err != nil || !ok {
		t.Fatalf("PutDaySummary: %v %v", ok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s2 := c.reopen(t, s)
	checkReadings(t, "after reopen", all(t, s2, "home"), sortReadings(acked))
	si := sourceInfo(t, s2, "home")
	if si.Count != int64(len(acked)) || si.Timezone != "Europe/Berlin" || len(si.Devices) != 2 {
		t.Errorf("Sources after reopen = %+v", si)
	}
	d2 := days(t, s2, "home", "2026-10-25", "2026-10-25")
	if len(d2) != 1 || d2[0].Version != day.Version || string(d2[0].Summary) != "sum" || d2[0].SummaryVersion != day.Version {
		t.Errorf("Days after reopen = %+v, want version %d with summary", d2, day.Version)
	}
	// Still idempotent and writable.
	if got := insert(t, s2, "home", append(rs, rd("plug", t0.Add(time.Hour), 1))...); got != (store.InsertResult{Inserted: 1, Present: 2}) {
		t.Errorf("insert after reopen = %+v, want 1 inserted 2 present", got)
	}
	if g := days(t, s2, "home", "2026-10-25", "2026-10-25")[0]; g.Version == day.Version {
		t.Error("insert after reopen did not bump the day version")
	}
}

func testClose(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ensure(t, s, "home", "UTC")
	// Inserts in flight when Close is called finish (or fail cleanly).
	insert(t, s, "home", rd("plug", at("2026-05-01T09:00:00Z"), 1))
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_, _ = s.Insert(ctx, "home", []reading.Reading{rd("plug", at("2026-05-01T10:00:00Z").Add(time.Duration(i)*time.Second), 1)})
		})
	}
	err := s.Close()
	wg.Wait() // every Insert returned: none hangs on a closed store
	if err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := s.Insert(context.Background(), "home", []reading.Reading{rd("plug", at("2026-05-01T11:00:00Z"), 1)}); err == nil {
		t.Error("Insert after Close: no error")
	}
	_ = s.Close() // a second Close must not panic
}
