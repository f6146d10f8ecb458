package sqlite

import (
	"context"
	"fmt"
	"time"

	"github.com/powermeter/powermeter/internal/store"
)

var _ store.DayImporter = (*Store)(nil)

// PutImportedDays implements store.DayImporter.
func (s *Store) PutImportedDays(ctx context.Context, source string, days []store.ImportedDay) (int, error) {
	for _, d := range days {
		if err := d.Check(); err != nil {
			return 0, fmt.Errorf("imported days of %s: %w", source, err)
		}
	}
	id, err := s.sourceID(ctx, source)
	if err != nil {
		return 0, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("imported days of %s: %w", source, err)
	}
	defer tx.Rollback()
	n := 0
	for _, d := range days {
		res, err := tx.ExecContext(ctx, `INSERT INTO imported_days (src, day, in_wh, out_wh, peak_w, peak_at, first, last, origin)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (src, day) DO UPDATE SET in_wh = excluded.in_wh, out_wh = excluded.out_wh, peak_w = excluded.peak_w,
				peak_at = excluded.peak_at, first = excluded.first, last = excluded.last, origin = excluded.origin
			WHERE (in_wh, out_wh, peak_w, peak_at, first, last, origin) IS NOT (excluded.in_wh, excluded.out_wh, excluded.peak_w,
				excluded.peak_at, excluded.first, excluded.last, excluded.origin)`,
			id, d.Day, d.InWh, d.OutWh, d.PeakW, d.PeakAt, d.First, d.Last, d.Origin)
		if err != nil {
			return 0, fmt.Errorf("imported day %s of %s: %w", d.Day, source, err)
		}
		if c, _ := res.RowsAffected(); c > 0 {
			n++
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("imported days of %s: %w", source, err)
	}
	return n, nil
}

// ImportedDays implements store.DayImporter.
func (s *Store) ImportedDays(ctx context.Context, source, from, to string) ([]store.ImportedDay, error) {
	for _, d := range []string{from, to} {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return nil, fmt.Errorf("imported days %s: %q: want YYYY-MM-DD", source, d)
		}
	}
	id, err := s.sourceID(ctx, source)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT day, in_wh, out_wh, peak_w, peak_at, first, last, origin FROM imported_days
		WHERE src = ? AND day >= ? AND day <= ? ORDER BY day`, id, from, to)
	if err != nil {
		return nil, fmt.Errorf("imported days %s: %w", source, err)
	}
	defer rows.Close()
	var out []store.ImportedDay
	for rows.Next() {
		var d store.ImportedDay
		if err := rows.Scan(&d.Day, &d.InWh, &d.OutWh, &d.PeakW, &d.PeakAt, &d.First, &d.Last, &d.Origin); err != nil {
			return nil, fmt.Errorf("imported days %s: %w", source, err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}
