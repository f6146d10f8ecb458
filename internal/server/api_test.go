package server

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

func postNative(t *testing.T, ts *testServer, key, body string) (int, map[string]any) {
	t.Helper()
	hdr := []string{}
	if key != "" {
		hdr = []string{"Authorization", "Bearer " + key}
	}
	code, b, h := do(t, "POST", ts.base+"/api/v1/readings", "application/json", body, hdr...)
	if ct := h.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("native answer Content-Type %q (%d %q)", ct, code, b)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(b), &m); err != nil {
		t.Fatalf("native answer %q: %v", b, err)
	}
	return code, m
}

func TestNativeIngest(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	good := `{"readings":[
	 {"device":"plug","time":"2026-11-26T12:00:00Z","power_w":12.5,"energy_in_wh":1000.5,"temperature_c":21.5,"voltage_v":230.1},
	 {"device":"3em","time":"2026-11-26T13:00:00+01:00","power_w":-300,"energy_out_wh":50,"phases_w":[-100,-100,-100],"device_time":"2026-11-26T12:00:01Z","backfilled":true}]}`
	code, m := postNative(t, ts, homeKey, good)
	if code != 200 || m["inserted"] != 2.0 || m["present"] != 0.0 {
		t.Fatalf("good batch: %d %v", code, m)
	}
	code, m = postNative(t, ts, homeKey, good)
	if code != 200 || m["inserted"] != 0.0 || m["present"] != 2.0 {
		t.Fatalf("replay: %d %v", code, m)
	}
	rs := stored(t, ts.st, "home", time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), time.Date(2026, 11, 26, 12, 0, 1, 0, time.UTC))
	if len(rs) != 2 || rs[0].Device != "3em" || rs[0].Power != -300 || len(rs[0].Phases) != 3 || !rs[0].Backfilled ||
		rs[1].Device != "plug" || rs[1].EnergyIn == nil || *rs[1].EnergyIn != 1000.5 || rs[1].Voltage == nil {
		t.Fatalf("stored %+v", rs)
	}

	// one batch, several bad items: nothing is stored, every bad one named
	bad := `{"readings":[
	 {"device":"plug","time":"2026-11-27T12:00:00Z","power_w":1},
	 {"device":"plug","time":"2026-11-27T12:00:10Z","power_w":"high"},
	 {"device":"plug","time":"2026-11-27T12:00:20Z","power_w":1},
	 {"device":"plug","time":"2026-11-27T12:00:30Z","power_w":1,"colour":"red"},
	 {"device":"plug","time":"2026-11-27T12:00:40","power_w":1},
	 {"device":"","time":"2026-11-27T12:00:50Z","power_w":1},
	 {"device":"plug","time":"1970-01-01T00:00:00Z","power_w":1},
	 {"device":"plug","time":"2026-11-27T12:01:00Z","power_w":1,"energy_in_wh":-5}]}`
	code, m = postNative(t, ts, homeKey, bad)
	if code != 400 {
		t.Fatalf("bad batch: %d %v", code, m)
	}
	items, _ := m["items"].([]any)
	wantItems := map[float64]string{1: "power_w", 3: "colour", 4: "time", 5: "device", 6: "time", 7: "energy_in_wh"}
	if len(items) != len(wantItems) {
		t.Fatalf("items %v, want %d", items, len(wantItems))
	}
	for _, it := range items {
		it := it.(map[string]any)
		idx := it["index"].(float64)
		if it["field"] != wantItems[idx] || it["error"] == "" {
			t.Errorf("item %v: field %v, want %q", idx, it["field"], wantItems[idx])
		}
	}
	if rs := stored(t, ts.st, "home", time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)); len(rs) != 0 {
		t.Fatalf("a refused batch stored %d readings", len(rs))
	}

	for _, c := range []struct {
		key, body string
		code      int
	}{
		{"", good, 401},
		{"not-a-key-at-all", good, 403},
		{homeKey, `{"readings":[]}`, 400},
		{homeKey, `{}`, 400},
		{homeKey, `{"readings":[{"device":"a","time":"2026-11-27T12:00:00Z","power_w":1}]} x`, 400},
		{homeKey, `{"reading":[]}`, 400},
		{homeKey, `{"readings":[`, 400},
		{homeKey, `[1,2]`, 400},
	} {
		code, m := postNative(t, ts, c.key, c.body)
		if code != c.code || m["error"] == "" {
			t.Errorf("key %q body %q: %d %v, want %d", c.key, c.body, code, m, c.code)
		}
	}
	// a batch over the limit
	small := startServer(t, baseConfig, nil, func(s *Server) { s.maxBatch = 3 })
	code, m = postNative(t, small, homeKey, `{"readings":[{},{},{},{}]}`)
	if code != 413 {
		t.Fatalf("batch of 4 over a limit of 3: %d %v", code, m)
	}
}

func TestReadAPI(t *testing.T) {
	st := openStore(t)
	ts := startServer(t, baseConfig, st, nil)
	ctx := context.Background()
	// a big range: 30 days of 10-s readings would be 259 200; 30 000 keep
	// the test short and are still far beyond any buffer
	const n = 30000
	start := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	batch := make([]reading.Reading, 0, 5000)
	for i := 0; i < n; i++ {
		batch = append(batch, reading.Reading{Device: "legacy", Time: start.Add(time.Duration(i) * 10 * time.Second), Power: float64(i % 1000), Temperature: reading.F(20.5)})
		if len(batch) == cap(batch) {
			if _, err := st.Insert(ctx, "home", batch); err != nil {
				t.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	if _, err := st.Insert(ctx, "home", []reading.Reading{{Device: "plug", Time: start.Add(5 * time.Second), Power: 7, Phases: []float64{1, 2}}}); err != nil {
		t.Fatal(err)
	}
	end := start.Add(n * 10 * time.Second)

	// JSON, streamed: decode it as a stream too
	resp, err := client.Get(ts.base + "/api/v1/sources/home/readings?from=" + start.Format(time.RFC3339) + "&to=" + end.Format(time.RFC3339))
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("readings: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(resp.Body)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		t.Fatalf("JSON does not start with [: %v %v", tok, err)
	}
	count := 0
	var prev time.Time
	for dec.More() {
		var r reading.Reading
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("reading %d: %v", count, err)
		}
		if r.Time.Before(prev) {
			t.Fatalf("reading %d out of order", count)
		}
		prev = r.Time
		count++
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim(']') {
		t.Fatalf("JSON does not end with ]: %v %v", tok, err)
	}
	resp.Body.Close()
	if count != n+1 {
		t.Fatalf("JSON: %d readings, want %d", count, n+1)
	}

	// CSV with a header, one device, days in the source's zone
	resp, err = client.Get(ts.base + "/api/v1/sources/home/readings?from=2026-06-01&to=2026-06-02&format=csv&device=legacy")
	if err != nil {
		t.Fatal(err)
	}
	cr := csv.NewReader(bufio.NewReader(resp.Body))
	recs, err := cr.ReadAll()
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(recs[0], ",") != strings.Join(csvHeader, ",") {
		t.Fatalf("CSV header %v", recs[0])
	}
	// 2026-06-01 00:00 to 2026-06-03 00:00 Berlin = 05-31 22:00Z to 06-02 22:00Z;
	// the data start at 06-01 00:00Z
	wantRows := int((time.Date(2026, 6, 2, 22, 0, 0, 0, time.UTC).Sub(start)) / (10 * time.Second))
	if len(recs)-1 != wantRows {
		t.Fatalf("CSV: %d rows, want %d", len(recs)-1, wantRows)
	}
	if recs[1][0] != "2026-06-01T00:00:00Z" || recs[1][1] != "legacy" || recs[1][2] != "0" || recs[1][5] != "20.5" {
		t.Fatalf("CSV row 1: %v", recs[1])
	}

	code, body, _ := do(t, "GET", ts.base+"/api/v1/sources/home/latest", "", "")
	var latest struct {
		Source   string            `json:"source"`
		Readings []reading.Reading `json:"readings"`
	}
	if err := json.Unmarshal([]byte(body), &latest); code != 200 || err != nil || latest.Source != "home" || len(latest.Readings) != 2 {
		t.Fatalf("latest: %d %q", code, body)
	}
	code, body, _ = do(t, "GET", ts.base+"/api/v1/sources", "", "")
	var infos []store.SourceInfo
	if err := json.Unmarshal([]byte(body), &infos); code != 200 || err != nil || len(infos) != 2 {
		t.Fatalf("sources: %d %q", code, body)
	}
	for _, c := range []struct {
		path string
		code int
	}{
		{"/api/v1/sources/nowhere/latest", 404},
		{"/api/v1/sources/nowhere/readings", 404},
		{"/api/v1/sources/home/readings?from=yesterday", 400},
		{"/api/v1/sources/home/readings?from=2026-06-02&to=2026-06-01", 400},
		{"/api/v1/sources/home/readings?format=xml", 400},
		{"/healthz", 200},
		{"/metrics", 200},
	} {
		if code, body, _ := do(t, "GET", ts.base+c.path, "", ""); code != c.code {
			t.Errorf("%s: %d %q, want %d", c.path, code, body, c.code)
		}
	}
}

func TestReadAPIAccess(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, baseConfig+`
[server.dashboard]
read_token = "read-token-123"
users = ["anna:`+string(hash)+`"]
`, nil, nil)
	basic := func(user, pass string) []string {
		return []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}
	}
	for _, c := range []struct {
		path string
		hdr  []string
		code int
	}{
		{"/api/v1/sources/home/latest", nil, 401},
		{"/api/v1/sources/home/latest", []string{"Authorization", "Bearer nope-nope"}, 403},
		{"/api/v1/sources/home/latest", []string{"Authorization", "Bearer read-token-123"}, 200},
		{"/api/v1/sources/home/latest?token=read-token-123", nil, 200},
		{"/api/v1/sources/home/latest", []string{"Authorization", "Bearer " + homeKey}, 200},
		{"/api/v1/sources/cabin/latest", []string{"Authorization", "Bearer " + homeKey}, 403},
		{"/api/v1/sources/cabin/latest", basic("anna", "s3cret"), 200},
		{"/api/v1/sources/cabin/latest", basic("anna", "wrong"), 403},
		{"/api/v1/sources/cabin/latest", basic("bob", "s3cret"), 403},
		{"/metrics", nil, 401},
		{"/metrics", []string{"Authorization", "Bearer read-token-123"}, 200},
		{"/healthz", nil, 200},
	} {
		if code, body, _ := do(t, "GET", ts.base+c.path, "", "", c.hdr...); code != c.code {
			t.Errorf("%s %v: %d %q, want %d", c.path, c.hdr, code, body, c.code)
		}
	}
	code, body, _ := do(t, "GET", ts.base+"/api/v1/sources", "", "", "Authorization", "Bearer "+cabinKey)
	var infos []store.SourceInfo
	if err := json.Unmarshal([]byte(body), &infos); code != 200 || err != nil || len(infos) != 1 || infos[0].Name != "cabin" {
		t.Fatalf("sources with the cabin key: %d %q", code, body)
	}
}

func TestConcurrentIngest(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	const workers, per = 8, 40
	base := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make(chan error, workers*per*2)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < per; i++ {
				tm := base.Add(time.Duration(w*per+i) * time.Second)
				// legacy lines to home (Berlin), native to cabin
				line := tm.In(berlin).Format("02.01.2006,15:04:05") + fmt.Sprintf(",%d.00", w)
				resp, err := client.Get(ts.base + "/log.php?key=" + homeKey + "&stats=" + line)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("legacy %s: %d", line, resp.StatusCode)
				}
				body := fmt.Sprintf(`{"readings":[{"device":"d%d","time":%q,"power_w":%d}]}`, w, tm.Format(time.RFC3339), i)
				req, _ := http.NewRequest("POST", ts.base+"/api/v1/readings", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+cabinKey)
				resp, err = client.Do(req)
				if err != nil {
					errs <- err
					return
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					errs <- fmt.Errorf("native: %d", resp.StatusCode)
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	end := base.Add(workers * per * time.Second)
	if got := len(stored(t, ts.st, "home", base, end)); got != workers*per {
		t.Errorf("home: %d readings, want %d", got, workers*per)
	}
	if got := len(stored(t, ts.st, "cabin", base, end)); got != workers*per {
		t.Errorf("cabin: %d readings, want %d", got, workers*per)
	}
}

// blockingStore holds every Insert until released.
type blockingStore struct {
	store.Store
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) Insert(ctx context.Context, source string, rs []reading.Reading) (store.InsertResult, error) {
	b.entered <- struct{}{}
	<-b.release
	return b.Store.Insert(ctx, source, rs)
}

func TestGracefulShutdownFinishesInsert(t *testing.T) {
	real := openStore(t)
	bs := &blockingStore{Store: real, entered: make(chan struct{}, 1), release: make(chan struct{})}
	ts := startServer(t, baseConfig, bs, nil)
	type answer struct {
		code int
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := client.Get(ts.base + "/log.php?key=" + homeKey + "&stats=26.11.2026,12:00:00,77.00")
		if err != nil {
			got <- answer{err: err}
			return
		}
		resp.Body.Close()
		got <- answer{code: resp.StatusCode}
	}()
	<-bs.entered
	ts.stop() // SIGTERM: shutdown begins while the insert is in flight
	select {
	case err := <-ts.done:
		t.Fatalf("Serve returned (%v) before the in-flight insert finished", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(bs.release)
	a := <-got
	if a.err != nil || a.code != 200 {
		t.Fatalf("in-flight request: %d %v", a.code, a.err)
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
		ts.done <- nil // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after the insert finished")
	}
	if rs := stored(t, real, "home", at(2026, 11, 26, 12, 0, 0), at(2026, 11, 26, 12, 0, 1)); len(rs) != 1 || rs[0].Power != 77 {
		t.Fatalf("stored %v", rs)
	}
}

func TestMetricsAndDashboard(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	do(t, "GET", ts.base+"/log.php?key="+homeKey+"&stats=26.11.2026,12:00:00,1.00", "", "")
	do(t, "GET", ts.base+"/log.php?key="+homeKey+"&stats=26.11.2026,12:00:00,1.00", "", "")
	do(t, "GET", ts.base+"/log.php?key=wrong-key-1&stats=26.11.2026,12:00:00,1.00", "", "")
	do(t, "GET", ts.base+"/log.php?key="+homeKey+"&stats=26.11.2026,12:00:00,5-3", "", "")
	code, body, _ := do(t, "GET", ts.base+"/metrics", "", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`powermeter_readings_stored_total{protocol="legacy",source="home"} 1`,
		`powermeter_readings_present_total{protocol="legacy",source="home"} 1`,
		`powermeter_wrong_keys_total 1`,
		`powermeter_requests_refused_total{protocol="legacy",reason="power"} 1`,
		`powermeter_http_request_duration_seconds_count{code="200",route="legacy"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(body, homeKey) {
		t.Error("/metrics shows a key")
	}
	code, body, hdr := do(t, "GET", ts.base+"/", "", "")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") || !strings.Contains(body, "home") {
		t.Fatalf("dashboard /: %d %s", code, hdr.Get("Content-Type"))
	}
}

// TestShutdownEndsStreams: an open live page (a stream that never ends by
// itself) does not hold up shutdown.
func TestShutdownEndsStreams(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	resp, err := client.Get(ts.base + "/s/home/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("events: %d", resp.StatusCode)
	}
	ts.stop()
	select {
	case err := <-ts.done:
		ts.done <- err
	case <-time.After(10 * time.Second):
		t.Fatal("an open stream held up shutdown")
	}
}
