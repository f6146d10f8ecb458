// Package postgres is the scale-out store: readings in PostgreSQL through
// pgx, so several powermeter servers can share one database.
//
// The database URL is a libpq-style URL, "postgres://user@host/db?sslmode=…";
// pgx's own parameters (pool_max_conns, search_path, …) work as usual.
// Tables live in the first schema of the search_path.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/groupcommit"
)

func init() {
	store.Register("postgres", opener)
	store.Register("postgresql", opener)
}

func opener(ctx context.Context, url string) (store.Store, error) { return Open(ctx, url) }

// queryTimeout bounds every statement that is not a streaming Range.
const queryTimeout = 30 * time.Second

// Store is a PostgreSQL readings store. Safe for concurrent use, and for
// several Stores (processes) on one database.
type Store struct {
	// pool serves the group committers and the quick lookups and device
	// registrations an Insert needs; rpool serves the reads (and the
	// dashboard's day summaries). The URL's pool_max_conns is split
	// between them, so no number of slow or concurrent reads can take the
	// connections ingest needs.
	pool  *pgxpool.Pool
	rpool *pgxpool.Pool
	log   *slog.Logger

	mu      sync.RWMutex
	sources map[string]int32 // name → id (ids never change)
	zones   map[string]string
	devices map[devKey]int32 // (source id, name) → id
	names   map[int32]string // device id → name
	known   map[string]bool  // zones the server knows

	parts map[string]bool // partitions of chunks and minutes known to exist (by name)
	// emptyChecked is when a chunks partition behind a horizon was last
	// looked at for dropping (dropEmptyChunks), by name.
	emptyChecked map[string]time.Time
	dropListed   time.Time // when dropEmptyChunks last listed the partitions

	// gc is the group committer: it writes the next group while up to
	// writers-1 earlier ones wait for their commit.
	gc *groupcommit.Committer[*batch, *batch]
	// devReg registers new devices, many sources' at once.
	devReg *groupcommit.Committer[*devReq, *devReq]

	opts      Options
	closeOnce sync.Once
	lockKey   int32 // first key of the per-source fold locks (per schema)
	stop      chan struct{}
	folded    chan struct{} // closed when the background folder ended
}

// Options tune a Store; the zero value gives the defaults.
type Options struct {
	// FoldEvery is how often the background folder moves readings from
	// recent into chunks (default 1 min); negative: never (tests, tools
	// that call Fold themselves).
	FoldEvery time.Duration
	// FoldLag: hours are folded once they ended this long ago (default
	// 10 min).
	FoldLag time.Duration
}

type devKey struct {
	source int32
	name   string
}

// Open connects to the database named by url and brings its schema up to
// date.
func Open(ctx context.Context, url string) (*Store, error) {
	return OpenWith(ctx, url, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.FoldEvery == 0 {
		opts.FoldEvery = defaultFoldEvery
	}
	if opts.FoldLag == 0 {
		opts.FoldLag = defaultFoldLag
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: parsing the URL: %w", store.Redact(url), err)
	}
	// Insert promises durability: commit waits for the WAL flush unless the
	// URL explicitly chooses otherwise.
	if _, set := cfg.ConnConfig.RuntimeParams["synchronous_commit"]; !set {
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	}
	// Every statement here is a key lookup or the group insert: a cached
	// generic plan is right for all of them and saves planning each call.
	if _, set := cfg.ConnConfig.RuntimeParams["plan_cache_mode"]; !set {
		cfg.ConnConfig.RuntimeParams["plan_cache_mode"] = "force_generic_plan"
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	// Half the connections (at least one) commit, sources in parallel; the
	// rest (at least one) read.
	writers := max(1, cfg.MaxConns/2)
	wcfg, rcfg := cfg.Copy(), cfg.Copy()
	wcfg.MaxConns, rcfg.MaxConns = writers, max(1, cfg.MaxConns-writers)
	wcfg.MinConns, rcfg.MinConns = min(cfg.MinConns, wcfg.MaxConns), min(cfg.MinConns, rcfg.MaxConns)
	pool, err := pgxpool.NewWithConfig(ctx, wcfg)
	if err != nil {
		return nil, fmt.Errorf("postgres %s: %w", store.Redact(url), err)
	}
	rpool, err := pgxpool.NewWithConfig(ctx, rcfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres %s: %w", store.Redact(url), err)
	}
	mctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := migrate(mctx, pool); err != nil {
		pool.Close()
		rpool.Close()
		return nil, fmt.Errorf("postgres %s: %w", store.Redact(url), err)
	}
	s := &Store{
		pool:         pool,
		rpool:        rpool,
		log:          slog.Default().With("store", "postgres"),
		sources:      map[string]int32{},
		zones:        map[string]string{},
		devices:      map[devKey]int32{},
		names:        map[int32]string{},
		known:        map[string]bool{},
		parts:        map[string]bool{},
		emptyChecked: map[string]time.Time{},
		opts:         opts,
		stop:         make(chan struct{}),
		folded:       make(chan struct{}),
	}
	if err := pool.QueryRow(mctx, `SELECT hashtext('powermeter fold ' || current_schema())`).Scan(&s.lockKey); err != nil {
		pool.Close()
		rpool.Close()
		return nil, fmt.Errorf("postgres %s: %w", store.Redact(url), err)
	}
	if opts.FoldEvery > 0 {
		go s.folder(s.stop, s.folded)
	} else {
		close(s.folded)
	}
	s.devReg = groupcommit.New(s.beginDevices, groupcommit.Options{MaxItems: 5000, TxTimeout: queryTimeout, Log: s.log})
	s.gc = groupcommit.New(s.beginGroup, groupcommit.Options{MaxItems: maxGroup, TxTimeout: queryTimeout, Log: s.log, InFlight: int(writers)})
	return s, nil
}

// EnsureSource registers a source with its IANA zone (idempotent); a changed
// zone is updated.
func (s *Store) EnsureSource(ctx context.Context, name, timezone string) error {
	if name == "" {
		return errors.New("ensure source: empty name")
	}
	if _, err := time.LoadLocation(timezone); err != nil || timezone == "" || timezone == "Local" {
		return fmt.Errorf("ensure source %q: time zone %q is not an IANA zone name", name, timezone)
	}
	s.mu.RLock()
	_, known := s.sources[name]
	same := known && s.zones[name] == timezone
	s.mu.RUnlock()
	if same {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if err := s.checkZone(ctx, timezone); err != nil {
		return fmt.Errorf("ensure source %q: %w", name, err)
	}
	var id int32
	var zone string
	// Fast path (a server restarting with many sources): no write.
	err := s.pool.QueryRow(ctx, `SELECT id, timezone FROM sources WHERE name = $1`, name).Scan(&id, &zone)
	if err == nil && zone == timezone {
		s.mu.Lock()
		s.sources[name] = id
		s.zones[name] = timezone
		s.mu.Unlock()
		return nil
	}
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("ensure source %q: %w", name, err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var old string
		err := tx.QueryRow(ctx, `SELECT id, timezone FROM sources WHERE name = $1 FOR UPDATE`, name).Scan(&id, &old)
		if errors.Is(err, pgx.ErrNoRows) {
			err = tx.QueryRow(ctx, `INSERT INTO sources (name, timezone) VALUES ($1, $2)
				ON CONFLICT (name) DO NOTHING RETURNING id`, name, timezone).Scan(&id)
			if err == nil {
				return nil
			}
			if errors.Is(err, pgx.ErrNoRows) { // another process created it just now
				err = tx.QueryRow(ctx, `SELECT id, timezone FROM sources WHERE name = $1 FOR UPDATE`, name).Scan(&id, &old)
			}
		}
		if err != nil || old == timezone {
			return err
		}
		return refileDays(ctx, tx, id, timezone)
	})
	if err != nil {
		return fmt.Errorf("ensure source %q: %w", name, err)
	}
	s.mu.Lock()
	s.sources[name] = id
	s.zones[name] = timezone
	s.mu.Unlock()
	return nil
}

// EnsureSources registers many sources at once (store.BulkEnsurer): the
// new ones with one statement per 10 000, instead of a round trip each.
// Sources whose zone changed are refiled one by one (EnsureSource).
func (s *Store) EnsureSources(ctx context.Context, specs []store.SourceSpec) error {
	zones := map[string]bool{}
	for _, sp := range specs {
		if sp.Name == "" {
			return errors.New("ensure sources: empty name")
		}
		if zones[sp.Timezone] {
			continue
		}
		if _, err := time.LoadLocation(sp.Timezone); err != nil || sp.Timezone == "" || sp.Timezone == "Local" {
			return fmt.Errorf("ensure source %q: time zone %q is not an IANA zone name", sp.Name, sp.Timezone)
		}
		zones[sp.Timezone] = true
	}
	ctx, cancel := context.WithTimeout(ctx, 5*queryTimeout)
	defer cancel()
	for z := range zones {
		if err := s.checkZone(ctx, z); err != nil {
			return fmt.Errorf("ensure sources: %w", err)
		}
	}
	const chunk = 10000
	var changed []store.SourceSpec
	for lo := 0; lo < len(specs); lo += chunk {
		part := specs[lo:min(lo+chunk, len(specs))]
		names := make([]string, len(part))
		tzs := make([]string, len(part))
		want := make(map[string]string, len(part))
		for i, sp := range part {
			names[i], tzs[i] = sp.Name, sp.Timezone
			want[sp.Name] = sp.Timezone
		}
		if _, err := s.pool.Exec(ctx, `INSERT INTO sources (name, timezone)
			SELECT n, z FROM unnest($1::text[], $2::text[]) AS u(n, z) ORDER BY n
			ON CONFLICT (name) DO NOTHING`, names, tzs); err != nil {
			return fmt.Errorf("ensure sources: registering %d sources: %w", len(part), err)
		}
		// A key lookup per name: "name = ANY ($1)" with a parameter array
		// plans as a scan of sources comparing each row with every name.
		rows, err := s.pool.Query(ctx, `SELECT s.id, s.name, s.timezone FROM unnest($1::text[]) AS u(n)
			JOIN LATERAL (SELECT id, name, timezone FROM sources WHERE name = u.n) s ON true`, names)
		if err != nil {
			return fmt.Errorf("ensure sources: %w", err)
		}
		var id int32
		var name, zone string
		s.mu.Lock()
		_, err = pgx.ForEachRow(rows, []any{&id, &name, &zone}, func() error {
			if want[name] != zone {
				changed = append(changed, store.SourceSpec{Name: name, Timezone: want[name]})
				return nil
			}
			s.sources[name] = id
			s.zones[name] = zone
			return nil
		})
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("ensure sources: %w", err)
		}
	}
	for _, sp := range changed {
		if err := s.EnsureSource(ctx, sp.Name, sp.Timezone); err != nil {
			return err
		}
	}
	return nil
}

// checkZone makes sure the server knows the zone too: days are filed in
// SQL. (pg_timezone_names reads the zone files: asked once per zone.)
func (s *Store) checkZone(ctx context.Context, zone string) error {
	s.mu.RLock()
	ok := s.known[zone]
	s.mu.RUnlock()
	if ok {
		return nil
	}
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_timezone_names WHERE name = $1)`, zone).Scan(&ok); err != nil {
		return fmt.Errorf("checking the time zone: %w", err)
	}
	if !ok {
		return fmt.Errorf("time zone %q is unknown to the PostgreSQL server", zone)
	}
	s.mu.Lock()
	s.known[zone] = true
	s.mu.Unlock()
	return nil
}

// CommitStats tells what the group committer did.
func (s *Store) CommitStats() groupcommit.Stats {
	return s.gc.Stats()
}

// refileDays moves a source to a new zone: its days are rebuilt from the
// readings under the new zone, all with a fresh version, so no summary
// computed under the old zone is ever taken. The SHARE lock on days waits
// for running inserts and holds new ones (every server's) until the
// commit; they then read the new zone.
func refileDays(ctx context.Context, tx pgx.Tx, id int32, timezone string) error {
	if _, err := tx.Exec(ctx, `LOCK TABLE days IN SHARE MODE`); err != nil {
		return fmt.Errorf("locking days: %w", err)
	}
	var v int64
	if err := tx.QueryRow(ctx, `UPDATE sources SET timezone = $2 WHERE id = $1 RETURNING `+newDayVersion,
		id, timezone).Scan(&v); err != nil {
		return fmt.Errorf("changing the zone: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM days WHERE source_id = $1`, id); err != nil {
		return fmt.Errorf("refiling days: %w", err)
	}
	// A chunk (or a row of minutes) spans less than a day, and local days are monotonic in time:
	// its first and last readings name every day it touches.
	if _, err := tx.Exec(ctx, `INSERT INTO days (source_id, day, version)
		SELECT $1, d, $3 FROM (
			SELECT (t AT TIME ZONE $2)::date FROM recent WHERE source_id = $1
			UNION SELECT ((hour + offs[1] * interval '1 second') AT TIME ZONE $2)::date FROM chunks WHERE source_id = $1
			UNION SELECT ((hour + offs[array_upper(offs, 1)] * interval '1 second') AT TIME ZONE $2)::date FROM chunks WHERE source_id = $1
			UNION SELECT ((hour + coalesce(offs[1], 0) * interval '1 second') AT TIME ZONE $2)::date FROM minutes WHERE source_id = $1
			UNION SELECT ((hour + coalesce(offs[array_upper(offs, 1)], 3540) * interval '1 second') AT TIME ZONE $2)::date FROM minutes WHERE source_id = $1
		) AS x(d) GROUP BY d ORDER BY d`,
		id, timezone, v); err != nil {
		return fmt.Errorf("refiling days: %w", err)
	}
	return nil
}

// sourceID resolves a source name, consulting the database when another
// process registered it.
func (s *Store) sourceID(ctx context.Context, name string) (int32, error) {
	s.mu.RLock()
	id, ok := s.sources[name]
	s.mu.RUnlock()
	if ok {
		return id, nil
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var zone string
	err := s.pool.QueryRow(ctx, `SELECT id, timezone FROM sources WHERE name = $1`, name).Scan(&id, &zone)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, fmt.Errorf("source %q: %w", name, store.ErrUnknownSource)
	}
	if err != nil {
		return 0, fmt.Errorf("looking up source %q: %w", name, err)
	}
	s.mu.Lock()
	s.sources[name] = id
	s.zones[name] = zone
	s.mu.Unlock()
	return id, nil
}

// deviceIDs resolves (and creates) the ids of the named devices of a source.
// Creation commits on its own: a device row without readings is invisible.
func (s *Store) deviceIDs(ctx context.Context, source int32, names []string) (map[string]int32, error) {
	ids := make(map[string]int32, len(names))
	var missing []string
	s.mu.RLock()
	for _, n := range names {
		if id, ok := s.devices[devKey{source, n}]; ok {
			ids[n] = id
		} else if !slices.Contains(missing, n) {
			missing = append(missing, n)
		}
	}
	s.mu.RUnlock()
	if len(missing) == 0 {
		return ids, nil
	}
	r, err := s.devReg.Do(ctx, &devReq{source: source, names: missing}, len(missing))
	if err != nil {
		return nil, fmt.Errorf("registering devices: %w", err)
	}
	for n, id := range r.ids {
		ids[n] = id
	}
	return ids, nil
}

// loadDevices reads device ids of a source (only the named ones unless names
// is nil) into the cache and into into (when not nil).
func (s *Store) loadDevices(ctx context.Context, source int32, names []string, into map[string]int32) error {
	var rows pgx.Rows
	var err error
	if names == nil {
		rows, err = s.pool.Query(ctx, `SELECT id, name FROM devices WHERE source_id = $1`, source)
	} else {
		rows, err = s.pool.Query(ctx, `SELECT id, name FROM devices WHERE source_id = $1 AND name = ANY($2)`, source, names)
	}
	if err != nil {
		return fmt.Errorf("reading devices: %w", err)
	}
	var id int32
	var name string
	_, err = pgx.ForEachRow(rows, []any{&id, &name}, func() error {
		s.mu.Lock()
		s.devices[devKey{source, name}] = id
		s.names[id] = name
		s.mu.Unlock()
		if into != nil {
			into[name] = id
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading devices: %w", err)
	}
	return nil
}

// deviceName names a device id, reloading the source's devices once when
// another process created it.
func (s *Store) deviceName(ctx context.Context, source, id int32) (string, error) {
	s.mu.RLock()
	n, ok := s.names[id]
	s.mu.RUnlock()
	if ok {
		return n, nil
	}
	if err := s.loadDevices(ctx, source, nil, nil); err != nil {
		return "", err
	}
	s.mu.RLock()
	n, ok = s.names[id]
	s.mu.RUnlock()
	if !ok {
		return "", fmt.Errorf("device id %d: not found", id)
	}
	return n, nil
}

// Insert stores readings for source durably (see store.Store). Concurrent
// calls share one transaction.
func (s *Store) Insert(ctx context.Context, source string, rs []reading.Reading) (store.InsertResult, error) {
	if len(rs) == 0 {
		if _, err := s.sourceID(ctx, source); err != nil {
			return store.InsertResult{}, fmt.Errorf("insert: %w", err)
		}
		return store.InsertResult{}, nil
	}
	rows := make([]row, len(rs))
	names := make([]string, 0, 4)
	for i := range rs {
		w, err := encode(&rs[i])
		if err != nil {
			return store.InsertResult{}, fmt.Errorf("insert: reading %d: %w", i, err)
		}
		rows[i] = w
		if !slices.Contains(names, rs[i].Device) {
			names = append(names, rs[i].Device)
		}
	}
	sid, err := s.sourceID(ctx, source)
	if err != nil {
		return store.InsertResult{}, fmt.Errorf("insert: %w", err)
	}
	ids, err := s.deviceIDs(ctx, sid, names)
	if err != nil {
		return store.InsertResult{}, fmt.Errorf("insert into %q: %w", source, err)
	}
	if slices.ContainsFunc(rs, func(r reading.Reading) bool { return r.Reduced != nil }) {
		res, err := s.insertReduced(ctx, sid, rs, ids)
		if err != nil {
			return store.InsertResult{}, fmt.Errorf("insert into %q: %w", source, err)
		}
		return res, nil
	}
	b := &batch{source: sid, rows: rows, devices: make([]int32, len(rs))}
	for i := range rs {
		b.devices[i] = ids[rs[i].Device]
	}
	b, err = s.gc.Do(ctx, b, len(rows))
	if err != nil {
		return store.InsertResult{}, fmt.Errorf("insert into %q: %w", source, err)
	}
	return b.res, nil
}

// Sources lists the registered sources by name with their counts. Names
// sort by bytes (COLLATE "C"), as Go and SQLite sort them, whatever the
// database's collation.
func (s *Store) Sources(ctx context.Context) ([]store.SourceInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rows, err := s.rpool.Query(ctx, `
		SELECT s.name, s.timezone, coalesce(sum(d.n), 0)::bigint, min(d.first_t), max(d.last_t),
		       coalesce(array_agg(d.name ORDER BY d.name COLLATE "C") FILTER (WHERE d.n > 0), '{}')
		FROM sources s LEFT JOIN devices d ON d.source_id = s.id
		GROUP BY s.id ORDER BY s.name COLLATE "C"`)
	if err != nil {
		return nil, fmt.Errorf("listing sources: %w", err)
	}
	out := []store.SourceInfo{}
	var si store.SourceInfo
	var first, last *time.Time
	_, err = pgx.ForEachRow(rows, []any{&si.Name, &si.Timezone, &si.Count, &first, &last, &si.Devices}, func() error {
		x := si
		x.First, x.Last = time.Time{}, time.Time{}
		if first != nil {
			x.First = first.UTC()
		}
		if last != nil {
			x.Last = last.UTC()
		}
		out = append(out, x)
		si.Devices = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing sources: %w", err)
	}
	return out, nil
}

// LastTime is the newest reading time of the source.
func (s *Store) LastTime(ctx context.Context, source string) (time.Time, bool, error) {
	sid, err := s.sourceID(ctx, source)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("last time: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var last *time.Time
	if err := s.rpool.QueryRow(ctx, `SELECT max(last_t) FROM devices WHERE source_id = $1`, sid).Scan(&last); err != nil {
		return time.Time{}, false, fmt.Errorf("last time of %q: %w", source, err)
	}
	if last == nil {
		return time.Time{}, false, nil
	}
	return last.UTC(), true, nil
}

// LastTimes implements store.LastTimer for the registered sources among
// sources, and reads their devices' ids into the cache on the way: the
// first reading of each after a start then needs no look-up. One
// statement per 10 000 sources, each a key lookup (LATERAL).
func (s *Store) LastTimes(ctx context.Context, sources []string) (map[string]time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*queryTimeout)
	defer cancel()
	out := make(map[string]time.Time, len(sources))
	const chunk = 10000
	for lo := 0; lo < len(sources); lo += chunk {
		ids := make([]int32, 0, min(chunk, len(sources)-lo))
		name := make(map[int32]string, cap(ids))
		s.mu.RLock()
		for _, n := range sources[lo:min(lo+chunk, len(sources))] {
			if id, ok := s.sources[n]; ok {
				ids = append(ids, id)
				name[id] = n
			}
		}
		s.mu.RUnlock()
		rows, err := s.rpool.Query(ctx, `SELECT u.id, d.id, d.name, d.last_t
			FROM unnest($1::int4[]) AS u(id)
			JOIN LATERAL (SELECT id, name, last_t FROM devices WHERE source_id = u.id) d ON true`, ids)
		if err != nil {
			return nil, fmt.Errorf("last times of %d sources: %w", len(ids), err)
		}
		type dev struct {
			source, id int32
			name       string
		}
		var devs []dev
		var d dev
		var last *time.Time
		_, err = pgx.ForEachRow(rows, []any{&d.source, &d.id, &d.name, &last}, func() error {
			devs = append(devs, d)
			if last != nil && last.After(out[name[d.source]]) {
				out[name[d.source]] = last.UTC()
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("last times of %d sources: %w", len(ids), err)
		}
		s.mu.Lock()
		for _, d := range devs {
			s.devices[devKey{d.source, d.name}] = d.id
			s.names[d.id] = d.name
		}
		s.mu.Unlock()
	}
	return out, nil
}

const dayLayout = "2006-01-02"

// Days returns the days from..to (inclusive) that have readings.
func (s *Store) Days(ctx context.Context, source, from, to string) ([]store.Day, error) {
	return s.days(ctx, source, from, to, listDaysSQL)
}

// listVersionsSQL is listDaysSQL without the summaries and their versions
// (store.DayVersioner).
var listVersionsSQL = strings.Replace(listDaysSQL, "d.summary, d.summary_version", "NULL::bytea, 0::int8", 1)

// DayVersions implements store.DayVersioner: Days without the summaries
// (a year of them is ≈ 1 MB to detoast and send when the caller has them
// decoded in memory already).
func (s *Store) DayVersions(ctx context.Context, source, from, to string) ([]store.Day, error) {
	return s.days(ctx, source, from, to, listVersionsSQL)
}

// days lists the days from..to with query (listDaysSQL or listVersionsSQL).
func (s *Store) days(ctx context.Context, source, from, to, query string) ([]store.Day, error) {
	f, err1 := time.Parse(dayLayout, from)
	t, err2 := time.Parse(dayLayout, to)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("days: want YYYY-MM-DD: %w", err)
	}
	sid, err := s.sourceID(ctx, source)
	if err != nil {
		return nil, fmt.Errorf("days: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rows, err := s.rpool.Query(ctx, query, sid, f.Format(dayLayout), t.Format(dayLayout))
	if err != nil {
		return nil, fmt.Errorf("days of %q: %w", source, err)
	}
	out := []store.Day{}
	var d store.Day
	_, err = pgx.ForEachRow(rows, []any{&d.Day, &d.Version, &d.Summary, &d.SummaryVersion}, func() error {
		out = append(out, d)
		d.Summary = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("days of %q: %w", source, err)
	}
	return out, nil
}

// PutDaySummary stores summary for day if the day is still at version.
func (s *Store) PutDaySummary(ctx context.Context, source, day string, version int64, summary []byte) (bool, error) {
	if _, err := time.Parse(dayLayout, day); err != nil {
		return false, fmt.Errorf("put day summary: want YYYY-MM-DD: %w", err)
	}
	sid, err := s.sourceID(ctx, source)
	if err != nil {
		return false, fmt.Errorf("put day summary: %w", err)
	}
	if summary == nil {
		summary = []byte{}
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	// Under the source's shared fold lock, in one implicit transaction:
	// a fold moving the day's readings meanwhile would leave the version
	// as it is, but the update, re-checking the days row the fold wrote,
	// would count the moved readings from its older snapshot of recent
	// again and refuse a current summary.
	var b pgx.Batch
	b.Queue(`SELECT pg_advisory_xact_lock_shared($1::int4, $2::int4)`, s.lockKey, sid)
	b.Queue(putSummarySQL, sid, day, version, summary)
	br := s.rpool.SendBatch(ctx, &b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return false, fmt.Errorf("put day summary %s of %q: taking the fold lock: %w", day, source, err)
	}
	tag, err := br.Exec()
	if err != nil {
		return false, fmt.Errorf("put day summary %s of %q: %w", day, source, err)
	}
	if err := br.Close(); err != nil {
		return false, fmt.Errorf("put day summary %s of %q: %w", day, source, err)
	}
	return tag.RowsAffected() == 1, nil
}

// Close waits for pending inserts and closes the connections.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { close(s.stop) })
	<-s.folded
	s.gc.Close()
	s.devReg.Close()
	s.pool.Close()
	s.rpool.Close()
	return nil
}
