package legacy

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

// conformance lists lines and whether the receiver takes them; field is the
// field a refusal must name (0: the line as a whole).
var conformance = []struct {
	line  string
	ok    bool
	field int
}{
	// what the original logger sends
	{"26.11.2026,12:00:00,123.45,21.5", true, 0},
	{"26.11.2026,12:00:00,123.45", true, 0},
	{"26.11.2026,12:00:00,0.00", true, 0},
	{"26.11.2026,12:00:00,-245.50,18.25", true, 0},
	{"26.11.2026,12:00:00,123.40,,60.20,63.20", true, 0},
	{"26.11.2026,12:00:00,812.31,,410.22,-220.10,622.19", true, 0},
	{"26.11.2026,12:00:00,300.5,35.2,150.2,150.3", true, 0},
	// number shapes the PHP pattern allows
	{"26.11.2026,12:00:00,5", true, 0},
	{"26.11.2026,12:00:00,123456", true, 0},
	{"26.11.2026,12:00:00,-12345", true, 0},
	{"26.11.2026,12:00:00,1.123", true, 0},
	{"26.11.2026,12:00:00,007.5", true, 0},
	{"26.11.2026,12:00:00,-0", true, 0},
	{"26.11.2026,12:00:00,1,2,3,4,5,6,7,8,9,10,11,12,13,14", true, 0}, // 16 fields
	{"26.11.2026,12:00:00,1,,", true, 0},                              // empty trailing fields
	{"26.11.2026,12:00:00,1,,,,5", true, 0},
	{"26.11.2026,12:00:00,12.5\n", true, 0}, // PCRE $ before a final newline
	// dates and times that exist only sometimes
	{"29.02.2028,12:00:00,1", true, 0},
	{"29.02.2000,12:00:00,1", true, 0},
	{"31.12.2026,23:59:59,1", true, 0},
	{"01.01.2027,00:00:00,1", true, 0},
	// refused by the PHP rules
	{"26.11.2026,12:00:00,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", false, 0}, // 17 fields
	{"26.11.2026,12:00:00,1.2345", false, 3},                              // 4 decimals
	{"26.11.2026,12:00:00,1234567", false, 3},                             // 7 digits
	{"26.11.2026,12:00:00,-123456", false, 3},                             // 7 chars
	{"26.11.2026,12:00:00,12a", false, 3},                                 // letters
	{"26.11.2026,12:00:00,1e3", false, 3},                                 // exponent
	{"26.11.2026,12:00:00,1.5,abc", false, 4},
	{"26.11.2026,12:00:00,1.5,20,x", false, 5},
	{"26.11.2026,12:00:00,1.", false, 3},
	{"26.11.2026,12:00:00,.5", false, 3},
	{"26.11.2026,12:00:00,+5", false, 3},
	{"26.11.2026,12:00:00, 5", false, 3},
	{"26.11.2026,12:00:00,1,2\r", false, 4},
	{"2026-11-26,12:00:00,1", false, 1},
	{"26.11.26,12:00:00,1", false, 1},
	{"26.11.2026,12:00,1", false, 2},
	{"26.11.2026 12:00:00,1", false, 1},
	{"", false, 0},
	{"26.11.2026", false, 2},
	{"26.11.2026,12:00:00", false, 3}, // no power
	{"26.11.2026,12:00:00,", false, 3},
	{"26.11.2026,12:00:00,,21.5", false, 3},
	// accepted by PHP, refused by us: no real date, time or number
	{"32.13.2026,12:00:00,1", false, 1},
	{"32.12.2026,12:00:00,1", false, 1},
	{"00.12.2026,12:00:00,1", false, 1},
	{"31.04.2026,12:00:00,1", false, 1},
	{"29.02.2026,12:00:00,1", false, 1}, // common year
	{"29.02.2100,12:00:00,1", false, 1}, // not a leap year
	{"26.11.2026,24:00:00,1", false, 2},
	{"26.11.2026,12:60:00,1", false, 2},
	{"26.11.2026,12:00:60,1", false, 2},
	{"26.11.2026,12:00:00,5-3", false, 3},
	{"26.11.2026,12:00:00,--5", false, 3},
	{"26.11.2026,12:00:00,-", false, 3},
	{"26.11.2026,12:00:00,1,-.5", false, 4},
	{"26.11.1999,12:00:00,1", false, 1},
}

func TestConformance(t *testing.T) {
	if len(conformance) < 40 {
		t.Fatalf("conformance table has %d lines, want at least 40", len(conformance))
	}
	for _, c := range conformance {
		l, err := Parse(c.line)
		if c.ok {
			if err != nil {
				t.Errorf("Parse(%q) = %v, want accepted", c.line, err)
			} else if l.Raw != c.line {
				t.Errorf("Parse(%q).Raw = %q", c.line, l.Raw)
			}
			continue
		}
		var le *Error
		if !errors.As(err, &le) {
			t.Errorf("Parse(%q) = %v, want a *legacy.Error", c.line, err)
			continue
		}
		if le.Field != c.field {
			t.Errorf("Parse(%q) blames field %d (%v), want field %d", c.line, le.Field, err, c.field)
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("error for %q spans lines: %q", c.line, err)
		}
	}
}

func TestParseValues(t *testing.T) {
	l, err := Parse("25.10.2026,02:30:15,-812.31,,410.22,-220.1,,622.19,,")
	if err != nil {
		t.Fatal(err)
	}
	if l.Year != 2026 || l.Month != 10 || l.Day != 25 || l.Hour != 2 || l.Minute != 30 || l.Second != 15 {
		t.Errorf("date/time = %+v", l)
	}
	if l.Power != -812.31 {
		t.Errorf("power = %v", l.Power)
	}
	if l.Temperature != nil {
		t.Errorf("temperature = %v, want nil", *l.Temperature)
	}
	want := []float64{410.22, -220.1, 0, 622.19}
	wantEmpty := []bool{false, false, true, false}
	if len(l.Extra) != len(want) {
		t.Fatalf("extra = %v, want %v", l.Extra, want)
	}
	for i := range want {
		if l.Extra[i] != want[i] || l.ExtraEmpty[i] != wantEmpty[i] {
			t.Errorf("extra[%d] = %v (empty %v), want %v (empty %v)", i, l.Extra[i], l.ExtraEmpty[i], want[i], wantEmpty[i])
		}
	}
	l, err = Parse("26.11.2026,12:00:00,123.45,21.5")
	if err != nil || l.Temperature == nil || *l.Temperature != 21.5 || l.Extra != nil {
		t.Errorf("Parse with temperature = %+v, %v", l, err)
	}
}

func berlin(t *testing.T) *time.Location {
	t.Helper()
	z, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func wall(t *testing.T, line string) time.Time {
	t.Helper()
	l, err := Parse(line)
	if err != nil {
		t.Fatal(err)
	}
	return l.Wall()
}

func TestInstantsNormalAndSpringGap(t *testing.T) {
	z := berlin(t)
	cases := []struct {
		line string
		want []string
	}{
		{"26.11.2026,12:00:00,1", []string{"2026-11-26T11:00:00Z"}},
		{"26.07.2026,12:00:00,1", []string{"2026-07-26T10:00:00Z"}},
		// spring: 02:00 CET jumps to 03:00 CEST on 2026-03-29
		{"29.03.2026,01:59:59,1", []string{"2026-03-29T00:59:59Z"}},
		{"29.03.2026,02:00:00,1", []string{"2026-03-29T01:00:00Z"}}, // gap: read as CET
		{"29.03.2026,02:30:00,1", []string{"2026-03-29T01:30:00Z"}},
		{"29.03.2026,03:00:00,1", []string{"2026-03-29T01:00:00Z"}},
		{"29.03.2026,03:30:00,1", []string{"2026-03-29T01:30:00Z"}},
		// autumn: 03:00 CEST goes back to 02:00 CET on 2026-10-25
		{"25.10.2026,01:59:59,1", []string{"2026-10-24T23:59:59Z"}},
		{"25.10.2026,02:00:00,1", []string{"2026-10-25T00:00:00Z", "2026-10-25T01:00:00Z"}},
		{"25.10.2026,02:30:00,1", []string{"2026-10-25T00:30:00Z", "2026-10-25T01:30:00Z"}},
		{"25.10.2026,02:59:59,1", []string{"2026-10-25T00:59:59Z", "2026-10-25T01:59:59Z"}},
		{"25.10.2026,03:00:00,1", []string{"2026-10-25T02:00:00Z"}},
	}
	for _, c := range cases {
		got := Instants(wall(t, c.line), z)
		if len(got) != len(c.want) {
			t.Errorf("%s: %v, want %v", c.line, got, c.want)
			continue
		}
		for i := range got {
			if !got[i].Equal(utc(c.want[i])) {
				t.Errorf("%s: [%d] = %v, want %v", c.line, i, got[i], c.want[i])
			}
		}
	}
}

// TestAutumnNightInOrder feeds a logger's lines every 10 s through the
// night the clock goes back and checks that each lands on its own instant,
// in order.
func TestAutumnNightInOrder(t *testing.T) {
	z := berlin(t)
	start := utc("2026-10-24T23:30:00Z") // 01:30 CEST
	end := utc("2026-10-25T02:30:00Z")   // 03:30 CET
	var last time.Time
	n := 0
	for ts := start; ts.Before(end); ts = ts.Add(10 * time.Second) {
		line, err := Format(ts, z, 100, nil, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := Choose(Instants(wall(t, line), z), z, last, nil)
		if !got.Equal(ts) {
			t.Fatalf("line %q stored at %v, want %v (previous %v)", line, got, ts, last)
		}
		last = got
		n++
	}
	if n != 3*360 {
		t.Errorf("%d lines, want %d", n, 3*360)
	}
}

func TestChooseReplay(t *testing.T) {
	z := berlin(t)
	c := Instants(wall(t, "25.10.2026,02:30:00,1"), z)
	later := utc("2026-10-26T12:00:00Z")
	if got := Choose(c, z, later, func() Twin { return TwinFree }); !got.Equal(c[0]) {
		t.Errorf("replay with the first 02:30 free: %v, want %v", got, c[0])
	}
	if got := Choose(c, z, later, func() Twin { return TwinOther }); !got.Equal(c[1]) {
		t.Errorf("replay with the first 02:30 taken: %v, want %v", got, c[1])
	}
	if got := Choose(c, z, time.Time{}, nil); !got.Equal(c[0]) {
		t.Errorf("first line ever: %v, want %v", got, c[0])
	}
}

// TestChooseDoubledHour covers the choices inside the doubled hour for the
// line 02:30 (00:30Z or 01:30Z; the clock goes back at 01:00Z).
func TestChooseDoubledHour(t *testing.T) {
	z := berlin(t)
	c := Instants(wall(t, "25.10.2026,02:30:00,1"), z)
	if ch := ClockChange(c[0], z); !ch.Equal(utc("2026-10-25T01:00:00Z")) {
		t.Fatalf("ClockChange = %v", ch)
	}
	for _, k := range []struct {
		name string
		last string
		twin Twin
		want int
	}{
		{"before the first pass", "2026-10-25T00:20:00Z", TwinOther, 0},
		{"retry after a later first-pass line", "2026-10-25T00:40:00Z", TwinSame, 0},
		{"retry just before the change", "2026-10-25T00:59:59Z", TwinSame, 0},
		{"same values once past the change", "2026-10-25T01:00:00Z", TwinSame, 1},
		{"second pass, first 02:30 differs", "2026-10-25T00:59:50Z", TwinOther, 1},
		{"second pass, first 02:30 missing", "2026-10-25T00:59:50Z", TwinFree, 1},
		{"second pass under way", "2026-10-25T01:10:00Z", TwinFree, 1},
		{"replay past the night, same values", "2026-10-25T09:00:00Z", TwinSame, 1},
		{"replay past the night, free", "2026-10-25T09:00:00Z", TwinFree, 0},
	} {
		asked := false
		got := Choose(c, z, utc(k.last), func() Twin { asked = true; return k.twin })
		if !got.Equal(c[k.want]) {
			t.Errorf("%s: %v, want %v", k.name, got, c[k.want])
		}
		if k.name == "before the first pass" && asked {
			t.Errorf("%s: the store was asked although no choice was needed", k.name)
		}
	}
}

func TestFormat(t *testing.T) {
	z := berlin(t)
	ts := utc("2026-11-26T11:00:00Z")
	cases := []struct {
		power float64
		temp  *float64
		dec   int
		extra []float64
		want  string
	}{
		{123.454, ptr(21.54), 1, nil, "26.11.2026,12:00:00,123.45,21.5"},
		{123.4, ptr(21.456), 2, nil, "26.11.2026,12:00:00,123.40,21.46"},
		{123.4, nil, 1, []float64{60.2, 63.2}, "26.11.2026,12:00:00,123.40,,60.20,63.20"},
		{-0.001, nil, 1, nil, "26.11.2026,12:00:00,0.00"},
		{812.31, nil, 1, []float64{410.22, -220.1, 622.19}, "26.11.2026,12:00:00,812.31,,410.22,-220.10,622.19"},
	}
	for _, c := range cases {
		got, err := Format(ts, z, c.power, c.temp, c.dec, c.extra)
		if err != nil || got != c.want {
			t.Errorf("Format = %q, %v; want %q", got, err, c.want)
			continue
		}
		if _, err := Parse(got); err != nil {
			t.Errorf("Format wrote %q which Parse refuses: %v", got, err)
		}
	}
	if _, err := Format(ts, z, 1e7, nil, 1, nil); err == nil {
		t.Error("Format took 10 MW, which the receiver refuses")
	}
	if _, err := Format(ts, z, math.NaN(), nil, 1, nil); err == nil {
		t.Error("Format took NaN")
	}
	if _, err := Format(ts, z, 1, nil, 1, make([]float64, 13)); err == nil {
		t.Error("Format wrote 17 fields")
	}
}

func ptr(v float64) *float64 { return &v }
