package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/groupcommit"
)

// batch is one Insert call, validated and encoded by the caller's goroutine.
type batch struct {
	source string
	rows   []row
}

// Statements of the write path. The frequent ones are prepared once on
// the writer connection (at Open, and the insert of each source at
// EnsureSource); devices are rare and parsed when they come.
const (
	qSource   = "SELECT id, timezone FROM sources WHERE name = ?"
	qDevice   = "SELECT id FROM devices WHERE src = ? AND name = ?"
	qAddDev   = "INSERT INTO devices (src, id, name) SELECT ?1, coalesce(max(id) + 1, 0), ?2 FROM devices WHERE src = ?1 RETURNING id"
	qDevStats = `UPDATE devices SET n = n + ?1,
		first_ts = min(coalesce(first_ts, ?2), ?2), last_ts = max(coalesce(last_ts, ?3), ?3)
		WHERE src = ?4 AND id = ?5`
	qClock = "UPDATE sources SET vclock = vclock + 1 WHERE id = ? RETURNING vclock"
	qDay   = `INSERT INTO days (src, day, version) VALUES (?, ?, ?)
		ON CONFLICT (src, day) DO UPDATE SET version = excluded.version`
)

func insertQuery(src int64) string {
	return "INSERT OR IGNORE INTO " + readings(src) + " (ts, dev, p, v) VALUES (?, ?, ?, ?)"
}

// prepare readies the write statements on the writer connection (which
// must be free: no transaction open).
func (s *Store) prepare(ctx context.Context, queries ...string) error {
	for _, q := range queries {
		s.mu.Lock()
		_, ok := s.stmts[q]
		s.mu.Unlock()
		if ok {
			continue
		}
		st, err := s.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		s.mu.Lock()
		if _, dup := s.stmts[q]; dup {
			st.Close() // prepared meanwhile by another caller
		} else {
			s.stmts[q] = st
		}
		s.mu.Unlock()
	}
	return nil
}

// stmt returns q for use in tx: the prepared statement when there is one
// (no parsing), else q prepared for this transaction only.
func (s *Store) stmt(ctx context.Context, tx *sql.Tx, q string) (*sql.Stmt, error) {
	s.mu.Lock()
	st, ok := s.stmts[q]
	s.mu.Unlock()
	if ok {
		return tx.StmtContext(ctx, st), nil
	}
	st, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", q, err)
	}
	return st, nil
}

// maxDevices bounds the devices of one source (Range packs the id in 16
// bits).
const maxDevices = 1 << 16

// ErrClosed is returned by writes after Close.
var ErrClosed = errors.New("sqlite store: closed")

// Insert implements store.Store.
func (s *Store) Insert(ctx context.Context, source string, rs []reading.Reading) (store.InsertResult, error) {
	if err := ctx.Err(); err != nil {
		return store.InsertResult{}, err
	}
	b := &batch{source: source, rows: make([]row, 0, len(rs))}
	var errs []error
	for i := range rs {
		r := &rs[i]
		err := r.Validate()
		var rw row
		if err == nil {
			rw, err = encodeRow(r)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("reading %d (device %q, time %s): %w", i, r.Device, r.Time.UTC().Format(time.RFC3339), err))
			continue
		}
		b.rows = append(b.rows, rw)
	}
	if len(errs) > 0 {
		return store.InsertResult{}, fmt.Errorf("insert into %q: batch refused, nothing stored: %w", source, errors.Join(errs...))
	}
	if len(rs) == 0 {
		_, err := s.sourceID(ctx, source)
		return store.InsertResult{}, err
	}
	res, err := s.gc.Do(ctx, b, len(b.rows))
	if errors.Is(err, groupcommit.ErrClosed) {
		err = ErrClosed
	}
	if err != nil {
		return store.InsertResult{}, fmt.Errorf("insert into %q: %w", source, err)
	}
	return res, nil
}

// wtx is one (possibly shared) write transaction of the group committer.
type wtx struct {
	s       *Store
	tx      *sql.Tx
	srcs    map[string]*txSource
	newDevs map[devKey]int64
	stats   map[devKey]*devStat // readings inserted per device
}

type txSource struct {
	id   int64
	ins  *sql.Stmt // insert into the source's readings table
	loc  *time.Location
	days map[string]struct{} // local days that got a new reading
	// the last day seen, to skip formatting for runs in one day
	dayStart, dayEnd int64 // ts units
	day              string
}

type devStat struct {
	src, dev    int64
	n           int64
	first, last int64
}

func (s *Store) begin(ctx context.Context) (groupcommit.Tx[*batch, store.InsertResult], error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &wtx{
		s:       s,
		tx:      tx,
		srcs:    map[string]*txSource{},
		newDevs: map[devKey]int64{},
		stats:   map[devKey]*devStat{},
	}, nil
}

// source reads the source's id and zone inside the transaction, so a zone
// changed by EnsureSource (even from another process) is seen.
func (t *wtx) source(ctx context.Context, name string) (*txSource, error) {
	if src, ok := t.srcs[name]; ok {
		return src, nil
	}
	var id int64
	var zone string
	q, err := t.s.stmt(ctx, t.tx, qSource)
	if err != nil {
		return nil, err
	}
	err = q.QueryRowContext(ctx, name).Scan(&id, &zone)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, groupcommit.Rejected(fmt.Errorf("source %q: %w", name, store.ErrUnknownSource))
	}
	if err != nil {
		return nil, fmt.Errorf("look up source %q: %w", name, err)
	}
	loc, err := t.s.location(zone)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", name, err)
	}
	ins, err := t.s.stmt(ctx, t.tx, insertQuery(id))
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", name, err)
	}
	src := &txSource{id: id, ins: ins, loc: loc, days: map[string]struct{}{}, dayStart: 1, dayEnd: 0}
	t.srcs[name] = src
	return src, nil
}

// device returns the id of a device, creating it inside the transaction.
func (t *wtx) device(ctx context.Context, src int64, name string) (int64, error) {
	k := devKey{src, name}
	t.s.mu.Lock()
	id, ok := t.s.devIDs[k]
	t.s.mu.Unlock()
	if ok {
		return id, nil
	}
	if id, ok := t.newDevs[k]; ok {
		return id, nil
	}
	err := t.tx.QueryRowContext(ctx, qDevice, src, name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		err = t.tx.QueryRowContext(ctx, qAddDev, src, name).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("device %q: %w", name, err)
	}
	if id >= maxDevices {
		return 0, fmt.Errorf("device %q: the source has %d devices already, the most it can have", name, maxDevices)
	}
	t.newDevs[k] = id
	return id, nil
}

// dayOf returns the local day of ts in the source's zone. It remembers the
// bounds of the last day so runs of readings in one day cost no zone math.
func (src *txSource) dayOf(ts int64) string {
	if ts >= src.dayStart && ts < src.dayEnd {
		return src.day
	}
	lt := time.Unix(ts+epoch, 0).In(src.loc)
	y, m, d := lt.Date()
	src.day = lt.Format(time.DateOnly)
	start := time.Date(y, m, d, 0, 0, 0, 0, src.loc).Unix() - epoch
	end := time.Date(y, m, d+1, 0, 0, 0, 0, src.loc).Unix() - epoch
	// Keep the bounds only if they really are where the local date
	// changes (a zone that jumps back over midnight makes a day that is
	// not one interval; time.Date may pick either side of such a jump).
	date := func(x int64) string { return time.Unix(x+epoch, 0).In(src.loc).Format(time.DateOnly) }
	if start <= ts && ts < end && date(start) == src.day && date(start-1) != src.day &&
		date(end-1) == src.day && date(end) != src.day {
		src.dayStart, src.dayEnd = start, end
	} else {
		src.dayStart, src.dayEnd = 1, 0 // no cached interval
	}
	return src.day
}

// Apply writes one batch. A failure part way leaves the transaction to be
// rolled back by the committer, so the batch is all or nothing.
func (t *wtx) Apply(ctx context.Context, b *batch) (store.InsertResult, error) {
	var res store.InsertResult
	src, err := t.source(ctx, b.source)
	if err != nil {
		return res, err
	}
	for i := range b.rows {
		r := &b.rows[i]
		dev, err := t.device(ctx, src.id, r.dev)
		if err != nil {
			return res, err
		}
		out, err := src.ins.ExecContext(ctx, r.ts, dev, r.p, r.v)
		if err != nil {
			return res, fmt.Errorf("insert reading: %w", err)
		}
		n, err := out.RowsAffected()
		if err != nil {
			return res, fmt.Errorf("insert reading: %w", err)
		}
		if n == 0 {
			res.Present++
			continue
		}
		res.Inserted++
		k := devKey{src.id, r.dev}
		st := t.stats[k]
		if st == nil {
			st = &devStat{src: src.id, dev: dev, first: r.ts, last: r.ts}
			t.stats[k] = st
		}
		st.n++
		st.first = min(st.first, r.ts)
		st.last = max(st.last, r.ts)
		src.days[src.dayOf(r.ts)] = struct{}{}
	}
	return res, nil
}

// Commit updates the per-device counters and bumps the versions of the
// touched days, then commits.
func (t *wtx) Commit(ctx context.Context) error {
	upd, err := t.s.stmt(ctx, t.tx, qDevStats)
	if err != nil {
		return err
	}
	for _, st := range t.stats {
		if _, err := upd.ExecContext(ctx, st.n, st.first, st.last, st.src, st.dev); err != nil {
			return fmt.Errorf("update device counters: %w", err)
		}
	}
	for _, src := range t.srcs {
		if len(src.days) == 0 {
			continue
		}
		v, err := t.s.bumpClock(ctx, t.tx, src.id)
		if err != nil {
			return err
		}
		for day := range src.days {
			if err := t.s.setDayVersion(ctx, t.tx, src.id, day, v); err != nil {
				return err
			}
		}
	}
	if err := t.tx.Commit(); err != nil {
		return err
	}
	if len(t.newDevs) > 0 {
		t.s.mu.Lock()
		for k, id := range t.newDevs {
			t.s.devIDs[k] = id
		}
		t.s.mu.Unlock()
	}
	return nil
}

// Rollback implements groupcommit.Tx.
func (t *wtx) Rollback() error {
	err := t.tx.Rollback()
	if errors.Is(err, sql.ErrTxDone) {
		return nil
	}
	return err
}

// bumpClock hands out the next day version of a source.
func (s *Store) bumpClock(ctx context.Context, tx *sql.Tx, src int64) (int64, error) {
	q, err := s.stmt(ctx, tx, qClock)
	if err != nil {
		return 0, err
	}
	var v int64
	if err := q.QueryRowContext(ctx, src).Scan(&v); err != nil {
		return 0, fmt.Errorf("bump day version: %w", err)
	}
	return v, nil
}

func (s *Store) setDayVersion(ctx context.Context, tx *sql.Tx, src int64, day string, v int64) error {
	q, err := s.stmt(ctx, tx, qDay)
	if err != nil {
		return err
	}
	if _, err := q.ExecContext(ctx, src, day, v); err != nil {
		return fmt.Errorf("bump version of day %s: %w", day, err)
	}
	return nil
}

// EnsureSource implements store.Store. A changed zone refiles the source's
// days under the new zone (every day gets a new version, so summaries
// computed under the old zone are never taken).
func (s *Store) EnsureSource(ctx context.Context, name, timezone string) error {
	if name == "" {
		return errors.New("ensure source: empty name")
	}
	loc, err := s.location(timezone)
	if err != nil {
		return fmt.Errorf("ensure source %q: %w", name, err)
	}
	// Fast path without the write lock: the source is there, zone unchanged.
	var id int64
	var old string
	err = s.r.QueryRowContext(ctx, qSource, name).Scan(&id, &old)
	if err == nil && old == timezone {
		s.mu.Lock()
		s.srcIDs[name] = id
		s.mu.Unlock()
		return s.prepare(ctx, insertQuery(id))
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ensure source %q: begin: %w", name, err)
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, qSource, name).Scan(&id, &old)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if err := tx.QueryRowContext(ctx, "INSERT INTO sources (name, timezone) VALUES (?, ?) RETURNING id", name, timezone).Scan(&id); err != nil {
			return fmt.Errorf("ensure source %q: insert: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, readingsTable(id)); err != nil {
			return fmt.Errorf("ensure source %q: create its readings table: %w", name, err)
		}
	case err != nil:
		return fmt.Errorf("ensure source %q: %w", name, err)
	case old == timezone:
		s.mu.Lock()
		s.srcIDs[name] = id
		s.mu.Unlock()
		tx.Rollback()
		return s.prepare(ctx, insertQuery(id))
	default:
		if _, err := tx.ExecContext(ctx, "UPDATE sources SET timezone = ? WHERE id = ?", timezone, id); err != nil {
			return fmt.Errorf("ensure source %q: update zone: %w", name, err)
		}
		if err := s.refileDays(ctx, tx, id, loc); err != nil {
			return fmt.Errorf("ensure source %q: %w", name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ensure source %q: commit: %w", name, err)
	}
	s.mu.Lock()
	s.srcIDs[name] = id
	s.mu.Unlock()
	return s.prepare(ctx, insertQuery(id))
}

// refileDays rebuilds the day list of a source for a new zone. It walks the
// readings day by day (one index seek per day with readings).
func (s *Store) refileDays(ctx context.Context, tx *sql.Tx, src int64, loc *time.Location) error {
	if _, err := tx.ExecContext(ctx, "DELETE FROM days WHERE src = ?", src); err != nil {
		return fmt.Errorf("refile days: %w", err)
	}
	v, err := s.bumpClock(ctx, tx, src)
	if err != nil {
		return err
	}
	next, err := tx.PrepareContext(ctx, "SELECT ts FROM "+readings(src)+" WHERE ts >= ? ORDER BY ts LIMIT 1")
	if err != nil {
		return fmt.Errorf("refile days: %w", err)
	}
	defer next.Close()
	d := &txSource{loc: loc, dayStart: 1}
	from := int64(-1 << 62)
	for {
		var ts int64
		err := next.QueryRowContext(ctx, from).Scan(&ts)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("refile days: %w", err)
		}
		if err := s.setDayVersion(ctx, tx, src, d.dayOf(ts), v); err != nil {
			return err
		}
		from = max(d.dayEnd, ts+1) // the next day, or the next reading for odd days
	}
}

// PutDaySummary implements store.Store.
func (s *Store) PutDaySummary(ctx context.Context, source, day string, version int64, summary []byte) (bool, error) {
	if _, err := time.Parse(time.DateOnly, day); err != nil {
		return false, fmt.Errorf("put day summary: day %q: want YYYY-MM-DD", day)
	}
	id, err := s.sourceID(ctx, source)
	if err != nil {
		return false, err
	}
	if summary == nil {
		summary = []byte{}
	}
	out, err := s.w.ExecContext(ctx, "UPDATE days SET summary = ?, summary_version = version WHERE src = ? AND day = ? AND version = ?",
		summary, id, day, version)
	if err != nil {
		return false, fmt.Errorf("put day summary %s %s: %w", source, day, err)
	}
	n, err := out.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("put day summary %s %s: %w", source, day, err)
	}
	return n == 1, nil
}
