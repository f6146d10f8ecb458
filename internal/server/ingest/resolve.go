// Package ingest turns legacy stats lines into readings: it resolves the
// line's wall-clock time to a UTC instant per source, keeping the source's
// readings in order across the autumn hour that occurs twice. The HTTP
// receiver and the PHP data-dir import share it.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// Device is the device id under which legacy lines are stored: a legacy line
// names no device.
const Device = "legacy"

// Reading builds the reading a parsed line stands for at instant t: power,
// temperature (field 4) and the further fields as Phases (an empty field in
// the middle becomes 0).
func Reading(l legacy.Line, t time.Time) reading.Reading {
	r := reading.Reading{Device: Device, Time: t.UTC(), Power: l.Power}
	if l.Temperature != nil {
		r.Temperature = reading.F(*l.Temperature)
	}
	if len(l.Extra) > 0 {
		r.Phases = append([]float64(nil), l.Extra...)
	}
	return r
}

// Resolver maps wall-clock times of legacy lines to UTC instants, per source.
//
// Per source it keeps in memory the newest instant resolved so far ("last",
// initialised from the store on first use), the last line and its instant,
// and the readings of the doubled autumn hour resolved but not yet durable
// ("pending"). For a line of the doubled hour it reads the store's newest
// time again, as another server on the same database may have taken lines
// of the source meanwhile. Resolve holds the source's lock only while it
// decides; the caller inserts outside the lock and then calls Ticket.Done.
// Because "last" advances at decision time, lines are placed in the order
// they reach Resolve even while earlier inserts are still in flight, and a
// line that arrives while its twin of the doubled hour is still being
// written sees that twin (and its values) in "pending".
type Resolver struct {
	st      store.Store
	sources sync.Map // source name → *sourceState
}

type sourceState struct {
	mu            sync.Mutex
	loaded        bool
	last          time.Time
	lastRaw       string
	lastAt        time.Time
	lastAmbiguous bool
	pending       map[int64]*pendingReading // unix second → resolutions not yet Done
}

// pendingReading is a reading of the doubled hour whose insert is in flight.
type pendingReading struct {
	n int // resolutions not yet Done
	r reading.Reading
}

// NewResolver returns a resolver that reads what it needs from st.
func NewResolver(st store.Store) *Resolver {
	return &Resolver{st: st}
}

// Prime sets the newest instant of each source in sources from last (a
// source missing there has no readings), as the first line of each would
// read it from the store: a server with many sources asks the store once
// (store.LastTimer) instead of once per source. Sources already in use
// are left alone.
func (r *Resolver) Prime(sources []string, last map[string]time.Time) {
	for _, name := range sources {
		s := &sourceState{pending: map[int64]*pendingReading{}, loaded: true, last: last[name]}
		r.sources.LoadOrStore(name, s)
	}
}

func (r *Resolver) state(source string) *sourceState {
	if s, ok := r.sources.Load(source); ok {
		return s.(*sourceState)
	}
	s, _ := r.sources.LoadOrStore(source, &sourceState{pending: map[int64]*pendingReading{}})
	return s.(*sourceState)
}

// Ticket is handed out by Resolve; call Done once the reading is stored (or
// failed to store). The zero Ticket's Done does nothing.
type Ticket struct {
	s *sourceState
	k int64
}

// Done tells the resolver that the insert of the resolved reading has
// finished.
func (t Ticket) Done() {
	if t.s == nil {
		return
	}
	t.s.mu.Lock()
	defer t.s.mu.Unlock()
	p := t.s.pending[t.k]
	switch {
	case p == nil:
	case p.n <= 1:
		delete(t.s.pending, t.k)
	default:
		p.n--
	}
}

// Resolve returns the UTC instant of line l of source, whose wall clock runs
// in zone, and a Ticket whose Done the caller must call once the reading is
// stored (or failed to store).
//
//   - A line identical to the source's previous line gets the previous
//     line's instant (the PHP receiver drops such duplicates; a retried
//     request is one), so the store reports it as already present.
//   - In the autumn hour legacy.Choose decides from the newest time of the
//     source (in memory and in the store) and from what the store or an
//     in-flight insert holds at the earlier instant: the line's own values
//     (a retry) or others.
//   - A time in the spring gap is accepted (legacy.Instants).
//
// Resolve treats every line as a possible replay (the importer, which may
// be run twice over the same files); ResolveLine tells live lines apart.
func (r *Resolver) Resolve(ctx context.Context, source string, zone *time.Location, l legacy.Line) (time.Time, Ticket, error) {
	return r.ResolveLine(ctx, source, zone, l, false)
}

// ResolveLine is Resolve for a line that is live (sent as it was taken,
// in order) or a replay (buffer=1, a resend). A live line whose wall time
// goes back inside the repeated hour — its earlier instant lies before the
// newest the source has while its later one lies ahead — is the second
// pass whatever its values: a plant reading 0 W at night sends the same
// values in both passes. Only replays, and live lines that arrive when the
// source is past both instants, are matched against what is stored. This
// holds for every zone's transitions (legacy.Instants finds them), e.g.
// Lord Howe Island's 30-minute one.
func (r *Resolver) ResolveLine(ctx context.Context, source string, zone *time.Location, l legacy.Line, live bool) (time.Time, Ticket, error) {
	s := r.state(source)
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		t, ok, err := r.st.LastTime(ctx, source)
		if err != nil && !errors.Is(err, store.ErrUnknownSource) {
			return time.Time{}, Ticket{}, fmt.Errorf("reading the last time of source %s: %w", source, err)
		}
		if ok {
			s.last = t
		}
		s.loaded = true
	}
	var t time.Time
	var ambiguous bool
	if l.Raw != "" && l.Raw == s.lastRaw {
		t, ambiguous = s.lastAt, s.lastAmbiguous
	} else {
		cands := legacy.Instants(l.Wall(), zone)
		ambiguous = len(cands) == 2
		if ambiguous {
			// Another server may have stored lines of this source since
			// "last" was loaded; the doubled hour is rare, so ask.
			st, ok, err := r.st.LastTime(ctx, source)
			if err != nil && !errors.Is(err, store.ErrUnknownSource) {
				return time.Time{}, Ticket{}, fmt.Errorf("reading the last time of source %s: %w", source, err)
			}
			if ok && st.After(s.last) {
				s.last = st
			}
		}
		var qerr error
		at := func(inst time.Time) legacy.Twin {
			want := Reading(l, inst)
			if p := s.pending[inst.Unix()]; p != nil {
				return twin(p.r, want)
			}
			got, has, err := r.storedLegacy(ctx, source, inst)
			if err != nil {
				qerr = err
				return legacy.TwinOther
			}
			if !has {
				return legacy.TwinFree
			}
			return twin(got, want)
		}
		if live && ambiguous && cands[0].Before(s.last) && s.last.Before(cands[1]) {
			t = cands[1]
		} else {
			early := legacy.TwinFree
			t = legacy.Choose(cands, zone, s.last, func() legacy.Twin { early = at(cands[0]); return early })
			// Past both instants, a replay whose values the earlier one
			// holds while the later one holds others is the first pass
			// again, not a conflict with the second.
			if qerr == nil && len(cands) == 2 && t.Equal(cands[1]) && early == legacy.TwinSame && !s.last.Before(cands[1]) && at(cands[1]) == legacy.TwinOther {
				t = cands[0]
			}
		}
		if qerr != nil {
			return time.Time{}, Ticket{}, qerr
		}
	}
	if t.After(s.last) {
		s.last = t
	}
	s.lastRaw, s.lastAt, s.lastAmbiguous = l.Raw, t, ambiguous
	// Only instants of a doubled hour are ever looked up in pending.
	if !ambiguous {
		return t, Ticket{}, nil
	}
	k := t.Unix()
	if p := s.pending[k]; p != nil {
		p.n++
	} else {
		s.pending[k] = &pendingReading{n: 1, r: Reading(l, t)}
	}
	return t, Ticket{s: s, k: k}, nil
}

// twin compares the values of the reading stored at the earlier instant
// with those of the line.
func twin(stored, line reading.Reading) legacy.Twin {
	if stored.Power != line.Power || !sameFloat(stored.Temperature, line.Temperature) || len(stored.Phases) != len(line.Phases) {
		return legacy.TwinOther
	}
	for i := range stored.Phases {
		if stored.Phases[i] != line.Phases[i] {
			return legacy.TwinOther
		}
	}
	return legacy.TwinSame
}

func sameFloat(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

var errFound = errors.New("found")

// storedLegacy returns the legacy reading stored at instant t, if any.
func (r *Resolver) storedLegacy(ctx context.Context, source string, t time.Time) (reading.Reading, bool, error) {
	var got reading.Reading
	err := r.st.Range(ctx, source, t, t.Add(time.Second), func(rd reading.Reading) error {
		if rd.Device == Device {
			// the store may reuse what rd points to after the callback
			got = Reading(legacy.Line{Power: rd.Power, Temperature: rd.Temperature, Extra: rd.Phases}, rd.Time)
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return got, true, nil
	case err == nil, errors.Is(err, store.ErrUnknownSource):
		return reading.Reading{}, false, nil
	}
	return reading.Reading{}, false, fmt.Errorf("looking up %s of source %s: %w", t.Format(time.RFC3339), source, err)
}
