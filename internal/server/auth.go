package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/powermeter/powermeter/internal/config"
)

// keyring finds the source a key belongs to in a map keyed by the key's
// SHA-256 digest: one lookup however many sources there are, and the time a
// lookup takes depends on the digest of the key sent, which tells nothing
// about the configured keys. The entry found is compared once more with
// crypto/subtle.
type keyring struct {
	byDigest map[[sha256.Size]byte]keyEntry
}

type keyEntry struct {
	digest [sha256.Size]byte
	name   string
}

func newKeyring(srcs []config.Source) *keyring {
	k := &keyring{byDigest: make(map[[sha256.Size]byte]keyEntry, len(srcs))}
	for _, s := range srcs {
		d := sha256.Sum256([]byte(s.Key))
		k.byDigest[d] = keyEntry{digest: d, name: s.Name}
	}
	return k
}

// lookup returns the source whose key is key.
func (k *keyring) lookup(key string) (string, bool) {
	d := sha256.Sum256([]byte(key))
	e, ok := k.byDigest[d]
	if !ok || subtle.ConstantTimeCompare(d[:], e.digest[:]) != 1 {
		return "", false
	}
	return e.name, true
}

// limiter slows down addresses that send wrong keys: the first few failures
// are answered at once, then each further one after a delay that doubles,
// and past a limit the address is blocked (429 with Retry-After) for a time
// that doubles with every new block. A blocked address is refused before
// its key is looked at, so guessing on learns nothing. A right key does not
// clear the record (else the owner of one key could guess others' keys
// between two of its own requests); a record is forgotten after a while
// without failures.
type limiter struct {
	free      int           // failures answered without delay
	delay     time.Duration // delay of the first slowed failure
	maxDelay  time.Duration
	blockAt   int           // failures that block the address
	block     time.Duration // first block; doubles per block up to maxBlock
	maxBlock  time.Duration
	forget    time.Duration // a record without failures this long is dropped
	maxTracks int           // bound on tracked addresses

	mu    sync.Mutex
	addrs map[string]*strikes
	now   func() time.Time
}

type strikes struct {
	fails     int
	blocks    int
	last      time.Time
	blockedTo time.Time
}

// quiet reports whether the address has sent no wrong key for forget, not
// counting the time it was blocked.
func (s *strikes) quiet(now time.Time, forget time.Duration) bool {
	since := s.last
	if s.blockedTo.After(since) {
		since = s.blockedTo
	}
	return now.Sub(since) > forget
}

func newLimiter() *limiter {
	return &limiter{
		free: 3, delay: 250 * time.Millisecond, maxDelay: 4 * time.Second,
		blockAt: 10, block: time.Minute, maxBlock: time.Hour,
		forget: 30 * time.Minute, maxTracks: 10000,
		addrs: map[string]*strikes{}, now: time.Now,
	}
}

// blocked reports whether addr is blocked and for how long still.
func (l *limiter) blocked(addr string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.addrs[addr]
	if s == nil {
		return 0, false
	}
	if d := s.blockedTo.Sub(l.now()); d > 0 {
		return d, true
	}
	return 0, false
}

// fail records a wrong key from addr. It returns how long to wait before
// answering, or that the address is now blocked and for how long.
func (l *limiter) fail(addr string) (wait time.Duration, blockedFor time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	s := l.addrs[addr]
	if s != nil && s.quiet(now, l.forget) {
		s.fails, s.blocks = 0, 0 // quiet for long enough: start afresh
	}
	if s == nil {
		if len(l.addrs) >= l.maxTracks {
			l.prune(now)
		}
		s = &strikes{}
		l.addrs[addr] = s
	}
	s.fails++
	s.last = now
	if s.fails >= l.blockAt {
		d := doubled(l.block, s.blocks, l.maxBlock)
		s.blocks++
		s.fails = l.free // after the block, slowed down again at once
		s.blockedTo = now.Add(d)
		return 0, d
	}
	if s.fails <= l.free {
		return 0, 0
	}
	return doubled(l.delay, s.fails-l.free-1, l.maxDelay), 0
}

// doubled is d doubled n times, at most max.
func doubled(d time.Duration, n int, max time.Duration) time.Duration {
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

// prune drops stale records; when all are fresh it drops half of the
// unblocked ones (any half) so memory stays bounded under a spray of
// addresses.
func (l *limiter) prune(now time.Time) {
	for a, s := range l.addrs {
		if s.quiet(now, l.forget) {
			delete(l.addrs, a)
		}
	}
	if len(l.addrs) < l.maxTracks {
		return
	}
	n := 0
	for a, s := range l.addrs {
		if !s.blockedTo.After(now) {
			delete(l.addrs, a)
			n++
		}
		if n >= l.maxTracks/2 {
			break
		}
	}
}

// clientAddr is the connection's IP, or its /64 network for IPv6 (one host
// usually has a whole /64 to pick from). X-Forwarded-For is trusted only
// from trusted_proxies (Server.clientAddr).
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Is4() || ip.Is4In6() {
		return host
	}
	p, err := ip.Prefix(64)
	if err != nil {
		return host
	}
	return p.String()
}

func retryAfter(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return strconv.Itoa(s)
}

// bearer returns the token of an "Authorization: Bearer …" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	const p = "bearer "
	if len(h) < len(p) || !strings.EqualFold(h[:len(p)], p) {
		return "", false
	}
	return strings.TrimSpace(h[len(p):]), true
}

// readAccess decides who may use the read API. When the dashboard is open
// (no users, no read token) so is the read API. Otherwise a request needs
// the read token (Bearer or ?token=), a dashboard user (Basic), or — for
// its own source only — a source key as Bearer.
type readAccess struct {
	open  bool
	token [sha256.Size]byte
	has   bool
	users map[string][]byte // name → bcrypt hash
	keys  *keyring
}

// grant is what a request may read: every source, or one.
type grant struct {
	all    bool
	source string
}

func (g grant) may(source string) bool { return g.all || g.source == source }

func newReadAccess(s *config.Server, keys *keyring) *readAccess {
	a := &readAccess{keys: keys, users: map[string][]byte{}}
	if s.Dashboard.ReadToken != "" {
		a.token = sha256.Sum256([]byte(s.Dashboard.ReadToken))
		a.has = true
	}
	for _, u := range s.Dashboard.Users {
		if name, hash, ok := strings.Cut(u, ":"); ok {
			a.users[name] = []byte(hash)
		}
	}
	a.open = !a.has && len(a.users) == 0
	return a
}

// check returns the grant of r; presented tells whether r offered any
// credentials at all (a wrong one counts as a wrong key).
func (a *readAccess) check(r *http.Request) (g grant, ok, presented bool) {
	if a.open {
		return grant{all: true}, true, false
	}
	tok, isBearer := bearer(r)
	if !isBearer {
		tok = r.URL.Query().Get("token")
	}
	if tok != "" {
		d := sha256.Sum256([]byte(tok))
		if a.has && subtle.ConstantTimeCompare(d[:], a.token[:]) == 1 {
			return grant{all: true}, true, true
		}
		if isBearer {
			if src, ok := a.keys.lookup(tok); ok {
				return grant{source: src}, true, true
			}
		}
		return grant{}, false, true
	}
	if user, pass, ok := r.BasicAuth(); ok {
		hash, known := a.users[user]
		if !known {
			// same work as for a known user, so names cannot be probed
			hash = dummyHash()
		}
		if bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil && known {
			return grant{all: true}, true, true
		}
		return grant{}, false, true
	}
	return grant{}, false, false
}

// dummyHash is a bcrypt hash compared against for unknown user names.
var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)
	if err != nil {
		return []byte("$2a$10$")
	}
	return h
})

// dashGuard lets the dashboard count wrong credentials with the wrong-key
// limiter, so guessing at the pages is slowed down and blocked like
// guessing keys (and a block covers both).
type dashGuard struct{ s *Server }

func (g dashGuard) Blocked(r *http.Request) (time.Duration, bool) {
	return g.s.blockedFor(g.s.clientAddr(r), basicUser(r), credential(r))
}

func (g dashGuard) Fail(r *http.Request) (wait, blockedFor time.Duration) {
	g.s.met.wrongKeys.Inc()
	addr := g.s.clientAddr(r)
	wait, blockedFor = g.s.failed(addr, basicUser(r))
	if blockedFor > 0 {
		g.s.log.Warn("blocking an address after repeated wrong credentials", "remote", addr, "for", blockedFor, "via", "dashboard")
	}
	return wait, blockedFor
}

// Succeeded remembers the credentials r got in with, so they pass a later
// block of the address.
func (g dashGuard) Succeeded(r *http.Request) {
	g.s.good.add(g.s.clientAddr(r), credential(r))
}

// exposed reports whether addr, the address the server listens on, can be
// reached from other hosts (anything but a loopback address).
func exposed(addr net.Addr) bool {
	host := addr.String()
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.EqualFold(host, "localhost") {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err != nil || !ip.IsLoopback()
}

// warnIfOpen warns when read access is open (no read token, no users) on an
// address other hosts can reach.
func (s *Server) warnIfOpen(addr net.Addr) {
	if s.read.open && exposed(addr) {
		s.log.Warn("read access is open: anyone who can reach this address can read every source's data; set [server.dashboard] read_token or users",
			"listen", addr.String())
	}
}
