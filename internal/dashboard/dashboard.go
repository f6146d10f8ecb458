// Package dashboard serves powermeter's web pages: the sources, the live
// power of a source (auto-updating over Server-Sent Events), day charts
// rendered as SVG on the server, the energy overview of days, months and
// years, and CSV downloads. Templates and static files are embedded; the
// pages work without JavaScript, which only adds live updates and the full
// screen toggle.
package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/tariff"
)

//go:embed web/templates/*.html web/static/*
var webFS embed.FS

// Options configures the dashboard.
type Options struct {
	// Sources are the configured sources (name and zone; keys are never
	// used here). Sources the store knows but the config does not are shown
	// too, in their stored zone.
	Sources []config.Source
	// Users are "name:bcrypt-hash" entries; when set, pages need Basic auth.
	Users []string
	// ReadToken, when set, grants read access via ?token= (sets a cookie)
	// or an "Authorization: Bearer" header.
	ReadToken string
	// Guard, when set, slows down and blocks addresses that send wrong
	// credentials (the server passes its wrong-key limiter).
	Guard Guard
	// Interval is the expected reading interval (default 10 s): values older
	// than 3 intervals are stale; energy is not integrated over longer gaps.
	Interval time.Duration
	Log      *slog.Logger
	Now      func() time.Time

	// BasePath is prepended to every link, for a reverse proxy that serves
	// the dashboard below a path ("/powermeter"); empty by default.
	BasePath string
	// PollInterval is how often live pages look for new readings (2 s).
	PollInterval time.Duration
	// Zone is used for stored sources without a zone (Europe/Berlin).
	Zone *time.Location
	// Home and Tariff give a source's roles and prices (nil, or nil
	// answers: a home without roles, no money).
	Home   func(source string) *household.Home
	Tariff func(source string) *tariff.Tariff
	// Fields gives a source's field map (what a legacy line's values
	// mean: units and labels of the chart's extra series); nil: the
	// default.
	Fields func(source string) household.FieldMap
	// SummaryBudget is how long a page adding days up computes missing
	// day summaries itself before it leaves the rest to the background
	// (400 ms).
	SummaryBudget time.Duration
	// Cache keeps decoded day summaries; the server shares its own (a
	// new one when nil).
	Cache *energy.Cache
}

// Dashboard is the set of web pages over a store.
type Dashboard struct {
	st     store.Store
	o      Options
	zones  map[string]*time.Location
	pages  map[string]*template.Template
	auth   *auth
	hub    *hub
	static http.Handler
	assetV string

	days     *energy.Cache // decoded day summaries
	rendered *pageCache    // rendered day pages by day version

	done      chan struct{} // closed by Close: ends the event streams
	closeOnce sync.Once

	mu          sync.Mutex
	known       map[string]*time.Location // stored sources, refreshed lazily
	knownAt     time.Time
	summarizing map[string]bool // sources with a background summary job
}

// New prepares the dashboard; it fails on unusable options (a user entry
// that is not "name:bcrypt-hash").
func New(st store.Store, o Options) (*Dashboard, error) {
	if st == nil {
		return nil, errors.New("dashboard: no store")
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 2 * time.Second
	}
	if o.SummaryBudget <= 0 {
		o.SummaryBudget = 400 * time.Millisecond
	}
	if o.Zone == nil {
		z, err := time.LoadLocation(config.DefaultZone)
		if err != nil {
			return nil, fmt.Errorf("dashboard: loading zone %s: %w", config.DefaultZone, err)
		}
		o.Zone = z
	}
	o.BasePath = strings.TrimRight(o.BasePath, "/")
	d := &Dashboard{st: st, o: o, zones: map[string]*time.Location{}, known: map[string]*time.Location{}, days: o.Cache, rendered: newPageCache(64 << 20), done: make(chan struct{})}
	if d.days == nil {
		d.days = energy.NewCache(50000)
	}
	for _, s := range o.Sources {
		z := s.Timezone.Location
		if z == nil {
			z = o.Zone
		}
		d.zones[s.Name] = z
	}
	a, err := newAuth(o.Users, o.ReadToken, o.Guard)
	if err != nil {
		return nil, err
	}
	d.auth = a
	if err := d.parseTemplates(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(webFS, "web/static")
	if err != nil {
		return nil, fmt.Errorf("dashboard: static files: %w", err)
	}
	d.assetV = assetVersion(sub)
	d.static = http.StripPrefix("/static/", http.FileServerFS(sub))
	d.hub = newHub(st, o.PollInterval, o.Log, o.Now)
	return d, nil
}

// assetVersion is a short hash of the static files, appended to their URLs
// so browsers may cache them for long.
func assetVersion(fsys fs.FS) string {
	h := sha256.New()
	_ = fs.WalkDir(fsys, ".", func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		h.Write([]byte(path))
		h.Write(b)
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))[:10]
}

func (d *Dashboard) parseTemplates() error {
	base, err := template.New("base").Funcs(funcs).ParseFS(webFS, "web/templates/base.html")
	if err != nil {
		return fmt.Errorf("dashboard: parsing base template: %w", err)
	}
	d.pages = map[string]*template.Template{}
	for _, name := range []string{"home", "live", "day", "month", "year", "overview", "error"} {
		t, err := template.Must(base.Clone()).ParseFS(webFS, "web/templates/"+name+".html")
		if err != nil {
			return fmt.Errorf("dashboard: parsing template %s: %w", name, err)
		}
		d.pages[name] = t
	}
	return nil
}

// Close ends all live event streams (they would otherwise keep
// http.Server.Shutdown waiting); pages keep working. Call it when the
// server shuts down, e.g. via http.Server.RegisterOnShutdown.
func (d *Dashboard) Close() {
	d.closeOnce.Do(func() { close(d.done) })
}

// Register adds the dashboard's routes to mux.
func (d *Dashboard) Register(mux *http.ServeMux) {
	g := func(h http.HandlerFunc) http.Handler { return d.auth.wrap(d, h) }
	mux.Handle("GET /{$}", g(d.home))
	mux.Handle("GET /s/{source}", g(d.live))
	mux.Handle("GET /s/{source}/events", g(d.events))
	mux.Handle("GET /s/{source}/day", g(d.dayRedirect))
	mux.Handle("GET /s/{source}/day/{date}", g(d.day))
	mux.Handle("GET /s/{source}/day/{date}/data.json", g(d.dayData))
	mux.Handle("GET /s/{source}/overview", g(d.overview))
	mux.Handle("GET /s/{source}/month/{month}", g(d.month))
	mux.Handle("GET /s/{source}/year/{year}", g(d.year))
	mux.Handle("GET /s/{source}/export.csv", g(d.export))
	mux.Handle("GET /static/", http.HandlerFunc(d.serveStatic))
	// the manifest and icons say nothing about the data: browsers fetch
	// them without credentials
	mux.Handle("GET /manifest.webmanifest", http.HandlerFunc(d.manifest))
	mux.Handle("GET /icons/{name}", http.HandlerFunc(d.icon))
}

func (d *Dashboard) serveStatic(w http.ResponseWriter, r *http.Request) {
	if strings.HasSuffix(r.URL.Path, "/") {
		// a folder: no listing of what is there
		http.NotFound(w, r)
		return
	}
	if r.URL.Query().Get("v") == d.assetV {
		w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		w.Header().Set("Cache-Control", "public, max-age=300")
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	d.static.ServeHTTP(w, r)
}

// zone returns the zone of a source, or ok=false for an unknown source.
func (d *Dashboard) zone(ctx context.Context, name string) (*time.Location, bool, error) {
	if z, ok := d.zones[name]; ok {
		return z, true, nil
	}
	d.mu.Lock()
	fresh := d.o.Now().Sub(d.knownAt) < 10*time.Second
	z, ok := d.known[name]
	d.mu.Unlock()
	if ok || fresh {
		return z, ok, nil
	}
	if _, err := d.sources(ctx); err != nil {
		return nil, false, err
	}
	d.mu.Lock()
	z, ok = d.known[name]
	d.mu.Unlock()
	return z, ok, nil
}

// sourceRow is one source on the home page.
type sourceRow struct {
	Name    string
	Zone    string
	Loc     *time.Location
	Devices []string
	Count   int64
	Last    time.Time
	Stale   bool
	Now     *livePanel // current values (home page)
}

// sources lists configured and stored sources, configured first.
func (d *Dashboard) sources(ctx context.Context) ([]sourceRow, error) {
	infos, err := d.st.Sources(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing sources: %w", err)
	}
	byName := map[string]store.SourceInfo{}
	known := map[string]*time.Location{}
	for _, in := range infos {
		byName[in.Name] = in
		z := d.o.Zone
		if in.Timezone != "" {
			if l, err := time.LoadLocation(in.Timezone); err == nil {
				z = l
			}
		}
		known[in.Name] = z
	}
	d.mu.Lock()
	d.known, d.knownAt = known, d.o.Now()
	d.mu.Unlock()

	var rows []sourceRow
	seen := map[string]bool{}
	row := func(name string, z *time.Location) {
		in := byName[name]
		r := sourceRow{Name: name, Zone: z.String(), Loc: z, Devices: in.Devices, Count: in.Count, Last: in.Last}
		r.Stale = !in.Last.IsZero() && d.o.Now().Sub(in.Last) > energy.GapIntervals*d.o.Interval
		rows = append(rows, r)
		seen[name] = true
	}
	for _, s := range d.o.Sources {
		if !seen[s.Name] {
			row(s.Name, d.zones[s.Name])
		}
	}
	var rest []string
	for name := range byName {
		if !seen[name] {
			rest = append(rest, name)
		}
	}
	sort.Strings(rest)
	for _, name := range rest {
		row(name, known[name])
	}
	return rows, nil
}

func (d *Dashboard) calc(source string, zone *time.Location) *energy.Calc {
	return &energy.Calc{Store: d.st, Source: source, Zone: zone, Interval: d.o.Interval, Log: d.o.Log, Now: d.o.Now, Cache: d.days,
		Home: d.homeOf(source), Tariff: d.tariffOf(source)}
}

// homeOf is the roles of a source's devices (nil: none).
func (d *Dashboard) homeOf(source string) *household.Home {
	if d.o.Home == nil {
		return nil
	}
	return d.o.Home(source)
}

// tariffOf is a source's prices (nil: none).
func (d *Dashboard) tariffOf(source string) *tariff.Tariff {
	if d.o.Tariff == nil {
		return nil
	}
	return d.o.Tariff(source)
}

// page is what every template gets.
type page struct {
	lang
	Title    string
	Base     string
	Source   string
	Nav      string
	Zone     *time.Location
	Body     string
	AssetV   string
	Today    string
	Data     any
	Status   int
	ErrorMsg string
	// Pending is the number of days still summarized in the background
	// (the page says so and reloads itself).
	Pending int
	now     time.Time
}

func (d *Dashboard) newPage(r *http.Request, source string, zone *time.Location) *page {
	if zone == nil {
		zone = d.o.Zone
	}
	now := d.o.Now()
	return &page{
		now:    now,
		lang:   pickLang(r.Header.Get("Accept-Language")),
		Base:   d.o.BasePath,
		Source: source,
		Zone:   zone,
		AssetV: d.assetV,
		Today:  now.In(zone).Format("2006-01-02"),
	}
}

// HM formats an instant as local hours and minutes.
func (p *page) HM(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.In(p.Zone).Format("15:04")
}

// SecOfDay is an instant's local time of day in seconds (a sort key; -1
// for none).
func (p *page) SecOfDay(t time.Time) int {
	if t.IsZero() {
		return -1
	}
	l := t.In(p.Zone)
	return l.Hour()*3600 + l.Minute()*60 + l.Second()
}

// Clock formats an instant as local time of day.
func (p *page) Clock(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.In(p.Zone).Format("15:04:05")
}

// ClockZ formats an instant as local time of day with the zone's
// abbreviation (on days with a clock change).
func (p *page) ClockZ(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.In(p.Zone).Format("15:04:05 MST")
}

// Stamp formats an instant as local date and time.
func (p *page) Stamp(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	if p.lang == langDE {
		return t.In(p.Zone).Format("02.01.2006 15:04:05")
	}
	return t.In(p.Zone).Format("2006-01-02 15:04:05")
}

var funcs = template.FuncMap{
	"float": func(v any) float64 {
		switch n := v.(type) {
		case int:
			return float64(n)
		case int64:
			return float64(n)
		case float64:
			return n
		}
		return math.NaN()
	},
	"deref": func(v *float64) float64 {
		if v == nil {
			return math.NaN()
		}
		return *v
	},
	// pct writes a percentage for a style attribute (numbers only).
	"pct": func(v float64) template.CSS {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			v = 0
		}
		return template.CSS(strconv.FormatFloat(v, 'f', 2, 64) + "%")
	},
}

// Lang is the page language for <html lang>.
func (p *page) Lang() string { return string(p.lang) }

// NowMs is the server's clock in Unix ms (the live script corrects the
// browser's clock with it).
func (p *page) NowMs() int64 { return p.now.UnixMilli() }

// PhaseLabel names value i of n: L1–L3 for three phases, #1… otherwise.
func (p *page) PhaseLabel(i, n int) string {
	if n == 3 {
		return "L" + strconv.Itoa(i+1)
	}
	return "#" + strconv.Itoa(i+1)
}

// StampIn formats an instant as date and time in zone.
func (p *page) StampIn(t time.Time, zone *time.Location) string {
	q := *p
	q.Zone = zone
	return q.Stamp(t)
}

// ISO formats an instant for <time datetime>.
func (p *page) ISO(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// Num formats a number with the page's separators.
func (p *page) Num(v float64, dec int) string { return p.num(v, dec) }

// LongDate formats a YYYY-MM-DD day as a heading.
func (p *page) LongDate(day string) string {
	t, err := time.Parse("2006-01-02", day)
	if err != nil {
		return day
	}
	return p.longDate(t)
}

// ShortDate formats a YYYY-MM-DD day for tables.
func (p *page) ShortDate(day string) string { return p.shortDate(day) }

// MonthName names a YYYY-MM month.
func (p *page) MonthName(key string) string { return p.monthName(key) }

// Link builds a path below the dashboard's base path.
func (p *page) Link(parts ...string) string {
	var b strings.Builder
	b.WriteString(p.Base)
	for _, s := range parts {
		b.WriteString(s)
	}
	return b.String()
}

// render executes a page template into a buffer first, so a template error
// never sends half a page.
func (d *Dashboard) render(w http.ResponseWriter, r *http.Request, name string, p *page) {
	b, err := d.renderBytes(name, p)
	if err != nil {
		d.o.Log.Error("rendering page", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	writeHTML(w, p.Status, b)
}

// renderBytes executes a page template.
func (d *Dashboard) renderBytes(name string, p *page) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(32 * 1024)
	if err := d.pages[name].ExecuteTemplate(&buf, "base", p); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeHTML sends a rendered page with the dashboard's headers.
func writeHTML(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'")
	h.Set("Vary", "Accept-Language")
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// fail shows an error page; err (logged, never shown) explains a 500.
func (d *Dashboard) fail(w http.ResponseWriter, r *http.Request, p *page, status int, msgKey string, err error) {
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return
		}
		d.o.Log.Error("dashboard request", "path", r.URL.Path, "err", err)
	}
	p.Status = status
	p.Title = p.T("error")
	if status == http.StatusNotFound {
		p.Title = p.T("not_found")
	}
	p.ErrorMsg = p.T(msgKey)
	p.Nav = ""
	d.render(w, r, "error", p)
}

// sourceFromPath resolves {source} and answers 404 itself when unknown.
func (d *Dashboard) sourceFromPath(w http.ResponseWriter, r *http.Request) (string, *page, bool) {
	name := r.PathValue("source")
	z, ok, err := d.zone(r.Context(), name)
	p := d.newPage(r, "", nil)
	if err != nil {
		d.fail(w, r, p, http.StatusInternalServerError, "server_error", err)
		return "", nil, false
	}
	if !ok {
		d.fail(w, r, p, http.StatusNotFound, "unknown_source", nil)
		return "", nil, false
	}
	return name, d.newPage(r, name, z), true
}

func (d *Dashboard) home(w http.ResponseWriter, r *http.Request) {
	p := d.newPage(r, "", nil)
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	rows, err := d.sources(ctx)
	if err != nil {
		d.fail(w, r, p, http.StatusInternalServerError, "server_error", err)
		return
	}
	// the current power of each source (bounded, for hosted servers with
	// many sources)
	for i := range rows {
		if i >= 200 || rows[i].Count == 0 {
			continue
		}
		latest, err := store.LatestAt(ctx, d.st, rows[i].Name, d.o.Now())
		if err != nil {
			continue
		}
		pl := d.panel(latest, d.homeOf(rows[i].Name), d.fieldsOf(rows[i].Name))
		rows[i].Now = &pl
	}
	p.Title = p.T("sources")
	p.Nav = "home"
	p.Data = rows
	d.render(w, r, "home", p)
}
