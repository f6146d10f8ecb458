package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/powermeter/powermeter/internal/store"
)

var _ store.Deleter = (*Store)(nil)

// deleteChunksSQL removes from the device's chunks the readings in
// [$3, $4): chunks left empty go, the others are rewritten without them.
// It reports how many readings it removed.
const deleteChunksSQL = `
WITH hit AS (
	SELECT c.hour, c.device_id,
		(SELECT count(*) FROM unnest(c.offs) o WHERE c.hour + o * interval '1 second' >= $3 AND c.hour + o * interval '1 second' < $4) AS gone,
		cardinality(c.offs) AS n
	FROM chunks c
	WHERE c.source_id = $1 AND c.device_id = $2 AND c.hour >= date_trunc('hour', $3::timestamptz, 'UTC') AND c.hour < $4
), del AS (
	DELETE FROM chunks c USING hit
	WHERE c.source_id = $1 AND c.device_id = hit.device_id AND c.hour = hit.hour AND hit.gone = hit.n AND hit.gone > 0
	RETURNING 1
), upd AS (
	UPDATE chunks c SET (offs, power, temperature, energy_in, energy_out, voltage, phases, device_ms, backfilled) = (
		SELECT array_agg(o ORDER BY o), array_agg(p ORDER BY o),
			CASE WHEN count(tp) > 0 THEN array_agg(tp ORDER BY o) END,
			CASE WHEN count(ei) > 0 THEN array_agg(ei ORDER BY o) END,
			CASE WHEN count(eo) > 0 THEN array_agg(eo ORDER BY o) END,
			CASE WHEN count(v) > 0 THEN array_agg(v ORDER BY o) END,
			CASE WHEN count(ph) > 0 THEN array_agg(ph ORDER BY o) END,
			CASE WHEN count(dm) > 0 THEN array_agg(dm ORDER BY o) END,
			CASE WHEN bool_or(bf) THEN array_agg(coalesce(bf, false) ORDER BY o) END
		FROM unnest(c.offs, c.power, c.temperature, c.energy_in, c.energy_out, c.voltage, c.phases, c.device_ms, c.backfilled)
			AS m(o, p, tp, ei, eo, v, ph, dm, bf)
		WHERE NOT (c.hour + o * interval '1 second' >= $3 AND c.hour + o * interval '1 second' < $4))
	FROM hit
	WHERE c.source_id = $1 AND c.device_id = hit.device_id AND c.hour = hit.hour AND hit.gone > 0 AND hit.gone < hit.n
	RETURNING 1
)
SELECT coalesce(sum(gone), 0)::int8, (SELECT count(*) FROM del), (SELECT count(*) FROM upd) FROM hit`

// deleteMinutesSQL removes from the device's reduced minutes those whose
// minute starts in [$3, $4), as deleteChunksSQL does with raw readings.
const deleteMinutesSQL = `
WITH hit0 AS (
	SELECT m.hour, m.device_id, coalesce(m.offs, ` + fullHour + `) AS offs FROM minutes m
	WHERE m.source_id = $1 AND m.device_id = $2 AND m.hour >= date_trunc('hour', $3::timestamptz, 'UTC') AND m.hour < $4
), hit AS (
	SELECT m.hour, m.device_id,
		(SELECT count(*) FROM unnest(m.offs) o WHERE m.hour + o * interval '1 second' >= $3 AND m.hour + o * interval '1 second' < $4) AS gone,
		cardinality(m.offs) AS n
	FROM hit0 m
), del AS (
	DELETE FROM minutes m USING hit
	WHERE m.source_id = $1 AND m.device_id = hit.device_id AND m.hour = hit.hour AND hit.gone = hit.n AND hit.gone > 0
	RETURNING 1
), upd AS (
	UPDATE minutes m SET (offs, n, power, power_min, power_max, in_uwh, out_uwh, last_secs, last_power,
		temperature, energy_in, energy_out, voltage, phases, device_ms, backfilled, gap_in_uwh, gap_out_uwh) = (
		SELECT array_agg(o ORDER BY o), array_agg(k ORDER BY o), array_agg(p ORDER BY o), array_agg(pl ORDER BY o),
			array_agg(pu ORDER BY o), array_agg(iu ORDER BY o), array_agg(ou ORDER BY o), array_agg(lo ORDER BY o),
			array_agg(lp ORDER BY o),
			CASE WHEN count(tp) > 0 THEN array_agg(tp ORDER BY o) END,
			CASE WHEN count(ei) > 0 THEN array_agg(ei ORDER BY o) END,
			CASE WHEN count(eo) > 0 THEN array_agg(eo ORDER BY o) END,
			CASE WHEN count(v) > 0 THEN array_agg(v ORDER BY o) END,
			CASE WHEN count(ph) > 0 THEN array_agg(ph ORDER BY o) END,
			CASE WHEN count(dm) > 0 THEN array_agg(dm ORDER BY o) END,
			CASE WHEN bool_or(bf) THEN array_agg(coalesce(bf, false) ORDER BY o) END,
			CASE WHEN count(gi) > 0 THEN array_agg(gi ORDER BY o) END,
			CASE WHEN count(gi) > 0 THEN array_agg(gu ORDER BY o) END
		FROM unnest(coalesce(m.offs, ` + fullHour + `), m.n, m.power, m.power_min, m.power_max, m.in_uwh, m.out_uwh, m.last_secs, m.last_power,
			m.temperature, m.energy_in, m.energy_out, m.voltage, m.phases, m.device_ms, m.backfilled, m.gap_in_uwh, m.gap_out_uwh)
			AS x(o, k, p, pl, pu, iu, ou, lo, lp, tp, ei, eo, v, ph, dm, bf, gi, gu)
		WHERE NOT (m.hour + o * interval '1 second' >= $3 AND m.hour + o * interval '1 second' < $4))
	FROM hit
	WHERE m.source_id = $1 AND m.device_id = hit.device_id AND m.hour = hit.hour AND hit.gone > 0 AND hit.gone < hit.n
	RETURNING 1
)
SELECT coalesce(sum(gone), 0)::int8, (SELECT count(*) FROM del), (SELECT count(*) FROM upd) FROM hit`

// deviceStatsSQL adds $3 to a device's count and takes its first and last
// time again from recent, chunks and minutes (after a delete or a
// reduction).
const deviceStatsSQL = `
UPDATE devices SET n = n + $3,
	first_t = least(
		(SELECT min(t) FROM recent WHERE source_id = $1 AND device_id = $2),
		(SELECT c.hour + c.offs[1] * interval '1 second' FROM chunks c WHERE c.source_id = $1 AND c.device_id = $2 ORDER BY c.hour LIMIT 1),
		(SELECT m.hour + coalesce(m.offs[1], 0) * interval '1 second' FROM minutes m WHERE m.source_id = $1 AND m.device_id = $2 ORDER BY m.hour LIMIT 1)),
	last_t = greatest(
		(SELECT max(t) FROM recent WHERE source_id = $1 AND device_id = $2),
		(SELECT c.hour + c.offs[cardinality(c.offs)] * interval '1 second' FROM chunks c WHERE c.source_id = $1 AND c.device_id = $2 ORDER BY c.hour DESC LIMIT 1),
		(SELECT m.hour + coalesce(m.offs[cardinality(m.offs)], 3540) * interval '1 second' FROM minutes m WHERE m.source_id = $1 AND m.device_id = $2 ORDER BY m.hour DESC LIMIT 1))
WHERE source_id = $1 AND id = $2`

// daysSQL gives the days of the source from $2 to $3 a new version, and
// drops those left without readings (bounds in the source's zone $4).
const daysSQL = `
WITH d AS (
	SELECT day, (day::timestamp AT TIME ZONE $4) AS lo, ((day + 1)::timestamp AT TIME ZONE $4) AS hi
	FROM days WHERE source_id = $1 AND day BETWEEN $2::date AND $3::date
), empty AS (
	SELECT day FROM d
	WHERE NOT EXISTS (SELECT 1 FROM recent r WHERE r.source_id = $1 AND r.t >= d.lo AND r.t < d.hi)
	  AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.source_id = $1 AND c.hour >= date_trunc('hour', d.lo, 'UTC') AND c.hour < d.hi
		AND EXISTS (SELECT 1 FROM unnest(c.offs) o WHERE c.hour + o * interval '1 second' >= d.lo AND c.hour + o * interval '1 second' < d.hi))
	  AND NOT EXISTS (SELECT 1 FROM minutes m WHERE m.source_id = $1 AND m.hour >= date_trunc('hour', d.lo, 'UTC') AND m.hour < d.hi
		AND EXISTS (SELECT 1 FROM unnest(coalesce(m.offs, ` + fullHour + `)) o WHERE m.hour + o * interval '1 second' >= d.lo AND m.hour + o * interval '1 second' < d.hi))
), gone AS (
	DELETE FROM days WHERE source_id = $1 AND day IN (SELECT day FROM empty) RETURNING 1
)
UPDATE days SET version = ` + newDayVersion + `
WHERE source_id = $1 AND day BETWEEN $2::date AND $3::date AND day NOT IN (SELECT day FROM empty)`

// Delete implements store.Deleter in one transaction that holds the
// source's fold lock exclusively (inserts of the source and the folder
// wait meanwhile), in recent, chunks and minutes (a reduced minute goes
// when its start lies in the range).
func (s *Store) Delete(ctx context.Context, source, device string, from, to time.Time) (int64, error) {
	sid, err := s.sourceID(ctx, source)
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	from, to = ceilSecond(from).UTC(), ceilSecond(to).UTC()
	var n int64
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.lockSource(ctx, tx, sid); err != nil {
			return err
		}
		var dev int32
		var zone string
		err := tx.QueryRow(ctx, `SELECT d.id, s.timezone FROM devices d JOIN sources s ON s.id = d.source_id
			WHERE d.source_id = $1 AND d.name = $2`, sid, device).Scan(&dev, &zone)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("looking up the device: %w", err)
		}
		tag, err := tx.Exec(ctx, `DELETE FROM recent WHERE source_id = $1 AND device_id = $2 AND t >= $3 AND t < $4`, sid, dev, from, to)
		if err != nil {
			return fmt.Errorf("deleting recent readings: %w", err)
		}
		var inChunks, dropped, rewritten int64 // the chunks and minutes rows dropped and rewritten are not reported
		if err := tx.QueryRow(ctx, deleteChunksSQL, sid, dev, from, to).Scan(&inChunks, &dropped, &rewritten); err != nil {
			return fmt.Errorf("deleting from chunks: %w", err)
		}
		var inMinutes int64
		if err := tx.QueryRow(ctx, deleteMinutesSQL, sid, dev, from, to).Scan(&inMinutes, &dropped, &rewritten); err != nil {
			return fmt.Errorf("deleting reduced minutes: %w", err)
		}
		n = tag.RowsAffected() + inChunks + inMinutes
		if n == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, deviceStatsSQL, sid, dev, -n); err != nil {
			return fmt.Errorf("recounting the device: %w", err)
		}
		loc, err := time.LoadLocation(zone)
		if err != nil {
			return fmt.Errorf("zone %q: %w", zone, err)
		}
		if _, err := tx.Exec(ctx, daysSQL, sid, from.In(loc).Format(dayLayout), to.Add(-time.Second).In(loc).Format(dayLayout), zone); err != nil {
			return fmt.Errorf("renewing the days: %w", err)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("delete %s of %q: %w", device, source, err)
	}
	return n, nil
}
