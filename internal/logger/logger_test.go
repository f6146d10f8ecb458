package logger

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/uplink/uplinktest"
)

func run(t *testing.T, cfg *config.Config, o Options) (*Logger, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	if o.Log == nil {
		o.Log = testLog(&logs)
	}
	l, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	return l, &logs
}

func TestRoundsOnTheGridWithoutDrift(t *testing.T) {
	start := time.Date(2026, 6, 1, 12, 0, 3, 700e6, time.UTC)
	clk := NewFakeClock(start, true)
	fakes := newFakes()
	reads := 0
	// Every read takes 3.3 s; the 20th takes 25 s and pushes two slots.
	fakes.onRead = func(string) {
		reads++
		if reads == 20 {
			clk.Advance(25 * time.Second)
		} else {
			clk.Advance(3300 * time.Millisecond)
		}
	}
	cfg := testConfig(t, "", "", "a:shelly")
	var slots []time.Time
	l, _ := run(t, cfg, Options{Clock: clk, NewMeter: fakes.New, Rounds: 100, OnRound: func(s time.Time, n int) {
		slots = append(slots, s)
	}})
	if len(slots) != 100 {
		t.Fatalf("%d rounds", len(slots))
	}
	want := time.Date(2026, 6, 1, 12, 0, 10, 0, time.UTC)
	for i, s := range slots {
		if !s.Equal(want) {
			t.Fatalf("round %d at %v, want %v", i, s, want)
		}
		want = want.Add(10 * time.Second)
		if i == 19 {
			want = want.Add(20 * time.Second) // two slots missed
		}
	}
	if st := l.Status(); st.Counters.MissedRounds != 2 || st.Counters.Rounds != 100 {
		t.Fatalf("counters %+v", st.Counters)
	}
	// Every reading carries its round's instant; the device clock is kept.
	ob2, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob2.Close()
	its, err := ob2.Pending("check", 1000)
	if err != nil || len(its) != 100 {
		t.Fatalf("outbox: %d, %v", len(its), err)
	}
	for i, it := range its {
		if !it.Reading.Time.Equal(slots[i]) || it.Reading.Time.Location() != time.UTC || it.Reading.DeviceTime == nil || it.Reading.Device != "a" {
			t.Fatalf("reading %d: %+v (round %v)", i, it.Reading, slots[i])
		}
	}
}

func TestSlowMeterDelaysNoOther(t *testing.T) {
	clk := NewFakeClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), true)
	fakes := newFakes()
	fakes.hang = map[string]bool{"slow": true}
	cfg := testConfig(t, "", "", "fast:shelly", "slow:shelly")
	cfg.Meters[1].Timeout.Duration = 50 * time.Millisecond
	var got []int
	began := time.Now()
	l, _ := run(t, cfg, Options{Clock: clk, NewMeter: fakes.New, Rounds: 2, OnRound: func(_ time.Time, n int) { got = append(got, n) }})
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("two rounds took %v with a hanging meter", took)
	}
	if fmt.Sprint(got) != "[1 1]" {
		t.Fatalf("readings per round %v, want the fast meter's", got)
	}
	if st := l.Status().Meters[1]; st.Failures != 2 || !strings.Contains(st.LastError, "no answer") {
		t.Fatalf("slow meter status %+v", st)
	}
	if lim := (&Logger{interval: 10 * time.Second}).meterTimeout(config.Meter{Timeout: config.Duration{Duration: time.Minute}}); lim >= 10*time.Second {
		t.Fatalf("meter timeout %v not below the interval", lim)
	}
}

func TestDSTNightsInTheLegacyLine(t *testing.T) {
	for _, tc := range []struct {
		start time.Time
		want  []string
	}{
		{time.Date(2026, 3, 29, 0, 59, 35, 0, time.UTC), []string{
			"29.03.2026,01:59:40", "29.03.2026,01:59:50", "29.03.2026,03:00:00", "29.03.2026,03:00:10"}},
		{time.Date(2026, 10, 25, 0, 59, 35, 0, time.UTC), []string{
			"25.10.2026,02:59:40", "25.10.2026,02:59:50", "25.10.2026,02:00:00", "25.10.2026,02:00:10"}},
		{time.Date(2026, 10, 24, 23, 59, 45, 0, time.UTC), []string{
			"25.10.2026,01:59:50", "25.10.2026,02:00:00", "25.10.2026,02:00:10", "25.10.2026,02:00:20"}},
	} {
		php := &uplinktest.PHP{Key: "k"}
		srv := httptest.NewServer(php)
		cfg := testConfig(t, "", fmt.Sprintf("\n[[uplinks]]\nname = \"php\"\nurl = %q\nkey = \"k\"\n", srv.URL+"/"), "balcony:fritzdect")
		fakes := newFakes()
		fakes.power = func(string, int) float64 { return 512.345 }
		run(t, cfg, Options{Clock: NewFakeClock(tc.start, true), NewMeter: fakes.New, Rounds: 4})
		srv.Close()
		var got []string
		for _, l := range php.Lines() {
			got = append(got, l.Stats)
		}
		var want []string
		for _, w := range tc.want {
			want = append(want, w+",512.35,20.2")
		}
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("from %v:\n got %q\nwant %q", tc.start, got, want)
		}
	}
}

// stepper drives a logger on a manual fake clock one round at a time.
type stepper struct {
	t      *testing.T
	clk    *FakeClock
	rounds chan time.Time
	done   chan error
	cancel context.CancelFunc
}

func startStepped(t *testing.T, cfg *config.Config, o Options, start time.Time) (*Logger, *stepper) {
	t.Helper()
	s := &stepper{t: t, clk: NewFakeClock(start, false), rounds: make(chan time.Time, 1000), done: make(chan error, 1)}
	o.Clock = s.clk
	o.OnRound = func(slot time.Time, _ int) { s.rounds <- slot }
	l, err := New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go func() { s.done <- l.Run(ctx) }()
	t.Cleanup(func() { s.stop() })
	return l, s
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// round lets the next round happen and waits for it.
func (s *stepper) round() time.Time {
	s.t.Helper()
	waitFor(s.t, "the loop to sleep", func() bool { return s.clk.Sleepers() > 0 })
	s.clk.Set(nextSlot(s.clk.Now(), 10*time.Second))
	select {
	case slot := <-s.rounds:
		return slot
	case <-time.After(10 * time.Second):
		s.t.Fatal("no round")
	}
	return time.Time{}
}

func (s *stepper) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	if err := <-s.done; err != nil {
		s.t.Fatal(err)
	}
}

func TestServerDownForRoundsThenBackEveryReadingOnce(t *testing.T) {
	php := &uplinktest.PHP{Key: "k"}
	srv := httptest.NewServer(php)
	defer srv.Close()
	cfg := testConfig(t, "", fmt.Sprintf("\n[[uplinks]]\nname = \"php\"\nurl = %q\nkey = \"k\"\n", srv.URL+"/"), "a:shelly", "b:shelly")
	fakes := newFakes()
	l, s := startStepped(t, cfg, Options{NewMeter: fakes.New, BackoffMin: 5 * time.Millisecond, BackoffMax: 40 * time.Millisecond}, time.Date(2026, 6, 1, 12, 0, 1, 0, time.UTC))
	var slots []time.Time
	for i := 0; i < 12; i++ {
		switch i {
		case 3:
			php.SetDown(503)
		case 5:
			php.SetDown(-1)
		case 8:
			php.SetDown(0)
		}
		slots = append(slots, s.round())
		if i < 3 {
			waitFor(t, "the line of round "+fmt.Sprint(i), func() bool { return len(php.Lines()) == i+1 })
		}
		if i == 6 {
			waitFor(t, "degraded", func() bool { return l.State() == Degraded })
			if st := l.Status(); st.Uplinks[0].Backlog < 8 || !st.Uplinks[0].Failing {
				t.Fatalf("status while down: %+v", st.Uplinks[0])
			}
		}
	}
	waitFor(t, "the backlog to drain", func() bool { return l.Outbox().Backlog("php") == 0 })
	s.stop()
	lines := php.Lines()
	if len(lines) != 12 {
		t.Fatalf("%d lines arrived, want 12", len(lines))
	}
	for i, ln := range lines {
		want := slots[i].In(cfg.Timezone.Location).Format("02.01.2006,15:04:05")
		if !strings.HasPrefix(ln.Stats, want+",") {
			t.Fatalf("line %d is %q, want the round %s", i, ln.Stats, want)
		}
		if len(ln.Parsed.Extra) != 2 {
			t.Fatalf("line %d is not a sum of both meters: %q", i, ln.Stats)
		}
	}
	// Rounds 3–6 were older than the newest round when the receiver came
	// back: replays. Round 7 may have been the current one then.
	for i, ln := range lines[3:7] {
		if !ln.Buffer || ln.Method != "POST" {
			t.Fatalf("line %d held back during the outage went as %s buffer=%v", i+3, ln.Method, ln.Buffer)
		}
	}
	for i, ln := range lines[:3] {
		if ln.Buffer || ln.Method != "GET" {
			t.Fatalf("current line %d went as %s buffer=%v", i, ln.Method, ln.Buffer)
		}
	}
	if fakes.count(fakes.closed, "a") != 1 || fakes.count(fakes.closed, "b") != 1 {
		t.Fatal("meters not closed at shutdown")
	}
	if php.Duplicates() != 0 {
		t.Fatalf("%d duplicates", php.Duplicates())
	}
}

func TestMeterRecreatedAfterThreeFailedRounds(t *testing.T) {
	fakes := newFakes()
	fakes.failFor["a"] = 4
	cfg := testConfig(t, "", "", "a:shelly", "b:shelly")
	l, logs := run(t, cfg, Options{Clock: NewFakeClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), true), NewMeter: fakes.New, Rounds: 6})
	if got := fakes.count(fakes.created, "a"); got != 2 {
		t.Fatalf("meter a created %d times, want 2 (re-created after 3 failures)", got)
	}
	if got := fakes.count(fakes.closed, "a"); got != 2 {
		t.Fatalf("meter a closed %d times, want 2 (failed session + shutdown)", got)
	}
	if got := fakes.count(fakes.created, "b"); got != 1 {
		t.Fatalf("meter b created %d times", got)
	}
	st := l.Status()
	a := st.Meters[0]
	if a.Recreated != 1 || a.Errors != 4 || a.Failures != 0 || a.Reads != 2 || a.LastError == "" || len(a.LastReadings) != 1 {
		t.Fatalf("status of a: %+v", a)
	}
	if st.Meters[1].Reads != 6 || st.Counters.Readings != 8 {
		t.Fatalf("status %+v", st)
	}
	if !strings.Contains(logs.String(), "re-creating it") {
		t.Fatalf("the re-creation was not logged:\n%s", logs)
	}
}

func TestConfigErrorFromAMeterFactory(t *testing.T) {
	led := fakeLED(t)
	cfg := testConfig(t, fmt.Sprintf("status_led = %q", led), "", "a:shelly")
	fakes := newFakes()
	fakes.newError = &config.Error{Key: "meters[0].channel", Msg: "no such channel"}
	_, err := New(cfg, Options{NewMeter: fakes.New})
	if !config.IsConfigError(err) {
		t.Fatalf("err = %v, want a config error", err)
	}
	wantLED(t, led, 2)
}

func fakeLED(t *testing.T) string {
	dir := filepath.Join(t.TempDir(), "sys", "class", "leds", "ACT")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"trigger", "delay_on", "delay_off", "brightness"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("none\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readLED(dir string) (trigger, on, off string) {
	r := func(n string) string { b, _ := os.ReadFile(filepath.Join(dir, n)); return string(b) }
	return r("trigger"), r("delay_on"), r("delay_off")
}

func wantLED(t *testing.T, dir string, perSecond int) {
	t.Helper()
	half := fmt.Sprint(500 / perSecond)
	tr, on, off := readLED(dir)
	if tr != "timer" || on != half || off != half {
		t.Fatalf("LED trigger=%q delay_on=%q delay_off=%q, want timer %s/%s (%d blinks/s)", tr, on, off, half, half, perSecond)
	}
}

func TestLEDStates(t *testing.T) {
	led := fakeLED(t)
	ntp := startNTP(t, 0)
	cfg := testConfig(t, fmt.Sprintf("status_led = %q\nntp_server = %q", led, ntp), "", "a:shelly")
	fakes := newFakes()
	var mu sync.Mutex
	seen := map[string]string{}
	record := func(what string) {
		tr, on, off := readLED(led)
		mu.Lock()
		seen[what] = tr + " " + on + "/" + off
		mu.Unlock()
	}
	fakes.onRead = func(string) { record("reading") }
	ntpSeen := make(chan struct{}, 10)
	setNTPHook(func() { record("ntp"); ntpSeen <- struct{}{} })
	defer setNTPHook(nil)
	l, s := startStepped(t, cfg, Options{NewMeter: fakes.New}, time.Date(2026, 6, 1, 12, 0, 1, 0, time.UTC))
	_ = l
	<-ntpSeen
	s.round()
	wantLED(t, led, 1) // idle
	fakes.failFor["a"] = 1
	s.round()
	wantLED(t, led, 2) // degraded
	s.round()
	wantLED(t, led, 1)
	s.stop()
	mu.Lock()
	defer mu.Unlock()
	if seen["reading"] != "timer 100/100" {
		t.Fatalf("LED while reading: %q, want 5 blinks/s", seen["reading"])
	}
	if seen["ntp"] != "timer 50/50" {
		t.Fatalf("LED during the clock check: %q, want 10 blinks/s", seen["ntp"])
	}

	// starting: before the first round.
	led2 := fakeLED(t)
	cfg2 := testConfig(t, fmt.Sprintf("status_led = %q", led2), "", "a:shelly")
	l2, err := New(cfg2, Options{NewMeter: newFakes().New})
	if err != nil {
		t.Fatal(err)
	}
	defer l2.ob.Close()
	wantLED(t, led2, 20)
	if l2.State() != Starting {
		t.Fatalf("state %q", l2.State())
	}
}

// startNTP runs an SNTP responder on 127.0.0.1 whose clock is the real one
// plus skew (or, with a fake clock, skew from the clock given by ntpNow).
func startNTP(t *testing.T, skew time.Duration) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if h := getNTPHook(); h != nil {
				h()
			}
			if n < 48 || buf[0]&7 != 3 {
				continue
			}
			now := ntpNow().Add(skew)
			var resp [48]byte
			resp[0] = 0<<6 | 4<<3 | 4
			resp[1] = 2
			copy(resp[24:32], buf[40:48]) // origin = client's transmit
			binary.BigEndian.PutUint64(resp[32:], toNTP(now))
			binary.BigEndian.PutUint64(resp[40:], toNTP(now))
			pc.WriteTo(resp[:], addr)
		}
	}()
	return pc.LocalAddr().String()
}

var (
	ntpHookMu sync.Mutex
	ntpHookFn func()
	ntpClock  func() time.Time // the responder's clock; nil: the real one
)

func ntpNow() time.Time {
	ntpHookMu.Lock()
	f := ntpClock
	ntpHookMu.Unlock()
	if f == nil {
		return time.Now()
	}
	return f()
}

func setNTPClock(f func() time.Time) {
	ntpHookMu.Lock()
	ntpClock = f
	ntpHookMu.Unlock()
}

func setNTPHook(f func()) {
	ntpHookMu.Lock()
	ntpHookFn = f
	ntpHookMu.Unlock()
}

func getNTPHook() func() {
	ntpHookMu.Lock()
	defer ntpHookMu.Unlock()
	return ntpHookFn
}

func TestNTPOffsetFromALocalResponder(t *testing.T) {
	addr := startNTP(t, 3500*time.Millisecond)
	res, err := QueryNTP(context.Background(), addr, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	if d := res.Offset - 3500*time.Millisecond; d < -50*time.Millisecond || d > 50*time.Millisecond {
		t.Fatalf("offset %v, want about 3.5 s", res.Offset)
	}

	// In the loop: every 10 rounds, reported in the status.
	cfg := testConfig(t, fmt.Sprintf("ntp_server = %q", addr), "", "a:shelly")
	var checks int
	var mu sync.Mutex
	setNTPHook(func() { mu.Lock(); checks++; mu.Unlock() })
	defer setNTPHook(nil)
	// A fake clock that jumps to every round; the responder follows it.
	clk := NewFakeClock(time.Now(), true)
	setNTPClock(clk.Now)
	defer setNTPClock(nil)
	l, _ := run(t, cfg, Options{Clock: clk, NewMeter: newFakes().New, Rounds: 21})
	mu.Lock()
	defer mu.Unlock()
	if checks != 3 {
		t.Fatalf("%d clock checks in 21 rounds, want 3 (rounds 0, 10, 20)", checks)
	}
	c := l.Status().Clock
	if c.OffsetMS == nil || *c.OffsetMS < 3400 || *c.OffsetMS > 3600 || c.NTPServer != addr {
		t.Fatalf("clock status %+v", c)
	}

	// A server that does not answer: an error, no crash.
	dead, _ := net.ListenPacket("udp", "127.0.0.1:0")
	deadAddr := dead.LocalAddr().String()
	dead.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := QueryNTP(ctx, deadAddr, time.Now); err == nil {
		t.Fatal("no error from a dead NTP server")
	}
}

func TestUnsetClockHoldsReadings(t *testing.T) {
	clk := NewFakeClock(time.Date(1970, 1, 1, 0, 5, 0, 0, time.UTC), true)
	cfg := testConfig(t, "", "", "a:shelly")
	fakes := newFakes()
	l, logs := run(t, cfg, Options{Clock: clk, NewMeter: fakes.New, Rounds: 5})
	st := l.Status()
	if st.Counters.HeldRounds != 5 || st.Counters.Readings != 0 || !st.Clock.Unset || st.State != ClockCheck {
		t.Fatalf("status %+v", st)
	}
	if fakes.count(fakes.reads, "a") != 0 || l.Outbox().Len() != 0 {
		t.Fatal("readings taken with an unset clock")
	}
	if !strings.Contains(logs.String(), "not set") {
		t.Fatalf("not said:\n%s", logs)
	}
}

func TestBackfillFromHistory(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 4, 0, time.UTC)
	cfg := testConfig(t, "", "", "balcony:fritzdect", "fridge:shelly")
	// The logger ran until 11:55:00 (last reading in the outbox), then
	// stopped for five minutes.
	ob, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	last := time.Date(2026, 6, 1, 11, 55, 0, 0, time.UTC)
	for ts := last.Add(-time.Minute); !ts.After(last); ts = ts.Add(10 * time.Second) {
		ob.Append([]outbox.Item{{Meter: "balcony", Reading: reading.Reading{Device: "balcony", Time: ts, Power: 1}}, {Meter: "fridge", Reading: reading.Reading{Device: "fridge", Time: ts, Power: 2}}})
	}
	ob.Close()
	fakes := newFakes()
	var asked time.Time
	fakes.history = func(name string, since time.Time) []reading.Reading {
		asked = since
		var out []reading.Reading
		// The box's grid is off ours by 3 s; the last hour, newest value now.
		for ts := now.Add(-time.Hour); !ts.After(now); ts = ts.Add(10 * time.Second) {
			if ts.After(since) {
				out = append(out, reading.Reading{Device: name, Time: ts.Add(-time.Second), Power: 100, Backfilled: true})
			}
		}
		return out
	}
	l, _ := run(t, cfg, Options{Clock: NewFakeClock(now, true), NewMeter: fakes.New, Rounds: 1})
	if !asked.Equal(last) {
		t.Fatalf("history asked since %v, want %v", asked, last)
	}
	ob2, _ := outbox.Open(filepath.Join(cfg.DataDir, "outbox"), outbox.Options{})
	defer ob2.Close()
	its, _ := ob2.Pending("check", 10000)
	var filled []time.Time
	for _, it := range its {
		if it.Reading.Backfilled {
			if it.Meter != "balcony" {
				t.Fatalf("backfilled a meter without history: %+v", it)
			}
			filled = append(filled, it.Reading.Time)
		}
	}
	// 11:55:10 … 12:00:00: 30 slots, each once, on our grid.
	if len(filled) != 30 || !filled[0].Equal(last.Add(10*time.Second)) || !filled[29].Equal(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("backfilled %d: %v … ", len(filled), filled)
	}
	for i := 1; i < len(filled); i++ {
		if filled[i].Sub(filled[i-1]) != 10*time.Second {
			t.Fatalf("gap or double at %v", filled[i])
		}
	}
	lastItem := its[len(its)-1]
	if lastItem.Reading.Backfilled || !lastItem.Reading.Time.Equal(time.Date(2026, 6, 1, 12, 0, 10, 0, time.UTC)) {
		t.Fatalf("the live round: %+v", lastItem)
	}
	if l.Status().Meters[0].Backfilled != 30 {
		t.Fatalf("status %+v", l.Status().Meters[0])
	}
	ob2.Close()

	// More than an hour down: no backfill.
	fakes2 := newFakes()
	called := false
	fakes2.history = func(string, time.Time) []reading.Reading { called = true; return nil }
	run(t, cfg, Options{Clock: NewFakeClock(now.Add(2*time.Hour), true), NewMeter: fakes2.New, Rounds: 1})
	if called {
		t.Fatal("history asked after a gap of two hours")
	}
}

func TestOutboxBoundDropsOldestAndCounts(t *testing.T) {
	cfg := testConfig(t, "outbox_max = 20", "\n[[uplinks]]\nname = \"dead\"\nurl = \"http://127.0.0.1:9/\"\nkey = \"k\"\n", "a:shelly", "b:shelly")
	l, logs := run(t, cfg, Options{Clock: NewFakeClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), true), NewMeter: newFakes().New, Rounds: 15, FlushTimeout: 50 * time.Millisecond, BackoffMin: time.Hour})
	st := l.Status()
	if st.Counters.OutboxDropped != 10 || st.Uplinks[0].Backlog != 20 || st.Counters.OutboxLen != 20 {
		t.Fatalf("counters %+v uplink %+v", st.Counters, st.Uplinks[0])
	}
	if !strings.Contains(logs.String(), "outbox full") {
		t.Fatalf("drop not logged:\n%s", logs)
	}
}

func TestStatusEndpoint(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t, "", "\n[[uplinks]]\nname = \"dead\"\nurl = \"http://127.0.0.1:9/\"\nkey = \"k\"\n", "a:shelly")
	fakes := newFakes()
	_, s := startStepped(t, cfg, Options{NewMeter: fakes.New, StatusListener: ln, BackoffMin: time.Hour, FlushTimeout: 10 * time.Millisecond}, time.Date(2026, 6, 1, 12, 0, 1, 0, time.UTC))
	s.round()
	s.round()
	resp, err := http.Get("http://" + ln.Addr().String() + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	meters := st["meters"].([]any)
	m := meters[0].(map[string]any)
	ups := st["uplinks"].([]any)
	u := ups[0].(map[string]any)
	if m["name"] != "a" || len(m["last_readings"].([]any)) != 1 || u["backlog"].(float64) != 2 || st["counters"].(map[string]any)["rounds"].(float64) != 2 {
		t.Fatalf("status %v", st)
	}
	if _, ok := st["clock"]; !ok || st["state"] == "" {
		t.Fatalf("status %v", st)
	}
	s.stop()
}

func TestPanickingMeterDoesNotEndTheLoop(t *testing.T) {
	fakes := newFakes()
	fakes.panicFor["a"] = 2
	cfg := testConfig(t, "", "", "a:shelly", "b:shelly")
	l, _ := run(t, cfg, Options{Clock: NewFakeClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), true), NewMeter: fakes.New, Rounds: 4})
	st := l.Status()
	if st.Counters.Rounds != 4 || st.Meters[0].Errors != 2 || st.Meters[0].Reads != 2 || !strings.Contains(st.Meters[0].LastError, "panicked") {
		t.Fatalf("status %+v", st.Meters[0])
	}
}

// Backfilled history of several meters goes out as one sum line per round,
// like a live round: the meters of a round lie together in the outbox.
func TestBackfillOfSeveralMetersMakesOneLinePerRound(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 4, 0, time.UTC)
	php := &uplinktest.PHP{Key: "k"}
	srv := httptest.NewServer(php)
	defer srv.Close()
	cfg := testConfig(t, "", fmt.Sprintf("\n[[uplinks]]\nname = \"php\"\nurl = %q\nkey = \"k\"\n", srv.URL+"/"), "a:fritzdect", "b:fritzdect")
	ob, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	last := time.Date(2026, 6, 1, 11, 59, 0, 0, time.UTC)
	if _, err := ob.Append([]outbox.Item{{Meter: "a", Reading: reading.Reading{Device: "a", Time: last, Power: 1}}, {Meter: "b", Reading: reading.Reading{Device: "b", Time: last, Power: 2}}}); err != nil {
		t.Fatal(err)
	}
	// The uplink had sent them.
	if err := ob.Ack("php", 1); err != nil {
		t.Fatal(err)
	}
	ob.Close()
	fakes := newFakes()
	fakes.history = func(name string, since time.Time) []reading.Reading {
		var out []reading.Reading
		for ts := since.Add(10 * time.Second); !ts.After(now); ts = ts.Add(10 * time.Second) {
			p := 100.0
			if name == "b" {
				p = 30
			}
			out = append(out, reading.Reading{Device: name, Time: ts, Power: p})
		}
		return out
	}
	run(t, cfg, Options{Clock: NewFakeClock(now, true), NewMeter: fakes.New, Rounds: 1})
	lines := php.Lines()
	// 11:59:10 … 12:00:00 from the history, then the live round 12:00:10.
	if len(lines) != 7 {
		t.Fatalf("%d lines, want 7: %+v", len(lines), lines)
	}
	for i, ln := range lines[:6] {
		want := last.Add(time.Duration(i+1)*10*time.Second).In(cfg.Timezone.Location).Format("02.01.2006,15:04:05") + ",130.00,,100.00,30.00"
		if ln.Stats != want || !ln.Buffer {
			t.Errorf("backfilled line %d: %q buffer=%v, want %q as a replay", i, ln.Stats, ln.Buffer, want)
		}
	}
	if l := lines[6].Parsed; len(l.Extra) != 2 || l.Power != 2 || lines[6].Buffer {
		t.Errorf("live line %q", lines[6].Stats)
	}
}

// A meter whose code ignores its timeout does not stall the round: it is
// left out after 9/10 of the interval, counted, and built anew; the old one
// is closed when its read returns at last.
func TestMeterIgnoringItsTimeoutIsLeftOut(t *testing.T) {
	fakes := newFakes()
	release := make(chan struct{})
	fakes.stuck = map[string]chan struct{}{"stuck": release}
	timer := time.AfterFunc(8*time.Second, func() { close(release) }) // so a stalled round ends
	cfg := testConfig(t, "interval = \"1s\"", "", "fast:shelly", "stuck:shelly")
	var got []int
	began := time.Now()
	l, logs := run(t, cfg, Options{Clock: NewFakeClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), true), NewMeter: fakes.New, Rounds: 2, OnRound: func(_ time.Time, n int) { got = append(got, n) }})
	took := time.Since(began)
	if timer.Stop() {
		close(release)
	}
	if took > 5*time.Second {
		t.Fatalf("two rounds took %v: the stuck meter stalled them", took)
	}
	if fmt.Sprint(got) != "[1 2]" {
		t.Fatalf("readings per round %v, want [1 2] (left out, then re-created)", got)
	}
	st := l.Status()
	if st.Counters.LateMeters != 1 || st.Meters[1].Errors != 1 || st.Meters[1].Reads != 1 {
		t.Fatalf("status %+v %+v", st.Counters, st.Meters[1])
	}
	if fakes.count(fakes.created, "stuck") != 2 || !strings.Contains(logs.String(), "did not answer within its timeout") {
		t.Fatalf("created %d times; log:\n%s", fakes.count(fakes.created, "stuck"), logs)
	}
	// The new one closed at shutdown, the old one once its read returned.
	waitFor(t, "the old meter to be closed", func() bool { return fakes.count(fakes.closed, "stuck") == 2 })
}

// When the clock goes back, rounds already taken are skipped, not taken
// again with the same instant.
func TestClockGoingBackSkipsRoundsAlreadyTaken(t *testing.T) {
	clk := NewFakeClock(time.Date(2026, 6, 1, 12, 0, 1, 0, time.UTC), true)
	fakes := newFakes()
	reads := 0
	fakes.onRead = func(string) {
		reads++
		if reads == 2 {
			clk.Set(time.Date(2026, 6, 1, 11, 59, 55, 0, time.UTC))
		}
	}
	cfg := testConfig(t, "", "", "a:shelly")
	var slots []string
	l, logs := run(t, cfg, Options{Clock: clk, NewMeter: fakes.New, Rounds: 3, OnRound: func(s time.Time, _ int) { slots = append(slots, s.Format("15:04:05")) }})
	if fmt.Sprint(slots) != "[12:00:10 12:00:20 12:00:30]" {
		t.Fatalf("rounds %v", slots)
	}
	if st := l.Status(); st.Counters.ClockBack != 3 || st.Counters.Readings != 3 {
		t.Fatalf("counters %+v", st.Counters)
	}
	if strings.Count(logs.String(), "the clock went back") != 1 {
		t.Fatalf("not warned once:\n%s", logs)
	}
}

// Readings dropped from the memory buffer (the outbox cannot be written)
// count as dropped.
func TestReadingsDroppedFromMemoryAreCounted(t *testing.T) {
	cfg := testConfig(t, "", "", "a:shelly")
	l, err := New(cfg, Options{NewMeter: newFakes().New, Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	l.ob.Close() // every Append fails now
	items := make([]outbox.Item, maxUnsaved+5)
	for i := range items {
		items[i] = outbox.Item{Meter: "a", Reading: reading.Reading{Device: "a", Time: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * 10 * time.Second), Power: 1}}
	}
	l.saveItems(items[:10])
	l.saveItems(items[10:])
	st := l.Status()
	if st.Counters.OutboxDropped != 5 || len(l.unsaved) != maxUnsaved || st.Counters.OutboxErrors != 2 {
		t.Fatalf("dropped %d, kept %d, errors %d", st.Counters.OutboxDropped, len(l.unsaved), st.Counters.OutboxErrors)
	}
	if !l.unsaved[0].Reading.Time.Equal(items[5].Reading.Time) {
		t.Fatal("not the oldest dropped")
	}
	closeMetersNow(l)
}

func closeMetersNow(l *Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.closeMeters(ctx)
}
