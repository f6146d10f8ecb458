package legacy

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics, that what it accepts obeys the
// PHP receiver's shape, and that formatting an accepted line parses again
// to the same values.
func FuzzParse(f *testing.F) {
	for _, c := range conformance {
		f.Add(c.line)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		fields := strings.Split(strings.TrimSuffix(s, "\n"), ",")
		if len(fields) < 3 || len(fields) > MaxFields {
			t.Fatalf("accepted %q with %d fields", s, len(fields))
		}
		for _, f := range fields[2:] {
			if f == "" {
				continue
			}
			if _, err := strconv.ParseFloat(f, 64); err != nil {
				t.Fatalf("accepted %q whose field %q is no number", s, f)
			}
		}
		w := l.Wall()
		if w.Day() != l.Day || int(w.Month()) != l.Month || w.Hour() != l.Hour {
			t.Fatalf("accepted %q with a date that does not exist", s)
		}
		out, err := Format(w, time.UTC, l.Power, l.Temperature, 3, l.Extra)
		if err != nil {
			t.Fatalf("cannot format accepted %q: %v", s, err)
		}
		back, err := Parse(out)
		if err != nil {
			t.Fatalf("Format(%q) = %q, which Parse refuses: %v", s, out, err)
		}
		if back.Wall() != w || back.Power != roundTo(l.Power, 2) || len(back.Extra) != len(l.Extra) {
			t.Fatalf("round trip %q → %q changed values", s, out)
		}
	})
}

func roundTo(v float64, dec int) float64 {
	r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', dec, 64), 64)
	return r
}
