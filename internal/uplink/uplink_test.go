package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/uplink/uplinktest"
)

var berlin, _ = time.LoadLocation("Europe/Berlin")

// 12:00 UTC in June is 14:00 in Berlin.
var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func item(seq uint64, meter string, at time.Time, power float64, temp *float64, phases ...float64) outbox.Item {
	return outbox.Item{Seq: seq, Meter: meter, Reading: reading.Reading{Device: meter, Time: at, Power: power, Temperature: temp, Phases: phases}}
}

// at is a newest-round function that always answers t.
func at(t time.Time) func() time.Time { return func() time.Time { return t } }

var types = map[string]string{"balcony": "fritzdect", "fridge": "shelly", "grid": "shelly"}
var order = []string{"balcony", "fridge", "grid"}

func newSender(t *testing.T, u config.Uplink) Sender {
	t.Helper()
	if u.Name == "" {
		u.Name = "up"
	}
	if u.Key == "" {
		u.Key = "s3cret key"
	}
	if u.Method == "" {
		u.Method = "get"
	}
	if u.Combine == "" {
		u.Combine = "sum"
	}
	if u.Protocol == "" {
		u.Protocol = "legacy"
	}
	s, err := New(u, 0, Options{Zone: berlin, MeterTypes: types, MeterOrder: order})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestLegacyLiveGETSendsTheOriginalLineUnescaped(t *testing.T) {
	php := &uplinktest.PHP{Key: "s3cret key"}
	srv := httptest.NewServer(php)
	defer srv.Close()
	s := newSender(t, config.Uplink{URL: srv.URL + "/powermeter/", Meters: []string{"balcony"}})
	its := []outbox.Item{item(1, "balcony", t0, 123.456, reading.F(21.54))}
	n, err := s.Send(context.Background(), its, at(t0), nil)
	if err != nil || n != 1 {
		t.Fatalf("Send = %d, %v", n, err)
	}
	lines := php.Lines()
	if len(lines) != 1 {
		t.Fatalf("accepted %d lines, rejected %q", len(lines), php.Rejected())
	}
	l := lines[0]
	if l.Stats != "01.06.2026,14:00:00,123.46,21.5" || l.Method != "GET" || l.Buffer {
		t.Fatalf("line %+v", l)
	}
	if want := "key=s3cret+key&stats=01.06.2026,14:00:00,123.46,21.5"; l.RawQuery != want {
		t.Fatalf("raw query %q, want %q (stats unescaped as the ESP8266 sent it)", l.RawQuery, want)
	}
	if php.Current() != l.Stats {
		t.Fatalf("current %q", php.Current())
	}
}

func TestLegacyReplayGoesAsPOSTWithBuffer(t *testing.T) {
	php := &uplinktest.PHP{Key: "s3cret key"}
	srv := httptest.NewServer(php)
	defer srv.Close()
	s := newSender(t, config.Uplink{URL: srv.URL + "/", Meters: []string{"fridge"}})
	var its []outbox.Item
	for i := 0; i < 5; i++ {
		its = append(its, item(uint64(i), "fridge", t0.Add(time.Duration(i)*10*time.Second), 60+float64(i), reading.F(4.321)))
	}
	n, err := s.Send(context.Background(), its, at(t0.Add(40*time.Second)), nil)
	if err != nil || n != 5 {
		t.Fatalf("Send = %d, %v", n, err)
	}
	lines := php.Lines()
	if len(lines) != 5 {
		t.Fatalf("%d lines", len(lines))
	}
	for i, l := range lines[:4] {
		if l.Method != "POST" || !l.Buffer {
			t.Fatalf("replayed line %d went as %s buffer=%v", i, l.Method, l.Buffer)
		}
	}
	if lines[4].Method != "GET" || lines[4].Buffer {
		t.Fatalf("the current line went as %+v", lines[4])
	}
	if lines[0].Stats != "01.06.2026,14:00:00,60.00,4.32" {
		t.Fatalf("Shelly line %q (temperature with 2 decimals)", lines[0].Stats)
	}
	if php.Current() != lines[4].Stats {
		t.Fatalf("current %q", php.Current())
	}
}

func TestLegacyPOSTMethod(t *testing.T) {
	php := &uplinktest.PHP{Key: "k"}
	srv := httptest.NewServer(php)
	defer srv.Close()
	s := newSender(t, config.Uplink{URL: srv.URL, Key: "k", Method: "post", Meters: []string{"fridge"}})
	if _, err := s.Send(context.Background(), []outbox.Item{item(1, "fridge", t0, 5, nil)}, at(t0), nil); err != nil {
		t.Fatal(err)
	}
	l := php.Lines()
	if len(l) != 1 || l[0].Method != "POST" || l[0].Buffer || l[0].Stats != "01.06.2026,14:00:00,5.00" {
		t.Fatalf("lines %+v", l)
	}
}

func TestLegacyLines(t *testing.T) {
	cases := []struct {
		name   string
		meters []string
		group  []outbox.Item
		want   string
	}{
		{"fritzdect", []string{"balcony"}, []outbox.Item{item(1, "balcony", t0, -0.004, reading.F(-3.05))}, "01.06.2026,14:00:00,0.00,-3.0"},
		{"3EM", []string{"grid"}, []outbox.Item{item(1, "grid", t0, 212.5, nil, 300, -150.25, 62.75)}, "01.06.2026,14:00:00,212.50,,300.00,-150.25,62.75"},
		{"3EM with its device temperature", []string{"grid"}, []outbox.Item{item(1, "grid", t0, 212.5, reading.F(38.1), 300, -150.25, 62.75)}, "01.06.2026,14:00:00,212.50,,300.00,-150.25,62.75"},
		{"sum in config order", nil, []outbox.Item{
			item(2, "grid", t0, 100, nil, 50, 50, 0),
			item(1, "fridge", t0, 60.2, reading.F(5.123)),
			item(3, "balcony", t0, -300, reading.F(21.44)),
		}, "01.06.2026,14:00:00,-139.80,21.4,-300.00,60.20,100.00"},
		{"sum without temperature", []string{"grid", "fridge"}, []outbox.Item{item(1, "fridge", t0, 60.2, nil), item(2, "grid", t0, 63.2, nil)}, "01.06.2026,14:00:00,123.40,,60.20,63.20"},
	}
	for _, c := range cases {
		s := newSender(t, config.Uplink{URL: "http://127.0.0.1:1/", Meters: c.meters}).(*legacySender)
		got, err := s.Line(c.group)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
		}
	}
}

func TestLegacyCombineEachAndFilter(t *testing.T) {
	php := &uplinktest.PHP{Key: "k"}
	srv := httptest.NewServer(php)
	defer srv.Close()
	s := newSender(t, config.Uplink{URL: srv.URL + "/", Key: "k", Combine: "each", Meters: []string{"fridge", "grid"}})
	its := []outbox.Item{item(1, "balcony", t0, 1, nil), item(2, "fridge", t0, 2, nil), item(3, "grid", t0, 3, nil)}
	// Every line is acknowledged as soon as it was taken.
	var acks []int
	n, err := s.Send(context.Background(), its, at(t0), func(n int) error { acks = append(acks, n); return nil })
	if err != nil || n != 3 || fmt.Sprint(acks) != "[2 3]" {
		t.Fatalf("Send = %d, %v, acks %v; want 3 handled, acks [2 3]", n, err, acks)
	}
	var got []string
	for _, l := range php.Lines() {
		got = append(got, l.Stats)
	}
	if fmt.Sprint(got) != "[01.06.2026,14:00:00,2.00 01.06.2026,14:00:00,3.00]" {
		t.Fatalf("lines %q", got)
	}
}

func TestLegacyNon2xxIsAFailure(t *testing.T) {
	php := &uplinktest.PHP{Key: "k"}
	srv := httptest.NewServer(php)
	defer srv.Close()
	s := newSender(t, config.Uplink{URL: srv.URL + "/", Key: "k", Meters: []string{"fridge"}})
	for _, code := range []int{404, 500, 503, -1} {
		php.SetDown(code)
		n, err := s.Send(context.Background(), []outbox.Item{item(1, "fridge", t0, 1, nil), item(2, "fridge", t0.Add(10*time.Second), 1, nil)}, at(t0), nil)
		if err == nil || n != 0 {
			t.Fatalf("status %d: Send = %d, %v; want a failure", code, n, err)
		}
	}
	if len(php.Lines()) != 0 {
		t.Fatal("lines accepted while down")
	}
}

func TestLegacyKeepsARoundTogetherAcrossBatches(t *testing.T) {
	php := &uplinktest.PHP{Key: "k"}
	srv := httptest.NewServer(php)
	defer srv.Close()
	var ten []string
	for m := 0; m < 10; m++ {
		ten = append(ten, fmt.Sprintf("m%d", m))
	}
	s, err := New(config.Uplink{Name: "up", URL: srv.URL + "/", Key: "k", Protocol: "legacy", Method: "get", Combine: "sum"}, 0, Options{MeterOrder: ten})
	if err != nil {
		t.Fatal(err)
	}
	// One round of one reading, then 30 rounds of ten meters: a window of
	// MaxBatch items cuts the 26th round.
	its := []outbox.Item{item(0, "m0", t0.Add(-10*time.Second), 1, nil)}
	for r := 0; r < 30; r++ {
		for m := 0; m < 10; m++ {
			its = append(its, item(uint64(len(its)), fmt.Sprintf("m%d", m), t0.Add(time.Duration(r)*10*time.Second), float64(m), nil))
		}
	}
	total := 0
	for total < len(its) {
		window := its[total:min(total+s.MaxBatch(), len(its))]
		n, err := s.Send(context.Background(), window, at(t0.Add(time.Hour)), nil)
		if err != nil || n == 0 {
			t.Fatalf("Send = %d, %v", n, err)
		}
		total += n
	}
	lines := php.Lines()
	if len(lines) != 31 {
		t.Fatalf("%d lines, want 31", len(lines))
	}
	for i, l := range lines[1:] {
		if len(l.Parsed.Extra) != 10 || l.Parsed.Power != 45 {
			t.Fatalf("round %d went incomplete: %q", i, l.Stats)
		}
	}
}

func TestNativeBatchesAndBisectsRefusedReadings(t *testing.T) {
	var mu sync.Mutex
	got := map[string]int{}
	posts := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/pm/api/v1/readings" || r.Header.Get("Authorization") != "Bearer key-123" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		var body struct {
			Readings []reading.Reading `json:"readings"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for i, rd := range body.Readings {
			if rd.Power == 666 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(400)
				fmt.Fprintf(w, `{"error":"1 of %d readings are invalid; nothing was stored","items":[{"index":%d,"field":"power","error":"out of range"}]}`, len(body.Readings), i)
				return
			}
		}
		mu.Lock()
		posts++
		for _, rd := range body.Readings {
			got[rd.Device+rd.Time.String()]++
		}
		mu.Unlock()
		fmt.Fprintf(w, `{"inserted":%d}`, len(body.Readings))
	}))
	defer srv.Close()
	var rejected []Rejected
	s, err := New(config.Uplink{Name: "n", URL: srv.URL + "/pm", Protocol: "native", Key: "key-123"}, 0, Options{OnReject: func(r Rejected) { rejected = append(rejected, r) }})
	if err != nil {
		t.Fatal(err)
	}
	var its []outbox.Item
	for i := 0; i < 1000; i++ {
		p := float64(i) + 0.25
		if i == 777 {
			p = 666
		}
		its = append(its, item(uint64(i), "m", t0.Add(time.Duration(i)*10*time.Second), p, nil))
	}
	n, err := s.Send(context.Background(), its, at(t0), nil)
	if err != nil || n != 1000 {
		t.Fatalf("Send = %d, %v", n, err)
	}
	if len(rejected) != 1 || rejected[0].Item.Seq != 777 {
		t.Fatalf("rejected %+v", rejected)
	}
	if len(got) != 999 || posts != 1 {
		t.Fatalf("server has %d readings in %d batches, want 999 in 1", len(got), posts)
	}
	if !strings.Contains(rejected[0].Err.Error(), "power: out of range") {
		t.Fatalf("rejection %v does not say why", rejected[0].Err)
	}
	for k, c := range got {
		if c != 1 {
			t.Fatalf("%s arrived %d times", k, c)
		}
	}
	if s.MaxBatch() < 500 {
		t.Fatalf("batch %d too small to drain a day quickly", s.MaxBatch())
	}
}

func TestNativeServerErrorIsRetried(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", 503) }))
	defer srv.Close()
	s := newSender(t, config.Uplink{URL: srv.URL, Protocol: "native"})
	n, err := s.Send(context.Background(), []outbox.Item{item(1, "m", t0, 1, nil)}, at(t0), nil)
	var se *StatusError
	if n != 0 || !errors.As(err, &se) || se.Code != 503 {
		t.Fatalf("Send = %d, %v", n, err)
	}
}

func TestTLSVerifiedCAFileAndInsecure(t *testing.T) {
	php := &uplinktest.PHP{Key: "k"}
	srv := httptest.NewTLSServer(php)
	defer srv.Close()
	its := []outbox.Item{item(1, "fridge", t0, 1, nil)}

	s := newSender(t, config.Uplink{URL: srv.URL + "/", Key: "k"})
	if _, err := s.Send(context.Background(), its, at(t0), nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("an unknown certificate was accepted: %v", err)
	}

	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemData := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemData, 0o644); err != nil {
		t.Fatal(err)
	}
	s = newSender(t, config.Uplink{URL: srv.URL + "/", Key: "k", CAFile: ca})
	if _, err := s.Send(context.Background(), its, at(t0), nil); err != nil {
		t.Fatalf("with ca_file: %v", err)
	}

	var logs bytes.Buffer
	s, err := New(config.Uplink{Name: "x", URL: srv.URL + "/", Key: "k", Protocol: "legacy", Method: "get", Combine: "sum", Insecure: true}, 0, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "insecure") {
		t.Fatalf("no warning for insecure: %q", logs.String())
	}
	if _, err := s.Send(context.Background(), []outbox.Item{item(2, "fridge", t0.Add(10*time.Second), 1, nil)}, at(t0.Add(10*time.Second)), nil); err != nil {
		t.Fatalf("insecure: %v", err)
	}
	if len(php.Lines()) != 2 {
		t.Fatalf("lines %+v", php.Lines())
	}

	_, err = New(config.Uplink{Name: "x", URL: srv.URL, CAFile: filepath.Join(t.TempDir(), "missing.pem")}, 3, Options{})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "uplinks[3].ca_file" {
		t.Fatalf("missing ca_file: %v", err)
	}
}

type fakeStore struct {
	fail bool
	got  []reading.Reading
}

func (f *fakeStore) Insert(ctx context.Context, source string, rs []reading.Reading) (store.InsertResult, error) {
	if f.fail {
		return store.InsertResult{}, errors.New("disk full")
	}
	f.got = append(f.got, rs...)
	return store.InsertResult{Inserted: len(rs)}, nil
}

func TestLocalSender(t *testing.T) {
	st := &fakeStore{}
	var rejected int
	s := NewLocal(st, "home", func(Rejected) { rejected++ })
	its := []outbox.Item{item(1, "a", t0, 1, nil), item(2, "a", time.Time{}, 1, nil), item(3, "b", t0, 2, nil)}
	n, err := s.Send(context.Background(), its, at(t0), nil)
	if err != nil || n != 3 || len(st.got) != 2 || rejected != 1 {
		t.Fatalf("Send = %d, %v; stored %d, rejected %d", n, err, len(st.got), rejected)
	}
	st.fail = true
	if n, err := s.Send(context.Background(), its[:1], at(t0), nil); err == nil || n != 0 {
		t.Fatalf("failing store: %d, %v", n, err)
	}
}

// A redirect is not followed: a replayed POST would arrive as a GET
// without its line, which a PHP install answers with 200. It is a failure
// naming the new address (without the key), and nothing is acknowledged.
func TestLegacyRedirectIsAFailureNotAcknowledged(t *testing.T) {
	php := &uplinktest.PHP{Key: "s3cret key"}
	real := httptest.NewServer(php)
	defer real.Close()
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, real.URL+r.URL.RequestURI(), http.StatusMovedPermanently)
	}))
	defer redir.Close()
	s := newSender(t, config.Uplink{URL: redir.URL + "/"})
	its := []outbox.Item{item(1, "balcony", t0, 100, reading.F(20)), item(2, "balcony", t0.Add(10*time.Second), 101, reading.F(20))}
	acked := 0
	ack := func(n int) error { acked = n; return nil }
	// Both replays (POST), then the same two with the second current (GET).
	for _, newest := range []time.Time{t0.Add(20 * time.Second), t0.Add(10 * time.Second)} {
		n, err := s.Send(context.Background(), its, at(newest), ack)
		var se *StatusError
		if n != 0 || acked != 0 || !errors.As(err, &se) || se.Code != 301 {
			t.Fatalf("Send = %d (acked %d), %v; want a 301 failure", n, acked, err)
		}
		if se.Location != real.URL+"/log.php" || !strings.Contains(err.Error(), real.URL+"/log.php") {
			t.Fatalf("error %q does not name where the install moved", err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("the key leaks: %q", err)
		}
	}
	if php.Requests() != 0 {
		t.Fatalf("the redirect was followed: %d requests at the new address", php.Requests())
	}
}

// combine = "sum": a meter missing in a round leaves its field empty, so
// the others keep their positions; an uplink of several meters always
// writes the sum layout.
func TestLegacySumLineKeepsFieldsWhenAMeterIsMissing(t *testing.T) {
	s := newSender(t, config.Uplink{URL: "http://127.0.0.1:9/"}).(*legacySender)
	cases := []struct {
		name  string
		group []outbox.Item
		want  string
	}{
		{"all three", []outbox.Item{item(1, "balcony", t0, 100, reading.F(20)), item(2, "fridge", t0, 50, nil), item(3, "grid", t0, -300, nil)}, "01.06.2026,14:00:00,-150.00,20.0,100.00,50.00,-300.00"},
		{"first missing", []outbox.Item{item(1, "fridge", t0, 50, nil), item(2, "grid", t0, -300, nil)}, "01.06.2026,14:00:00,-250.00,,,50.00,-300.00"},
		{"middle missing", []outbox.Item{item(1, "balcony", t0, 100, reading.F(20)), item(3, "grid", t0, -300, nil)}, "01.06.2026,14:00:00,-200.00,20.0,100.00,,-300.00"},
		{"only the last", []outbox.Item{item(1, "grid", t0, -300, nil, 1, 2, 3)}, "01.06.2026,14:00:00,-300.00,,,,-300.00"},
		{"only the first", []outbox.Item{item(1, "balcony", t0, 100, reading.F(20))}, "01.06.2026,14:00:00,100.00,20.0,100.00,,"},
	}
	for _, c := range cases {
		got, err := s.Line(c.group)
		if err != nil || got != c.want {
			t.Errorf("%s: %q, %v; want %q", c.name, got, err, c.want)
			continue
		}
		// The PHP rules take it, and every field is where it belongs.
		if _, err := legacy.Parse(got); err != nil {
			t.Errorf("%s: %q refused: %v", c.name, got, err)
		}
	}
	// An uplink of one meter keeps the original single layout.
	one := newSender(t, config.Uplink{URL: "http://127.0.0.1:9/", Meters: []string{"grid"}}).(*legacySender)
	if got, err := one.Line([]outbox.Item{item(1, "grid", t0, 212.5, nil, 300, -150.25, 62.75)}); err != nil || got != "01.06.2026,14:00:00,212.50,,300.00,-150.25,62.75" {
		t.Fatalf("single meter: %q, %v", got, err)
	}
}

// The key is never in an error (they reach the log and /status): not from
// a transport error's URL, nor from a redirect's Location.
func TestKeyNeverInErrors(t *testing.T) {
	for _, proto := range []string{"legacy", "native"} {
		s := newSender(t, config.Uplink{URL: "http://127.0.0.1:9/", Protocol: proto, Key: "s3cret"})
		_, err := s.Send(context.Background(), []outbox.Item{item(1, "balcony", t0, 1, nil)}, at(t0), nil)
		if err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Fatalf("%s: %v", proto, err)
		}
		if proto == "legacy" && !strings.Contains(err.Error(), "http://127.0.0.1:9/log.php") {
			t.Fatalf("%s: the error %q does not say where", proto, err)
		}
	}
	echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such page: "+r.URL.RequestURI(), http.StatusNotFound)
	}))
	defer echo.Close()
	s := newSender(t, config.Uplink{URL: echo.URL + "/", Key: "s3cret"})
	_, err := s.Send(context.Background(), []outbox.Item{item(1, "balcony", t0, 1, nil)}, at(t0), nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "404") {
		t.Fatalf("error page echoing the URL: %v", err)
	}
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://elsewhere.invalid"+r.URL.RequestURI(), http.StatusFound)
	}))
	defer redir.Close()
	s = newSender(t, config.Uplink{URL: redir.URL + "/", Key: "s3cret"})
	_, err = s.Send(context.Background(), []outbox.Item{item(1, "balcony", t0, 1, nil)}, at(t0), nil)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "https://elsewhere.invalid/log.php") {
		t.Fatalf("redirect: %v", err)
	}
}

// Current or replay is decided for each line: a round taken while a batch
// goes out makes its last line a replay.
func TestLegacyCurrentOrReplayDecidedPerLine(t *testing.T) {
	var mu sync.Mutex
	newest := t0.Add(10 * time.Second)
	php := &uplinktest.PHP{Key: "k"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		php.ServeHTTP(w, r)
		mu.Lock()
		newest = t0.Add(20 * time.Second) // the next round was taken
		mu.Unlock()
	}))
	defer srv.Close()
	s := newSender(t, config.Uplink{URL: srv.URL + "/", Key: "k", Meters: []string{"fridge"}})
	its := []outbox.Item{item(1, "fridge", t0, 1, nil), item(2, "fridge", t0.Add(10*time.Second), 2, nil)}
	n, err := s.Send(context.Background(), its, func() time.Time { mu.Lock(); defer mu.Unlock(); return newest }, nil)
	if err != nil || n != 2 {
		t.Fatalf("Send = %d, %v", n, err)
	}
	for i, l := range php.Lines() {
		if l.Method != "POST" || !l.Buffer {
			t.Fatalf("line %d went as %s buffer=%v; the round was no longer the newest", i, l.Method, l.Buffer)
		}
	}
}

// Replays are acknowledged line by line too: a crash repeats none to a
// receiver that does not deduplicate. A failing ack ends Send.
func TestLegacyAcknowledgesEveryLine(t *testing.T) {
	php := &uplinktest.PHP{Key: "k"}
	srv := httptest.NewServer(php)
	defer srv.Close()
	s := newSender(t, config.Uplink{URL: srv.URL + "/", Key: "k", Meters: []string{"fridge"}})
	var its []outbox.Item
	for i := 0; i < 40; i++ {
		its = append(its, item(uint64(i), "fridge", t0.Add(time.Duration(i)*10*time.Second), float64(i), nil), item(uint64(i), "grid", t0.Add(time.Duration(i)*10*time.Second), 1, nil))
	}
	var acks []int
	n, err := s.Send(context.Background(), its, at(t0.Add(time.Hour)), func(n int) error {
		acks = append(acks, n)
		if len(acks) == 35 {
			return errors.New("disk full")
		}
		return nil
	})
	if n != 70 || err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Fatalf("Send = %d, %v; want 70 handled and the ack's error", n, err)
	}
	for i, a := range acks {
		if a != 2*(i+1) {
			t.Fatalf("ack %d covers %d items, want %d (one ack per line): %v", i, a, 2*(i+1), acks)
		}
	}
	if len(php.Lines()) != 35 {
		t.Fatalf("%d lines", len(php.Lines()))
	}
}

// A sum line holds at most 12 meters: more is a config error at start.
func TestSumUplinkOfMoreThan12MetersIsAConfigError(t *testing.T) {
	var names []string
	for i := 0; i < 13; i++ {
		names = append(names, fmt.Sprintf("m%d", i))
	}
	u := config.Uplink{Name: "php", URL: "http://127.0.0.1:9/", Protocol: "legacy", Combine: "sum"}
	_, err := New(u, 2, Options{MeterOrder: names})
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Key != "uplinks[2].meters" {
		t.Fatalf("13 meters in a sum line: %v", err)
	}
	u.Meters = names[:12]
	if _, err := New(u, 2, Options{MeterOrder: names}); err != nil {
		t.Fatalf("12 meters: %v", err)
	}
	u.Meters, u.Combine = nil, "each"
	if _, err := New(u, 2, Options{MeterOrder: names}); err != nil {
		t.Fatalf("13 meters, each: %v", err)
	}
}

// A 400 that names no reading may be about the request: retried, nothing
// dropped. A 413 halves the batch and drops nothing.
func TestNative400WithoutItemsIsRetriedAnd413Halves(t *testing.T) {
	var mu sync.Mutex
	mode := "400"
	var sizes []int
	stored := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Readings []json.RawMessage `json:"readings"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		sizes = append(sizes, len(body.Readings))
		switch {
		case mode == "400":
			w.WriteHeader(400)
			fmt.Fprint(w, `{"error":"body: unknown field"}`)
		case len(body.Readings) > 30:
			w.WriteHeader(413)
			fmt.Fprint(w, `{"error":"readings: too many in one batch"}`)
		default:
			stored += len(body.Readings)
			fmt.Fprintf(w, `{"inserted":%d}`, len(body.Readings))
		}
	}))
	defer srv.Close()
	var rejected int
	s, err := New(config.Uplink{Name: "n", URL: srv.URL, Protocol: "native", Key: "k"}, 0, Options{OnReject: func(Rejected) { rejected++ }})
	if err != nil {
		t.Fatal(err)
	}
	var its []outbox.Item
	for i := 0; i < 100; i++ {
		its = append(its, item(uint64(i), "m", t0.Add(time.Duration(i)*10*time.Second), float64(i), nil))
	}
	n, err := s.Send(context.Background(), its, at(t0), nil)
	var se *StatusError
	if n != 0 || !errors.As(err, &se) || se.Code != 400 || rejected != 0 || len(sizes) != 1 {
		t.Fatalf("400 without items: Send = %d, %v; rejected %d, %d requests", n, err, rejected, len(sizes))
	}
	mu.Lock()
	mode, sizes = "413", nil
	mu.Unlock()
	n, err = s.Send(context.Background(), its, at(t0), nil)
	if n != 100 || err != nil || rejected != 0 || stored != 100 {
		t.Fatalf("413: Send = %d, %v; rejected %d, stored %d (batches %v)", n, err, rejected, stored, sizes)
	}
}

func TestLegacyEpeverLine(t *testing.T) {
	// the PHP app's own layout: PanelP,BatteryV,BatteryI,PanelV,PanelI
	s, err := New(config.Uplink{Name: "php", URL: "http://127.0.0.1:1/", Key: "k", Protocol: "legacy", Method: "get", Combine: "sum", Meters: []string{"charger"}},
		0, Options{Zone: berlin, MeterTypes: map[string]string{"charger": "epever"}, MeterOrder: []string{"charger"}})
	if err != nil {
		t.Fatal(err)
	}
	it := item(1, "charger", t0, 152.3, nil, 11.05, 18.43, 8.26)
	it.Reading.Voltage = reading.F(13.94)
	got, err := s.(*legacySender).Line([]outbox.Item{it})
	if want := "01.06.2026,14:00:00,152.30,13.94,11.05,18.43,8.26"; err != nil || got != want {
		t.Errorf("epever line %q, %v; want %q", got, err, want)
	}
}

// TestLegacyConflictIsSkipped: our server answers 409 when another reading
// is stored for the second (it keeps the first); the line is rejected for
// good, the next ones go on (issue 9, item 9).
func TestLegacyConflictIsSkipped(t *testing.T) {
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.URL.Query().Get("stats"))
		if len(got) == 1 {
			http.Error(w, "conflict: a different reading of this device and second is stored; the first was kept", http.StatusConflict)
			return
		}
		w.Write([]byte("stored\n"))
	}))
	defer srv.Close()
	var rejected []Rejected
	u := config.Uplink{Name: "up", URL: srv.URL + "/", Key: "k", Meters: []string{"fridge"}, Method: "get", Combine: "sum", Protocol: "legacy"}
	s, err := New(u, 0, Options{Zone: berlin, MeterTypes: types, MeterOrder: order, OnReject: func(r Rejected) { rejected = append(rejected, r) }})
	if err != nil {
		t.Fatal(err)
	}
	items := []outbox.Item{item(1, "fridge", t0, 1, nil), item(2, "fridge", t0.Add(10*time.Second), 2, nil)}
	n, err := s.Send(context.Background(), items, at(t0.Add(10*time.Second)), nil)
	if err != nil || n != 2 {
		t.Fatalf("Send = %d, %v; want both handled", n, err)
	}
	if len(rejected) != 1 || rejected[0].Item.Seq != 1 || !strings.Contains(rejected[0].Err.Error(), "another reading") {
		t.Fatalf("rejected %+v", rejected)
	}
	if len(got) != 2 {
		t.Fatalf("lines sent %q", got)
	}
}
