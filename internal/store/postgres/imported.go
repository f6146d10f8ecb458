package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/powermeter/powermeter/internal/store"
)

var _ store.DayImporter = (*Store)(nil)

// PutImportedDays implements store.DayImporter.
func (s *Store) PutImportedDays(ctx context.Context, source string, days []store.ImportedDay) (int, error) {
	for _, d := range days {
		if err := d.Check(); err != nil {
			return 0, fmt.Errorf("imported days of %q: %w", source, err)
		}
	}
	sid, err := s.sourceID(ctx, source)
	if err != nil {
		return 0, fmt.Errorf("imported days: %w", err)
	}
	n := 0
	err = pgx.BeginFunc(ctx, s.rpool, func(tx pgx.Tx) error {
		for _, d := range days {
			tag, err := tx.Exec(ctx, `INSERT INTO imported_days (source_id, day, in_wh, out_wh, peak_w, peak_at, first, last, origin)
				VALUES ($1, $2::date, $3, $4, $5, $6, $7, $8, $9)
				ON CONFLICT (source_id, day) DO UPDATE SET in_wh = EXCLUDED.in_wh, out_wh = EXCLUDED.out_wh, peak_w = EXCLUDED.peak_w,
					peak_at = EXCLUDED.peak_at, first = EXCLUDED.first, last = EXCLUDED.last, origin = EXCLUDED.origin
				WHERE (imported_days.in_wh, imported_days.out_wh, imported_days.peak_w, imported_days.peak_at, imported_days.first, imported_days.last, imported_days.origin)
					IS DISTINCT FROM (EXCLUDED.in_wh, EXCLUDED.out_wh, EXCLUDED.peak_w, EXCLUDED.peak_at, EXCLUDED.first, EXCLUDED.last, EXCLUDED.origin)`,
				sid, d.Day, d.InWh, d.OutWh, d.PeakW, d.PeakAt, d.First, d.Last, d.Origin)
			if err != nil {
				return fmt.Errorf("imported day %s of %q: %w", d.Day, source, err)
			}
			n += int(tag.RowsAffected())
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// ImportedDays implements store.DayImporter.
func (s *Store) ImportedDays(ctx context.Context, source, from, to string) ([]store.ImportedDay, error) {
	for _, d := range []string{from, to} {
		if _, err := time.Parse(dayLayout, d); err != nil {
			return nil, fmt.Errorf("imported days: want YYYY-MM-DD: %w", err)
		}
	}
	sid, err := s.sourceID(ctx, source)
	if err != nil {
		return nil, fmt.Errorf("imported days: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rows, err := s.rpool.Query(ctx, `SELECT to_char(day, 'YYYY-MM-DD'), in_wh, out_wh, peak_w, peak_at, first, last, origin
		FROM imported_days WHERE source_id = $1 AND day BETWEEN $2::date AND $3::date ORDER BY day`, sid, from, to)
	if err != nil {
		return nil, fmt.Errorf("imported days of %q: %w", source, err)
	}
	var out []store.ImportedDay
	var d store.ImportedDay
	_, err = pgx.ForEachRow(rows, []any{&d.Day, &d.InWh, &d.OutWh, &d.PeakW, &d.PeakAt, &d.First, &d.Last, &d.Origin}, func() error {
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("imported days of %q: %w", source, err)
	}
	return out, nil
}
