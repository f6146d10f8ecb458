// Package store defines where readings live: the Store interface every
// backend implements (SQLite embedded, PostgreSQL to scale out), and one
// contract test suite (storetest) every backend must pass.
//
// Guarantees every backend gives:
//   - Insert returns only when the readings are durable (fsync'd / committed);
//     concurrent Inserts share one transaction (group commit).
//   - Idempotent: the same source + device + instant (to the second) is
//     stored once; a second Insert of it changes nothing and counts as
//     already present.
//   - Range streams in (time, device) order without holding the range in
//     memory.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// ErrUnknownSource is returned for a source that was never registered.
var ErrUnknownSource = errors.New("unknown source")

// SourceInfo describes one source and what is stored for it.
type SourceInfo struct {
	Name     string    `json:"name"`
	Timezone string    `json:"timezone"`
	Devices  []string  `json:"devices"`
	Count    int64     `json:"readings"`
	First    time.Time `json:"first,omitzero"`
	Last     time.Time `json:"last,omitzero"`
}

// InsertResult counts what an Insert did.
type InsertResult struct {
	Inserted int // new readings
	Present  int // already stored (same source, device, instant)
}

// Day is a cached summary of one local day of one source (the dashboard's
// energy per day). Inserting a reading into a day bumps its Version; a
// summary computed at Version v is stored only while the day is still at v,
// so a stale computation never overwrites a newer state.
type Day struct {
	Day     string // YYYY-MM-DD in the source's zone
	Version int64  // bumped by every insert touching the day
	// Summary is the cached summary (opaque to the store) computed at
	// SummaryVersion; it is current when SummaryVersion == Version.
	Summary        []byte
	SummaryVersion int64
}

// Store is a readings database.
type Store interface {
	// EnsureSource registers a source (idempotent) with its IANA zone, used
	// to file readings under local days. A changed zone is updated.
	EnsureSource(ctx context.Context, name, timezone string) error
	// Insert stores readings for source durably. Each reading must be valid
	// (reading.Validate). Either all are stored (or found present) or none.
	Insert(ctx context.Context, source string, rs []reading.Reading) (InsertResult, error)
	// Latest returns the newest reading of every device of the source.
	Latest(ctx context.Context, source string) ([]reading.Reading, error)
	// Range calls fn for every reading with from <= Time < to, in (Time,
	// Device) order, streaming. An error from fn stops the scan and is
	// returned.
	Range(ctx context.Context, source string, from, to time.Time, fn func(reading.Reading) error) error
	// Sources lists the registered sources with counts and first/last times.
	Sources(ctx context.Context) ([]SourceInfo, error)
	// LastTime is the newest reading time of source (any device); ok is
	// false when it has none.
	LastTime(ctx context.Context, source string) (t time.Time, ok bool, err error)

	// Days returns the days from..to (inclusive, "YYYY-MM-DD") that have
	// readings, in order.
	Days(ctx context.Context, source, from, to string) ([]Day, error)
	// PutDaySummary stores summary for day if the day is still at version.
	// It reports whether it was stored.
	PutDaySummary(ctx context.Context, source, day string, version int64, summary []byte) (bool, error)

	// Close flushes and closes the store.
	Close() error
}

// DayVersioner is implemented by stores that list days without their
// cached summaries (SQLite and PostgreSQL): an overview whose summaries
// are already decoded in memory reads only the versions, not a year of
// summary documents again.
type DayVersioner interface {
	// DayVersions is Days with only Day and Version set (no Summary,
	// SummaryVersion 0): SQLite keeps summary_version behind the summary
	// in its row, so even that column means reading the summary's pages.
	DayVersions(ctx context.Context, source, from, to string) ([]Day, error)
}

// SourceSpec names a source and its IANA zone for EnsureSources.
type SourceSpec struct{ Name, Timezone string }

// BulkEnsurer is implemented by stores that register many sources at once
// faster than one by one (SQLite: one schema change instead of thousands).
type BulkEnsurer interface {
	EnsureSources(ctx context.Context, specs []SourceSpec) error
}

// LastTimer is implemented by stores that read the newest reading time of
// many sources at once (one statement instead of one per source): a
// server with 100 000 sources asks it once at start-up instead of on
// each source's first reading. Sources without readings are left out.
type LastTimer interface {
	LastTimes(ctx context.Context, sources []string) (map[string]time.Time, error)
}

// EnsureSources registers every source in specs, at once where the store
// can.
func EnsureSources(ctx context.Context, st Store, specs []SourceSpec) error {
	if b, ok := st.(BulkEnsurer); ok {
		return b.EnsureSources(ctx, specs)
	}
	for _, sp := range specs {
		if err := st.EnsureSource(ctx, sp.Name, sp.Timezone); err != nil {
			return err
		}
	}
	return nil
}

// Opener opens a store from its URL ("sqlite:///path/file.db", "postgres://…").
type Opener func(ctx context.Context, url string) (Store, error)

var openers = map[string]Opener{}

// Register makes a backend available for a URL scheme.
func Register(scheme string, o Opener) { openers[scheme] = o }

// Open opens the store a database URL names.
func Open(ctx context.Context, url string) (Store, error) {
	for scheme, o := range openers {
		if len(url) > len(scheme)+3 && url[:len(scheme)+3] == scheme+"://" {
			return o(ctx, url)
		}
	}
	return nil, errors.New("database " + Redact(url) + ": no backend for this scheme (want sqlite:// or postgres://)")
}

// Redact hides the password of a database URL (in the user info or as a
// password= query parameter) for messages.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable database URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxx")
	}
	if q := u.Query(); q.Has("password") {
		q.Set("password", "xxx")
		u.RawQuery = q.Encode()
	}
	return u.String()
}

// Deleter is implemented by stores that can delete readings (the delete
// verb: a device's glitch readings, e.g. from a clock that jumped to 2106).
type Deleter interface {
	// Delete removes the readings of device of source with from <= Time <
	// to, durably, and returns how many there were. The days it touched
	// get a new version (their cached summaries are not taken again); a
	// day left without readings is no longer listed by Days; the device's
	// count and first/last times (Latest, Sources) follow.
	Delete(ctx context.Context, source, device string, from, to time.Time) (int64, error)
}

// Reducer is implemented by stores that can thin out old readings
// (retention, [server.retention]): raw readings older than a horizon are
// replaced by one reduced reading (reading.Reduced) per device and UTC
// minute.
type Reducer interface {
	// Reduce replaces the raw readings of source with Time < before
	// (rounded down to a whole UTC minute) by the reduced readings fn
	// returns, at most one per device and minute. It works in small
	// transactions (ingest goes on meanwhile) and may stop after limit raw
	// readings (0: no limit), so a caller can go on later; a run after an
	// interruption continues where the last one stopped, and a second run
	// over the same horizon changes nothing. The days it touched get a new
	// version. Afterwards the source's reduced horizon is at least before:
	// an Insert of a raw reading older than it stores nothing and counts
	// the reading as present (the period is kept only as minutes); an
	// Insert of a reduced reading (migrate) stores it as such.
	Reduce(ctx context.Context, source string, before time.Time, limit int64, fn ReduceFunc) (ReduceResult, error)
	// Horizon is the time before which source holds only reduced
	// readings (zero when nothing was reduced).
	Horizon(ctx context.Context, source string) (time.Time, error)
}

// ReduceFunc reduces the raw readings of one device over whole UTC
// minutes, in time order: prev is the device's reading just before them
// (raw or reduced; nil when there is none), next its first reading after
// them (nil when there is none yet). It returns one reduced reading per
// minute that had raw readings, in time order.
type ReduceFunc func(prev *reading.Reading, raw []reading.Reading, next *reading.Reading) []reading.Reading

// ReduceResult counts what a Reduce did.
type ReduceResult struct {
	Raw     int64     // raw readings replaced
	Reduced int64     // reduced readings written
	Done    bool      // everything before the horizon is reduced
	Until   time.Time // the horizon reached so far
}

// HoldsReduced reports whether the readings of source from start on may
// include reduced minutes: the store reduces (Reducer) and start lies
// before the source's horizon. An unknown source holds none.
func HoldsReduced(ctx context.Context, st Store, source string, start time.Time) (bool, error) {
	rd, ok := st.(Reducer)
	if !ok {
		return false, nil
	}
	h, err := rd.Horizon(ctx, source)
	if errors.Is(err, ErrUnknownSource) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the reduced horizon of %s: %w", source, err)
	}
	return !h.IsZero() && start.Before(h), nil
}
