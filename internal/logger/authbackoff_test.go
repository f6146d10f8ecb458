package logger

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/meter/fritzdect"
)

// A wrong FRITZ!Box password: in 10 minutes of (fake) time the logger logs
// in no more often than its back-off schedule allows (1 min, doubling:
// attempts at 0, 1, 3 and 7 min), and never while the box blocks logins;
// a box whose own BlockTime is longer is waited for.
func TestWrongFritzPasswordBacksOff(t *testing.T) {
	for _, tc := range []struct {
		name      string
		blockBase time.Duration
		want      int
	}{
		{"short box block: our schedule", 2 * time.Second, 4},       // 0, 1, 3, 7 min
		{"long box block: the box's BlockTime", 5 * time.Minute, 2}, // 0, 5 min (then 10 min blocked)
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
			clk := NewFakeClock(start, true)
			emu := fritzdect.NewEmulator(fritzdect.EmulatorOptions{Username: "fritz1234", Password: "right", Iter1: 10, Iter2: 10, BlockBase: tc.blockBase, Now: clk.Now})
			srv := httptest.NewServer(emu)
			defer srv.Close()
			cfg := parseConfig(t, fmt.Sprintf("timezone = \"Europe/Berlin\"\ndata_dir = %q\n[logger]\ninterval = \"10s\"\n[[meters]]\nname = \"box\"\ntype = \"fritzdect\"\nurl = %q\nusername = \"fritz1234\"\npassword = \"wrong\"\nain = \"11657 0020838\"\n[[uplinks]]\nname = \"u\"\nurl = \"http://127.0.0.1:9/\"\nkey = \"k\"\n", t.TempDir(), srv.URL))
			var first time.Time
			o := Options{Clock: clk, Rounds: 60, OnRound: func(slot time.Time, n int) {
				if first.IsZero() {
					first = slot
				}
			}}
			l, logs := run(t, cfg, o)
			st := emu.Stats()
			if st.LoginAttempts != tc.want {
				t.Errorf("%d login attempts in 10 minutes, want %d (the schedule)", st.LoginAttempts, tc.want)
			}
			if st.BlockedAttempts != 0 {
				t.Errorf("%d logins sent while the box blocked them", st.BlockedAttempts)
			}
			ms := l.Status().Meters[0]
			if !ms.AuthRefusedSince.Equal(first) || !ms.NextLoginAt.After(clk.Now()) || !strings.HasPrefix(ms.AuthMessage, "authentication refused since "+first.Format(time.RFC3339)) {
				t.Errorf("status: refused since %v (first round %v), next %v, %q", ms.AuthRefusedSince, first, ms.NextLoginAt, ms.AuthMessage)
			}
			if got := strings.Count(logs.String(), "authentication refused since"); got != tc.want {
				t.Errorf("%d back-off log lines, want one per attempt (%d):\n%s", got, tc.want, logs.String())
			}
		})
	}
}

// The schedule itself: 1 min doubling to the maximum, a device's longer
// wait respected, a blocked (unsent) login not advancing the schedule.
func TestAuthBackoffSchedule(t *testing.T) {
	var a authBackoff
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	var got []time.Duration
	for i := 0; i < 9; i++ {
		got = append(got, a.refused(now, true, 0, time.Minute, time.Hour))
	}
	want := []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 16 * time.Minute, 32 * time.Minute, time.Hour, time.Hour, time.Hour}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("waits %v, want %v", got, want)
	}
	var b authBackoff
	if d := b.refused(now, true, 10*time.Minute, time.Minute, time.Hour); d != 10*time.Minute {
		t.Errorf("device wait 10 min: waited %v", d)
	}
	if d := b.refused(now, false, 30*time.Second, time.Minute, time.Hour); d != 30*time.Second || b.step != 1 {
		t.Errorf("blocked: waited %v, step %d", d, b.step)
	}
	if !b.waiting(now) || b.waiting(now.Add(31*time.Second)) || !b.since.Equal(now) {
		t.Errorf("waiting/since wrong: %+v", b)
	}
}

// An uplink answered 401 backs off instead of retrying: with a one-hour
// back-off the server sees the first try and one last try at shutdown,
// nothing leaves the outbox, /status and /metrics say since when; with the
// right key (a restart) everything is delivered.
func TestUplinkUnauthorizedBacksOffKeepsOutbox(t *testing.T) {
	var requests, accepted atomic.Int64
	var allow atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if !allow.Load() {
			http.Error(w, "wrong key", http.StatusUnauthorized)
			return
		}
		accepted.Add(1)
		fmt.Fprintln(w, "ok")
	}))
	defer srv.Close()
	fakes := newFakes()
	cfg := testConfig(t, "", fmt.Sprintf("\n[[uplinks]]\nname = \"php\"\nurl = %q\nkey = \"k\"\n", srv.URL+"/"), "plug:shelly")
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	o := Options{Clock: NewFakeClock(start, true), NewMeter: fakes.New, Rounds: 6, AuthBackoffMin: time.Hour, AuthBackoffMax: time.Hour}
	l, logs := run(t, cfg, o)
	if n := requests.Load(); n < 1 || n > 2 {
		t.Errorf("%d requests to a server answering 401, want the first and at most one at shutdown", n)
	}
	if b := l.Outbox().Backlog("php"); b != 6 {
		t.Errorf("backlog %d, want all 6 readings kept", b)
	}
	us := l.Status().Uplinks[0]
	if us.AuthRefusedSince.IsZero() || !strings.HasPrefix(us.AuthMessage, "authentication refused since ") {
		t.Errorf("uplink status: %+v", us)
	}
	if !strings.Contains(logs.String(), "authentication refused since") {
		t.Errorf("no back-off in the log:\n%s", logs.String())
	}
	// the same on the status listener (its /metrics: internal/promexp's tests)
	rec := httptest.NewRecorder()
	l.statusHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/status", nil))
	if !strings.Contains(rec.Body.String(), `"auth_refused_since": "`+us.AuthRefusedSince.Format(time.RFC3339Nano)) {
		t.Errorf("/status lacks the refusal:\n%s", rec.Body.String())
	}

	// the key fixed, restarted: the kept readings go out
	allow.Store(true)
	o.Clock = NewFakeClock(start.Add(time.Hour), true)
	o.Rounds = 1
	l2, _ := run(t, cfg, o)
	if got := accepted.Load(); got != 7 {
		t.Errorf("%d lines accepted after the fix, want 7 (6 kept + 1 new)", got)
	}
	if b := l2.Outbox().Backlog("php"); b != 0 {
		t.Errorf("backlog %d after the fix", b)
	}
}
