package server

import (
	"hash/maphash"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/config"
)

// The defence against guessing keys and passwords, without letting a
// guesser lock out the legitimate clients:
//
//   - The address counted is the client's: behind a reverse proxy listed in
//     trusted_proxies, the one X-Forwarded-For / Forwarded names.
//   - Wrong credentials are counted per address and, for a dashboard user
//     (HTTP Basic), per user name as well; both slow down and then block
//     (limiter).
//   - A blocked address or user is refused without its credentials being
//     looked at — except credentials that have succeeded from that address
//     before (remembered as keyed digests, in memory): a logger or a user
//     who got in before keeps getting in while a guesser at the same
//     address is blocked. Those exceptions are themselves limited per
//     address (bypassBurst, then bypassRate per second), so a guesser
//     sharing the address cannot use them to test guesses at full speed.

// goodCreds remembers which credentials succeeded from which address.
//
// It holds an entry per (address, credential) pair in use: with more
// pairs than it can hold, every request of a logger would find its pair
// forgotten, write a new one and evict another (100 000 sources sending
// through one proxy made that a lock and a map sweep per request), and the
// loggers would lose their way past a block. So it holds at least twice
// as many entries as there are configured keys. An entry is a truncated
// digest and a time in seconds, no pointers: the garbage collector does
// not scan the map, however large.
type goodCreds struct {
	seeds [2]maphash.Seed // random: the digests mean nothing outside this process
	max   int
	now   func() time.Time

	mu      sync.RWMutex
	seen    map[goodDigest]int64 // last success, Unix seconds
	buckets map[string]*bucket
}

// goodDigest is a keyed 128-bit hash of address and credential (two
// maphash sums with secret random seeds: plenty to tell a process's pairs
// apart, and nobody outside sees them to look for a collision). An
// HMAC-SHA-256 cost 1.2 µs per request, 2 % of a legacy request's CPU.
type goodDigest [2]uint64

// bucket is a token bucket of bypasses of one blocked address.
type bucket struct {
	tokens float64
	at     time.Time
}

const (
	bypassBurst = 30  // bypasses of a block at once
	bypassRate  = 2.0 // bypasses per second after that
	goodMax     = 20000
	goodForget  = 30 * 24 * time.Hour
)

// newGoodCreds returns a cache for keys configured credentials (ingest
// keys) besides the dashboard's users and tokens.
func newGoodCreds(now func() time.Time, keys int) *goodCreds {
	g := &goodCreds{max: goodMax + 2*keys, now: now, seen: map[goodDigest]int64{}, buckets: map[string]*bucket{}}
	g.seeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	return g
}

func (g *goodCreds) digest(addr, cred string) goodDigest {
	var d goodDigest
	var h maphash.Hash
	for i, seed := range g.seeds {
		h.SetSeed(seed)
		h.WriteString(addr)
		h.WriteByte(0)
		h.WriteString(cred)
		d[i] = h.Sum64()
	}
	return d
}

// add remembers that cred succeeded from addr.
func (g *goodCreds) add(addr, cred string) {
	if cred == "" {
		return
	}
	d := g.digest(addr, cred)
	now := g.now().Unix()
	// the common case, a logger sending every 10 s: seen lately, no write
	g.mu.RLock()
	t, ok := g.seen[d]
	g.mu.RUnlock()
	if ok && now-t < int64(time.Hour/time.Second) {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.seen[d]; !ok && len(g.seen) >= g.max {
		// Make room: forget entries (expired ones, else any) until one
		// fits. Stopping there keeps this O(1) per new credential: a full
		// sweep on every one made each request of a server with more keys
		// than goodMax walk 20 000 entries (100 000 sources: a third of
		// the CPU).
		for k, t := range g.seen {
			if now-t > int64(goodForget/time.Second) || len(g.seen) >= g.max {
				delete(g.seen, k)
			}
			if len(g.seen) < g.max {
				break
			}
		}
	}
	g.seen[d] = now
}

// bypass reports whether cred succeeded from addr before, and takes one of
// the address's bypasses (false when they are used up for now).
func (g *goodCreds) bypass(addr, cred string) bool {
	if cred == "" {
		return false
	}
	d := g.digest(addr, cred)
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	b := g.buckets[addr]
	if b == nil {
		if len(g.buckets) >= 10000 {
			clear(g.buckets)
		}
		b = &bucket{tokens: bypassBurst, at: now}
		g.buckets[addr] = b
	}
	b.tokens = min(bypassBurst, b.tokens+now.Sub(b.at).Seconds()*bypassRate)
	b.at = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	t, ok := g.seen[d]
	return ok && now.Unix()-t <= int64(goodForget/time.Second)
}

// userKey is the limiter's record of a claimed user name.
func userKey(name string) string { return "user\x00" + name }

// blockedFor reports whether a request from addr, claiming user (may be
// ""), carrying cred, is to be refused as blocked, and for how long.
func (s *Server) blockedFor(addr, user, cred string) (time.Duration, bool) {
	d, blocked := s.lim.blocked(addr)
	if user != "" {
		if du, b := s.lim.blocked(userKey(user)); b {
			d, blocked = max(d, du), true
		}
	}
	if !blocked || s.good.bypass(addr, cred) {
		return 0, false
	}
	return d, true
}

// failed records wrong credentials from addr (and for user).
func (s *Server) failed(addr, user string) (wait, block time.Duration) {
	wait, block = s.lim.fail(addr)
	if user != "" {
		w, b := s.lim.fail(userKey(user))
		wait, block = max(wait, w), max(block, b)
	}
	return wait, block
}

// credential is what a request presents to the read API or the
// dashboard: the Authorization header, a ?token=, or the read cookie.
func credential(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		return "auth\x00" + h
	}
	if t := r.URL.Query().Get("token"); t != "" {
		return "token\x00" + t
	}
	if c, err := r.Cookie("powermeter_read"); err == nil {
		return "cookie\x00" + c.Value
	}
	return ""
}

// basicUser is the user name an HTTP Basic request claims ("" for none).
func basicUser(r *http.Request) string {
	if u, _, ok := r.BasicAuth(); ok {
		return u
	}
	return ""
}

// proxies are the trusted reverse proxies.
type proxies []netip.Prefix

func newProxies(list []string) proxies {
	var p proxies
	for _, s := range list {
		if n, err := config.ParseNet(s); err == nil {
			p = append(p, n)
		}
	}
	return p
}

func (p proxies) trusted(a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range p {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address the limiter counts: the connection's peer, or,
// when the peer is a trusted proxy, the nearest address in X-Forwarded-For
// (or Forwarded: for=) that is not a trusted proxy itself — reading from
// the right, since a client can write anything on the left. IPv6 counts by
// /64 network.
func (s *Server) clientAddr(r *http.Request) string {
	if len(s.proxies) == 0 {
		return clientAddr(r)
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return clientAddr(r)
	}
	peer, err := netip.ParseAddr(host)
	if err != nil || !s.proxies.trusted(peer) {
		return clientAddr(r)
	}
	hops := forwardedFor(r.Header)
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(hops[i])
		if err != nil {
			break // garbage: count the last trusted hop
		}
		if !s.proxies.trusted(a) {
			return addrKey(a)
		}
		peer = a
	}
	return addrKey(peer)
}

// forwardedFor lists the client addresses of X-Forwarded-For, or of
// Forwarded's for= when there is no X-Forwarded-For, in order.
func forwardedFor(h http.Header) []string {
	var out []string
	if xs := h.Values("X-Forwarded-For"); len(xs) > 0 {
		for _, x := range xs {
			for _, p := range strings.Split(x, ",") {
				out = append(out, strings.TrimSpace(p))
			}
		}
		return out
	}
	for _, f := range h.Values("Forwarded") {
		for _, elem := range strings.Split(f, ",") {
			for _, pair := range strings.Split(elem, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if !ok || !strings.EqualFold(k, "for") {
					continue
				}
				v = strings.Trim(v, `"`)
				if strings.HasPrefix(v, "[") { // "[2001:db8::1]:4711"
					if end := strings.IndexByte(v, ']'); end > 0 {
						v = v[1:end]
					}
				} else if hst, _, err := net.SplitHostPort(v); err == nil {
					v = hst
				}
				out = append(out, v)
			}
		}
	}
	return out
}

// addrKey is the limiter's key of an address: IPv4 as it is, IPv6 by /64.
func addrKey(a netip.Addr) string {
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}
