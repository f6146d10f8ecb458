package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/powermeter/powermeter/internal/store"
)

var _ store.Deleter = (*Store)(nil)

// Delete implements store.Deleter in one transaction on the writer.
func (s *Store) Delete(ctx context.Context, source, device string, from, to time.Time) (int64, error) {
	id, err := s.sourceID(ctx, source)
	if err != nil {
		return 0, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("delete: begin: %w", err)
	}
	defer tx.Rollback()
	var dev int64
	var zone string
	err = tx.QueryRowContext(ctx, qDevice, id, device).Scan(&dev)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err == nil {
		err = tx.QueryRowContext(ctx, "SELECT timezone FROM sources WHERE id = ?", id).Scan(&zone)
	}
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	loc, err := s.location(zone)
	if err != nil {
		return 0, fmt.Errorf("delete: zone of %s: %w", source, err)
	}
	lo, hi := ceilSec(from), ceilSec(to)
	tbl := readings(id)
	res, err := tx.ExecContext(ctx, "DELETE FROM "+tbl+" WHERE ts >= ? AND ts < ? AND dev = ?", lo, hi, dev)
	if err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil || n == 0 {
		return 0, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE devices SET n = n - ?1,
		first_ts = (SELECT min(ts) FROM `+tbl+` WHERE dev = ?3),
		last_ts = (SELECT max(ts) FROM `+tbl+` WHERE dev = ?3)
		WHERE src = ?2 AND id = ?3`, n, id, dev); err != nil {
		return 0, fmt.Errorf("delete: device counts: %w", err)
	}
	// every local day the range touches: a new version, or gone if empty
	v, err := s.bumpClock(ctx, tx, id)
	if err != nil {
		return 0, err
	}
	first := time.Unix(lo+epoch, 0).In(loc).Format(time.DateOnly)
	last := time.Unix(hi-1+epoch, 0).In(loc).Format(time.DateOnly)
	rows, err := tx.QueryContext(ctx, "SELECT day FROM days WHERE src = ? AND day >= ? AND day <= ? ORDER BY day", id, first, last)
	if err != nil {
		return 0, fmt.Errorf("delete: days: %w", err)
	}
	var days []string
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			rows.Close()
			return 0, fmt.Errorf("delete: days: %w", err)
		}
		days = append(days, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("delete: days: %w", err)
	}
	for _, day := range days {
		d, err := time.ParseInLocation(time.DateOnly, day, loc)
		if err != nil {
			return 0, fmt.Errorf("delete: day %q: %w", day, err)
		}
		start, end := d.Unix()-epoch, d.AddDate(0, 0, 1).Unix()-epoch
		var left int
		if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM (SELECT 1 FROM "+tbl+" WHERE ts >= ? AND ts < ? LIMIT 1)", start, end).Scan(&left); err != nil {
			return 0, fmt.Errorf("delete: day %s: %w", day, err)
		}
		if left == 0 {
			_, err = tx.ExecContext(ctx, "DELETE FROM days WHERE src = ? AND day = ?", id, day)
		} else {
			_, err = tx.ExecContext(ctx, "UPDATE days SET version = ? WHERE src = ? AND day = ?", v, id, day)
		}
		if err != nil {
			return 0, fmt.Errorf("delete: day %s: %w", day, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("delete: commit: %w", err)
	}
	return n, nil
}
