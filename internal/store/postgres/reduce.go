package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// Retention (store.Reducer, docs/postgres.md "Retention"): a source's raw
// readings before a horizon are replaced by reduced minutes (minutes.go),
// a span of the source's time per transaction, under the source's fold
// lock held exclusively: no insert of the source and no fold of it runs
// meanwhile, so a raw reading is reduced exactly once and the horizon
// (sources.reduced_before) moves in the same transaction as the readings
// it covers. Inserts read the horizon in their own statement.

var _ store.Reducer = (*Store)(nil)

// Horizon is the time before which source holds only reduced readings.
func (s *Store) Horizon(ctx context.Context, source string) (time.Time, error) {
	sid, err := s.sourceID(ctx, source)
	if err != nil {
		return time.Time{}, fmt.Errorf("horizon: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var h *time.Time
	if err := s.rpool.QueryRow(ctx, `SELECT reduced_before FROM sources WHERE id = $1`, sid).Scan(&h); err != nil {
		return time.Time{}, fmt.Errorf("horizon of %q: %w", source, err)
	}
	if h == nil {
		return time.Time{}, nil
	}
	return h.UTC(), nil
}

// Reduce implements store.Reducer.
func (s *Store) Reduce(ctx context.Context, source string, before time.Time, limit int64, fn store.ReduceFunc) (store.ReduceResult, error) {
	var res store.ReduceResult
	sid, err := s.sourceID(ctx, source)
	if err != nil {
		return res, fmt.Errorf("reduce: %w", err)
	}
	before = before.UTC().Truncate(time.Minute)
	for {
		if err := ctx.Err(); err != nil {
			return res, fmt.Errorf("reduce %q: %w", source, err)
		}
		// The partitions of minutes the next span needs, made outside the
		// span's transaction (it retries when a late reading moved its
		// start into a month not made yet).
		first, ok, err := s.firstRaw(ctx, s.rpool, sid, before)
		if err != nil {
			return res, fmt.Errorf("reduce %q: %w", source, err)
		}
		if ok {
			if err := s.ensureParts(ctx, "minutes", first, first.Add(24*time.Hour)); err != nil {
				return res, fmt.Errorf("reduce %q: %w", source, err)
			}
		}
		// On the readers' pool: while a span holds the source's fold lock,
		// the committer that waits for it holds one writer connection; the
		// others must stay free for the other sources' inserts.
		var st spanStats
		err = pgx.BeginFunc(ctx, s.rpool, func(tx pgx.Tx) error {
			var err error
			st, err = s.reduceSpan(ctx, tx, sid, before, limit-res.Raw, limit > 0, fn)
			return err
		})
		if errors.Is(err, errNoPartition) {
			continue
		}
		if err != nil {
			return res, fmt.Errorf("reduce %q before %s: %w", source, before.Format(time.RFC3339), err)
		}
		res.Raw += st.raw
		res.Reduced += st.reduced
		res.Until = st.horizon
		if st.done {
			res.Done = true
			if err := s.dropEmptyChunks(ctx, st.horizon); err != nil {
				s.log.Warn("dropping emptied chunks partitions", "err", err)
			}
			return res, nil
		}
		if limit > 0 && res.Raw >= limit {
			return res, nil
		}
	}
}

// errNoPartition: a span reached a month whose minutes partition is not
// made yet.
var errNoPartition = errors.New("no partition of minutes for the span")

// querier runs a query on a pool or in a transaction.
type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// firstRaw is the time of the source's first raw reading before before
// (chunks or recent).
func (s *Store) firstRaw(ctx context.Context, q querier, sid int32, before time.Time) (time.Time, bool, error) {
	var first *time.Time
	// The earliest of the first hour's chunks (one per device, each
	// starting where its device does).
	err := q.QueryRow(ctx, `SELECT least(
			(SELECT min(c.hour + c.offs[1] * interval '1 second') FROM chunks c
			 WHERE c.source_id = $1 AND c.hour = (SELECT min(hour) FROM chunks WHERE source_id = $1 AND hour < $2)),
			(SELECT min(t) FROM recent WHERE source_id = $1 AND t < $2))`, sid, before).Scan(&first)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("finding the first raw reading: %w", err)
	}
	if first == nil || !first.Before(before) {
		return time.Time{}, false, nil
	}
	return first.UTC(), true, nil
}

// spanStats is what one reduce transaction did.
type spanStats struct {
	raw, reduced int64
	horizon      time.Time
	done         bool // nothing raw left before the horizon asked for
}

// rawOf is a raw reading found in a span and where it is stored.
type rawOf struct {
	sc    scanned
	chunk int // index into the span's chunks; -1: in recent
}

// reduceSpan reduces the first span of raw readings before before in tx:
// from the source's first raw reading, up to a day of readings (at most
// left of them when capped).
func (s *Store) reduceSpan(ctx context.Context, tx pgx.Tx, sid int32, before time.Time, left int64, capped bool, fn store.ReduceFunc) (spanStats, error) {
	var st spanStats
	if err := s.lockSource(ctx, tx, sid); err != nil {
		return st, err
	}
	var zone string
	var horizon *time.Time
	var ndev int
	if err := tx.QueryRow(ctx, `SELECT timezone, reduced_before, (SELECT count(*) FROM devices WHERE source_id = $1)
		FROM sources WHERE id = $1`, sid).Scan(&zone, &horizon, &ndev); err != nil {
		return st, fmt.Errorf("reading the source: %w", err)
	}
	if horizon != nil {
		st.horizon = horizon.UTC()
	}
	first, ok, err := s.firstRaw(ctx, tx, sid, before)
	if err != nil {
		return st, err
	}
	if !ok {
		// Nothing raw left before the horizon asked for: it holds from now
		// on (inserts of older raw readings store nothing).
		st.done = true
		if st.horizon.Before(before) {
			if _, err := tx.Exec(ctx, `UPDATE sources SET reduced_before = $2 WHERE id = $1`, sid, before); err != nil {
				return st, fmt.Errorf("moving the horizon: %w", err)
			}
			st.horizon = before
		}
		return st, nil
	}
	lo := first.Truncate(time.Minute)
	s.mu.RLock()
	made := s.parts[partName("minutes", lo)]
	s.mu.RUnlock()
	if !made {
		return st, errNoPartition
	}
	// about a day of one 10-s device per transaction (24 h ÷ devices, at
	// least an hour): the fold lock is held for tens of milliseconds
	span := max(time.Hour, (24 * time.Hour / time.Duration(max(1, ndev))).Truncate(time.Hour))
	end := tmin(tmin(before, lo.Truncate(time.Hour).Add(span)), monthOf(lo).AddDate(0, 1, 0))

	// The span's raw readings: whole chunks of its hours (the last one may
	// go on after end) and the rows of recent.
	var b pgx.Batch
	b.Queue(`SELECT `+chunkCols+` FROM chunks c WHERE c.source_id = $1 AND c.hour >= $2 AND c.hour < $3
		ORDER BY c.hour, c.device_id FOR UPDATE`, sid, lo.Truncate(time.Hour), end)
	b.Queue(`SELECT `+readingCols+` FROM recent r WHERE r.source_id = $1 AND r.t >= $2 AND r.t < $3`, sid, lo, end)
	br := tx.SendBatch(ctx, &b)
	var chunks []chunk
	raws := map[int32][]rawOf{}
	rows, err := br.Query()
	if err != nil {
		br.Close()
		return st, fmt.Errorf("reading the span's chunks: %w", err)
	}
	var c chunk
	_, err = pgx.ForEachRow(rows, c.dest(), func() error {
		ci := len(chunks)
		chunks = append(chunks, c)
		for i := range c.offs {
			sc, err := c.at(i)
			if err != nil {
				return err
			}
			if sc.t.Before(lo) { // lo is the first raw reading: rewriting the chunk would lose this one
				return fmt.Errorf("chunk %s of device %d: a reading at %s before the span's start %s",
					c.hour.Format(time.RFC3339), c.device, sc.t.Format(time.RFC3339), lo.Format(time.RFC3339))
			}
			raws[c.device] = append(raws[c.device], rawOf{sc, ci})
		}
		c = chunk{}
		return nil
	})
	if err != nil {
		br.Close()
		return st, fmt.Errorf("reading the span's chunks: %w", err)
	}
	rows, err = br.Query()
	if err != nil {
		br.Close()
		return st, fmt.Errorf("reading the span's recent readings: %w", err)
	}
	var sc scanned
	_, err = pgx.ForEachRow(rows, sc.dest(), func() error {
		raws[sc.device] = append(raws[sc.device], rawOf{sc, -1})
		sc.phases = nil
		return nil
	})
	if err := errors.Join(err, br.Close()); err != nil {
		return st, fmt.Errorf("reading the span's recent readings: %w", err)
	}
	devs := make([]int32, 0, len(raws))
	var times []time.Time
	for d, rs := range raws {
		slices.SortFunc(rs, func(a, b rawOf) int { return a.sc.t.Compare(b.sc.t) })
		devs = append(devs, d)
		for _, r := range rs {
			if r.sc.t.Before(end) {
				times = append(times, r.sc.t)
			}
		}
	}
	slices.Sort(devs)
	// Capped: stop at the minute of the reading that would exceed it (at
	// least one minute, so every call moves on).
	if capped && int64(len(times)) > left {
		slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
		cut := times[max(0, left)].Truncate(time.Minute)
		if !cut.After(lo) {
			cut = lo.Add(time.Minute)
		}
		end = cut
	}

	// The minutes already stored in the span's hours (merged with the new
	// ones), each device's reading before lo (prev) and first raw reading
	// at or after end (next).
	b = pgx.Batch{}
	b.Queue(`SELECT `+minuteCols+` FROM minutes m WHERE m.source_id = $1 AND m.hour >= $2 AND m.hour < $3
		ORDER BY m.hour, m.device_id FOR UPDATE`, sid, lo.Truncate(time.Hour), end)
	nextHour := end.Truncate(time.Hour)
	if !nextHour.Equal(end) {
		nextHour = nextHour.Add(time.Hour)
	}
	for _, d := range devs {
		b.Queue(`SELECT `+minuteCols+` FROM minutes m WHERE m.source_id = $1 AND m.device_id = $2 AND m.hour <= $3
			ORDER BY m.hour DESC LIMIT 2`, sid, d, lo.Truncate(time.Hour))
		b.Queue(`SELECT `+readingCols+` FROM recent r WHERE r.source_id = $1 AND r.device_id = $2 AND r.t >= $3
			ORDER BY r.t LIMIT 1`, sid, d, end)
		b.Queue(`SELECT `+chunkCols+` FROM chunks c WHERE c.source_id = $1 AND c.device_id = $2 AND c.hour >= $3
			ORDER BY c.hour LIMIT 1`, sid, d, nextHour)
	}
	br = tx.SendBatch(ctx, &b)
	existing := map[devKeyHour][]minute{}
	rows, err = br.Query()
	if err != nil {
		br.Close()
		return st, fmt.Errorf("reading the span's minutes: %w", err)
	}
	var m minuteRow
	_, err = pgx.ForEachRow(rows, m.dest(), func() error {
		m.expand()
		existing[devKeyHour{m.device, m.hour.UTC()}] = m.all()
		m = minuteRow{}
		return nil
	})
	if err != nil {
		br.Close()
		return st, fmt.Errorf("reading the span's minutes: %w", err)
	}
	prev := map[int32]*scanned{}
	next := map[int32]*scanned{}
	for _, d := range devs {
		rows, err := br.Query()
		if err != nil {
			br.Close()
			return st, fmt.Errorf("reading the reading before the span: %w", err)
		}
		var m minuteRow
		_, err = pgx.ForEachRow(rows, m.dest(), func() error {
			m.expand()
			for i := len(m.offs) - 1; i >= 0 && prev[d] == nil; i-- {
				e := m.at(i)
				sc, err := e.scanned(m.hour.UTC(), d)
				if err != nil {
					return err
				}
				if sc.t.Before(lo) {
					prev[d] = &sc
				}
			}
			m = minuteRow{}
			return nil
		})
		if err != nil {
			br.Close()
			return st, fmt.Errorf("reading the reading before the span: %w", err)
		}
		// next: the first raw reading at or after end, in the span's
		// readings (an hour goes on after a cut), recent or a later chunk.
		for _, r := range raws[d] {
			if !r.sc.t.Before(end) {
				x := r.sc
				next[d] = &x
				break
			}
		}
		rows, err = br.Query()
		if err != nil {
			br.Close()
			return st, fmt.Errorf("reading the reading after the span: %w", err)
		}
		var rc scanned
		_, err = pgx.ForEachRow(rows, rc.dest(), func() error {
			if next[d] == nil || rc.t.Before(next[d].t) {
				x := rc
				next[d] = &x
			}
			return nil
		})
		if err != nil {
			br.Close()
			return st, fmt.Errorf("reading the reading after the span: %w", err)
		}
		rows, err = br.Query()
		if err != nil {
			br.Close()
			return st, fmt.Errorf("reading the reading after the span: %w", err)
		}
		var nc chunk
		_, err = pgx.ForEachRow(rows, nc.dest(), func() error {
			if len(nc.offs) == 0 {
				return nil
			}
			x, err := nc.at(0)
			if err != nil {
				return err
			}
			if next[d] == nil || x.t.Before(next[d].t) {
				next[d] = &x
			}
			return nil
		})
		if err != nil {
			br.Close()
			return st, fmt.Errorf("reading the reading after the span: %w", err)
		}
	}
	if err := br.Close(); err != nil {
		return st, fmt.Errorf("reading around the span: %w", err)
	}

	// Reduce each device's raw readings of [lo, end); a minute that is
	// already reduced (a reduced reading inserted by migrate) keeps its
	// reduced reading and loses the raw ones.
	added := map[devKeyHour][]minute{}
	delta := map[int32]int64{}
	// Device names from the transaction's own connection: another one from
	// the pool could wait for the committers, which wait for the fold lock.
	names := map[int32]string{}
	rows, err = tx.Query(ctx, `SELECT id, name FROM devices WHERE source_id = $1`, sid)
	if err != nil {
		return st, fmt.Errorf("reading the devices: %w", err)
	}
	var id int32
	var dn string
	if _, err := pgx.ForEachRow(rows, []any{&id, &dn}, func() error { names[id] = dn; return nil }); err != nil {
		return st, fmt.Errorf("reading the devices: %w", err)
	}
	for _, d := range devs {
		name, ok := names[d]
		if !ok {
			return st, fmt.Errorf("device id %d: not found", d)
		}
		have := map[time.Time]bool{}
		for k, ms := range existing {
			if k.device == d {
				for _, e := range ms {
					have[k.hour.Add(time.Duration(e.off)*time.Second)] = true
				}
			}
		}
		var in []reading.Reading
		var gone int64
		for _, r := range raws[d] {
			if !r.sc.t.Before(end) {
				break
			}
			gone++
			if !have[r.sc.t.Truncate(time.Minute)] {
				in = append(in, r.sc.decode(name))
			}
		}
		st.raw += gone
		delta[d] -= gone
		if len(in) == 0 {
			continue
		}
		var p, n *reading.Reading
		if prev[d] != nil {
			x := prev[d].decode(name)
			p = &x
		}
		if next[d] != nil {
			x := next[d].decode(name)
			n = &x
		}
		out := fn(p, in, n)
		seen := map[time.Time]bool{}
		for i := range out {
			r := &out[i]
			if r.Device != name {
				return st, fmt.Errorf("reduce function returned a reading of device %q for %q", r.Device, name)
			}
			hour, e, err := encodeMinute(r)
			if err != nil {
				return st, fmt.Errorf("reduce function's reading of %q: %w", name, err)
			}
			t := hour.Add(time.Duration(e.off) * time.Second)
			if t.Before(lo) || !t.Before(end) || seen[t] || have[t] {
				return st, fmt.Errorf("reduce function returned a reading of %q at %s: outside %s..%s or twice",
					name, t.Format(time.RFC3339), lo.Format(time.RFC3339), end.Format(time.RFC3339))
			}
			seen[t] = true
			k := devKeyHour{d, hour}
			added[k] = append(added[k], e)
			st.reduced++
			delta[d]++
		}
		// Every minute that had raw readings must have its reduced one:
		// the raw readings are deleted.
		for _, r := range in {
			if m := r.Time.Truncate(time.Minute); !seen[m] {
				return st, fmt.Errorf("reduce function returned no reading of %q for the minute %s", name, m.Format(time.RFC3339))
			}
		}
	}

	// Write: the merged rows of minutes, the chunks without their reduced
	// readings, recent without them, the horizon, the days, the devices.
	b = pgx.Batch{}
	keys := make([]devKeyHour, 0, len(added))
	for k := range added {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b devKeyHour) int {
		if c := a.hour.Compare(b.hour); c != 0 {
			return c
		}
		return int(a.device - b.device)
	})
	for _, k := range keys {
		row := minuteRowOf(k.hour, k.device, append(existing[k], added[k]...))
		b.Queue(upsertMinutesSQL, row.args(sid)...)
	}
	for i := range chunks {
		c := &chunks[i]
		k := 0
		for k < len(c.offs) && c.hour.Add(time.Duration(c.offs[k])*time.Second).Before(end) {
			k++
		}
		switch {
		case k == 0:
		case k == len(c.offs):
			b.Queue(`DELETE FROM chunks WHERE source_id = $1 AND hour = $2 AND device_id = $3`, sid, c.hour, c.device)
		default:
			r := c.keepFrom(k)
			b.Queue(`UPDATE chunks SET (offs, power, temperature, energy_in, energy_out, voltage, phases, device_ms, backfilled) =
				($4, $5, $6, $7, $8, $9, $10, $11, $12) WHERE source_id = $1 AND hour = $2 AND device_id = $3`,
				sid, r.hour, r.device, r.offs, r.power, r.temp, r.eIn, r.eOut, r.volt, r.phases, r.devMs, r.backfill)
		}
	}
	b.Queue(`DELETE FROM recent WHERE source_id = $1 AND t >= $2 AND t < $3`, sid, lo, end)
	b.Queue(`UPDATE sources SET reduced_before = greatest(reduced_before, $2) WHERE id = $1`, sid, end)
	b.Queue(`UPDATE days SET version = `+newDayVersion+`
		WHERE source_id = $1 AND day BETWEEN ($2::timestamptz AT TIME ZONE $4)::date AND ($3::timestamptz AT TIME ZONE $4)::date`,
		sid, lo, end.Add(-time.Second), zone)
	for _, d := range devs {
		b.Queue(deviceStatsSQL, sid, d, delta[d])
	}
	if err := tx.SendBatch(ctx, &b).Close(); err != nil {
		return st, fmt.Errorf("writing the reduced span %s..%s: %w", lo.Format(time.RFC3339), end.Format(time.RFC3339), err)
	}
	st.horizon = tmax(st.horizon, end)
	return st, nil
}

// emptyCheckEvery is how often one server looks again at a chunks
// partition behind a horizon that was not empty: it empties when the
// last source reduces it, and a server with many sources reduces each of
// them in turn.
const emptyCheckEvery = time.Hour

// dropEmptyChunks drops the partitions of chunks of the months before
// horizon (a source's, after a Reduce) that reduction left empty: every
// source reduced past them, so their rows were all deleted, yet their
// files, indexes and TOAST tables remain until dropped. A partition is
// dropped under an ACCESS EXCLUSIVE lock of chunks, taken with a short
// lock timeout (inserts and folds wait for it a moment; when it cannot be
// had at once, a later run tries again), and only when it is still empty
// under that lock. A late reading that needs the month again gets a new
// partition from the folder.
func (s *Store) dropEmptyChunks(ctx context.Context, horizon time.Time) error {
	// With many sources every one's Reduce ends here: list the partitions
	// at most once a minute.
	s.mu.Lock()
	listed := time.Since(s.dropListed) < time.Minute
	if !listed {
		s.dropListed = time.Now()
	}
	s.mu.Unlock()
	if listed {
		return nil
	}
	rows, err := s.rpool.Query(ctx, `SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'chunks'::regclass ORDER BY 1`)
	if err != nil {
		return fmt.Errorf("listing the partitions of chunks: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("listing the partitions of chunks: %w", err)
	}
	now := time.Now()
	for _, name := range names {
		var y, m int
		if _, err := fmt.Sscanf(name, "chunks_%04d_%02d", &y, &m); err != nil {
			continue // not one of ours
		}
		if time.Date(y, time.Month(m)+1, 1, 0, 0, 0, 0, time.UTC).After(horizon) {
			continue
		}
		s.mu.Lock()
		seen := now.Sub(s.emptyChecked[name]) < emptyCheckEvery
		if !seen {
			s.emptyChecked[name] = now
		}
		s.mu.Unlock()
		if seen {
			continue
		}
		id := pgx.Identifier{name}.Sanitize()
		var used bool
		if err := s.rpool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+id+`)`).Scan(&used); err != nil {
			return fmt.Errorf("looking into %s: %w", name, err)
		}
		if used {
			continue
		}
		dropped := false
		err := pgx.BeginFunc(ctx, s.rpool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '1s'`); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `LOCK TABLE chunks IN ACCESS EXCLUSIVE MODE`); err != nil {
				return fmt.Errorf("locking chunks: %w", err)
			}
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+id+`)`).Scan(&used); err != nil || used {
				return err
			}
			if _, err := tx.Exec(ctx, `DROP TABLE `+id); err != nil {
				return fmt.Errorf("dropping %s: %w", name, err)
			}
			dropped = true
			return nil
		})
		if err != nil {
			return err
		}
		if dropped {
			s.mu.Lock()
			delete(s.parts, name)
			s.mu.Unlock()
			s.log.Info("dropped an emptied partition of chunks (all its readings reduced)", "partition", name)
		}
	}
	return nil
}

// devKeyHour names a row of chunks or minutes of a source.
type devKeyHour struct {
	device int32
	hour   time.Time
}

// insertReduced is Insert for a batch that holds reduced readings (migrate
// copying a database with retention): in one transaction of its own, with
// the source's fold lock held exclusively, the reduced ones are merged into
// minutes (a minute already stored counts as present) and the raw ones are
// stored as any insert (those before the horizon count as present). The
// horizon stays where it is (the store contract): a later Reduce there
// keeps the copied minutes and reduces the raw readings after them.
func (s *Store) insertReduced(ctx context.Context, sid int32, rs []reading.Reading, ids map[string]int32) (store.InsertResult, error) {
	var res store.InsertResult
	type enc struct {
		k devKeyHour
		e minute
	}
	var mins []enc
	raw := &batch{source: sid}
	var lo, hi time.Time
	for i := range rs {
		if rs[i].Reduced == nil {
			w, err := encode(&rs[i])
			if err != nil {
				return res, fmt.Errorf("reading %d: %w", i, err)
			}
			raw.rows = append(raw.rows, w)
			raw.devices = append(raw.devices, ids[rs[i].Device])
			continue
		}
		hour, e, err := encodeMinute(&rs[i])
		if err != nil {
			return res, fmt.Errorf("reading %d: %w", i, err)
		}
		mins = append(mins, enc{devKeyHour{ids[rs[i].Device], hour}, e})
		t := hour.Add(time.Duration(e.off) * time.Second)
		if lo.IsZero() || t.Before(lo) {
			lo = t
		}
		hi = tmax(hi, t.Add(time.Minute))
	}
	if err := s.ensureParts(ctx, "minutes", lo, hi); err != nil {
		return res, err
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.lockSource(ctx, tx, sid); err != nil {
			return err
		}
		var keys []devKeyHour
		for _, m := range mins {
			if !slices.Contains(keys, m.k) {
				keys = append(keys, m.k)
			}
		}
		slices.SortFunc(keys, func(a, b devKeyHour) int {
			if c := a.hour.Compare(b.hour); c != 0 {
				return c
			}
			return int(a.device - b.device)
		})
		hours := make([]time.Time, len(keys))
		devs := make([]int32, len(keys))
		for i, k := range keys {
			hours[i], devs[i] = k.hour, k.device
		}
		rows, err := tx.Query(ctx, `SELECT `+minuteCols+` FROM minutes m
			JOIN unnest($2::timestamptz[], $3::int4[]) AS k(h, d) ON m.hour = k.h AND m.device_id = k.d
			WHERE m.source_id = $1 ORDER BY m.hour, m.device_id FOR UPDATE OF m`, sid, hours, devs)
		if err != nil {
			return fmt.Errorf("reading stored minutes: %w", err)
		}
		stored := map[devKeyHour][]minute{}
		var m minuteRow
		_, err = pgx.ForEachRow(rows, m.dest(), func() error {
			m.expand()
			stored[devKeyHour{m.device, m.hour.UTC()}] = m.all()
			m = minuteRow{}
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading stored minutes: %w", err)
		}
		added := map[devKeyHour][]minute{}
		type stat struct {
			n           int64
			first, last time.Time
		}
		stats := map[int32]*stat{}
		var times []time.Time
		for _, x := range mins {
			dup := slices.ContainsFunc(stored[x.k], func(e minute) bool { return e.off == x.e.off }) ||
				slices.ContainsFunc(added[x.k], func(e minute) bool { return e.off == x.e.off })
			if dup {
				res.Present++
				continue
			}
			added[x.k] = append(added[x.k], x.e)
			res.Inserted++
			t := x.k.hour.Add(time.Duration(x.e.off) * time.Second)
			times = append(times, t)
			st := stats[x.k.device]
			if st == nil {
				st = &stat{first: t, last: t}
				stats[x.k.device] = st
			}
			st.n++
			if t.Before(st.first) {
				st.first = t
			}
			st.last = tmax(st.last, t)
		}
		var b pgx.Batch
		for _, k := range keys {
			if len(added[k]) == 0 {
				continue
			}
			row := minuteRowOf(k.hour, k.device, append(stored[k], added[k]...))
			b.Queue(upsertMinutesSQL, row.args(sid)...)
		}
		if len(times) > 0 {
			b.Queue(`INSERT INTO days AS d (source_id, day, version)
				SELECT $1, (t AT TIME ZONE (SELECT timezone FROM sources WHERE id = $1))::date, `+newDayVersion+`
				FROM unnest($2::timestamptz[]) AS u(t) GROUP BY 2 ORDER BY 2
				ON CONFLICT (source_id, day) DO UPDATE SET version = excluded.version`, sid, times)
			ds := make([]int32, 0, len(stats))
			for d := range stats {
				ds = append(ds, d)
			}
			slices.Sort(ds)
			for _, d := range ds {
				st := stats[d]
				b.Queue(`UPDATE devices SET n = n + $3, first_t = least(first_t, $4), last_t = greatest(last_t, $5)
					WHERE source_id = $1 AND id = $2`, sid, d, st.n, st.first, st.last)
			}
		}
		if err := tx.SendBatch(ctx, &b).Close(); err != nil {
			return fmt.Errorf("storing reduced readings: %w", err)
		}
		if len(raw.rows) == 0 {
			return nil
		}
		if err := s.storeGroupOn(ctx, tx, []*batch{raw}, false); err != nil {
			return err
		}
		res.Inserted += raw.res.Inserted
		res.Present += raw.res.Present
		return nil
	})
	if err != nil {
		return store.InsertResult{}, err
	}
	return res, nil
}

func tmin(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func tmax(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
