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
// and the instants of the doubled autumn hour resolved but not yet durable
// ("pending"). Resolve holds the source's lock only while it decides; the
// caller inserts outside the lock and then calls Ticket.Done. Because
// "last" advances at decision time, lines are placed in the order they
// reach Resolve even while earlier inserts are still in flight, and a line
// that arrives while its twin of the doubled hour is still being written
// sees that twin in "pending".
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
	pending       map[int64]int // unix second → resolutions not yet Done
}

// NewResolver returns a resolver that reads what it needs from st.
func NewResolver(st store.Store) *Resolver {
	return &Resolver{st: st}
}

func (r *Resolver) state(source string) *sourceState {
	if s, ok := r.sources.Load(source); ok {
		return s.(*sourceState)
	}
	s, _ := r.sources.LoadOrStore(source, &sourceState{pending: map[int64]int{}})
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
	if t.s.pending[t.k] <= 1 {
		delete(t.s.pending, t.k)
	} else {
		t.s.pending[t.k]--
	}
}

// Resolve returns the UTC instant of line l of source, whose wall clock runs
// in zone, and a Ticket whose Done the caller must call once the reading is
// stored (or failed to store).
//
//   - A line identical to the source's previous line gets the previous
//     line's instant (the PHP receiver drops such duplicates; a retried
//     request is one), so the store reports it as already present.
//   - In the autumn hour the earlier instant is taken unless the source has
//     already reached it (legacy.Choose); when the source is past the
//     doubled hour (a replay), the earlier instant is taken only if neither
//     the store nor an in-flight insert has it.
//   - A time in the spring gap is accepted (legacy.Instants).
func (r *Resolver) Resolve(ctx context.Context, source string, zone *time.Location, l legacy.Line) (time.Time, Ticket, error) {
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
		var qerr error
		t = legacy.Choose(cands, s.last, func() bool {
			early := cands[0]
			if s.pending[early.Unix()] > 0 {
				return true
			}
			has, err := r.hasLegacy(ctx, source, early)
			if err != nil {
				qerr = err
				return true
			}
			return has
		})
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
	s.pending[k]++
	return t, Ticket{s: s, k: k}, nil
}

var errFound = errors.New("found")

func (r *Resolver) hasLegacy(ctx context.Context, source string, t time.Time) (bool, error) {
	err := r.st.Range(ctx, source, t, t.Add(time.Second), func(rd reading.Reading) error {
		if rd.Device == Device {
			return errFound
		}
		return nil
	})
	switch {
	case errors.Is(err, errFound):
		return true, nil
	case err == nil, errors.Is(err, store.ErrUnknownSource):
		return false, nil
	}
	return false, fmt.Errorf("looking up %s of source %s: %w", t.Format(time.RFC3339), source, err)
}
