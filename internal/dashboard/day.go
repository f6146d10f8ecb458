package dashboard

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/store"
)

type dayData struct {
	Day, Prev, Next, Yesterday string
	PrevMonth, NextMonth       string
	HasNext, HasNextMonth      bool
	IsToday                    bool
	S                          energy.DaySummary
	Chart                      chartView
	Bands, FeedBands           []bandRow
	OddDay                     bool // 23 or 25 hours
	CoveredPct                 float64
	Opts                       chartOpts
	Q, QAll                    string // the view's query (with / without from/to)
	ActiveQ                    string // the address of the active hours ("" when none)
	Devices                    []string
	Device                     *energy.DeviceEnergy // of ?device=
	Resolutions                []string
	FromV, ToV                 string // the range form's values
	DataURL                    string
	Refresh                    int // seconds between refreshes of today's chart
	// Home is the day's flows and money for a home with roles (nil
	// otherwise): production, consumption, import and export apart.
	Home     *homeRow
	Currency string
}

// ingestLegacyDevice is the device legacy stats lines are stored under
// (ingest.Device; not imported: the dashboard does not need the ingest
// package).
const ingestLegacyDevice = "legacy"

// chartDefaultsFor returns a source's configured axis ranges.
func (d *Dashboard) chartDefaultsFor(source string) chartDefaults {
	for _, s := range d.o.Sources {
		if s.Name == source {
			c := chartDefaults{YMax: s.ChartMaxW}
			if len(s.ChartTempRange) == 2 {
				c.TMin, c.TMax = s.ChartTempRange[0], s.ChartTempRange[1]
			}
			return c
		}
	}
	return chartDefaults{}
}

// dayView is a parsed day request.
type dayView struct {
	source, day string
	start, end  time.Time
	opts        chartOpts
	p           *page
}

// parseDay resolves source, day and view options, answering errors itself.
func (d *Dashboard) parseDay(w http.ResponseWriter, r *http.Request) (*dayView, bool) {
	source, p, ok := d.sourceFromPath(w, r)
	if !ok {
		return nil, false
	}
	day := r.PathValue("date")
	switch day {
	case "today":
		day = p.Today
	case "yesterday":
		day = shiftDay(p.Today, -1)
	}
	if !validDay(day) {
		d.fail(w, r, p, http.StatusBadRequest, "bad_date", nil)
		return nil, false
	}
	start, end, err := energy.DayBounds(day, p.Zone)
	if err != nil {
		d.fail(w, r, p, http.StatusBadRequest, "bad_date", nil)
		return nil, false
	}
	o, err := parseChartOpts(r.URL.Query(), start, end, p.Zone, d.chartDefaultsFor(source))
	if err != nil {
		var oe *optsError
		if errors.As(err, &oe) {
			p.Status = http.StatusBadRequest
			p.Title = p.T("error")
			p.ErrorMsg = p.T("bad_view") + " " + oe.Error()
			d.render(w, r, "error", p)
			return nil, false
		}
		d.fail(w, r, p, http.StatusBadRequest, "bad_date", nil)
		return nil, false
	}
	return &dayView{source: source, day: day, start: start, end: end, opts: o, p: p}, true
}

// dayKey names a rendering of a day: the same key is the same page.
func (d *Dashboard) dayKey(kind string, v *dayView, version int64) string {
	now := d.o.Now()
	settled := "0"
	if !now.Before(v.end.Add(energy.GapIntervals * d.o.Interval)) {
		settled = "1"
	}
	return strings.Join([]string{kind, v.source, v.day, strconv.FormatInt(version, 10), settled, string(v.p.lang), v.p.Today, v.opts.query(false, "ymax", f1(v.opts.YMax), "tmin", f1(v.opts.TMin), "tmax", f1(v.opts.TMax))}, "\x00")
}

// build computes the day and its chart. at is the day as looked up
// before (dayLookup): its version is the one the page is cached under.
func (d *Dashboard) build(ctx context.Context, v *dayView, at dayAt, wantHover bool) (energy.DaySummary, *chartBuilder, error) {
	calc := d.calc(v.source, v.p.Zone)
	// the chart needs the readings anyway; the summary comes with them and
	// is written to the cache only when the cached one is not current
	version := at.entry.Version
	if at.cached != nil {
		version = 0
	}
	cb := newChartBuilder(v.opts, d.o.Interval)
	cb.wantHover = wantHover
	calc.OnReading = cb.reading
	if home := d.homeOf(v.source); home.Configured() {
		cb.roles = v.opts.Device == ""
		cb.devLabel = func(name string) string { return home.Device(name).Title() }
		if cb.roles && home.Has(household.Grid) {
			// the day's consumption is the grid's import: so is its running line
			cb.gridIn = func(name string, in, out float64) float64 {
				return household.Balance([]household.Part{home.Orient(name, in, out)}).Import
			}
		}
	}
	if d.o.Fields != nil {
		fm := d.o.Fields(v.source)
		// a legacy line's values 3… (or 2… when value 2 is not a
		// temperature or voltage) are stored as its phases
		cb.phaseLabel = func(device string, i, n int) (string, string) {
			if device != ingestLegacyDevice || len(fm) == 0 {
				return "", ""
			}
			k := i + 3
			if fm.Second() == household.Value {
				k = i + 2
			}
			f := fm.At(k)
			if f.Label == "" {
				return "", f.Unit
			}
			return f.Label, f.Unit
		}
	}
	onPoint := cb.point
	if v.opts.Device != "" {
		onPoint = nil
	}
	s, err := calc.ComputeAndCache(ctx, v.day, version, onPoint)
	return s, cb, err
}

// dayAt is a day as the store has it: its entry (version 0: no
// readings) and its cached summary when that is current.
type dayAt struct {
	entry  store.Day
	cached *energy.DaySummary
}

// dayLookup looks the day up once per request: the page cache's key and
// the summary's caching both take this version (on PostgreSQL each
// look-up is a round trip).
func (d *Dashboard) dayLookup(ctx context.Context, v *dayView) (dayAt, error) {
	e, cached, err := d.calc(v.source, v.p.Zone).Lookup(ctx, v.day)
	return dayAt{e, cached}, err
}

func (d *Dashboard) day(w http.ResponseWriter, r *http.Request) {
	v, ok := d.parseDay(w, r)
	if !ok {
		return
	}
	p := v.p
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	at, err := d.dayLookup(ctx, v)
	if err != nil {
		d.fail(w, r, p, http.StatusInternalServerError, "server_error", err)
		return
	}
	key := d.dayKey("page", v, at.entry.Version)
	if b, ok := d.rendered.get(key); ok {
		writeHTML(w, http.StatusOK, b)
		return
	}
	s, cb, err := d.build(ctx, v, at, false)
	if err != nil {
		d.fail(w, r, p, http.StatusInternalServerError, "server_error", err)
		return
	}
	day, start, end, o := v.day, v.start, v.end, v.opts
	data := dayData{
		Day: day, Prev: shiftDay(day, -1), Next: shiftDay(day, 1), Yesterday: shiftDay(p.Today, -1),
		PrevMonth: shiftMonthDay(day, -1), NextMonth: shiftMonthDay(day, 1),
		IsToday: day == p.Today, S: s, Chart: cb.render(p.lang, p.Zone),
		Bands: bandRows(s.Bands), FeedBands: bandRows(s.FeedBands),
		OddDay: end.Sub(start) != 24*time.Hour,
		Opts:   o, Q: o.query(false), QAll: o.query(true),
		FromV: o.From.In(p.Zone).Format("15:04"), ToV: o.To.In(p.Zone).Format("15:04"),
	}
	data.Home, data.Currency = d.dayHome(v.source, s)
	if !o.To.Before(end) {
		data.ToV = "24:00"
	}
	for _, r := range resolutions {
		data.Resolutions = append(data.Resolutions, r.Name)
	}
	for _, de := range s.Devices {
		data.Devices = append(data.Devices, de.Device)
		if de.Device == o.Device {
			data.Device = &de
		}
	}
	if from, to, ok := cb.activeHours(p.Zone); ok {
		aq := o
		aq.FromS, aq.ToS = from, to
		data.ActiveQ = aq.query(false)
	}
	data.HasNext = data.Next <= p.Today
	data.HasNextMonth = data.NextMonth <= p.Today
	if data.IsToday {
		data.Refresh = 60
	}
	data.DataURL = p.Link("/s/", url.PathEscape(v.source), "/day/", day, "/data.json") + data.Q
	if span := end.Sub(start).Seconds(); span > 0 {
		data.CoveredPct = 100 * s.Covered / span
	}
	p.Title = v.source + " · " + p.LongDate(day)
	p.Nav = "day"
	p.Data = data
	b, err := d.renderBytes("day", p)
	if err != nil {
		d.o.Log.Error("rendering page", "page", "day", "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	// a page is stored under the version read before computing: a reading
	// arriving meanwhile makes a new version, so nothing stale is served
	d.rendered.put(key, b)
	writeHTML(w, http.StatusOK, b)
}

// shiftMonthDay is the same day n months away (clamped to the month's
// last day).
func shiftMonthDay(day string, n int) string {
	t, err := time.Parse("2006-01-02", day)
	if err != nil {
		return day
	}
	first := time.Date(t.Year(), t.Month()+time.Month(n), 1, 0, 0, 0, 0, time.UTC)
	last := first.AddDate(0, 1, -1).Day()
	return time.Date(first.Year(), first.Month(), min(t.Day(), last), 0, 0, 0, 0, time.UTC).Format("2006-01-02")
}

// hoverSeries is one series of the tooltip data.
type hoverSeries struct {
	Key   string     `json:"k"`
	Label string     `json:"l"`
	Unit  string     `json:"u"`
	Dec   int        `json:"d"`
	V     []*float64 `json:"v"`
}

type hoverData struct {
	T0    int64         `json:"t0"` // the view's start, Unix ms
	T1    int64         `json:"t1"`
	Zone  string        `json:"zone"`
	Res   int           `json:"res"` // seconds per row; 0: every reading
	T     []int32       `json:"t"`   // rows: seconds from t0, each but the first as the difference to the one before
	S     []hoverSeries `json:"s"`
	Lang  string        `json:"lang"`
	Title string        `json:"title"`
}

// dayData answers the values behind the chart as JSON, for the tooltip:
// every instant (res=raw) or every bucket's mean.
func (d *Dashboard) dayData(w http.ResponseWriter, r *http.Request) {
	v, ok := d.parseDay(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	at, err := d.dayLookup(ctx, v)
	if err != nil {
		d.fail(w, r, v.p, http.StatusInternalServerError, "server_error", err)
		return
	}
	key := d.dayKey("data", v, at.entry.Version)
	b, ok := d.rendered.get(key)
	if !ok {
		_, cb, err := d.build(ctx, v, at, true)
		if err != nil {
			d.fail(w, r, v.p, http.StatusInternalServerError, "server_error", err)
			return
		}
		b, err = json.Marshal(cb.hover(v.p.lang, v.p.Zone))
		if err != nil {
			d.fail(w, r, v.p, http.StatusInternalServerError, "server_error", err)
			return
		}
		d.rendered.put(key, b)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(b)
}

// hover builds the tooltip data after the day was read, its rows as
// differences (they compress well).
func (c *chartBuilder) hover(l lang, zone *time.Location) hoverData {
	h := c.hoverAbs(l, zone)
	for i := len(h.T) - 1; i > 0; i-- {
		h.T[i] -= h.T[i-1]
	}
	return h
}

func (c *chartBuilder) hoverAbs(l lang, zone *time.Location) hoverData {
	h := hoverData{T0: c.o.From.UnixMilli(), T1: c.o.To.UnixMilli(), Zone: zone.String(), Res: int(c.o.Res / time.Second), Lang: string(l)}
	all := []*chartSeries{c.total}
	all = append(all, c.lines()...)
	all = append(all, c.others()...)
	all = append(all, c.wh, c.temp)
	c.total.Label = l.T("power_total")
	c.prod.Label, c.home.Label = l.T("flow_prod"), l.T("flow_home")
	c.wh.Label = l.T("running_energy")
	c.temp.Label = l.T("temperature")
	dec := func(s *chartSeries) int {
		switch s.Unit {
		case "W":
			return 1
		case "Wh", "%":
			return 0
		case "A":
			return 2
		}
		return 1
	}
	pows := [...]float64{1, 10, 100, 1000}
	ptr := func(x float64, dec int) *float64 {
		if math.IsNaN(x) {
			return nil
		}
		x = math.Round(x*pows[dec]) / pows[dec]
		return &x
	}
	if c.o.Res == 0 {
		h.T = c.hoverT
		for _, s := range all {
			col, ok := c.hoverV[s.Key]
			if !ok || s.n == 0 {
				continue
			}
			hs := hoverSeries{Key: s.Key, Label: s.Label, Unit: s.Unit, Dec: dec(s), V: make([]*float64, len(h.T))}
			for i, x := range col {
				hs.V[i] = ptr(x, hs.Dec)
			}
			h.S = append(h.S, hs)
		}
		return h
	}
	// one row per bucket with a total
	idx := map[int]int{}
	for _, run := range c.total.runs {
		for _, b := range run {
			idx[b.i] = len(h.T)
			h.T = append(h.T, int32(time.Duration(b.i)*c.o.Res/time.Second))
		}
	}
	for _, s := range all {
		if s.n == 0 {
			continue
		}
		hs := hoverSeries{Key: s.Key, Label: s.Label, Unit: s.Unit, Dec: dec(s), V: make([]*float64, len(h.T))}
		for _, run := range s.runs {
			for _, b := range run {
				if row, ok := idx[b.i]; ok {
					x := b.sum / float64(b.n)
					if s == c.wh {
						x = b.last
					}
					if s == c.home {
						x = -x
					}
					hs.V[row] = ptr(x, hs.Dec)
				}
			}
		}
		h.S = append(h.S, hs)
	}
	return h
}

// pageCache keeps rendered pages (and tooltip data) by key, up to max
// bytes; it starts over when full.
type pageCache struct {
	mu    sync.Mutex
	max   int
	size  int
	pages map[string][]byte
}

func newPageCache(max int) *pageCache { return &pageCache{max: max, pages: map[string][]byte{}} }

func (c *pageCache) get(k string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.pages[k]
	return b, ok
}

func (c *pageCache) put(k string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(b) > c.max/8 {
		return
	}
	if c.size+len(b) > c.max {
		clear(c.pages)
		c.size = 0
	}
	if old, ok := c.pages[k]; ok {
		c.size -= len(old)
	}
	c.pages[k] = b
	c.size += len(b)
}
