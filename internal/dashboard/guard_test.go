package dashboard

import (
	"encoding/base64"
	"net/http"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// countGuard blocks an address after blockAt failures.
type countGuard struct {
	mu      sync.Mutex
	fails   map[string]int
	blockAt int
}

func (g *countGuard) Blocked(r *http.Request) (time.Duration, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return 90 * time.Second, g.fails[r.RemoteAddr] >= g.blockAt
}

func (g *countGuard) Fail(r *http.Request) (time.Duration, time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.fails[r.RemoteAddr]++
	if g.fails[r.RemoteAddr] >= g.blockAt {
		return 0, time.Minute
	}
	return time.Millisecond, 0
}

func (g *countGuard) n() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, v := range g.fails {
		n += v
	}
	return n
}

func TestGuardCountsWrongCredentials(t *testing.T) {
	st := openStore(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	g := &countGuard{fails: map[string]int{}, blockAt: 6}
	d := newTestDashboard(t, st, Options{Users: []string{"anna:" + string(hash)}, ReadToken: "tok-123456", Guard: g})
	h := mux(d)
	basic := func(u, p string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(u+":"+p)) }

	// no credentials and a stale cookie are no guesses
	if r := get(t, h, "/"); r.code != 401 || g.n() != 0 {
		t.Fatalf("no credentials: %d, %d failures", r.code, g.n())
	}
	if r := get(t, h, "/", "Cookie", tokenCookie+"=stale"); r.code != 401 || g.n() != 0 {
		t.Fatalf("stale cookie: %d, %d failures", r.code, g.n())
	}
	if r := get(t, h, "/", "Authorization", basic("anna", "pw")); r.code != 200 || g.n() != 0 {
		t.Fatalf("right password: %d, %d failures", r.code, g.n())
	}
	wrong := []struct {
		name string
		path string
		hdr  []string
	}{
		{"wrong password", "/", []string{"Authorization", basic("anna", "nope")}},
		{"unknown user", "/", []string{"Authorization", basic("bob", "pw")}},
		{"wrong token", "/s/home/overview?token=tok-12345", nil},
		{"wrong bearer", "/", []string{"Authorization", "Bearer tok-1234567"}},
		{"wrong password again", "/", []string{"Authorization", basic("anna", "")}},
	}
	for i, c := range wrong {
		if r := get(t, h, c.path, c.hdr...); r.code != 401 || g.n() != i+1 {
			t.Fatalf("%s: %d, %d failures, want 401 and %d", c.name, r.code, g.n(), i+1)
		}
	}
	// the 6th blocks the address
	r := get(t, h, "/?token=guess")
	if r.code != 429 || r.h.Get("Retry-After") != "60" {
		t.Fatalf("6th wrong credential: %d Retry-After %q, want 429 and 60", r.code, r.h.Get("Retry-After"))
	}
	// while blocked, even the right password is refused before it is checked
	r = get(t, h, "/", "Authorization", basic("anna", "pw"))
	if r.code != 429 || r.h.Get("Retry-After") != "90" || g.n() != 6 {
		t.Fatalf("blocked address with the right password: %d Retry-After %q, %d failures", r.code, r.h.Get("Retry-After"), g.n())
	}
}

// An open dashboard asks the guard nothing.
func TestGuardOpenDashboard(t *testing.T) {
	st := openStore(t)
	g := &countGuard{fails: map[string]int{"192.0.2.1:1234": 100}, blockAt: 1}
	d := newTestDashboard(t, st, Options{Guard: g})
	if r := get(t, mux(d), "/?token=x"); r.code != 200 {
		t.Fatalf("open dashboard: %d", r.code)
	}
}

func TestMatchesDigest(t *testing.T) {
	a, err := newAuth(nil, "tok-123456", nil)
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[string]bool{"tok-123456": true, "tok-12345": false, "tok-1234567": false, "": false, "TOK-123456": false} {
		if got := matches(v, a.token); got != want {
			t.Errorf("matches(%q) = %v", v, got)
		}
	}
}
