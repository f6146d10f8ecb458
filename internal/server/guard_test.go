package server

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// guardServer is a server with a fake clock and a quick limiter: blocked
// after 5 wrong credentials.
func guardServer(t *testing.T, extra string) (*testServer, *atomic.Int64) {
	t.Helper()
	var clock atomic.Int64
	clock.Store(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC).Unix())
	cfg := strings.Replace(baseConfig, "metrics = true", "metrics = true\n"+extra, 1) +
		"[server.dashboard]\nusers = [\"anna:" + annaHash(t) + "\"]\nread_token = \"read-token-0123456789\"\n"
	ts := startServer(t, cfg, nil, func(s *Server) {
		s.lim.free, s.lim.delay, s.lim.maxDelay, s.lim.blockAt = 2, time.Millisecond, 2*time.Millisecond, 5
		s.lim.now = func() time.Time { return time.Unix(clock.Load(), 0) }
	})
	return ts, &clock
}

func sendKey(t *testing.T, ts *testServer, key string, hdr ...string) int {
	t.Helper()
	code, _, _ := do(t, "GET", ts.base+"/log.php?key="+key+"&stats=26.11.2026,12:00:00,1.00", "", "", hdr...)
	return code
}

func page(t *testing.T, ts *testServer, user, pass string, hdr ...string) int {
	t.Helper()
	code, _, _ := do(t, "GET", ts.base+"/", "", "", append([]string{"Authorization", "Basic " + basicAuth(user, pass)}, hdr...)...)
	return code
}

// TestGuardBehindProxy: with trusted_proxies, the guesser's own address is
// blocked and the loggers and users behind the same proxy are not; a
// client that is not a trusted proxy cannot pick its address by writing
// X-Forwarded-For (issue 9, item 7).
func TestGuardBehindProxy(t *testing.T) {
	ts, _ := guardServer(t, `trusted_proxies = ["127.0.0.1"]`)
	attacker := []string{"X-Forwarded-For", "203.0.113.66, 127.0.0.1"}
	logger := []string{"X-Forwarded-For", "198.51.100.7"}
	user := []string{"Forwarded", `for="[2001:db8:5:6::1]:4711";proto=https`}
	for i := 1; i <= 5; i++ {
		code := sendKey(t, ts, "guess-key-"+string(rune('a'+i)), attacker...)
		if (i < 5 && code != 403) || (i == 5 && code != 429) {
			t.Fatalf("guess %d: %d", i, code)
		}
	}
	// the guesser learns nothing, even with a right key never used by it
	if code := sendKey(t, ts, cabinKey, attacker...); code != 429 {
		t.Fatalf("right key from the blocked address: %d, want 429", code)
	}
	if code := sendKey(t, ts, homeKey, logger...); code != 200 {
		t.Fatalf("a logger behind the same proxy: %d, want 200", code)
	}
	if code := page(t, ts, "anna", "anna-pass-1", user...); code != 200 {
		t.Fatalf("a user behind the same proxy: %d, want 200", code)
	}
	// spoofing: the connection itself is not a trusted proxy for this server
	spoof, _ := guardServer(t, `trusted_proxies = ["192.0.2.1"]`)
	for i := 0; i < 5; i++ {
		sendKey(t, spoof, "guess-key-x", "X-Forwarded-For", "203.0.113."+string(rune('1'+i)))
	}
	if code := sendKey(t, spoof, "guess-key-y", "X-Forwarded-For", "203.0.113.99"); code != 429 {
		t.Fatalf("a new X-Forwarded-For from an untrusted peer escaped the block: %d", code)
	}
}

// TestGuardSharedAddress: without trusted_proxies every client behind the
// proxy shares one address. Guessing blocks it, yet the logger's key and
// the user's password that got in before keep working; a key never used
// from there does not, and the exceptions are rate-limited so they cannot
// serve as a fast guessing oracle.
func TestGuardSharedAddress(t *testing.T) {
	ts, clock := guardServer(t, "")
	if code := sendKey(t, ts, homeKey); code != 200 {
		t.Fatalf("logger: %d", code)
	}
	if code := page(t, ts, "anna", "anna-pass-1"); code != 200 {
		t.Fatalf("user: %d", code)
	}
	for i := 0; i < 5; i++ {
		sendKey(t, ts, "guess-key-z")
	}
	if code := sendKey(t, ts, "guess-key-z"); code != 429 {
		t.Fatalf("guesser: %d, want 429", code)
	}
	// an hour of the attack: ~10 wrong keys an hour no longer lock out
	for range 6 {
		clock.Add(600)
		sendKey(t, ts, "guess-key-w")
		if code := sendKey(t, ts, homeKey); code != 200 {
			t.Fatalf("the logger's key while the address is blocked: %d, want 200", code)
		}
		if code := page(t, ts, "anna", "anna-pass-1"); code != 200 {
			t.Fatalf("the user's password while the address is blocked: %d, want 200", code)
		}
	}
	if code := sendKey(t, ts, cabinKey); code != 429 {
		t.Fatalf("a right key never used from the blocked address: %d, want 429", code)
	}
	if code := page(t, ts, "anna", "wrong-pass"); code != 429 {
		t.Fatalf("a wrong password while blocked: %d, want 429", code)
	}
	// a flood of guesses uses up the exceptions for a while: at most
	// bypassBurst, then bypassRate per second, are even compared
	flooded := 0
	for i := 0; i < bypassBurst+5; i++ {
		if sendKey(t, ts, "guess-key-flood") == 429 {
			flooded++
		}
	}
	if flooded != bypassBurst+5 {
		t.Fatalf("%d of %d flooding guesses refused", flooded, bypassBurst+5)
	}
	if code := sendKey(t, ts, homeKey); code != 429 {
		t.Fatalf("after a flood the exceptions should be used up: %d", code)
	}
	clock.Add(2)
	if code := sendKey(t, ts, homeKey); code != 200 {
		t.Fatalf("the logger after the flood ends: %d, want 200", code)
	}
}

// TestGuardPerUser: wrong passwords for one user from many addresses block
// that user (the per-address limit alone would not), except from where
// the user got in before (issue 9, item 7).
func TestGuardPerUser(t *testing.T) {
	ts, _ := guardServer(t, `trusted_proxies = ["127.0.0.1"]`)
	home := []string{"X-Forwarded-For", "198.51.100.20"}
	if code := page(t, ts, "anna", "anna-pass-1", home...); code != 200 {
		t.Fatalf("anna at home: %d", code)
	}
	blocked := false
	for i := 0; i < 8; i++ {
		from := []string{"X-Forwarded-For", "203.0.113." + string(rune('1'+i))}
		if page(t, ts, "anna", "guess", from...) == http.StatusTooManyRequests {
			blocked = true
			break
		}
	}
	if !blocked {
		t.Fatal("guessing anna's password from rotating addresses never blocked the user")
	}
	if code := page(t, ts, "anna", "anna-pass-1", "X-Forwarded-For", "203.0.113.200"); code != 429 {
		t.Fatalf("anna's right password from an address it never got in from: %d, want 429", code)
	}
	if code := page(t, ts, "anna", "anna-pass-1", home...); code != 200 {
		t.Fatalf("anna at home while the user is blocked: %d, want 200", code)
	}
}
