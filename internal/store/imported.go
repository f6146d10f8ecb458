package store

import (
	"context"
	"fmt"
	"time"
)

// ImportedDay is a day known only from a summary, not from readings: the
// PHP app's chart_stats.csv keeps per-day figures of days whose raw
// YYYY-MM-DD.csv may be gone. Such a day has no raw readings; its energy
// is what the PHP app computed.
type ImportedDay struct {
	Day   string  `json:"day"`    // YYYY-MM-DD in the source's zone
	InWh  float64 `json:"in_wh"`  // energy taken (import), Wh
	OutWh float64 `json:"out_wh"` // energy fed in (export), Wh
	PeakW float64 `json:"peak_w"` // highest power (W, as the PHP app: absolute)
	// PeakAt, First and Last are local wall-clock times "HH:MM:SS" of the
	// peak and of the first and last non-zero power ("" when unknown).
	PeakAt string `json:"peak_at,omitempty"`
	First  string `json:"first,omitempty"`
	Last   string `json:"last,omitempty"`
	// Origin names where the summary came from ("chart_stats.csv").
	Origin string `json:"origin"`
}

// Check validates a summary before it is stored.
func (d ImportedDay) Check() error {
	if _, err := time.Parse(time.DateOnly, d.Day); err != nil {
		return fmt.Errorf("day %q: want YYYY-MM-DD", d.Day)
	}
	for _, v := range []struct {
		name string
		v    float64
	}{{"in_wh", d.InWh}, {"out_wh", d.OutWh}, {"peak_w", d.PeakW}} {
		if v.v != v.v || v.v < 0 || v.v > 1e12 {
			return fmt.Errorf("day %s: %s %v: want 0..1e12", d.Day, v.name, v.v)
		}
	}
	for _, t := range []string{d.PeakAt, d.First, d.Last} {
		if t == "" {
			continue
		}
		if _, err := time.Parse(time.TimeOnly, t); err != nil {
			return fmt.Errorf("day %s: time %q: want HH:MM:SS", d.Day, t)
		}
	}
	return nil
}

// DayImporter is implemented by stores that keep imported day summaries
// (SQLite and PostgreSQL).
type DayImporter interface {
	// PutImportedDays stores the summaries (replacing those of the same
	// days) in one transaction and returns how many were new or changed.
	PutImportedDays(ctx context.Context, source string, days []ImportedDay) (int, error)
	// ImportedDays returns the summaries of days from..to (inclusive), in
	// order.
	ImportedDays(ctx context.Context, source, from, to string) ([]ImportedDay, error)
}
