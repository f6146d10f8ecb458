package server

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/reading"
)

// want describes the reading a request must leave in the store.
type want struct {
	at     time.Time
	source string
	power  float64
	temp   *float64
	phases []float64
}

func TestLegacyConformance(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	f := reading.F
	day := func(h, m, s int) time.Time { return at(2026, 11, 26, h, m, s) }
	cases := []struct {
		name   string
		method string
		path   string
		query  string // raw, unescaped as the ESP8266 sends it
		form   string // POST body
		code   int
		body   string // substring of the answer
		want   *want
	}{
		{"power and temperature", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:00:00,123.45,21.5", "", 200, "stored", &want{at: day(12, 0, 0), power: 123.45, temp: f(21.5)}},
		{"power only", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:00:10,0.00", "", 200, "stored", &want{at: day(12, 0, 10), power: 0}},
		{"base path with folder", "GET", "/powermeter/log.php", "key=abc12345&stats=26.11.2026,12:00:20,5.00,20.0", "", 200, "stored", &want{at: day(12, 0, 20), power: 5, temp: f(20)}},
		{"deeper folder", "GET", "/a/b/c/log.php", "key=abc12345&stats=26.11.2026,12:00:30,6.00", "", 200, "stored", &want{at: day(12, 0, 30), power: 6}},
		{"percent-encoded line", "GET", "/log.php", "key=abc12345&stats=26.11.2026%2C12%3A00%3A40%2C7.25%2C19.5", "", 200, "stored", &want{at: day(12, 0, 40), power: 7.25, temp: f(19.5)}},
		{"stats before key", "GET", "/powermeter/log.php", "stats=26.11.2026,12:00:50,8.00&key=abc12345", "", 200, "stored", &want{at: day(12, 0, 50), power: 8}},
		{"POST form", "POST", "/powermeter/log.php", "", "stats=26.11.2026%2C12%3A01%3A00%2C9.50%2C18.2&key=abc12345", 200, "stored", &want{at: day(12, 1, 0), power: 9.5, temp: f(18.2)}},
		{"POST form buffer=1", "POST", "/log.php", "", "stats=26.11.2026,11:00:00,10.00&key=abc12345&buffer=1", 200, "stored", &want{at: day(11, 0, 0), power: 10}},
		{"duplicate of the last line", "POST", "/log.php", "", "stats=26.11.2026,11:00:00,10.00&key=abc12345&buffer=1", 200, "already stored", &want{at: day(11, 0, 0), power: 10}},
		{"duplicate of an earlier line", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:00:00,123.45,21.5", "", 200, "already stored", &want{at: day(12, 0, 0), power: 123.45, temp: f(21.5)}},
		{"16 fields", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:01:10,1,2,3,4,5,6,7,8,9,10,11,12,13,14", "", 200, "stored", &want{at: day(12, 1, 10), power: 1, temp: f(2), phases: []float64{3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}}},
		{"17 fields", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:01:20,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15", "", 400, "17 fields", nil},
		{"empty temperature, phases follow", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:01:30,123.40,,60.20,63.20", "", 200, "stored", &want{at: day(12, 1, 30), power: 123.4, phases: []float64{60.2, 63.2}}},
		{"empty field in the middle", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:01:40,3.00,20.0,,5.00", "", 200, "stored", &want{at: day(12, 1, 40), power: 3, temp: f(20), phases: []float64{0, 5}}},
		{"trailing empty field", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:01:50,4.00,", "", 200, "stored", &want{at: day(12, 1, 50), power: 4}},
		{"empty power", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:02:00,,21.5", "", 400, "power", nil},
		{"line without power", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:02:10", "", 400, "power", nil},
		{"3 decimals", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:02:20,1.125", "", 200, "stored", &want{at: day(12, 2, 20), power: 1.125}},
		{"4 decimals", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:02:30,1.1255", "", 400, "power", nil},
		{"4 decimals in temperature", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:02:30,1.00,21.1234", "", 400, "temperature", nil},
		{"6 digits", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:02:40,123456", "", 200, "stored", &want{at: day(12, 2, 40), power: 123456}},
		{"7 digits", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:02:50,1234567", "", 400, "power", nil},
		{"negative, 6 characters", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:03:00,-12345.5", "", 200, "stored", &want{at: day(12, 3, 0), power: -12345.5}},
		{"negative, 7 characters", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:03:10,-123456", "", 400, "power", nil},
		{"negative temperature", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:03:20,0.00,-5.5", "", 200, "stored", &want{at: day(12, 3, 20), power: 0, temp: f(-5.5)}},
		{"letters", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:03:30,12a", "", 400, "power", nil},
		{"exponent", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:03:40,1e3", "", 400, "power", nil},
		{"5-3", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:03:50,5-3", "", 400, "power", nil},
		{"--5", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:04:00,--5", "", 400, "power", nil},
		{"lone minus", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:04:10,-", "", 400, "power", nil},
		{"point without decimals", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:04:20,1.", "", 400, "power", nil},
		{"point without integer part", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:04:30,.5", "", 400, "power", nil},
		{"letters in a further value", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:04:40,1.00,20.0,x", "", 400, "value 1", nil},
		{"space in a value", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:04:50,1%20.5", "", 400, "power", nil},
		{"month 13", "GET", "/log.php", "key=abc12345&stats=32.13.2026,12:00:00,1.00", "", 400, "date", nil},
		{"31 November", "GET", "/log.php", "key=abc12345&stats=31.11.2026,12:00:00,1.00", "", 400, "date", nil},
		{"29 February of a common year", "GET", "/log.php", "key=abc12345&stats=29.02.2026,12:00:00,1.00", "", 400, "date", nil},
		{"29 February of a leap year", "GET", "/log.php", "key=abc12345&stats=29.02.2024,12:00:00,1.00", "", 200, "stored", &want{at: at(2024, 2, 29, 12, 0, 0), power: 1}},
		{"ISO date", "GET", "/log.php", "key=abc12345&stats=2026-11-26,12:00:00,1.00", "", 400, "date", nil},
		{"24:00:00", "GET", "/log.php", "key=abc12345&stats=26.11.2026,24:00:00,1.00", "", 400, "time", nil},
		{"minute 60", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:60:00,1.00", "", 400, "time", nil},
		{"one-digit hour", "GET", "/log.php", "key=abc12345&stats=26.11.2026,1:00:00,1.00", "", 400, "time", nil},
		{"letter in time", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:0a:00,1.00", "", 400, "time", nil},
		{"trailing newline", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:05:00,2.00%0A", "", 200, "stored", &want{at: day(12, 5, 0), power: 2}},
		{"missing stats", "GET", "/log.php", "key=abc12345", "", 400, "stats", nil},
		{"empty stats", "GET", "/log.php", "key=abc12345&stats=", "", 400, "stats", nil},
		{"bad escape in query", "GET", "/log.php", "key=abc12345&stats=26.11.2026,12:05:10,1%zz", "", 400, "query", nil},
		{"wrong key", "GET", "/log.php", "key=abc12346&stats=26.11.2026,12:05:20,1.00", "", 403, "key", nil},
		{"missing key", "GET", "/log.php", "stats=26.11.2026,12:05:30,1.00", "", 401, "key", nil},
		{"empty key", "POST", "/log.php", "", "key=&stats=26.11.2026,12:05:40,1.00", 401, "key", nil},
		{"key name in capitals", "GET", "/log.php", "KEY=abc12345&stats=26.11.2026,12:05:50,1.00", "", 401, "key", nil},
		{"key of another source", "GET", "/log.php", "key=cabin-key-0001&stats=26.11.2026,12:00:00,42.00", "", 200, "stored", &want{source: "cabin", at: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), power: 42}},
		{"PUT", "PUT", "/log.php", "key=abc12345&stats=26.11.2026,12:06:00,1.00", "", 405, "GET or POST", nil},
		{"DELETE with folder", "DELETE", "/powermeter/log.php", "", "", 405, "GET or POST", nil},
		{"not log.php", "GET", "/powermeter/log.php5", "key=abc12345&stats=26.11.2026,12:06:10,1.00", "", 404, "", nil},
		{"log.php as a prefix", "GET", "/xlog.php", "key=abc12345&stats=26.11.2026,12:06:20,1.00", "", 404, "", nil},
	}
	if len(cases) < 40 {
		t.Fatalf("conformance table has %d cases, want at least 40", len(cases))
	}
	for _, c := range cases {
		u := ts.base + c.path
		if c.query != "" {
			u += "?" + c.query
		}
		ct := ""
		if c.method == "POST" {
			ct = "application/x-www-form-urlencoded"
		}
		code, body, hdr := do(t, c.method, u, ct, c.form)
		if code != c.code {
			t.Errorf("%s: status %d, want %d (body %q)", c.name, code, c.code, body)
			continue
		}
		if !strings.Contains(body, c.body) {
			t.Errorf("%s: body %q does not name %q", c.name, body, c.body)
		}
		if code >= 400 && code != 404 {
			if strings.Count(body, "\n") != 1 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
				t.Errorf("%s: want one plain-text line, got %q (%s)", c.name, body, hdr.Get("Content-Type"))
			}
		}
		if code == 405 && hdr.Get("Allow") != "GET, POST" {
			t.Errorf("%s: Allow %q", c.name, hdr.Get("Allow"))
		}
		if c.want != nil {
			checkStored(t, ts, c.name, *c.want)
		}
	}
	// Refused lines stored nothing: the only readings are the accepted ones.
	accepted := map[string]map[time.Time]bool{}
	for _, c := range cases {
		if c.want != nil {
			src := c.want.source
			if src == "" {
				src = "home"
			}
			if accepted[src] == nil {
				accepted[src] = map[time.Time]bool{}
			}
			accepted[src][c.want.at] = true
		}
	}
	for src, times := range accepted {
		all := stored(t, ts.st, src, time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC))
		if len(all) != len(times) {
			t.Errorf("source %s: %d readings stored, want %d", src, len(all), len(times))
		}
		for _, r := range all {
			if !times[r.Time] {
				t.Errorf("source %s: unexpected reading at %s", src, r.Time)
			}
		}
	}
}

func checkStored(t *testing.T, ts *testServer, name string, w want) {
	t.Helper()
	src := w.source
	if src == "" {
		src = "home"
	}
	rs := stored(t, ts.st, src, w.at, w.at.Add(time.Second))
	if len(rs) != 1 {
		t.Errorf("%s: %d readings at %s, want 1", name, len(rs), w.at)
		return
	}
	r := rs[0]
	if r.Device != "legacy" || r.Power != w.power || !eqPtr(r.Temperature, w.temp) || !slices.Equal(r.Phases, w.phases) {
		t.Errorf("%s: stored %+v (temp %v), want power %v temp %v phases %v", name, r, deref(r.Temperature), w.power, deref(w.temp), w.phases)
	}
}

func eqPtr(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestESP8266RawRequest writes the logger's exact bytes to a TCP socket:
// HTTP/1.0, stats unescaped.
func TestESP8266RawRequest(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	for _, raw := range []string{
		"GET /powermeter/log.php?key=abc12345&stats=26.11.2026,12:00:00,123.45,21.5 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
		"GET /log.php?key=abc12345&stats=26.11.2026,12:00:10,-3.20 HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
	} {
		conn, err := net.DialTimeout("tcp", ts.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("reading the answer: %v", err)
		}
		resp.Body.Close()
		conn.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d for %q", resp.StatusCode, raw)
		}
	}
	checkStored(t, ts, "raw 1", want{at: at(2026, 11, 26, 12, 0, 0), power: 123.45, temp: reading.F(21.5)})
	checkStored(t, ts, "raw 2", want{at: at(2026, 11, 26, 12, 0, 10), power: -3.2})
}

// dstLines are the lines of a logger sending every minute from 01:50 to
// 03:10 local on 2026-10-25 (the hour 02:00–03:00 occurs twice), with the
// power counting up so the order can be checked.
func dstLines(t *testing.T) ([]string, []time.Time) {
	start := time.Date(2026, 10, 24, 23, 50, 0, 0, time.UTC) // 01:50 CEST
	end := time.Date(2026, 10, 25, 2, 10, 0, 0, time.UTC)    // 03:10 CET
	var lines []string
	var times []time.Time
	for i, tm := 0, start; !tm.After(end); i, tm = i+1, tm.Add(time.Minute) {
		l, err := legacy.Format(tm, berlin, float64(i), nil, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
		times = append(times, tm)
	}
	return lines, times
}

func sendLine(t *testing.T, ts *testServer, line string, buffer bool) (int, string) {
	t.Helper()
	form := url.Values{"key": {homeKey}, "stats": {line}}
	if buffer {
		form.Set("buffer", "1")
	}
	code, body, _ := do(t, "POST", ts.base+"/log.php", "application/x-www-form-urlencoded", form.Encode())
	return code, body
}

func checkDST(t *testing.T, ts *testServer, times []time.Time) {
	t.Helper()
	got := stored(t, ts.st, "home", times[0], times[len(times)-1].Add(time.Second))
	if len(got) != len(times) {
		t.Fatalf("%d readings stored, want %d", len(got), len(times))
	}
	for i, r := range got {
		if !r.Time.Equal(times[i]) || r.Power != float64(i) {
			t.Fatalf("reading %d: %s power %v, want %s power %d", i, r.Time, r.Power, times[i], i)
		}
	}
}

func TestAutumnHourInOrder(t *testing.T) {
	st := openStore(t)
	ts := startServer(t, baseConfig, st, nil)
	lines, times := dstLines(t)
	// 02:00 local is sent twice (CEST, then CET) with different power
	if lines[10][:19] != lines[70][:19] || lines[10][:19] != "25.10.2026,02:00:00" {
		t.Fatalf("test data: %q and %q should both be 02:00:00", lines[10], lines[70])
	}
	for _, l := range lines {
		if code, body := sendLine(t, ts, l, false); code != 200 || body != "stored\n" {
			t.Fatalf("%s: %d %q", l, code, body)
		}
	}
	checkDST(t, ts, times)

	// A restarted server (fresh memory) given the same lines again stores
	// nothing new.
	ts2 := startServer(t, baseConfig, st, nil)
	for _, l := range lines {
		if code, body := sendLine(t, ts2, l, true); code != 200 || body != "already stored\n" {
			t.Fatalf("replay %s: %d %q", l, code, body)
		}
	}
	checkDST(t, ts2, times)
}

// TestAutumnHourReplay sends a newer line first and then the night as a
// buffered replay: the source is past the doubled hour, so the first 02:xx
// must go to the earlier instant because the store lacks it.
func TestAutumnHourReplay(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	if code, _ := sendLine(t, ts, "25.10.2026,09:00:00,1.00", false); code != 200 {
		t.Fatal(code)
	}
	lines, times := dstLines(t)
	for _, l := range lines {
		if code, body := sendLine(t, ts, l, true); code != 200 || body != "stored\n" {
			t.Fatalf("%s: %d %q", l, code, body)
		}
	}
	checkDST(t, ts, times)
}

func TestSpringGapAccepted(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	code, body, _ := do(t, "GET", ts.base+"/log.php?key=abc12345&stats=29.03.2026,02:30:00,50.00", "", "")
	if code != 200 {
		t.Fatalf("02:30 in the spring gap: %d %q", code, body)
	}
	// read with the offset before the jump (+01:00)
	checkStored(t, ts, "spring gap", want{at: time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC), power: 50})
	code, _, _ = do(t, "GET", ts.base+"/log.php?key=abc12345&stats=29.03.2026,03:00:00,51.00", "", "")
	if code != 200 {
		t.Fatal(code)
	}
	checkStored(t, ts, "after the jump", want{at: time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC), power: 51})
}

func TestBodyTooLarge(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	body := "key=abc12345&stats=26.11.2026,12:00:00,1.00&pad=" + strings.Repeat("x", 4096)
	code, msg, _ := do(t, "POST", ts.base+"/log.php", "application/x-www-form-urlencoded", body)
	if code != 413 || !strings.Contains(msg, "2048") {
		t.Fatalf("legacy: %d %q, want 413", code, msg)
	}
	big := `{"readings":[` + strings.Repeat(`{"device":"a","time":"2026-11-26T12:00:00Z","power_w":1},`, 60) + `{"device":"a","time":"2026-11-26T12:00:00Z","power_w":1}]}`
	code, msg, _ = do(t, "POST", ts.base+"/api/v1/readings", "application/json", big, "Authorization", "Bearer "+homeKey)
	if code != 413 {
		t.Fatalf("native: %d %q, want 413", code, msg)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	code, _, hdr := do(t, "GET", ts.base+"/api/v1/readings", "", "")
	if code != 405 || !strings.Contains(hdr.Get("Allow"), "POST") {
		t.Fatalf("GET /api/v1/readings: %d Allow %q", code, hdr.Get("Allow"))
	}
	code, _, hdr = do(t, "PATCH", ts.base+"/x/log.php", "", "")
	if code != 405 || hdr.Get("Allow") != "GET, POST" {
		t.Fatalf("PATCH log.php: %d Allow %q", code, hdr.Get("Allow"))
	}
}

func TestWrongKeysSlowedThenBlocked(t *testing.T) {
	var clock atomic.Int64 // the limiter's fake clock, in seconds
	clock.Store(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).Unix())
	ts := startServer(t, baseConfig, nil, func(s *Server) {
		s.lim.free, s.lim.delay, s.lim.maxDelay, s.lim.blockAt = 2, time.Millisecond, 4*time.Millisecond, 6
		s.lim.now = func() time.Time { return time.Unix(clock.Load(), 0) }
	})
	wrong := ts.base + "/log.php?key=wrong-key&stats=26.11.2026,12:00:00,1.00"
	right := ts.base + "/log.php?key=abc12345&stats=26.11.2026,12:00:00,1.00"
	for i := 1; i < 6; i++ {
		if code, _, _ := do(t, "GET", wrong, "", ""); code != 403 {
			t.Fatalf("wrong key %d: %d, want 403", i, code)
		}
	}
	code, _, hdr := do(t, "GET", wrong, "", "")
	if code != 429 || hdr.Get("Retry-After") != "60" {
		t.Fatalf("6th wrong key: %d Retry-After %q, want 429 and 60", code, hdr.Get("Retry-After"))
	}
	// blocked: even the right key is refused, so guessing learns nothing
	if code, _, hdr = do(t, "GET", right, "", ""); code != 429 || hdr.Get("Retry-After") == "" {
		t.Fatalf("right key while blocked: %d", code)
	}
	// the native API shares the block
	if code, _, _ = do(t, "POST", ts.base+"/api/v1/readings", "application/json", `{}`, "Authorization", "Bearer "+homeKey); code != 429 {
		t.Fatalf("native while blocked: %d", code)
	}
	// after the block the next wrong key is slowed down at once, and the
	// next block lasts twice as long
	clock.Add(61)
	for i := 0; ; i++ {
		code, _, hdr = do(t, "GET", wrong, "", "")
		if code == 429 {
			if hdr.Get("Retry-After") != "120" {
				t.Fatalf("second block: Retry-After %q, want 120", hdr.Get("Retry-After"))
			}
			if i+1 != 6-2 {
				t.Fatalf("second block after %d wrong keys, want %d", i+1, 6-2)
			}
			break
		}
		if i > 10 {
			t.Fatal("never blocked again")
		}
	}
	clock.Add(121)
	if code, body, _ := do(t, "GET", right, "", ""); code != 200 {
		t.Fatalf("right key after the block: %d %q", code, body)
	}
	// a right key does not clear the record: the owner of one key cannot
	// guess other keys between two of its own requests
	for i := 1; i < 6-2; i++ {
		if code, _, _ := do(t, "GET", wrong, "", ""); code != 403 {
			t.Fatalf("wrong key %d after a right one: %d, want 403", i, code)
		}
	}
	if code, _, hdr := do(t, "GET", wrong, "", ""); code != 429 || hdr.Get("Retry-After") != "240" {
		t.Fatalf("third block: %d Retry-After %q, want 429 and 240", code, hdr.Get("Retry-After"))
	}
	// after the block and 30 quiet minutes the address starts afresh
	clock.Add(241 + 31*60)
	for i := 1; i < 6; i++ {
		if code, _, _ := do(t, "GET", wrong, "", ""); code != 403 {
			t.Fatalf("wrong key %d after a quiet half hour: %d, want 403", i, code)
		}
	}
	if code, _, hdr := do(t, "GET", wrong, "", ""); code != 429 || hdr.Get("Retry-After") != "60" {
		t.Fatalf("first block after a quiet half hour: %d Retry-After %q, want 429 and 60", code, hdr.Get("Retry-After"))
	}
}

func TestLimiterDelayGrows(t *testing.T) {
	l := newLimiter()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	var waits []time.Duration
	var blocked time.Duration
	for blocked == 0 {
		var w time.Duration
		w, blocked = l.fail("192.0.2.1")
		if blocked == 0 {
			waits = append(waits, w)
		}
	}
	if len(waits) != l.blockAt-1 {
		t.Fatalf("blocked after %d failures, want %d", len(waits)+1, l.blockAt)
	}
	for i := 0; i < l.free; i++ {
		if waits[i] != 0 {
			t.Fatalf("failure %d delayed %v, want none", i+1, waits[i])
		}
	}
	for i := l.free + 1; i < len(waits); i++ {
		if waits[i] < waits[i-1] || waits[i] > l.maxDelay {
			t.Fatalf("delays %v do not grow up to %v", waits, l.maxDelay)
		}
	}
	if waits[l.free+1] <= waits[l.free] {
		t.Fatalf("delays %v do not grow", waits)
	}
	if d, ok := l.blocked("192.0.2.1"); !ok || d != l.block {
		t.Fatalf("blocked %v %v", d, ok)
	}
	if _, ok := l.blocked("192.0.2.2"); ok {
		t.Fatal("another address is blocked")
	}
	// a spray of addresses stays bounded
	l.maxTracks = 100
	for i := 0; i < 1000; i++ {
		l.fail(fmt.Sprintf("198.51.100.%d", i))
	}
	if len(l.addrs) > 100 {
		t.Fatalf("%d addresses tracked, bound 100", len(l.addrs))
	}
	if _, ok := l.blocked("192.0.2.1"); !ok {
		t.Fatal("pruning dropped a blocked address")
	}
}

func TestClientAddr(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:5000":             "127.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:443": "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:443": "2001:db8:1:2::/64",
		"[::ffff:192.0.2.1]:80":      "::ffff:192.0.2.1",
		"not an address":             "not an address",
	} {
		if got := clientAddr(&http.Request{RemoteAddr: in}); got != want {
			t.Errorf("clientAddr(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLimiterLongRun(t *testing.T) {
	l := newLimiter()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	// a patient guesser: every block is waited out, for many blocks
	for blocks := 0; blocks < 100; blocks++ {
		for {
			w, b := l.fail("192.0.2.9")
			if w < 0 || w > l.maxDelay {
				t.Fatalf("delay %v", w)
			}
			if b > 0 {
				if b < l.block || b > l.maxBlock {
					t.Fatalf("block %d lasts %v", blocks, b)
				}
				if blocks >= 6 && b != l.maxBlock {
					t.Fatalf("block %d lasts %v, want the maximum %v", blocks, b, l.maxBlock)
				}
				now = now.Add(b)
				break
			}
		}
	}
}
