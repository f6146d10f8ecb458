package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
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
	qSource = "SELECT id, timezone FROM sources WHERE name = ?"
	// the group commit's look-up also reads the reduced horizon, so a raw
	// reading older than it is refused without a look at the readings
	qSourceTx = "SELECT id, timezone, coalesce(reduced_before, -1 << 62) FROM sources WHERE name = ?"
	qDevice   = "SELECT id FROM devices WHERE src = ? AND name = ?"
	qAddDev   = "INSERT INTO devices (src, id, name) SELECT ?1, coalesce(max(id) + 1, 0), ?2 FROM devices WHERE src = ?1 RETURNING id"
	qDevStats = `UPDATE devices SET n = n + ?1,
		first_ts = min(coalesce(first_ts, ?2), ?2), last_ts = max(coalesce(last_ts, ?3), ?3)
		WHERE src = ?4 AND id = ?5`
	qClock = "UPDATE sources SET vclock = vclock + 1 WHERE id = ? RETURNING vclock"
	qDay   = `INSERT INTO days (src, day, version) VALUES (?, ?, ?)
		ON CONFLICT (src, day) DO UPDATE SET version = excluded.version`
	// the same two for the group commit, without result rows: the day
	// takes the source's clock as qClockExec left it
	qClockExec = "UPDATE sources SET vclock = vclock + 1 WHERE id = ?"
	qDayClock  = `INSERT INTO days (src, day, version) SELECT ?1, ?2, vclock FROM sources WHERE id = ?1
		ON CONFLICT (src, day) DO UPDATE SET version = excluded.version`
	// a savepoint around a group's multi-row inserts
	qSavepoint  = "SAVEPOINT rows"
	qRollbackTo = "ROLLBACK TO rows"
	qRelease    = "RELEASE rows"
)

// insertChunks are the row counts of the multi-row inserts prepared for
// each source, largest first: a group's rows go in as few statements as
// the binary decomposition of their number needs (29 = 16+8+4+1).
var insertChunks = [...]int{128, 64, 32, 16, 8, 4, 2, 1}

// insertQuery inserts n rows into the readings of source src; OR IGNORE
// skips the rows that are present.
func insertQuery(src int64, n int) string {
	var b strings.Builder
	b.WriteString("INSERT OR IGNORE INTO ")
	b.WriteString(readings(src))
	b.WriteString(" (ts, dev, p, v) VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("(?,?,?,?)")
	}
	return b.String()
}

// insertQueries are the inserts of source src, one per chunk size.
func insertQueries(src int64) []string {
	qs := make([]string, len(insertChunks))
	for i, n := range insertChunks {
		qs[i] = insertQuery(src, n)
	}
	return qs
}

// maxPreparedSources bounds how many sources keep their multi-row inserts
// prepared: each source's set costs about 180 KB, so a server with
// thousands of sources prepares the first ones and parses the others' in
// each group transaction (stmt falls back to that).
const maxPreparedSources = 64

// prepareSource readies the inserts of source src while fewer than
// maxPreparedSources sources have theirs.
func (s *Store) prepareSource(ctx context.Context, src int64) error {
	s.mu.Lock()
	_, done := s.preparedSrc[src]
	full := len(s.preparedSrc) >= maxPreparedSources
	if !done && !full {
		s.preparedSrc[src] = struct{}{}
	}
	s.mu.Unlock()
	if done || full {
		return nil
	}
	return s.prepare(ctx, insertQueries(src)...)
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
	return *res, nil
}

// wtx is one (possibly shared) write transaction of the group committer.
// Apply only looks up a batch's source and devices and queues its rows;
// Commit writes the queued rows of each source with a few multi-row
// inserts, counts what each batch inserted and found present, updates the
// device counters and day versions, and commits. Anything failing fails
// the whole transaction, and the committer then retries the batches one
// per transaction, so each batch stays all or nothing.
type wtx struct {
	s  *Store
	tx *sql.Tx
	// ctx is the context of the transaction and its statements, without
	// the committer's deadline: with a Done channel, database/sql and
	// modernc.org/sqlite start a watcher goroutine for the transaction
	// and for every statement. Nothing here waits on the network: a wait
	// for the file lock is bounded by the busy timeout (10 s), and an
	// fsync cannot be interrupted anyway.
	ctx     context.Context
	srcs    map[string]*txSource
	order   []*txSource // sources in the order of first use
	newDevs map[devKey]int64
	stats   map[devID]*devStat // readings inserted per device
	stmts   map[string]*sql.Stmt
	args    []any // scratch of insertChunk
}

type txSource struct {
	id      int64
	inserts []string // insertQueries of the source
	loc     *time.Location
	days    map[string]struct{} // local days that got a new reading
	// horizon is the source's reduced horizon (ts units): a raw reading
	// before it counts as present and is not stored
	horizon int64
	// the last day seen, to skip formatting for runs in one day
	dayStart, dayEnd int64 // ts units
	day              string
	rows             []queued // rows of the applied batches, in order
	// the last device looked up, as batches usually come from one
	lastDev   string
	lastDevID int64
}

// queued is a row waiting for Commit, with the result of its batch.
type queued struct {
	r   *row
	dev int64
	res *store.InsertResult
	new bool // set by Commit: really inserted, not present
}

type devID struct{ src, dev int64 }

type devStat struct {
	src, dev    int64
	n           int64
	first, last int64
}

func (s *Store) begin(ctx context.Context) (groupcommit.Tx[*batch, *store.InsertResult], error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ctx = context.WithoutCancel(ctx)
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	return &wtx{
		s:       s,
		tx:      tx,
		ctx:     ctx,
		srcs:    map[string]*txSource{},
		newDevs: map[devKey]int64{},
		stats:   map[devID]*devStat{},
		stmts:   map[string]*sql.Stmt{},
	}, nil
}

// stmt returns q bound to the transaction, once per transaction.
func (t *wtx) stmt(q string) (*sql.Stmt, error) {
	if st, ok := t.stmts[q]; ok {
		return st, nil
	}
	st, err := t.s.stmt(t.ctx, t.tx, q)
	if err != nil {
		return nil, err
	}
	t.stmts[q] = st
	return st, nil
}

// source reads the source's id and zone inside the transaction, so a zone
// changed by EnsureSource (even from another process) is seen.
func (t *wtx) source(name string) (*txSource, error) {
	if src, ok := t.srcs[name]; ok {
		return src, nil
	}
	var id, horizon int64
	var zone string
	q, err := t.stmt(qSourceTx)
	if err != nil {
		return nil, err
	}
	err = q.QueryRowContext(t.ctx, name).Scan(&id, &zone, &horizon)
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
	src := &txSource{id: id, inserts: t.s.insertQueries(id), loc: loc, days: map[string]struct{}{}, horizon: horizon, dayStart: 1, dayEnd: 0, lastDevID: -1}
	t.srcs[name] = src
	t.order = append(t.order, src)
	return src, nil
}

// insertQueries returns the (cached) insertQueries of source src.
func (s *Store) insertQueries(src int64) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	qs, ok := s.insQ[src]
	if !ok {
		qs = insertQueries(src)
		s.insQ[src] = qs
	}
	return qs
}

// device returns the id of a device, creating it inside the transaction.
func (t *wtx) device(src *txSource, name string) (int64, error) {
	if src.lastDevID >= 0 && src.lastDev == name {
		return src.lastDevID, nil
	}
	k := devKey{src.id, name}
	t.s.mu.Lock()
	id, ok := t.s.devIDs[k]
	t.s.mu.Unlock()
	if !ok {
		id, ok = t.newDevs[k]
	}
	if !ok {
		err := t.tx.QueryRowContext(t.ctx, qDevice, src.id, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			err = t.tx.QueryRowContext(t.ctx, qAddDev, src.id, name).Scan(&id)
		}
		if err != nil {
			return 0, fmt.Errorf("device %q: %w", name, err)
		}
		if id >= maxDevices {
			return 0, fmt.Errorf("device %q: the source has %d devices already, the most it can have", name, maxDevices)
		}
		t.newDevs[k] = id
	}
	src.lastDev, src.lastDevID = name, id
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

// Apply looks up the batch's source and devices (creating new devices in
// the transaction) and queues its rows for Commit. Its result is filled in
// by Commit.
func (t *wtx) Apply(_ context.Context, b *batch) (*store.InsertResult, error) {
	src, err := t.source(b.source)
	if err != nil {
		return nil, err
	}
	res := &store.InsertResult{}
	for i := range b.rows {
		r := &b.rows[i]
		if r.ts < src.horizon && !r.reduced {
			// Its minute is kept only reduced (retention); the raw
			// reading is as good as present.
			res.Present++
			continue
		}
		dev, err := t.device(src, r.dev)
		if err != nil {
			return nil, err
		}
		src.rows = append(src.rows, queued{r: r, dev: dev, res: res})
	}
	return res, nil
}

// Commit writes the queued rows, updates the per-device counters and
// bumps the versions of the touched days, then commits.
func (t *wtx) Commit(context.Context) error {
	if err := t.insertAll(); err != nil {
		return err
	}
	for _, src := range t.order {
		for i := range src.rows {
			qr := &src.rows[i]
			if qr.new {
				t.inserted(src, qr)
			} else {
				qr.res.Present++
			}
		}
	}
	upd, err := t.stmt(qDevStats)
	if err != nil {
		return err
	}
	for _, st := range t.stats {
		if _, err := upd.ExecContext(t.ctx, st.n, st.first, st.last, st.src, st.dev); err != nil {
			return fmt.Errorf("update device counters: %w", err)
		}
	}
	// One new day version per source and transaction, set on every day
	// that got a reading; Exec only (no result rows to read).
	for _, src := range t.order {
		if len(src.days) == 0 {
			continue
		}
		clock, err := t.stmt(qClockExec)
		if err != nil {
			return err
		}
		if _, err := clock.ExecContext(t.ctx, src.id); err != nil {
			return fmt.Errorf("bump day version: %w", err)
		}
		day, err := t.stmt(qDayClock)
		if err != nil {
			return err
		}
		for d := range src.days {
			if _, err := day.ExecContext(t.ctx, src.id, d); err != nil {
				return fmt.Errorf("bump version of day %s: %w", d, err)
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

// insertAll inserts the queued rows and marks each one new or present.
//
// The rows of a source go in with a few multi-row inserts (29 rows: 16, 8,
// 4 and 1 at a time). A multi-row insert only tells how many rows it
// added; when that is all of them (the common case: no replays) every row
// is new. Otherwise the multi-row inserts are undone (a savepoint) and
// the rows inserted one by one, each telling whether it was new. Either
// way, of rows with the same (time, device) the first is stored.
func (t *wtx) insertAll() error {
	multi := false
	for _, src := range t.order {
		multi = multi || len(src.rows) > 1
	}
	if !multi {
		_, err := t.insertRows(false)
		return err
	}
	if err := t.exec(qSavepoint); err != nil {
		return err
	}
	exact, err := t.insertRows(false)
	if err != nil {
		return err
	}
	if !exact {
		if err := t.exec(qRollbackTo); err != nil {
			return err
		}
		if _, err := t.insertRows(true); err != nil {
			return err
		}
	}
	return t.exec(qRelease)
}

// exec runs a statement without arguments.
func (t *wtx) exec(q string) error {
	st, err := t.stmt(q)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(t.ctx); err != nil {
		return fmt.Errorf("%s: %w", q, err)
	}
	return nil
}

// insertRows inserts the queued rows, one at a time if single, else in
// chunks. It reports false when a multi-row chunk skipped a present row,
// so that which rows are new is not known.
func (t *wtx) insertRows(single bool) (exact bool, err error) {
	for _, src := range t.order {
		rows := src.rows
		for len(rows) > 0 {
			i := len(insertChunks) - 1 // one row
			if !single {
				i = 0
				for insertChunks[i] > len(rows) {
					i++
				}
			}
			n := insertChunks[i]
			added, err := t.insertChunk(src.inserts[i], rows[:n])
			if err != nil {
				return false, err
			}
			switch {
			case added == int64(n):
				for j := range rows[:n] {
					rows[j].new = true
				}
			case n == 1:
				rows[0].new = false
			default:
				return false, nil
			}
			rows = rows[n:]
		}
	}
	return true, nil
}

// insertChunk inserts rows with one statement (q, for len(rows) rows) and
// returns how many were added.
func (t *wtx) insertChunk(q string, rows []queued) (int64, error) {
	st, err := t.stmt(q)
	if err != nil {
		return 0, err
	}
	args := t.args[:0]
	for _, qr := range rows {
		args = append(args, qr.r.ts, qr.dev, qr.r.p, qr.r.v)
	}
	t.args = args
	defer clear(args) // let the batches go
	out, err := st.ExecContext(t.ctx, args...)
	if err != nil {
		return 0, fmt.Errorf("insert readings: %w", err)
	}
	n, err := out.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("insert readings: %w", err)
	}
	return n, nil
}

// inserted counts a row that really was inserted: in its batch's result,
// its device's counters and its local day.
func (t *wtx) inserted(src *txSource, qr *queued) {
	qr.res.Inserted++
	ts := qr.r.ts
	k := devID{src.id, qr.dev}
	st := t.stats[k]
	if st == nil {
		st = &devStat{src: src.id, dev: qr.dev, first: ts, last: ts}
		t.stats[k] = st
	}
	st.n++
	st.first = min(st.first, ts)
	st.last = max(st.last, ts)
	if ts < src.dayStart || ts >= src.dayEnd || len(src.days) == 0 {
		src.days[src.dayOf(ts)] = struct{}{}
	}
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
	return s.EnsureSources(ctx, []store.SourceSpec{{Name: name, Timezone: timezone}})
}

// EnsureSources implements store.BulkEnsurer: every source in one
// transaction, so registering thousands of sources changes the schema once
// (a schema change per source makes every later statement re-read the
// whole schema: quadratic).
func (s *Store) EnsureSources(ctx context.Context, specs []store.SourceSpec) error {
	locs := make([]*time.Location, len(specs))
	for i, sp := range specs {
		if sp.Name == "" {
			return errors.New("ensure source: empty name")
		}
		loc, err := s.location(sp.Timezone)
		if err != nil {
			return fmt.Errorf("ensure source %q: %w", sp.Name, err)
		}
		locs[i] = loc
	}
	// Fast path without the write lock: every source is there, zone unchanged.
	ids := make([]int64, len(specs))
	known := true
	for i, sp := range specs {
		var old string
		err := s.r.QueryRowContext(ctx, qSource, sp.Name).Scan(&ids[i], &old)
		if err != nil || old != sp.Timezone {
			known = false
			break
		}
	}
	if !known {
		tx, err := s.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("ensure sources: begin: %w", err)
		}
		defer tx.Rollback()
		for i, sp := range specs {
			if ids[i], err = s.ensureIn(ctx, tx, sp.Name, sp.Timezone, locs[i]); err != nil {
				return fmt.Errorf("ensure source %q: %w", sp.Name, err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("ensure sources: commit: %w", err)
		}
	}
	s.mu.Lock()
	for i, sp := range specs {
		s.srcIDs[sp.Name] = ids[i]
	}
	s.mu.Unlock()
	for _, id := range ids {
		if err := s.prepareSource(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// ensureIn registers one source inside tx: a new source gets its readings
// table; a changed zone refiles its days.
func (s *Store) ensureIn(ctx context.Context, tx *sql.Tx, name, timezone string, loc *time.Location) (int64, error) {
	var id int64
	var old string
	err := tx.QueryRowContext(ctx, qSource, name).Scan(&id, &old)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if err := tx.QueryRowContext(ctx, "INSERT INTO sources (name, timezone) VALUES (?, ?) RETURNING id", name, timezone).Scan(&id); err != nil {
			return 0, fmt.Errorf("insert: %w", err)
		}
		if _, err := tx.ExecContext(ctx, readingsTable(id)); err != nil {
			return 0, fmt.Errorf("create its readings table: %w", err)
		}
	case err != nil:
		return 0, err
	case old != timezone:
		if _, err := tx.ExecContext(ctx, "UPDATE sources SET timezone = ? WHERE id = ?", timezone, id); err != nil {
			return 0, fmt.Errorf("update zone: %w", err)
		}
		if err := s.refileDays(ctx, tx, id, loc); err != nil {
			return 0, err
		}
	}
	return id, nil
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
