package server

import (
	"testing"
	"time"
)

// storedAutumn returns instant → power of the readings of home in the night
// the clock goes back (23:00Z–03:00Z).
func storedAutumn(t *testing.T, ts *testServer) map[time.Time]float64 {
	t.Helper()
	out := map[time.Time]float64{}
	for _, r := range stored(t, ts.st, "home", time.Date(2026, 10, 24, 23, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 3, 0, 0, 0, time.UTC)) {
		out[r.Time] = r.Power
	}
	return out
}

func wantLines(t *testing.T, got map[time.Time]float64, want map[time.Time]float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d readings stored, want %d: %v", len(got), len(want), got)
	}
	for at, p := range want {
		if g, ok := got[at]; !ok || g != p {
			t.Errorf("at %s: power %v (stored %v), want %v", at.Format(time.RFC3339), g, ok, p)
		}
	}
}

// TestAutumnRetryOutOfOrder: a first-pass line resent after a later line
// (buffer=1) is the same reading, not the second pass; the real second pass
// an hour later is stored.
func TestAutumnRetryOutOfOrder(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	steps := []struct {
		line   string
		buffer bool
		want   string
	}{
		{"25.10.2026,02:10:00,1.00", false, "stored\n"},
		{"25.10.2026,02:20:00,2.00", false, "stored\n"},
		{"25.10.2026,02:10:00,1.00", true, "already stored\n"}, // the retry
		{"25.10.2026,02:59:00,3.00", false, "stored\n"},
		{"25.10.2026,02:10:00,10.00", false, "stored\n"}, // second pass
		{"25.10.2026,02:20:00,20.00", false, "stored\n"},
		{"25.10.2026,02:20:00,20.00", true, "already stored\n"},
	}
	for i, s := range steps {
		if code, body := sendLine(t, ts, s.line, s.buffer); code != 200 || body != s.want {
			t.Fatalf("step %d %s: %d %q, want %q", i, s.line, code, body, s.want)
		}
	}
	wantLines(t, storedAutumn(t, ts), map[time.Time]float64{
		time.Date(2026, 10, 25, 0, 10, 0, 0, time.UTC): 1,
		time.Date(2026, 10, 25, 0, 20, 0, 0, time.UTC): 2,
		time.Date(2026, 10, 25, 0, 59, 0, 0, time.UTC): 3,
		time.Date(2026, 10, 25, 1, 10, 0, 0, time.UTC): 10,
		time.Date(2026, 10, 25, 1, 20, 0, 0, time.UTC): 20,
	})
}

// TestAutumnSecondPassOtherSeconds: second-pass lines whose seconds do not
// match any first-pass line still go to the later hour.
func TestAutumnSecondPassOtherSeconds(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	for _, l := range []string{"25.10.2026,02:00:03,1.00", "25.10.2026,02:59:53,2.00", "25.10.2026,02:00:07,3.00", "25.10.2026,02:30:07,4.00"} {
		if code, body := sendLine(t, ts, l, false); code != 200 || body != "stored\n" {
			t.Fatalf("%s: %d %q", l, code, body)
		}
	}
	wantLines(t, storedAutumn(t, ts), map[time.Time]float64{
		time.Date(2026, 10, 25, 0, 0, 3, 0, time.UTC):   1,
		time.Date(2026, 10, 25, 0, 59, 53, 0, time.UTC): 2,
		time.Date(2026, 10, 25, 1, 0, 7, 0, time.UTC):   3,
		time.Date(2026, 10, 25, 1, 30, 7, 0, time.UTC):  4,
	})
}

// TestAutumnFailover: two servers on one store. B saw the source before the
// doubled hour, A took the first pass, then B gets the second pass: B must
// see what A stored and not answer "already stored".
func TestAutumnFailover(t *testing.T) {
	st := openStore(t)
	a := startServer(t, baseConfig, st, nil)
	b := startServer(t, baseConfig, st, nil)
	send := func(ts *testServer, name, line, want string) {
		t.Helper()
		if code, body := sendLine(t, ts, line, false); code != 200 || body != want {
			t.Fatalf("%s %s: %d %q, want %q", name, line, code, body, want)
		}
	}
	send(b, "B", "25.10.2026,01:55:00,1.00", "stored\n")
	for _, l := range []string{"25.10.2026,02:00:00,2.00", "25.10.2026,02:30:00,3.00", "25.10.2026,02:59:00,4.00"} {
		send(a, "A", l, "stored\n")
	}
	for _, l := range []string{"25.10.2026,02:00:00,20.00", "25.10.2026,02:30:00,30.00"} {
		send(b, "B", l, "stored\n")
	}
	// A, whose memory is behind B now, gets a retry of the second pass
	send(a, "A", "25.10.2026,02:30:00,30.00", "already stored\n")
	wantLines(t, storedAutumn(t, a), map[time.Time]float64{
		time.Date(2026, 10, 24, 23, 55, 0, 0, time.UTC): 1,
		time.Date(2026, 10, 25, 0, 0, 0, 0, time.UTC):   2,
		time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC):  3,
		time.Date(2026, 10, 25, 0, 59, 0, 0, time.UTC):  4,
		time.Date(2026, 10, 25, 1, 0, 0, 0, time.UTC):   20,
		time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC):  30,
	})
}
