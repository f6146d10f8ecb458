package energy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/tariff"
)

// Calc computes and caches the day summaries of one source.
type Calc struct {
	Store    store.Store
	Source   string
	Zone     *time.Location
	Interval time.Duration // expected reading interval (10 s when 0)
	Log      *slog.Logger  // may be nil
	Now      func() time.Time
	// Cache, when set, keeps decoded summaries between calls.
	Cache *Cache
	// Home gives the source's devices their roles (nil: none); summaries
	// computed for other roles are recomputed.
	Home *household.Home
	// Tariff, when set, prices the summaries Days and Totals return.
	Tariff *tariff.Tariff
	// OnReading, when set, receives every reading Compute reads for the
	// day's window (Day.OnReading).
	OnReading func(reading.Reading)
}

// Cache holds decoded day summaries by source, day and version, so an
// overview of a year does not decode 365 JSON documents on every view. A
// version names one state of a day, so an entry never goes stale; the
// summaries it returns are shared and must not be changed.
type Cache struct {
	mu  sync.Mutex
	max int
	m   map[cacheKey]DaySummary
}

type cacheKey struct {
	source, day string
	version     int64
	totals      bool // a summary without devices and bands
}

// NewCache makes a cache of at most max summaries (it starts over when
// full).
func NewCache(max int) *Cache { return &Cache{max: max, m: map[cacheKey]DaySummary{}} }

func (c *Cache) get(k cacheKey) (DaySummary, bool) {
	if c == nil {
		return DaySummary{}, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.m[k]
	return s, ok
}

func (c *Cache) put(k cacheKey, s DaySummary) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		clear(c.m)
	}
	c.m[k] = s
}

func (c *Calc) interval() time.Duration {
	if c.Interval <= 0 {
		return 10 * time.Second
	}
	return c.Interval
}

func (c *Calc) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

// Compute reads one day from the store and summarizes it; onPoint (may be
// nil) receives the source's power points within the day, in order.
func (c *Calc) Compute(ctx context.Context, day string, onPoint func(Point)) (DaySummary, error) {
	s, _, err := c.compute(ctx, day, onPoint)
	s.Price(c.Tariff)
	return s, err
}

// compute is Compute; final is false when a device's counter step past the
// day's end could not be attributed yet (the device is still offline), so
// the summary may still change although the day has no new readings.
func (c *Calc) compute(ctx context.Context, day string, onPoint func(Point)) (s DaySummary, final bool, err error) {
	d, err := NewHomeDay(day, c.Zone, c.interval(), c.Home)
	if err != nil {
		return DaySummary{}, false, err
	}
	d.OnPoint = onPoint
	d.OnReading = c.OnReading
	from, to := d.Window()
	if err := c.Store.Range(ctx, c.Source, from, to, func(r reading.Reading) error {
		d.Add(r)
		return nil
	}); err != nil {
		if errors.Is(err, store.ErrUnknownSource) {
			return d.Summary(), true, nil
		}
		return DaySummary{}, false, fmt.Errorf("reading %s of %s: %w", day, c.Source, err)
	}
	if err := c.lookBack(ctx, d, from); err != nil {
		return DaySummary{}, false, fmt.Errorf("reading before %s of %s: %w", day, c.Source, err)
	}
	final = true
	if names := d.LookAhead(); len(names) > 0 {
		now := c.now()
		if now.Before(to) {
			final = false // the day is not over: nothing to look for yet
		} else {
			missing, err := c.lookAhead(ctx, d, to, names)
			if err != nil {
				return DaySummary{}, false, fmt.Errorf("reading after %s of %s: %w", day, c.Source, err)
			}
			final = missing == 0 || !now.Before(to.Add(LookAround))
		}
	}
	return d.Summary(), final, nil
}

// lookBack gives the day the last reading before the window of each device
// that needs it (Day.LookBack), searching back up to LookAround in steps,
// so a short gap costs a short read.
func (c *Calc) lookBack(ctx context.Context, d *Day, from time.Time) error {
	names := d.LookBack()
	if len(names) == 0 {
		return nil
	}
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	last := map[string]reading.Reading{}
	hi := from
	for _, back := range []time.Duration{time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, LookAround} {
		lo := from.Add(-back)
		err := c.Store.Range(ctx, c.Source, lo, hi, func(r reading.Reading) error {
			if want[r.Device] {
				last[r.Device] = r
			}
			return nil
		})
		if err != nil {
			return err
		}
		for n, r := range last {
			d.Before(r)
			delete(want, n)
		}
		clear(last)
		if len(want) == 0 {
			break
		}
		hi = lo
	}
	return nil
}

// errFound stops lookAhead's scan.
var errFound = errors.New("found")

// lookAhead gives the day the first reading after the window of each named
// device, searching up to LookAround ahead; it returns how many devices
// had none.
func (c *Calc) lookAhead(ctx context.Context, d *Day, to time.Time, names []string) (int, error) {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	err := c.Store.Range(ctx, c.Source, to, to.Add(LookAround), func(r reading.Reading) error {
		if !want[r.Device] {
			return nil
		}
		d.After(r)
		delete(want, r.Device)
		if len(want) == 0 {
			return errFound
		}
		return nil
	})
	if err != nil && !errors.Is(err, errFound) {
		return 0, err
	}
	return len(want), nil
}

// complete reports whether a day is over, including the readings just
// after midnight that its last step needs: only then is it cached.
func (c *Calc) complete(s *DaySummary) bool {
	return !c.now().Before(s.End.Add(GapIntervals * c.interval()))
}

// ComputeAndCache computes day and stores its summary in the cache when the
// day is complete. version is the day's version read before computing
// (from store.Days); 0 skips caching.
func (c *Calc) ComputeAndCache(ctx context.Context, day string, version int64, onPoint func(Point)) (DaySummary, error) {
	s, final, err := c.compute(ctx, day, onPoint)
	if err != nil {
		return s, err
	}
	if version > 0 && final && c.complete(&s) {
		b, err := s.MarshalCache()
		if err != nil {
			return s, fmt.Errorf("encoding summary of %s: %w", day, err)
		}
		if ok, err := c.Store.PutDaySummary(ctx, c.Source, day, version, b); ok {
			c.Cache.put(cacheKey{c.Source, day, version, false}, s)
			c.Cache.put(cacheKey{c.Source, day, version, true}, s.totals())
		} else if err != nil {
			// the summary is still right; only the cache missed it
			if c.Log != nil {
				c.Log.Warn("caching day summary", "source", c.Source, "day", day, "err", err)
			}
		}
	}
	return s, nil
}

// Lookup returns the store's entry of day (zero when it has no readings)
// and its cached summary when that is current.
func (c *Calc) Lookup(ctx context.Context, day string) (store.Day, *DaySummary, error) {
	ds, err := c.Store.Days(ctx, c.Source, day, day)
	if errors.Is(err, store.ErrUnknownSource) || (err == nil && len(ds) == 0) {
		return store.Day{Day: day}, nil, nil
	}
	if err != nil {
		return store.Day{}, nil, fmt.Errorf("looking up %s of %s: %w", day, c.Source, err)
	}
	return ds[0], c.cached(ds[0], false), nil
}

// cached decodes a day's cached summary if it is current.
func (c *Calc) cached(d store.Day, totals bool) *DaySummary {
	if d.SummaryVersion != d.Version || len(d.Summary) == 0 {
		return nil
	}
	k := cacheKey{c.Source, d.Day, d.Version, totals}
	fp := c.Home.Fingerprint()
	if s, ok := c.Cache.get(k); ok && s.Current(c.interval(), fp) {
		return &s
	}
	var s DaySummary
	var err error
	if totals {
		err = s.unmarshalTotals(d.Summary)
	} else {
		err = s.UnmarshalCache(d.Summary)
	}
	if err != nil || !s.Current(c.interval(), fp) || s.Day != d.Day {
		return nil
	}
	c.Cache.put(k, s)
	return &s
}

// Days returns the summaries of the days from..to (inclusive, YYYY-MM-DD)
// that have readings, in order: from the cache where it is current,
// recomputed (and cached again) where the day changed since.
func (c *Calc) Days(ctx context.Context, from, to string) ([]DaySummary, error) {
	return c.days(ctx, from, to, false)
}

// Totals is Days without the per-device shares and power bands (nil in the
// result): what an overview needs, and several times faster to decode.
func (c *Calc) Totals(ctx context.Context, from, to string) ([]DaySummary, error) {
	return c.days(ctx, from, to, true)
}

// listDays lists the days from..to with their cached summaries (nil
// where none is current). When the store lists versions alone and a
// memory cache is set, only the days not decoded in memory at their
// current version are read with their summaries, in one more query (from
// the first to the last of them: usually just today): a warm overview
// reads a year of versions, not a year of summaries. A memory entry names
// one state of a day (its version; versions are never reused), so taking
// it instead of the stored summary of that version changes nothing.
func (c *Calc) listDays(ctx context.Context, from, to string, totals bool) ([]store.Day, []*DaySummary, error) {
	dv, ok := c.Store.(store.DayVersioner)
	if !ok || c.Cache == nil {
		ds, err := c.Store.Days(ctx, c.Source, from, to)
		if err != nil {
			return nil, nil, err
		}
		sums := make([]*DaySummary, len(ds))
		for i, d := range ds {
			sums[i] = c.cached(d, totals)
		}
		return ds, sums, nil
	}
	ds, err := dv.DayVersions(ctx, c.Source, from, to)
	if err != nil {
		return nil, nil, err
	}
	sums := make([]*DaySummary, len(ds))
	fp := c.Home.Fingerprint()
	first, last := -1, -1
	for i, d := range ds {
		if s, ok := c.Cache.get(cacheKey{c.Source, d.Day, d.Version, totals}); ok && s.Current(c.interval(), fp) {
			sums[i] = &s
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
	}
	if first < 0 {
		return ds, sums, nil
	}
	full, err := c.Store.Days(ctx, c.Source, ds[first].Day, ds[last].Day)
	if err != nil {
		return nil, nil, err
	}
	byDay := make(map[string]store.Day, len(full))
	for _, d := range full {
		byDay[d.Day] = d
	}
	for i := first; i <= last; i++ {
		if sums[i] != nil {
			continue
		}
		// the day as read now (a newer version when a reading came in
		// between: its summary is then not current and computed; gone
		// when its readings were deleted meanwhile: computed as empty)
		d, ok := byDay[ds[i].Day]
		if !ok {
			continue
		}
		ds[i] = d
		sums[i] = c.cached(d, totals)
	}
	return ds, sums, nil
}

func (c *Calc) days(ctx context.Context, from, to string, totals bool) ([]DaySummary, error) {
	ds, sums, err := c.listDays(ctx, from, to, totals)
	if errors.Is(err, store.ErrUnknownSource) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing days of %s: %w", c.Source, err)
	}
	out := make([]DaySummary, 0, len(ds))
	for i, d := range ds {
		if s := sums[i]; s != nil {
			out = append(out, *s)
			out[len(out)-1].Price(c.Tariff)
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		s, err := c.ComputeAndCache(ctx, d.Day, d.Version, nil)
		if err != nil {
			return nil, err
		}
		if totals {
			s = s.totals()
		}
		s.Price(c.Tariff)
		out = append(out, s)
	}
	return c.withImported(ctx, out, from, to)
}

// withImported adds the days known only from imported summaries (the PHP
// app's chart_stats.csv) to days, in day order; a day with readings keeps
// its own figures.
func (c *Calc) withImported(ctx context.Context, days []DaySummary, from, to string) ([]DaySummary, error) {
	di, ok := c.Store.(store.DayImporter)
	if !ok {
		return days, nil
	}
	imp, err := di.ImportedDays(ctx, c.Source, from, to)
	if err != nil {
		return nil, fmt.Errorf("imported days of %s: %w", c.Source, err)
	}
	if len(imp) == 0 {
		return days, nil
	}
	have := make(map[string]bool, len(days))
	for _, d := range days {
		have[d.Day] = true
	}
	zone := c.Zone
	if zone == nil {
		zone = time.UTC
	}
	added := false
	for _, d := range imp {
		if have[d.Day] {
			continue
		}
		s := DaySummary{Format: FormatVersion, Day: d.Day, InWh: d.InWh, OutWh: d.OutWh, PeakW: d.PeakW, Imported: true}
		if day, err := time.ParseInLocation(time.DateOnly, d.Day, zone); err == nil {
			s.Start = day
			s.End = day.AddDate(0, 0, 1)
			if d.PeakAt != "" {
				if t, err := time.ParseInLocation(time.DateOnly+" "+time.TimeOnly, d.Day+" "+d.PeakAt, zone); err == nil {
					s.PeakAt = t
				}
			}
		}
		s.Price(c.Tariff)
		days = append(days, s)
		added = true
	}
	if added {
		sort.SliceStable(days, func(i, j int) bool { return days[i].Day < days[j].Day })
	}
	return days, nil
}

// totals drops the per-device shares and bands.
func (s DaySummary) totals() DaySummary {
	s.Devices, s.Bands, s.FeedBands = nil, nil, nil
	return s
}

// cacheForm is a summary as the day cache stores it: JSON with the bands
// flattened to [seconds, Wh, seconds, Wh, …] and rounded (0.01 s, 0.001 Wh),
// which halves its size and decoding time.
type cacheForm struct {
	DaySummary
	Bands     []float64 `json:"bands,omitempty"`
	FeedBands []float64 `json:"feed_bands,omitempty"`
	Hours     []float64 `json:"hrs,omitempty"`
}

// flowFields is how many numbers an hour's flows take in the cache.
const flowFields = 13

func flatHours(hs []household.Flow) []float64 {
	if len(hs) == 0 {
		return nil
	}
	r := func(v float64) float64 { return math.Round(v*1000) / 1000 }
	out := make([]float64, 0, flowFields*len(hs))
	for _, h := range hs {
		known := 0.0
		if h.HomeKnown {
			known = 1
		}
		out = append(out, r(h.Import), r(h.Export), r(h.Production), r(h.Charge), r(h.Discharge), r(h.Self),
			r(h.Home), r(h.SolarHome), r(h.BatteryHome), r(h.GridHome), r(h.Appliances), r(h.Rest), known)
	}
	return out
}

func unflatHours(fs []float64) []household.Flow {
	if len(fs) == 0 {
		return nil
	}
	out := make([]household.Flow, len(fs)/flowFields)
	for i := range out {
		v := fs[i*flowFields:]
		out[i] = household.Flow{Import: v[0], Export: v[1], Production: v[2], Charge: v[3], Discharge: v[4], Self: v[5],
			Home: v[6], SolarHome: v[7], BatteryHome: v[8], GridHome: v[9], Appliances: v[10], Rest: v[11], HomeKnown: v[12] != 0}
	}
	return out
}

func flatBands(bs []Band) []float64 {
	if len(bs) == 0 {
		return nil
	}
	out := make([]float64, 0, 2*len(bs))
	for _, b := range bs {
		out = append(out, math.Round(b.Seconds*100)/100, math.Round(b.Wh*1000)/1000)
	}
	return out
}

func unflatBands(fs []float64) []Band {
	if len(fs) == 0 {
		return nil
	}
	out := make([]Band, len(fs)/2)
	for i := range out {
		out[i] = Band{Seconds: fs[2*i], Wh: fs[2*i+1]}
	}
	return out
}

// MarshalCache encodes the summary for the store's day cache.
func (s DaySummary) MarshalCache() ([]byte, error) {
	return json.Marshal(cacheForm{DaySummary: s, Bands: flatBands(s.Bands), FeedBands: flatBands(s.FeedBands), Hours: flatHours(s.HourFlows)})
}

// UnmarshalCache decodes what MarshalCache wrote.
func (s *DaySummary) UnmarshalCache(b []byte) error {
	var c cacheForm
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	*s = c.DaySummary
	s.Bands, s.FeedBands = unflatBands(c.Bands), unflatBands(c.FeedBands)
	s.HourFlows = unflatHours(c.Hours)
	return nil
}

// skipJSON takes a JSON value and keeps nothing of it (without parsing
// its numbers).
type skipJSON struct{}

func (*skipJSON) UnmarshalJSON([]byte) error { return nil }

// totalsForm reads a cached summary without devices and bands (the
// hourly flows stay: money is priced from them).
type totalsForm struct {
	DaySummary
	Devices   skipJSON  `json:"dev"`
	Bands     skipJSON  `json:"bands"`
	FeedBands skipJSON  `json:"feed_bands"`
	Hours     []float64 `json:"hrs"`
}

func (s *DaySummary) unmarshalTotals(b []byte) error {
	var t totalsForm
	if err := json.Unmarshal(b, &t); err != nil {
		return err
	}
	*s = t.DaySummary
	s.HourFlows = unflatHours(t.Hours)
	return nil
}

// Period is a month ("YYYY-MM") or a year ("YYYY") of days added up.
type Period struct {
	Key    string
	InWh   float64
	OutWh  float64
	PeakW  float64
	PeakAt time.Time
	Days   int // days with readings or an imported summary
	// Imported counts the days known only from an imported summary.
	Imported int
	Flow     household.Flow
	Money    tariff.Money
}

func (p *Period) add(s *DaySummary) {
	p.InWh += s.InWh
	p.OutWh += s.OutWh
	p.Flow.Add(s.Flow)
	p.Money.Add(s.Money)
	if (s.Readings > 0 || s.Imported) && (p.Days == 0 || s.PeakW > p.PeakW) {
		p.PeakW, p.PeakAt = s.PeakW, s.PeakAt
	}
	if s.Imported {
		p.Imported++
	}
	p.Days++
}

func group(days []DaySummary, keyLen int) []Period {
	var out []Period
	for i := range days {
		s := &days[i]
		if len(s.Day) < keyLen {
			continue
		}
		k := s.Day[:keyLen]
		if len(out) == 0 || out[len(out)-1].Key != k {
			out = append(out, Period{Key: k})
		}
		out[len(out)-1].add(s)
	}
	return out
}

// Months adds days (in order) up per month.
func Months(days []DaySummary) []Period { return group(days, 7) }

// Years adds days (in order) up per year.
func Years(days []DaySummary) []Period { return group(days, 4) }

// Sum adds all days up into one period (Key ""), as Months and Years
// add theirs.
func Sum(days []DaySummary) Period {
	var p Period
	for i := range days {
		p.add(&days[i])
	}
	return p
}

// TotalsWithin is Totals with a time budget: the cached days, plus as many
// of the others as workers compute within budget (in parallel); the days
// still to compute are returned in pending (in order), for a caller that
// computes them in the background (ComputeDays) and says so. The result
// is in day order.
func (c *Calc) TotalsWithin(ctx context.Context, from, to string, budget time.Duration, workers int) (out []DaySummary, pending []store.Day, err error) {
	ds, sums, err := c.listDays(ctx, from, to, true)
	if errors.Is(err, store.ErrUnknownSource) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing days of %s: %w", c.Source, err)
	}
	out = make([]DaySummary, 0, len(ds))
	var todo []store.Day
	for i, d := range ds {
		if s := sums[i]; s != nil {
			out = append(out, *s)
			out[len(out)-1].Price(c.Tariff)
			continue
		}
		todo = append(todo, d)
	}
	if len(todo) == 0 {
		out, err = c.withImported(ctx, out, from, to)
		return out, nil, err
	}
	deadline := time.Now().Add(budget)
	done, left, err := c.computeDays(ctx, todo, workers, func() bool { return time.Now().Before(deadline) })
	if err != nil {
		return nil, nil, err
	}
	for _, s := range done {
		s = s.totals()
		s.Price(c.Tariff)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Day < out[j].Day })
	out, err = c.withImported(ctx, out, from, to)
	if err != nil || len(left) == 0 {
		return out, left, err
	}
	// a day with readings still to summarize never shows an imported
	// summary meanwhile
	waiting := make(map[string]bool, len(left))
	for _, d := range left {
		waiting[d.Day] = true
	}
	kept := out[:0]
	for _, s := range out {
		if !(s.Imported && waiting[s.Day]) {
			kept = append(kept, s)
		}
	}
	return kept, left, nil
}

// ComputeDays computes and caches the given days with workers in
// parallel (the background half of TotalsWithin).
func (c *Calc) ComputeDays(ctx context.Context, days []store.Day, workers int) error {
	_, _, err := c.computeDays(ctx, days, workers, func() bool { return true })
	return err
}

// computeDays computes days in order with workers goroutines while more()
// says so; it returns the summaries computed and the days not started.
func (c *Calc) computeDays(ctx context.Context, days []store.Day, workers int, more func() bool) ([]DaySummary, []store.Day, error) {
	workers = max(1, min(workers, len(days)))
	var (
		mu       sync.Mutex
		next     int
		done     []DaySummary
		firstErr error
		wg       sync.WaitGroup
	)
	for range workers {
		wg.Go(func() {
			for {
				mu.Lock()
				if next >= len(days) || firstErr != nil || !more() || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				d := days[next]
				next++
				mu.Unlock()
				s, err := c.ComputeAndCache(ctx, d.Day, d.Version, nil)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					done = append(done, s)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return nil, nil, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	return done, days[next:], nil
}
