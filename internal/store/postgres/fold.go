package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Folding moves readings from recent (one row per reading) into chunks (one
// row per source, UTC hour and device, the hour's readings as arrays): the
// compact layout (docs/postgres.md). Every server folds in the background;
// tests and tools call Fold.
//
// A source is folded in a transaction of its own holding the source's fold
// lock exclusively (inserts hold it shared), so no insert checks or adds
// readings of the source meanwhile: a reading is always in exactly one of
// recent and chunks. Late readings for an hour that is already a chunk land
// in recent like any other and are merged into the chunk by the next fold.

// Fold defaults.
const (
	// defaultFoldEvery is how often the background folder looks for work.
	defaultFoldEvery = time.Minute
	// defaultFoldLag: an hour is folded once it ended this long ago, so
	// readings still arriving for it normally go to recent first.
	defaultFoldLag = 10 * time.Minute
	// foldSpan bounds one fold transaction: at most this much of a
	// source's time (a migrated year is folded a week at a time).
	foldSpan = 7 * 24 * time.Hour
)

// FoldStats counts what a Fold did.
type FoldStats struct {
	Sources  int   // sources folded
	Readings int64 // readings moved from recent into chunks
}

// foldSQL moves a source's readings before $2 from recent into chunks,
// merging them into chunks that already exist (late readings), all in
// array order of time, and adds the readings moved of each day to the
// day's base, so its version stays the same (see dayversion.go). It
// reports the readings moved.
const foldSQL = `
WITH del AS (
	DELETE FROM recent WHERE source_id = $1 AND t < $2
	RETURNING source_id, t, device_id, power, energy_in, energy_out, temperature, voltage, phases, device_time, backfilled
), moved AS (
	SELECT (t AT TIME ZONE (SELECT timezone FROM sources WHERE id = $1))::date AS day, count(*) AS k
	FROM del GROUP BY 1
), dv AS (
	UPDATE days d SET version = CASE WHEN (d.version & 16777215) + m.k < 8388608 THEN d.version + m.k
		ELSE ` + newDayVersion + ` END
	FROM moved m WHERE d.source_id = $1 AND d.day = m.day
), g AS (
	SELECT source_id, hour, device_id,
		array_agg(extract(epoch FROM t - hour)::int2 ORDER BY t) AS offs,
		array_agg(power ORDER BY t) AS power,
		CASE WHEN count(temperature) > 0 THEN array_agg(temperature ORDER BY t) END AS temperature,
		CASE WHEN count(energy_in) > 0 THEN array_agg(energy_in ORDER BY t) END AS energy_in,
		CASE WHEN count(energy_out) > 0 THEN array_agg(energy_out ORDER BY t) END AS energy_out,
		CASE WHEN count(voltage) > 0 THEN array_agg(voltage ORDER BY t) END AS voltage,
		CASE WHEN count(phases) > 0 THEN array_agg(phases::text ORDER BY t) END AS phases,
		CASE WHEN count(device_time) > 0 THEN array_agg(round(extract(epoch FROM device_time - t) * 1000)::int8 ORDER BY t) END AS device_ms,
		CASE WHEN bool_or(backfilled) THEN array_agg(backfilled ORDER BY t) END AS backfilled,
		count(*) AS n
	FROM (SELECT *, date_trunc('hour', t, 'UTC') AS hour FROM del) d
	GROUP BY 1, 2, 3
), up AS (
	INSERT INTO chunks AS c (source_id, hour, device_id, offs, power, temperature, energy_in, energy_out, voltage, phases, device_ms, backfilled)
	SELECT source_id, hour, device_id, offs, power, temperature, energy_in, energy_out, voltage, phases, device_ms, backfilled
	FROM g ORDER BY 1, 2, 3
	ON CONFLICT (source_id, hour, device_id) DO UPDATE SET
		(offs, power, temperature, energy_in, energy_out, voltage, phases, device_ms, backfilled) = (
		SELECT array_agg(o ORDER BY o), array_agg(p ORDER BY o),
			CASE WHEN count(tp) > 0 THEN array_agg(tp ORDER BY o) END,
			CASE WHEN count(ei) > 0 THEN array_agg(ei ORDER BY o) END,
			CASE WHEN count(eo) > 0 THEN array_agg(eo ORDER BY o) END,
			CASE WHEN count(v) > 0 THEN array_agg(v ORDER BY o) END,
			CASE WHEN count(ph) > 0 THEN array_agg(ph ORDER BY o) END,
			CASE WHEN count(dm) > 0 THEN array_agg(dm ORDER BY o) END,
			CASE WHEN bool_or(bf) THEN array_agg(coalesce(bf, false) ORDER BY o) END
		FROM (SELECT * FROM unnest(c.offs, c.power, c.temperature, c.energy_in, c.energy_out, c.voltage, c.phases, c.device_ms, c.backfilled)
		      UNION ALL
		      SELECT * FROM unnest(excluded.offs, excluded.power, excluded.temperature, excluded.energy_in, excluded.energy_out,
		                           excluded.voltage, excluded.phases, excluded.device_ms, excluded.backfilled)
		) AS m(o, p, tp, ei, eo, v, ph, dm, bf))
	RETURNING 1
)
SELECT coalesce(sum(n), 0)::int8, (SELECT count(*) FROM up) FROM g`

// pendingSQL lists the sources with readings in recent before $1, by a
// loose index scan over recent's primary key (one probe per source, not a
// scan of recent). It runs in the background only, never while ingesting.
const pendingSQL = `
WITH RECURSIVE s AS (
	(SELECT source_id FROM recent ORDER BY source_id LIMIT 1)
	UNION ALL
	SELECT (SELECT r.source_id FROM recent r WHERE r.source_id > s.source_id ORDER BY r.source_id LIMIT 1)
	FROM s WHERE s.source_id IS NOT NULL
)
SELECT source_id FROM s
WHERE source_id IS NOT NULL AND (SELECT min(t) FROM recent r WHERE r.source_id = s.source_id) < $1`

// Fold moves every reading before cutoff (rounded down to a UTC hour) from
// recent into chunks, source by source. Safe to run from several servers at
// once and while readings are inserted.
func (s *Store) Fold(ctx context.Context, cutoff time.Time) (FoldStats, error) {
	var st FoldStats
	cutoff = cutoff.UTC().Truncate(time.Hour)
	rows, err := s.pool.Query(ctx, pendingSQL, cutoff)
	if err != nil {
		return st, fmt.Errorf("fold: finding sources: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return st, fmt.Errorf("fold: finding sources: %w", err)
	}
	for _, id := range ids {
		n, err := s.foldSource(ctx, id, cutoff)
		if err != nil {
			return st, err
		}
		if n > 0 {
			st.Sources++
			st.Readings += n
		}
	}
	return st, nil
}

// foldSource folds one source's readings before cutoff, at most foldSpan
// of its time per transaction.
func (s *Store) foldSource(ctx context.Context, id int32, cutoff time.Time) (int64, error) {
	var total int64
	for {
		var first *time.Time
		if err := s.pool.QueryRow(ctx, `SELECT min(t) FROM recent WHERE source_id = $1`, id).Scan(&first); err != nil {
			return total, fmt.Errorf("fold source %d: %w", id, err)
		}
		if first == nil || !first.Before(cutoff) {
			return total, nil
		}
		upto := first.UTC().Truncate(time.Hour).Add(foldSpan)
		if upto.After(cutoff) {
			upto = cutoff
		}
		if err := s.ensurePartitions(ctx, first.UTC(), upto); err != nil {
			return total, fmt.Errorf("fold source %d: %w", id, err)
		}
		var n, chunks int64
		err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			if err := s.lockSource(ctx, tx, id); err != nil {
				return err
			}
			return tx.QueryRow(ctx, foldSQL, id, upto).Scan(&n, &chunks)
		})
		if err != nil {
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "23514" { // no partition for a row: one was dropped meanwhile
				s.mu.Lock()
				clear(s.parts)
				s.mu.Unlock()
			}
			return total, fmt.Errorf("fold source %d before %s: %w", id, upto.Format(time.RFC3339), err)
		}
		total += n
	}
}

// partitionName is the chunks partition of the month of t (UTC).

// partName is the partition of table (chunks or minutes) for the month of
// t (UTC).
func partName(table string, t time.Time) string {
	t = t.UTC()
	return fmt.Sprintf("%s_%04d_%02d", table, t.Year(), int(t.Month()))
}

// monthOf is the first instant of t's UTC month.
func monthOf(t time.Time) time.Time {
	t = t.UTC()
	return time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
}

// ensurePartitions creates the monthly partitions of chunks covering
// from..to (UTC months).
func (s *Store) ensurePartitions(ctx context.Context, from, to time.Time) error {
	return s.ensureParts(ctx, "chunks", from, to)
}

// ensureParts creates the monthly partitions of table (chunks or minutes)
// covering from..to (UTC months). Servers creating the same one serialise
// on an advisory lock; a partition is created once and cached.
func (s *Store) ensureParts(ctx context.Context, table string, from, to time.Time) error {
	var need []time.Time
	s.mu.RLock()
	for m := monthOf(from); m.Before(to); m = m.AddDate(0, 1, 0) {
		if !s.parts[partName(table, m)] {
			need = append(need, m)
		}
	}
	s.mu.RUnlock()
	if len(need) == 0 {
		return nil
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, -1)`, s.lockKey); err != nil {
			return fmt.Errorf("taking the partition lock: %w", err)
		}
		for _, m := range need {
			name := partName(table, m)
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, name).Scan(&exists); err != nil {
				return fmt.Errorf("looking for partition %s: %w", name, err)
			}
			if exists {
				continue
			}
			sql := fmt.Sprintf(`CREATE TABLE %s PARTITION OF %s FOR VALUES FROM ('%s') TO ('%s')`,
				pgx.Identifier{name}.Sanitize(), pgx.Identifier{table}.Sanitize(), m.Format(time.RFC3339), m.AddDate(0, 1, 0).Format(time.RFC3339))
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("creating partition %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, m := range need {
		s.parts[partName(table, m)] = true
	}
	s.mu.Unlock()
	return nil
}

// folder folds in the background until stop is closed: every fold interval,
// all hours that ended more than the fold lag ago.
func (s *Store) folder(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	tick := time.NewTicker(s.opts.FoldEvery)
	defer tick.Stop()
	for {
		ctx, cancel := context.WithCancel(context.Background())
		go func() {
			select {
			case <-stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		st, err := s.Fold(ctx, time.Now().Add(-s.opts.FoldLag))
		cancel()
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			s.log.Warn("folding recent readings into chunks", "err", err)
		case st.Readings > 0:
			s.log.Debug("folded recent readings into chunks", "sources", st.Sources, "readings", st.Readings)
		}
		select {
		case <-stop:
			return
		case <-tick.C:
		}
	}
}

// lockSource takes the source's fold lock for the transaction (folding,
// reducing, deleting and inserting reduced readings exclude each other and
// inserts of the source), waiting at most 20 s.
func (s *Store) lockSource(ctx context.Context, tx pgx.Tx, sid int32) error {
	if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '20s'`); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1::int4, $2::int4)`, s.lockKey, sid); err != nil {
		return fmt.Errorf("taking the fold lock: %w", err)
	}
	return nil
}
