package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

var _ store.Reducer = (*Store)(nil)

// ReduceStep is how many raw readings one Reduce transaction takes at
// most without a limit (whole minutes of them). Inserts wait for the
// writer while a step runs: with 1024 an insert during a reduction took
// 12 ms (median) where with 8640 it took 80 ms, and the year was reduced
// in about the same time (BenchmarkInsertDuringReduce).
var ReduceStep = 1024

// maxReduceStep bounds a transaction whatever the limit: a step holds its
// readings in memory (about 250 bytes each).
const maxReduceStep = 1 << 17

// Reduced readings live in the source's readings table like raw ones, at
// the start of their minute, with the xReduced flag in their extra blob
// (codec.go): Range, Latest, LastTime, Delete and the day list need no
// second table, and a reduced legacy reading takes about 35 bytes where
// the six raw readings of its minute took about 120.

// Reduce implements store.Reducer. It moves the source's horizon
// (sources.reduced_before) forward one transaction at a time: each takes
// up to ReduceStep raw readings from the horizon on (with a limit: one
// transaction of up to the limit), in whole UTC minutes, hands each device's to fn, replaces
// them by fn's reduced readings, updates the device counters and day
// versions and stores the new horizon, all or nothing. Reduced readings already in the window (a
// migrate) stay as they are.
func (s *Store) Reduce(ctx context.Context, source string, before time.Time, limit int64, fn store.ReduceFunc) (store.ReduceResult, error) {
	id, err := s.sourceID(ctx, source)
	if err != nil {
		return store.ReduceResult{}, err
	}
	end := floorMinute(before.Unix() - epoch)
	var res store.ReduceResult
	for {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("reduce %s: %w", source, err)
		}
		// With a limit the call is one transaction of at most limit raw
		// readings (the caller chose the slice); without, ReduceStep ones
		// until done.
		n := int64(ReduceStep)
		if limit > 0 {
			n = min(limit, maxReduceStep)
		}
		st, err := s.reduceStep(ctx, id, end, int(n), fn)
		if err != nil {
			return res, fmt.Errorf("reduce %s: %w", source, err)
		}
		res.Raw += st.raw
		res.Reduced += st.reduced
		res.Until = time.Unix(st.horizon+epoch, 0).UTC()
		if st.horizon >= end {
			res.Done = true
			break
		}
		if limit > 0 {
			break
		}
	}
	return res, nil
}

// Vacuum rewrites the database file without its free pages (VACUUM), on
// the writer: inserts wait until it is done (seconds per 100 MB). A
// reduction frees most of the pages of the period it reduced; SQLite
// reuses them for new readings, so the file stops growing for a while,
// but it shrinks only with a vacuum (or a backup, which is compact).
func (s *Store) Vacuum(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, "VACUUM"); err != nil {
		return fmt.Errorf("vacuum %s: %w", s.path, err)
	}
	return s.Checkpoint(ctx)
}

// Horizon implements store.Reducer.
func (s *Store) Horizon(ctx context.Context, source string) (time.Time, error) {
	id, err := s.sourceID(ctx, source)
	if err != nil {
		return time.Time{}, err
	}
	var h sql.NullInt64
	if err := s.r.QueryRowContext(ctx, "SELECT reduced_before FROM sources WHERE id = ?", id).Scan(&h); err != nil {
		return time.Time{}, fmt.Errorf("reduced horizon of %s: %w", source, err)
	}
	if !h.Valid {
		return time.Time{}, nil
	}
	return time.Unix(h.Int64+epoch, 0).UTC(), nil
}

// floorMinute rounds ts units down to a whole UTC minute (the epoch is
// one).
func floorMinute(ts int64) int64 {
	m := ts / 60 * 60
	if m > ts {
		m -= 60
	}
	return m
}

// stepResult is what one reduceStep did.
type stepResult struct {
	raw, reduced int64
	horizon      int64 // ts units
}

// stepRow is a stored row of a reduce window, with its reading.
type stepRow struct {
	ts, dev, p int64
	v          any
	r          reading.Reading
}

// stepDev is one device's rows of a reduce window.
type stepDev struct {
	id          int64
	name        string
	first, last sql.NullInt64 // devices.first_ts, last_ts
	raw         []stepRow
	kept        []stepRow // reduced readings already there
}

// noHorizon is the horizon of a source where nothing was reduced.
const noHorizon = -1 << 62

// reduceStep reduces the next window of at most n raw readings (whole
// minutes; more only when one minute alone has more) before end, in one
// transaction on the writer.
func (s *Store) reduceStep(ctx context.Context, src, end int64, n int, fn store.ReduceFunc) (stepResult, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return stepResult{}, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	var zone string
	var h sql.NullInt64
	if err := tx.QueryRowContext(ctx, "SELECT timezone, reduced_before FROM sources WHERE id = ?", src).Scan(&zone, &h); err != nil {
		return stepResult{}, fmt.Errorf("read horizon: %w", err)
	}
	horizon := int64(noHorizon)
	if h.Valid {
		horizon = h.Int64
	}
	if horizon >= end {
		return stepResult{horizon: horizon}, nil
	}
	loc, err := s.location(zone)
	if err != nil {
		return stepResult{}, err
	}
	tbl := readings(src)
	rows, err := s.windowRows(ctx, tx, tbl, horizon, end, n)
	if err != nil {
		return stepResult{}, err
	}
	cut := end
	if len(rows) == n {
		cut = floorMinute(rows[n-1].ts)
		if cut <= rows[0].ts {
			// One minute holds n rows or more: take all of it.
			cut += 60
			if rows, err = s.windowRows(ctx, tx, tbl, horizon, cut, 0); err != nil {
				return stepResult{}, err
			}
		}
		i, _ := slices.BinarySearchFunc(rows, cut, func(r stepRow, ts int64) int { return int(max(-1, min(1, r.ts-ts))) })
		rows = rows[:i]
	}
	devs, err := s.stepDevices(ctx, tx, src, rows)
	if err != nil {
		return stepResult{}, err
	}
	res := stepResult{horizon: cut}
	days := map[string]struct{}{}
	dayer := &txSource{loc: loc, dayStart: 1}
	var outs []stepRow
	for _, d := range devs {
		if len(d.raw) == 0 {
			continue
		}
		res.raw += int64(len(d.raw))
		for _, r := range d.raw {
			if r.ts < dayer.dayStart || r.ts >= dayer.dayEnd || len(days) == 0 {
				days[dayer.dayOf(r.ts)] = struct{}{}
			}
		}
		prev, err := s.reducePrev(ctx, tx, tbl, d)
		if err != nil {
			return stepResult{}, err
		}
		next, err := s.reduceNext(ctx, tx, tbl, d, cut)
		if err != nil {
			return stepResult{}, err
		}
		raw := make([]reading.Reading, len(d.raw))
		for i := range d.raw {
			raw[i] = d.raw[i].r
		}
		out, err := checkReduced(d, fn(prev, raw, next))
		if err != nil {
			return stepResult{}, err
		}
		outs = append(outs, out...)
	}
	// Replace the window: every row goes, the reduced readings that were
	// there come back, then fn's (a minute that already had a reduced
	// reading of the device keeps that one).
	if _, err := tx.ExecContext(ctx, "DELETE FROM "+tbl+" WHERE ts >= ? AND ts < ?", horizon, cut); err != nil {
		return stepResult{}, fmt.Errorf("delete raw readings: %w", err)
	}
	ins, err := tx.PrepareContext(ctx, "INSERT OR IGNORE INTO "+tbl+" (ts, dev, p, v) VALUES (?, ?, ?, ?)")
	if err != nil {
		return stepResult{}, fmt.Errorf("insert reduced readings: %w", err)
	}
	defer ins.Close()
	added := map[int64]int64{}
	for _, d := range devs {
		for _, k := range d.kept {
			if _, err := ins.ExecContext(ctx, k.ts, k.dev, k.p, k.v); err != nil {
				return stepResult{}, fmt.Errorf("keep reduced reading: %w", err)
			}
		}
	}
	for _, o := range outs {
		x, err := ins.ExecContext(ctx, o.ts, o.dev, o.p, o.v)
		if err != nil {
			return stepResult{}, fmt.Errorf("insert reduced reading: %w", err)
		}
		if c, _ := x.RowsAffected(); c > 0 {
			added[o.dev]++
			res.reduced++
		}
	}
	for _, d := range devs {
		if len(d.raw) == 0 {
			continue
		}
		if err := s.reduceDevStats(ctx, tx, src, d, horizon, cut, added[d.id], outs); err != nil {
			return stepResult{}, err
		}
	}
	if len(days) > 0 {
		v, err := s.bumpClock(ctx, tx, src)
		if err != nil {
			return stepResult{}, err
		}
		for day := range days {
			if err := s.setDayVersion(ctx, tx, src, day, v); err != nil {
				return stepResult{}, err
			}
		}
	}
	if _, err := tx.ExecContext(ctx, "UPDATE sources SET reduced_before = ? WHERE id = ?", cut, src); err != nil {
		return stepResult{}, fmt.Errorf("store horizon: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return stepResult{}, fmt.Errorf("commit: %w", err)
	}
	return res, nil
}

// windowRows reads the rows with from <= ts < to in (ts, dev) order, at
// most n (0: all).
func (s *Store) windowRows(ctx context.Context, tx *sql.Tx, tbl string, from, to int64, n int) ([]stepRow, error) {
	q := "SELECT ts, dev, p, v FROM " + tbl + " WHERE ts >= ? AND ts < ? ORDER BY ts, dev"
	args := []any{from, to}
	if n > 0 {
		q += " LIMIT ?"
		args = append(args, n)
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("read raw readings: %w", err)
	}
	defer rows.Close()
	var out []stepRow
	for rows.Next() {
		var r stepRow
		if err := rows.Scan(&r.ts, &r.dev, &r.p, &r.v); err != nil {
			return nil, fmt.Errorf("read raw readings: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read raw readings: %w", err)
	}
	return out, nil
}

// stepDevices decodes the window's rows and sorts them by device (in id
// order), raw readings apart from reduced ones.
func (s *Store) stepDevices(ctx context.Context, tx *sql.Tx, src int64, rows []stepRow) ([]*stepDev, error) {
	byID := map[int64]*stepDev{}
	q, err := tx.QueryContext(ctx, "SELECT id, name, first_ts, last_ts FROM devices WHERE src = ?", src)
	if err != nil {
		return nil, fmt.Errorf("read devices: %w", err)
	}
	for q.Next() {
		d := &stepDev{}
		if err := q.Scan(&d.id, &d.name, &d.first, &d.last); err != nil {
			q.Close()
			return nil, fmt.Errorf("read devices: %w", err)
		}
		byID[d.id] = d
	}
	q.Close()
	if err := q.Err(); err != nil {
		return nil, fmt.Errorf("read devices: %w", err)
	}
	var devs []*stepDev
	for i := range rows {
		r := &rows[i]
		d, ok := byID[r.dev]
		if !ok {
			return nil, fmt.Errorf("reading of unknown device id %d", r.dev)
		}
		if len(d.raw) == 0 && len(d.kept) == 0 {
			devs = append(devs, d)
		}
		if r.r, err = decodeRow(d.name, r.ts, r.p, r.v); err != nil {
			return nil, err
		}
		if r.r.Reduced != nil {
			d.kept = append(d.kept, *r)
		} else {
			d.raw = append(d.raw, *r)
		}
	}
	slices.SortFunc(devs, func(a, b *stepDev) int { return int(a.id - b.id) })
	return devs, nil
}

// reducePrev is the device's reading just before its first raw reading
// of the window: a reduced one of the window before it, else the newest
// stored one before the window (as stored: what an earlier step wrote,
// rounded, not what its fn returned).
func (s *Store) reducePrev(ctx context.Context, tx *sql.Tx, tbl string, d *stepDev) (*reading.Reading, error) {
	first := d.raw[0].ts
	var prev *reading.Reading
	for i := range d.kept {
		if d.kept[i].ts < first {
			prev = &d.kept[i].r
		}
	}
	if prev != nil {
		return prev, nil
	}
	if !d.first.Valid || d.first.Int64 >= first {
		return nil, nil // the device has nothing older
	}
	return s.oneRow(ctx, tx, d, "SELECT ts, p, v FROM "+tbl+" WHERE dev = ? AND ts < ? ORDER BY ts DESC LIMIT 1", d.id, first)
}

// reduceNext is the device's first reading after its raw readings of the
// window: a reduced one in the window after them, else its first reading
// at or after cut.
func (s *Store) reduceNext(ctx context.Context, tx *sql.Tx, tbl string, d *stepDev, cut int64) (*reading.Reading, error) {
	last := d.raw[len(d.raw)-1].ts
	for i := range d.kept {
		if d.kept[i].ts > last {
			return &d.kept[i].r, nil
		}
	}
	if !d.last.Valid || d.last.Int64 < cut {
		return nil, nil // the device has nothing newer
	}
	return s.oneRow(ctx, tx, d, "SELECT ts, p, v FROM "+tbl+" WHERE dev = ? AND ts >= ? ORDER BY ts LIMIT 1", d.id, cut)
}

func (s *Store) oneRow(ctx context.Context, tx *sql.Tx, d *stepDev, q string, args ...any) (*reading.Reading, error) {
	var ts, p int64
	var v any
	err := tx.QueryRowContext(ctx, q, args...).Scan(&ts, &p, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("neighbour of device %q: %w", d.name, err)
	}
	r, err := decodeRow(d.name, ts, p, v)
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// checkReduced checks what fn returned for the device's raw readings of a
// window: one valid reduced reading of the device per minute that had raw
// readings, at the minute's start, in order. It returns them encoded.
func checkReduced(d *stepDev, out []reading.Reading) ([]stepRow, error) {
	var minutes []int64
	for _, r := range d.raw {
		if m := floorMinute(r.ts); len(minutes) == 0 || minutes[len(minutes)-1] != m {
			minutes = append(minutes, m)
		}
	}
	if len(out) != len(minutes) {
		return nil, fmt.Errorf("device %q: the reduce function returned %d readings for %d minutes", d.name, len(out), len(minutes))
	}
	rows := make([]stepRow, len(out))
	for i := range out {
		r := &out[i]
		at := time.Unix(minutes[i]+epoch, 0).UTC()
		switch {
		case r.Device != d.name:
			return nil, fmt.Errorf("device %q: the reduce function returned a reading of device %q", d.name, r.Device)
		case r.Reduced == nil:
			return nil, fmt.Errorf("device %q: the reduce function returned a raw reading at %s", d.name, r.Time.Format(time.RFC3339))
		case !r.Time.Equal(at):
			return nil, fmt.Errorf("device %q: the reduce function returned a reading at %s, want %s (its minute)", d.name, r.Time.Format(time.RFC3339), at.Format(time.RFC3339))
		}
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("device %q: reduced reading at %s: %w", d.name, at.Format(time.RFC3339), err)
		}
		rw, err := encodeRow(r)
		if err != nil {
			return nil, fmt.Errorf("device %q: reduced reading at %s: %w", d.name, at.Format(time.RFC3339), err)
		}
		rows[i] = stepRow{ts: rw.ts, dev: d.id, p: rw.p, v: rw.v, r: *r}
		rows[i].r.Time = at
	}
	return rows, nil
}

// reduceDevStats updates a device's counters after its raw readings of
// [from, cut) were replaced: added reduced readings instead of len(raw),
// and first/last times moved to the reduced readings where they were in
// the window (a reduced reading stands at its minute's start).
func (s *Store) reduceDevStats(ctx context.Context, tx *sql.Tx, src int64, d *stepDev, from, cut, added int64, outs []stepRow) error {
	lo, hi := int64(1<<62), int64(noHorizon)
	for _, o := range outs {
		if o.dev == d.id {
			lo, hi = min(lo, o.ts), max(hi, o.ts)
		}
	}
	for _, k := range d.kept {
		lo, hi = min(lo, k.ts), max(hi, k.ts)
	}
	first, last := d.first.Int64, d.last.Int64
	if first >= from && first < cut {
		first = lo
	}
	if last >= from && last < cut {
		last = hi
	}
	if _, err := tx.ExecContext(ctx, "UPDATE devices SET n = n - ? + ?, first_ts = ?, last_ts = ? WHERE src = ? AND id = ?",
		len(d.raw), added, first, last, src, d.id); err != nil {
		return fmt.Errorf("update device counters: %w", err)
	}
	return nil
}
