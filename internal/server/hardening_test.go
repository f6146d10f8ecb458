package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/reading"
)

// item is a native reading as JSON.
func item(device string, t time.Time, power string) string {
	return fmt.Sprintf(`{"device":%q,"time":%q,"power_w":%s}`, device, t.UTC().Format(time.RFC3339), power)
}

// itemsOf returns field and error of every item a 400 answer names.
func itemsOf(m map[string]any) map[int][2]string {
	out := map[int][2]string{}
	items, _ := m["items"].([]any)
	for _, it := range items {
		it := it.(map[string]any)
		f, _ := it["field"].(string)
		e, _ := it["error"].(string)
		out[int(it["index"].(float64))] = [2]string{f, e}
	}
	return out
}

// TestNativeStrictItems: power_w missing or null, a key given twice or in
// another case are refused naming the field; nothing of the batch is
// stored (issue 9, items 2 and 11).
func TestNativeStrictItems(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	body := `{"readings":[` + strings.Join([]string{
		item("plug", t0, "1"),
		`{"device":"plug","time":"2026-11-26T12:00:10Z"}`,
		`{"device":"plug","time":"2026-11-26T12:00:20Z","power_w":null}`,
		`{"device":"plug","time":"2026-11-26T12:00:30Z","power_w":1,"power_w":2}`,
		`{"device":"plug","time":"2026-11-26T12:00:40Z","POWER_W":1}`,
		`{"DEVICE":"plug","time":"2026-11-26T12:00:50Z","power_w":1}`,
		`{"device":"plug","device":"other","time":"2026-11-26T12:01:00Z","power_w":1}`,
	}, ",") + `]}`
	code, m := postNative(t, ts, homeKey, body)
	if code != 400 {
		t.Fatalf("strict items: %d %v", code, m)
	}
	want := map[int]string{1: "power_w", 2: "power_w", 3: "power_w", 4: "POWER_W", 5: "DEVICE", 6: "device"}
	got := itemsOf(m)
	if len(got) != len(want) {
		t.Fatalf("items %v, want %v", got, want)
	}
	for i, f := range want {
		if got[i][0] != f || got[i][1] == "" {
			t.Errorf("item %d: %v, want field %q", i, got[i], f)
		}
	}
	if rs := stored(t, ts.st, "home", t0, t0.Add(time.Hour)); len(rs) != 0 {
		t.Fatalf("a refused batch stored %v", rs)
	}
	// the top level: wrong case, given twice
	for _, b := range []string{
		`{"READINGS":[` + item("plug", t0, "1") + `]}`,
		`{"readings":[` + item("plug", t0, "1") + `],"readings":[` + item("plug", t0, "2") + `]}`,
	} {
		if code, m := postNative(t, ts, homeKey, b); code != 400 || m["error"] == "" {
			t.Errorf("%s: %d %v, want 400", b, code, m)
		}
	}
	if rs := stored(t, ts.st, "home", t0, t0.Add(time.Hour)); len(rs) != 0 {
		t.Fatalf("a refused body stored %v", rs)
	}
}

// TestDeviceControlCharacters: NUL and other control characters (and
// invalid UTF-8) in a device name are refused naming the device, so no
// backend ever sees them (issue 9, item 3).
func TestDeviceControlCharacters(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for _, name := range []string{`plug\u0000`, `a\nb`, `tab\there`, `del\u007f`, `c1\u0085`, `esc\u001b[31m`} {
		body := `{"readings":[` + item("fine", t0, "1") + `,{"device":"` + name + `","time":"2026-11-26T12:00:00Z","power_w":1}]}`
		code, m := postNative(t, ts, homeKey, body)
		got := itemsOf(m)
		if code != 400 || got[1][0] != "device" || len(got) != 1 {
			t.Errorf("device %q: %d %v, want 400 naming device", name, code, m)
		}
	}
	if rs := stored(t, ts.st, "home", t0, t0.Add(time.Hour)); len(rs) != 0 {
		t.Fatalf("stored %v", rs)
	}
}

// TestFutureReadingsRefused: a reading more than max_future ahead of the
// server's clock is refused (400 naming time and the key) on both
// protocols; one within it is taken (issue 9, item 4).
func TestFutureReadingsRefused(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ts := startServer(t, baseConfig, nil, func(s *Server) { s.now = func() time.Time { return now } })
	code, m := postNative(t, ts, homeKey, `{"readings":[`+item("plug", now.Add(23*time.Hour), "1")+","+
		item("plug", time.Date(2106, 2, 7, 6, 28, 15, 0, time.UTC), "1")+`]}`)
	got := itemsOf(m)
	if code != 400 || got[1][0] != "time" || !strings.Contains(got[1][1], "server.max_future") || len(got) != 1 {
		t.Fatalf("a 2106 reading: %d %v", code, m)
	}
	code, body, _ := do(t, "GET", ts.base+"/log.php?key="+homeKey+"&stats=07.02.2106,07:28:15,1.00", "", "")
	if code != 400 || !strings.Contains(body, "max_future") {
		t.Fatalf("legacy 2106: %d %q", code, body)
	}
	code, body, _ = do(t, "GET", ts.base+"/log.php?key="+homeKey+"&stats=27.11.2026,12:00:00,1.00", "", "")
	if code != 200 {
		t.Fatalf("legacy within a day: %d %q", code, body)
	}
	if rs := stored(t, ts.st, "home", now.Add(24*time.Hour), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)); len(rs) != 0 {
		t.Fatalf("stored %v", rs)
	}
	// the key is configurable
	wide := startServer(t, strings.Replace(baseConfig, "metrics = true", "metrics = true\nmax_future = \"48h\"", 1), nil,
		func(s *Server) { s.now = func() time.Time { return now } })
	if code, m := postNative(t, wide, homeKey, `{"readings":[`+item("plug", now.Add(47*time.Hour), "1")+`]}`); code != 200 {
		t.Fatalf("max_future 48h, 47h ahead: %d %v", code, m)
	}
}

// TestSameSecondConflict: a reading for a device and second that holds
// other values keeps the first and is answered as a conflict, counted in
// the metrics; an identical one stays "already stored" (issue 9, item 9).
func TestSameSecondConflict(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	t0 := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	if code, m := postNative(t, ts, homeKey, `{"readings":[`+item("plug", t0, "1.5")+`]}`); code != 200 || m["inserted"] != 1.0 {
		t.Fatalf("first: %d %v", code, m)
	}
	code, m := postNative(t, ts, homeKey, `{"readings":[`+item("plug", t0, "1.5")+","+item("plug", t0.Add(time.Second), "2")+`]}`)
	if code != 200 || m["present"] != 1.0 || m["inserted"] != 1.0 || m["conflicts"] != nil {
		t.Fatalf("identical replay: %d %v", code, m)
	}
	code, m = postNative(t, ts, homeKey, `{"readings":[`+item("plug", t0, "99")+","+item("plug", t0.Add(2*time.Second), "3")+`]}`)
	got := itemsOf(m)
	if code != 200 || m["conflicts"] != 1.0 || m["present"] != 0.0 || m["inserted"] != 1.0 || got[0][0] != "time" || !strings.Contains(got[0][1], "conflict") {
		t.Fatalf("other value, same second: %d %v", code, m)
	}
	if rs := stored(t, ts.st, "home", t0, t0.Add(time.Second)); len(rs) != 1 || rs[0].Power != 1.5 {
		t.Fatalf("the first value must stay: %v", rs)
	}
	// legacy: 409 with a reason, the first kept
	send := func(line string) (int, string) {
		code, body, _ := do(t, "GET", ts.base+"/log.php?key="+homeKey+"&stats="+line, "", "")
		return code, body
	}
	if code, body := send("26.11.2026,14:00:00,5.00"); code != 200 || body != "stored\n" {
		t.Fatalf("legacy first: %d %q", code, body)
	}
	if code, body := send("26.11.2026,14:00:00,5.00"); code != 200 || body != "already stored\n" {
		t.Fatalf("legacy duplicate: %d %q", code, body)
	}
	if code, body := send("26.11.2026,14:00:00,7.00"); code != 409 || !strings.HasPrefix(body, "conflict") {
		t.Fatalf("legacy other value: %d %q", code, body)
	}
	if rs := stored(t, ts.st, "home", at(2026, 11, 26, 14, 0, 0), at(2026, 11, 26, 14, 0, 1)); len(rs) != 1 || rs[0].Power != 5 {
		t.Fatalf("legacy: the first value must stay: %v", rs)
	}
	_, metrics, _ := do(t, "GET", ts.base+"/metrics", "", "")
	for _, want := range []string{
		`powermeter_readings_conflicts_total{protocol="legacy",source="home"} 1`,
		`powermeter_readings_conflicts_total{protocol="native",source="home"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// autumnNight sends the night the clock goes back in zone live (GET, in
// order, every 20 s) with 0 W throughout, as a balcony plant does, and
// checks that every reading is stored at its own instant (issue 9, item 13).
func autumnNight(t *testing.T, ts *testServer, key, source string, zone *time.Location, from, to time.Time) {
	t.Helper()
	n := 0
	for tm := from; tm.Before(to); tm = tm.Add(20 * time.Second) {
		line, err := legacy.Format(tm, zone, 0, nil, 2, nil)
		if err != nil {
			t.Fatal(err)
		}
		code, body, _ := do(t, "GET", ts.base+"/log.php?key="+key+"&stats="+line, "", "")
		if code != 200 || body != "stored\n" {
			t.Fatalf("%s (%s): %d %q", line, tm.Format(time.RFC3339), code, body)
		}
		n++
	}
	if rs := stored(t, ts.st, source, from, to); len(rs) != n {
		t.Fatalf("%s: %d of %d readings stored", zone, len(rs), n)
	}
	// a replay of the whole night (buffer=1) stores nothing new
	for tm := from; tm.Before(to); tm = tm.Add(20 * time.Second) {
		line, _ := legacy.Format(tm, zone, 0, nil, 2, nil)
		form := url.Values{"key": {key}, "stats": {line}, "buffer": {"1"}}
		code, body, _ := do(t, "POST", ts.base+"/log.php", "application/x-www-form-urlencoded", form.Encode())
		if code != 200 || body != "already stored\n" {
			t.Fatalf("replay %s: %d %q", line, code, body)
		}
	}
	if rs := stored(t, ts.st, source, from, to); len(rs) != n {
		t.Fatalf("%s after the replay: %d readings, want %d", zone, len(rs), n)
	}
}

func TestAutumnLiveSameValues(t *testing.T) {
	cfg := baseConfig + `
[[server.sources]]
name = "lordhowe"
key = "lord-howe-key-1"
timezone = "Australia/Lord_Howe"
[[server.sources]]
name = "newyork"
key = "new-york-key-1"
timezone = "America/New_York"
`
	ts := startServer(t, cfg, nil, nil)
	// Berlin: 02:00–03:00 twice (00:00Z–02:00Z)
	autumnNight(t, ts, homeKey, "home", berlin, time.Date(2026, 10, 24, 23, 50, 0, 0, time.UTC), time.Date(2026, 10, 25, 2, 10, 0, 0, time.UTC))
	// Lord Howe: +11 → +10:30 on 5 April 2026, 01:30–02:00 twice (14:30Z–15:30Z)
	autumnNight(t, ts, "lord-howe-key-1", "lordhowe", mustZone("Australia/Lord_Howe"), time.Date(2026, 4, 4, 14, 20, 0, 0, time.UTC), time.Date(2026, 4, 4, 15, 40, 0, 0, time.UTC))
	// New York: 01:00–02:00 twice on 1 November 2026 (05:00Z–07:00Z)
	autumnNight(t, ts, "new-york-key-1", "newyork", mustZone("America/New_York"), time.Date(2026, 11, 1, 4, 50, 0, 0, time.UTC), time.Date(2026, 11, 1, 7, 10, 0, 0, time.UTC))
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// zeros is a reader of {"readings":[0,0,…]} of n items.
func zeros(n int) io.Reader {
	return io.MultiReader(strings.NewReader(`{"readings":[0`), strings.NewReader(strings.Repeat(",0", n-1)), strings.NewReader(`]}`))
}

// TestNativeStopsAtLimit: a body of 2 M tiny items is read only up to the
// item limit (issue 9, item 5); the answer is 413.
func TestNativeStopsAtLimit(t *testing.T) {
	cr := &countingReader{r: zeros(2 << 20)}
	_, _, err := decodeBatch(cr, MaxBatch, time.Now(), 24*time.Hour)
	if _, ok := err.(errTooMany); !ok {
		t.Fatalf("2 M items: %v, want too many", err)
	}
	if cr.n > 64<<10 {
		t.Fatalf("read %d bytes of a 4 MiB body to refuse it; want it to stop after the limit", cr.n)
	}
	ts := startServer(t, strings.Replace(baseConfig, "max_body_bytes = 2048", "max_body_bytes = 4194304", 1), nil, nil)
	body, _ := io.ReadAll(zeros(2 << 20))
	code, m := postNative(t, ts, homeKey, string(body))
	if code != 413 || !strings.Contains(m["error"].(string), "10000") {
		t.Fatalf("2 M items: %d %v", code, m)
	}
}

// TestMetricsAccess: /metrics names every source, so a source's ingest key
// does not open it; the metrics token, the read token and a dashboard user
// do (issue 9, item 8). Static folders are not listed (item 11).
func TestMetricsAccess(t *testing.T) {
	cfg := strings.Replace(baseConfig, "metrics = true", "metrics = true\nmetrics_token = \"metrics-token-0123456789\"", 1) + `
[server.dashboard]
read_token = "read-token-0123456789"
users = ["anna:` + annaHash(t) + `"]
`
	ts := startServer(t, cfg, nil, nil)
	for _, c := range []struct {
		name string
		hdr  []string
		code int
	}{
		{"no credentials", nil, 401},
		{"home's ingest key", []string{"Authorization", "Bearer " + homeKey}, 403},
		{"cabin's ingest key", []string{"Authorization", "Bearer " + cabinKey}, 403},
		{"metrics token", []string{"Authorization", "Bearer metrics-token-0123456789"}, 200},
		{"read token", []string{"Authorization", "Bearer read-token-0123456789"}, 200},
		{"dashboard user", []string{"Authorization", "Basic " + basicAuth("anna", "anna-pass-1")}, 200},
	} {
		code, body, _ := do(t, "GET", ts.base+"/metrics", "", "", c.hdr...)
		if code != c.code {
			t.Errorf("%s: %d, want %d", c.name, code, c.code)
		}
		if c.code != 200 && strings.Contains(body, "powermeter_readings_stored_total") {
			t.Errorf("%s: metrics shown", c.name)
		}
	}
	if code, _, _ := do(t, "GET", ts.base+"/metrics?token=metrics-token-0123456789", "", ""); code != 200 {
		t.Errorf("?token=: %d", code)
	}
	// without a metrics token and with open read access, /metrics is open
	open := startServer(t, baseConfig, nil, nil)
	if code, _, _ := do(t, "GET", open.base+"/metrics", "", ""); code != 200 {
		t.Errorf("open server: %d", code)
	}
	for _, p := range []string{"/static/", "/static"} {
		code, body, _ := do(t, "GET", open.base+p, "", "")
		if code == 200 || strings.Contains(body, "app.js") {
			t.Errorf("%s lists the folder: %d %q", p, code, body)
		}
	}
	if code, _, _ := do(t, "GET", open.base+"/static/app.js", "", ""); code != 200 {
		t.Errorf("/static/app.js: %d", code)
	}
}

func annaHash(t *testing.T) string {
	h, err := bcrypt.GenerateFromPassword([]byte("anna-pass-1"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func basicAuth(user, pass string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
}

// TestLiveIgnoresFutureReadings: a reading from 2106 stored before
// max_future existed no longer freezes the live view: the latest of each
// device is its newest at or before now (issue 9, item 4).
func TestLiveIgnoresFutureReadings(t *testing.T) {
	st := openStore(t)
	ts := startServer(t, baseConfig, st, nil)
	now := time.Now().UTC().Truncate(time.Second)
	if _, err := st.Insert(context.Background(), "home", []reading.Reading{
		{Device: "plug", Time: now.Add(-20 * time.Second), Power: 11},
		{Device: "plug", Time: time.Date(2106, 2, 7, 6, 28, 15, 0, time.UTC), Power: 99},
		{Device: "grid", Time: now.Add(-10 * time.Second), Power: 22},
	}); err != nil {
		t.Fatal(err)
	}
	code, body, _ := do(t, "GET", ts.base+"/api/v1/sources/home/latest", "", "")
	var ans struct{ Readings []reading.Reading }
	if err := json.Unmarshal([]byte(body), &ans); code != 200 || err != nil {
		t.Fatalf("latest: %d %q", code, body)
	}
	got := map[string]float64{}
	for _, r := range ans.Readings {
		got[r.Device] = r.Power
	}
	if len(got) != 2 || got["plug"] != 11 || got["grid"] != 22 {
		t.Fatalf("latest %v, want plug 11 and grid 22", got)
	}
	code, body, _ = do(t, "GET", ts.base+"/s/home", "", "")
	if code != 200 || !strings.Contains(body, "grid") || !strings.Contains(body, "plug") || strings.Contains(body, "2106") {
		t.Fatalf("live page: %d, shows grid %v, plug %v, 2106 %v", code, strings.Contains(body, "grid"), strings.Contains(body, "plug"), strings.Contains(body, "2106"))
	}
}

// TestLegacyPostBounded: a legacy POST body larger than a form of key and
// stats can need is refused before its key is looked at, whatever
// max_body_bytes allows (issue 9, item 5).
func TestLegacyPostBounded(t *testing.T) {
	ts := startServer(t, strings.Replace(baseConfig, "max_body_bytes = 2048", "max_body_bytes = 4194304", 1), nil, nil)
	body := "stats=26.11.2026,12:00:00,1.00&" + strings.Repeat("a=b&", 1<<20/4) + "key=wrong-key-1"
	code, msg, _ := do(t, "POST", ts.base+"/log.php", "application/x-www-form-urlencoded", body)
	if code != 413 || !strings.Contains(msg, "16384") {
		t.Fatalf("1 MiB legacy POST: %d %q, want 413", code, msg)
	}
	form := url.Values{"key": {homeKey}, "stats": {"26.11.2026,12:00:00,1.00,21.5,1,2,3,4,5,6,7,8,9,10,11,12"}, "buffer": {"1"}}
	if code, msg, _ := do(t, "POST", ts.base+"/log.php", "application/x-www-form-urlencoded", form.Encode()); code != 200 {
		t.Fatalf("a full legacy POST: %d %q", code, msg)
	}
}
