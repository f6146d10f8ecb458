// Package legacy reads and writes the stats line of the original ESP8266
// logger and its PHP receiver (log.php):
//
//	DD.MM.YYYY,HH:MM:SS,<power>[,<temperature>[,<x1>…]]
//
// Parse accepts exactly the lines the PHP receiver accepts, except lines that
// name no real date, time or number, which it refuses too. Format writes
// lines as the original logger wrote them.
package legacy

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// MaxFields is the most fields a line may have: date, time and 14 values.
const MaxFields = 16

// Line is one parsed stats line. Date and time are wall-clock time in the
// sender's zone, without offset.
type Line struct {
	Year, Month, Day     int
	Hour, Minute, Second int
	Power                float64
	Temperature          *float64 // field 4; nil when empty or absent
	Extra                []float64
	ExtraEmpty           []bool // Extra[i] was an empty field (kept as 0)
	Raw                  string // the line as received
}

// Error says which field of a line is wrong and why.
type Error struct {
	Field int    // 1-based field number, 0 for the line as a whole
	Name  string // "date", "time", "power", "temperature", "value 3"
	Value string
	Msg   string
}

func (e *Error) Error() string {
	if e.Field == 0 {
		return "stats: " + e.Msg
	}
	return fmt.Sprintf("stats field %d (%s) %q: %s", e.Field, e.Name, truncate(e.Value, 32), e.Msg)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// Parse reads a stats line. It refuses what the PHP receiver refuses, and
// also dates, times and numbers that do not exist (32.13.2026, 24:00:00,
// 29.02. of a common year, 5-3, --5) and lines without power.
func Parse(s string) (Line, error) {
	raw := s
	// PCRE's $ matches before one final newline: the PHP receiver takes
	// "…,12.5\n" and so do we.
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return Line{}, &Error{Msg: "empty line"}
	}
	fields := strings.Split(s, ",")
	if len(fields) > MaxFields {
		return Line{}, &Error{Msg: fmt.Sprintf("%d fields, at most %d (date, time and 14 values)", len(fields), MaxFields)}
	}
	l := Line{Raw: raw}
	var err error
	if l.Day, l.Month, l.Year, err = parseDate(fields[0]); err != nil {
		return Line{}, &Error{Field: 1, Name: "date", Value: fields[0], Msg: err.Error()}
	}
	if len(fields) < 2 {
		return Line{}, &Error{Field: 2, Name: "time", Msg: "missing"}
	}
	if l.Hour, l.Minute, l.Second, err = parseClock(fields[1]); err != nil {
		return Line{}, &Error{Field: 2, Name: "time", Value: fields[1], Msg: err.Error()}
	}
	if len(fields) < 3 || fields[2] == "" {
		v := ""
		if len(fields) >= 3 {
			v = fields[2]
		}
		return Line{}, &Error{Field: 3, Name: "power", Value: v, Msg: "missing: a line must carry the power"}
	}
	for i := 2; i < len(fields); i++ {
		f := fields[i]
		name := fieldName(i + 1)
		if f == "" {
			switch {
			case i == 3:
			default:
				l.Extra = append(l.Extra, 0)
				l.ExtraEmpty = append(l.ExtraEmpty, true)
			}
			continue
		}
		v, err := ParseNumber(f)
		if err != nil {
			return Line{}, &Error{Field: i + 1, Name: name, Value: f, Msg: err.Error()}
		}
		switch i {
		case 2:
			l.Power = v
		case 3:
			l.Temperature = &v
		default:
			l.Extra = append(l.Extra, v)
			l.ExtraEmpty = append(l.ExtraEmpty, false)
		}
	}
	// trailing empty fields carry nothing
	for len(l.Extra) > 0 && l.ExtraEmpty[len(l.Extra)-1] {
		l.Extra = l.Extra[:len(l.Extra)-1]
		l.ExtraEmpty = l.ExtraEmpty[:len(l.ExtraEmpty)-1]
	}
	if len(l.Extra) == 0 {
		l.Extra, l.ExtraEmpty = nil, nil
	}
	return l, nil
}

func fieldName(n int) string {
	switch n {
	case 3:
		return "power"
	case 4:
		return "temperature"
	}
	return fmt.Sprintf("value %d", n-4)
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func parseDate(s string) (d, m, y int, err error) {
	if len(s) != 10 || s[2] != '.' || s[5] != '.' || !digits(s[:2]) || !digits(s[3:5]) || !digits(s[6:]) {
		return 0, 0, 0, fmt.Errorf("want DD.MM.YYYY")
	}
	d, _ = strconv.Atoi(s[:2])
	m, _ = strconv.Atoi(s[3:5])
	y, _ = strconv.Atoi(s[6:])
	if m < 1 || m > 12 {
		return 0, 0, 0, fmt.Errorf("month %d does not exist", m)
	}
	if y < 2000 || y > 2200 {
		return 0, 0, 0, fmt.Errorf("year %d outside 2000..2200", y)
	}
	if d < 1 || d > daysIn(y, time.Month(m)) {
		return 0, 0, 0, fmt.Errorf("day %d does not exist in %04d-%02d", d, y, m)
	}
	return d, m, y, nil
}

func daysIn(y int, m time.Month) int {
	return time.Date(y, m+1, 0, 0, 0, 0, 0, time.UTC).Day()
}

func parseClock(s string) (h, m, sec int, err error) {
	if len(s) != 8 || s[2] != ':' || s[5] != ':' || !digits(s[:2]) || !digits(s[3:5]) || !digits(s[6:]) {
		return 0, 0, 0, fmt.Errorf("want HH:MM:SS")
	}
	h, _ = strconv.Atoi(s[:2])
	m, _ = strconv.Atoi(s[3:5])
	sec, _ = strconv.Atoi(s[6:])
	if h > 23 || m > 59 || sec > 59 {
		return 0, 0, 0, fmt.Errorf("no such time of day")
	}
	return h, m, sec, nil
}

// ParseNumber reads a value field: the PHP pattern ^[\-0-9]{1,6}(\.[0-9]{1,3})?$
// that also names a real number (an optional leading minus, then digits).
func ParseNumber(s string) (float64, error) {
	intPart, frac, hasDot := strings.Cut(s, ".")
	if len(intPart) < 1 || len(intPart) > 6 {
		return 0, fmt.Errorf("want at most 6 digits (sign included) before the point")
	}
	if hasDot && (len(frac) < 1 || len(frac) > 3 || !digits(frac)) {
		return 0, fmt.Errorf("want 1 to 3 digits after the point")
	}
	body := strings.TrimPrefix(intPart, "-")
	if body == "" || !digits(body) {
		return 0, fmt.Errorf("not a number")
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number")
	}
	return v, nil
}

// Wall is the line's date and time as a wall clock in UTC fields (no zone).
func (l Line) Wall() time.Time {
	return time.Date(l.Year, time.Month(l.Month), l.Day, l.Hour, l.Minute, l.Second, 0, time.UTC)
}

// Instants returns the UTC instants the line's wall-clock time may stand for
// in zone: one normally; two in the autumn hour that occurs twice (earlier
// first); for a time in the spring gap, the instant the clock would have
// shown had it not jumped (02:30 on the last Sunday of March in Berlin is
// 01:30 UTC).
func Instants(wall time.Time, zone *time.Location) []time.Time {
	guess := wall.Unix() // as if the zone were UTC
	out := make([]time.Time, 0, 2)
	before := 0 // the offset a day before
	for i, probe := range [2]int64{guess - 86400, guess + 86400} {
		_, off := time.Unix(probe, 0).In(zone).Zone()
		if i == 1 && off == before {
			continue
		}
		before = off
		t := time.Unix(guess-int64(off), 0).UTC()
		if _, o := t.In(zone).Zone(); o == off {
			out = append(out, t)
		}
	}
	switch len(out) {
	case 0: // spring gap: read with the offset in force before the jump
		_, off := time.Unix(guess-86400, 0).In(zone).Zone()
		return []time.Time{time.Unix(guess-int64(off), 0).UTC()}
	case 2:
		if out[1].Before(out[0]) {
			out[0], out[1] = out[1], out[0]
		}
	}
	return out
}

// Twin tells what the store holds at the earlier instant of a doubled
// hour when a line of that hour arrives.
type Twin int

const (
	// TwinFree: nothing is stored at the earlier instant.
	TwinFree Twin = iota
	// TwinSame: a reading with the line's values is stored there.
	TwinSame
	// TwinOther: a reading with other values is stored there.
	TwinOther
)

// ClockChange returns the instant the clock of zone goes back after early,
// the earlier of the two Instants of a doubled hour.
func ClockChange(early time.Time, zone *time.Location) time.Time {
	_, end := early.In(zone).ZoneBounds()
	return end
}

// Choose picks among Instants for a source whose newest stored (or
// resolved) instant is last (zero when none); zone is the source's zone.
// Only in the doubled autumn hour is there a choice:
//
//   - last before the earlier instant: the earlier one (first pass);
//   - the earlier instant holds the line's values and the source has not
//     yet passed the clock change: the earlier one (a retry, which the
//     store reports as already stored);
//   - the earlier instant holds other values: the later one;
//   - the earlier instant is free: the later one while the source is
//     between the two (second pass, whose seconds need not match the
//     first's), the earlier one when the source is past both (a replay of
//     old lines fills the gap).
//
// early is asked only when needed; nil counts as TwinFree.
func Choose(cands []time.Time, zone *time.Location, last time.Time, early func() Twin) time.Time {
	if len(cands) == 1 {
		return cands[0]
	}
	e, l := cands[0], cands[1]
	if last.Before(e) {
		return e
	}
	twin := TwinFree
	if early != nil {
		twin = early()
	}
	switch {
	case twin == TwinSame && last.Before(ClockChange(e, zone)):
		return e
	case twin != TwinFree, last.Before(l):
		return l
	default:
		return e
	}
}

// FormatNumber writes v with dec decimals as the original logger did,
// without "-0.00".
func FormatNumber(v float64, dec int) string {
	s := strconv.FormatFloat(v, 'f', dec, 64)
	if strings.TrimLeft(s, "-0.") == "" {
		s = strings.TrimPrefix(s, "-")
	}
	return s
}

// Format writes a stats line: wall-clock time of t in zone, power with 2
// decimals, temperature with tempDec decimals (1 for FRITZ!DECT, 2 for
// Shelly) or an empty field when there is none but values follow, then the
// extra values with 2 decimals. It fails for values the receiver would
// refuse (more than 6 characters before the point, too many fields).
func Format(t time.Time, zone *time.Location, power float64, temp *float64, tempDec int, extra []float64) (string, error) {
	if 4+len(extra) > MaxFields {
		return "", fmt.Errorf("stats line: %d values, at most %d", 2+len(extra), MaxFields-2)
	}
	var b strings.Builder
	b.Grow(40 + 10*len(extra))
	b.WriteString(t.In(zone).Format("02.01.2006,15:04:05"))
	add := func(name string, v float64, dec int) error {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("stats line: %s is not a number", name)
		}
		s := FormatNumber(v, dec)
		if ip, _, _ := strings.Cut(s, "."); len(ip) > 6 {
			return fmt.Errorf("stats line: %s %s has more than 6 characters before the point", name, s)
		}
		b.WriteByte(',')
		b.WriteString(s)
		return nil
	}
	if err := add("power", power, 2); err != nil {
		return "", err
	}
	if temp != nil {
		if err := add("temperature", *temp, tempDec); err != nil {
			return "", err
		}
	} else if len(extra) > 0 {
		b.WriteByte(',')
	}
	for i, v := range extra {
		if err := add(fmt.Sprintf("value %d", i+1), v, 2); err != nil {
			return "", err
		}
	}
	return b.String(), nil
}
