package ingest

import (
	"fmt"
	"time"
)

// ParseBound reads a from/to argument: an RFC 3339 instant, or a day
// YYYY-MM-DD in zone. A day as "from" starts at its local midnight; as "to"
// (end set) it is inclusive: the bound is the next local midnight.
func ParseBound(s string, zone *time.Location, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	d, err := time.ParseInLocation("2006-01-02", s, zone)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want YYYY-MM-DD or an RFC 3339 time like 2026-11-26T12:00:00Z", s)
	}
	if end {
		d = time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, zone)
	}
	return d.UTC(), nil
}
