package dashboard

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// livePanel is the part of the live page that updates.
type livePanel struct {
	HasData bool
	Total   float64
	Time    time.Time // newest reading
	Stale   bool
	StaleAt int64 // Unix ms after which the values are stale
	Temp    *float64
	Devices []liveDevice
	// Roles is true for a home whose devices have roles: Total is then
	// the home's consumption (or, without a grid meter, the production)
	// and Flow the flow of the moment.
	Roles bool
	Flow  household.Flow
	// Headline says what Total is: "home", "production" or "" (the sum of
	// the devices, a home without roles).
	Headline          string
	HasPV, HasBattery bool
	// which columns the devices have values for
	HasPhases, HasTemp, HasVolt, HasIn, HasOut bool
}

type liveDevice struct {
	Name  string
	Label string
	Role  household.Role
	// Values are a legacy line's values 2… with their units, where the
	// source's field map gives them a meaning other than the default.
	Values      []household.FieldValue
	Power       float64
	Phases      []float64
	Temperature *float64
	Voltage     *float64
	EnergyIn    *float64
	EnergyOut   *float64
	Time        time.Time
	Stale       bool
}

// panel builds the live values from the newest reading of every device.
// The total is the sum of the devices whose reading is not older than the
// gap limit before the newest one (as the day chart adds them up).
func (d *Dashboard) panel(latest []reading.Reading, home *household.Home, fields household.FieldMap) livePanel {
	var p livePanel
	if len(latest) == 0 {
		return p
	}
	p.HasData = true
	gap := energy.GapIntervals * d.o.Interval
	for _, r := range latest {
		if r.Time.After(p.Time) {
			p.Time = r.Time
		}
	}
	now := d.o.Now()
	// a device that has sent nothing for a day (unplugged, renamed) is left
	// out while others report
	keep := latest[:0:0]
	for _, r := range latest {
		if p.Time.Sub(r.Time) <= 24*time.Hour {
			keep = append(keep, r)
		}
	}
	latest = keep
	var tsum float64
	var tn int
	tempDev := home.TemperatureDevice()
	var parts []household.Part
	for _, r := range latest {
		fresh := p.Time.Sub(r.Time) <= gap
		if fresh {
			p.Total += r.Power
			in, out := household.Split(r.Power)
			parts = append(parts, home.Orient(r.Device, in, out))
			// a home with roles shows the chosen device's temperature only
			if r.Temperature != nil && (!home.Configured() || r.Device == tempDev) {
				tsum += *r.Temperature
				tn++
			}
		}
		dev := home.Device(r.Device)
		p.Devices = append(p.Devices, liveDevice{
			Name: r.Device, Label: dev.Label, Role: dev.Role, Power: r.Power, Phases: r.Phases, Temperature: r.Temperature,
			Voltage: r.Voltage, EnergyIn: r.EnergyIn, EnergyOut: r.EnergyOut, Time: r.Time,
			Stale: now.Sub(r.Time) > gap,
		})
		if r.Device == legacyDevice && len(fields) > 0 && !fields.IsDefault() {
			dv := &p.Devices[len(p.Devices)-1]
			dv.Values = fields.Values(r)
			dv.Temperature, dv.Voltage = nil, nil // shown with the values
			p.HasPhases = p.HasPhases || len(dv.Values) > 0
		}
		p.HasPhases = p.HasPhases || len(r.Phases) > 0
		p.HasTemp = p.HasTemp || r.Temperature != nil
		p.HasVolt = p.HasVolt || r.Voltage != nil
		p.HasIn = p.HasIn || r.EnergyIn != nil
		p.HasOut = p.HasOut || r.EnergyOut != nil
	}
	sort.Slice(p.Devices, func(i, j int) bool { return p.Devices[i].Name < p.Devices[j].Name })
	if home.Configured() {
		p.Roles = true
		p.Flow = household.Balance(parts)
		p.HasPV, p.HasBattery = home.Has(household.PV), home.Has(household.Battery)
		switch {
		case p.Flow.HomeKnown:
			p.Total, p.Headline = p.Flow.Home, "home"
		case p.HasPV:
			p.Total, p.Headline = p.Flow.Production, "production"
		}
	}
	if tn > 0 {
		t := tsum / float64(tn)
		p.Temp = &t
	}
	p.Stale = now.Sub(p.Time) > gap
	p.StaleAt = p.Time.Add(gap).UnixMilli()
	return p
}

// panelView is the panel template's data.
type panelView struct {
	*page
	Panel livePanel
}

type liveData struct {
	View   panelView
	Today  *energy.DaySummary // so far; nil when it could not be read
	Big    bool
	Events string
}

func (d *Dashboard) live(w http.ResponseWriter, r *http.Request) {
	source, p, ok := d.sourceFromPath(w, r)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	latest, err := store.LatestAt(ctx, d.st, source, d.o.Now())
	if err != nil && !errors.Is(err, store.ErrUnknownSource) {
		d.fail(w, r, p, http.StatusInternalServerError, "server_error", err)
		return
	}
	data := liveData{View: panelView{p, d.panel(latest, d.homeOf(source), d.fieldsOf(source))}, Big: r.URL.Query().Get("view") == "big", Events: p.Link("/s/", source, "/events")}
	if sum, err := d.calc(source, p.Zone).Compute(ctx, p.Today, nil); err == nil {
		data.Today = &sum
	} else {
		d.o.Log.Warn("live page: today's energy", "source", source, "err", err)
	}
	p.Title = source
	p.Nav = "live"
	if data.Big {
		p.Body = "big"
	}
	p.Data = data
	d.render(w, r, "live", p)
}

// events streams the rendered live panel whenever a new reading shows up.
func (d *Dashboard) events(w http.ResponseWriter, r *http.Request) {
	source, p, ok := d.sourceFromPath(w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	// a stream outlives the server's write timeout
	_ = rc.SetWriteDeadline(time.Time{})
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)

	sub := d.hub.subscribe(source)
	defer d.hub.unsubscribe(source, sub)

	var last time.Time
	var lastN int
	send := func(latest []reading.Reading) error {
		panel := d.panel(latest, d.homeOf(source), d.fieldsOf(source))
		if panel.Time.Equal(last) && len(latest) == lastN {
			return nil
		}
		last, lastN = panel.Time, len(latest)
		var buf bytes.Buffer
		if err := d.pages["live"].ExecuteTemplate(&buf, "panel", panelView{p, panel}); err != nil {
			return err
		}
		var out strings.Builder
		out.WriteString("event: panel\n")
		// a CR would end an SSE line early (a device name may hold one)
		html := strings.ReplaceAll(strings.TrimSpace(buf.String()), "\r", " ")
		for _, line := range strings.Split(html, "\n") {
			out.WriteString("data: ")
			out.WriteString(line)
			out.WriteByte('\n')
		}
		out.WriteByte('\n')
		if _, err := w.Write([]byte(out.String())); err != nil {
			return err
		}
		return rc.Flush()
	}
	// the first event carries the current state at once
	if snap, ok := sub.snapshot(); ok {
		if err := send(snap); err != nil {
			return
		}
	} else if _, err := w.Write([]byte(": waiting\n\n")); err != nil || rc.Flush() != nil {
		return
	}
	keep := time.NewTicker(15 * time.Second)
	defer keep.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-d.done:
			return
		case <-sub.ch:
			snap, _ := sub.snapshot()
			if err := send(snap); err != nil {
				d.o.Log.Debug("live events ended", "source", source, "err", err)
				return
			}
		case <-keep.C:
			if _, err := w.Write([]byte(": keep-alive\n\n")); err != nil || rc.Flush() != nil {
				return
			}
		}
	}
}

// hub polls store.Latest once per source for all its live viewers, so it
// also sees readings written by other servers sharing the database.
type hub struct {
	st    store.Store
	every time.Duration
	log   *slog.Logger
	now   func() time.Time

	mu    sync.Mutex
	feeds map[string]*feed
}

type feed struct {
	mu     sync.Mutex
	subs   map[*subscriber]bool
	latest []reading.Reading
	have   bool
	cancel context.CancelFunc
}

type subscriber struct {
	f  *feed
	ch chan struct{} // 1-buffered: "something changed"
}

func (s *subscriber) snapshot() ([]reading.Reading, bool) {
	s.f.mu.Lock()
	defer s.f.mu.Unlock()
	return s.f.latest, s.f.have
}

func newHub(st store.Store, every time.Duration, log *slog.Logger, now func() time.Time) *hub {
	return &hub{st: st, every: every, log: log, now: now, feeds: map[string]*feed{}}
}

func (h *hub) subscribe(source string) *subscriber {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := h.feeds[source]
	if f == nil {
		ctx, cancel := context.WithCancel(context.Background())
		f = &feed{subs: map[*subscriber]bool{}, cancel: cancel}
		h.feeds[source] = f
		go h.poll(ctx, source, f)
	}
	s := &subscriber{f: f, ch: make(chan struct{}, 1)}
	f.mu.Lock()
	f.subs[s] = true
	f.mu.Unlock()
	return s
}

func (h *hub) unsubscribe(source string, s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f := s.f
	f.mu.Lock()
	delete(f.subs, s)
	empty := len(f.subs) == 0
	f.mu.Unlock()
	if empty && h.feeds[source] == f {
		f.cancel()
		delete(h.feeds, source)
	}
}

func sameReadings(a, b []reading.Reading) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Device != b[i].Device || !a[i].Time.Equal(b[i].Time) || a[i].Power != b[i].Power {
			return false
		}
	}
	return true
}

func (h *hub) poll(ctx context.Context, source string, f *feed) {
	t := time.NewTicker(h.every)
	defer t.Stop()
	lastErr := "" // log a failure once, not every poll
	for {
		qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		latest, err := store.LatestAt(qctx, h.st, source, h.now())
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err != nil && !errors.Is(err, store.ErrUnknownSource) {
			if err.Error() != lastErr {
				h.log.Warn("live: reading the latest values", "source", source, "err", err)
				lastErr = err.Error()
			}
		} else {
			lastErr = ""
			sort.Slice(latest, func(i, j int) bool { return latest[i].Device < latest[j].Device })
			f.mu.Lock()
			changed := !f.have || !sameReadings(f.latest, latest)
			f.latest, f.have = latest, true
			if changed {
				for s := range f.subs {
					select {
					case s.ch <- struct{}{}:
					default:
					}
				}
			}
			f.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
