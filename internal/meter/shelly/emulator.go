package shelly

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
)

func init() {
	emulate.Register("shelly-gen1", func(o emulate.Options) (emulate.Emulator, error) {
		return NewGen1Emulator(o, DefaultEmulatorConfig())
	})
	emulate.Register("shelly-gen2", func(o emulate.Options) (emulate.Emulator, error) {
		return NewGen2Emulator(o, DefaultEmulatorConfig())
	})
	emulate.Register("shelly-pro3em", func(o emulate.Options) (emulate.Emulator, error) {
		return NewPro3EMEmulator(o, DefaultEmulatorConfig())
	})
}

// EmulatorConfig tunes an emulator beyond emulate.Options.
type EmulatorConfig struct {
	// RateLimit is how many requests per second the device serves before
	// it answers 429 Too Many Requests (0 = no limit).
	RateLimit int
	// NonceTTL and NonceUses bound the life of a digest nonce (Gen2+);
	// after either, the nonce is answered with 401 stale=true.
	NonceTTL  time.Duration
	NonceUses int
	// Unsynced emulates a clock not yet set by SNTP: Gen1 unixtime 0,
	// Gen2 sys.unixtime null.
	Unsynced bool
	// Monophase switches the Pro 3EM to its "monophase" profile: three
	// em1:N channels with em1data:N instead of em:0 and emdata:0.
	Monophase bool
}

// DefaultEmulatorConfig is what `powermeter emulate` uses: 20 requests per
// second, nonces living 1 h or 30 000 uses as on the real devices.
func DefaultEmulatorConfig() EmulatorConfig {
	return EmulatorConfig{RateLimit: 20, NonceTTL: time.Hour, NonceUses: 30000}
}

// emuBase is what every Shelly emulator shares.
type emuBase struct {
	opt     emulate.Options
	cfg     EmulatorConfig
	faults  emulate.Faults
	handler http.Handler
	limiter rateLimiter
	mac     string // AABBCCDDEEFF

	resetMu   sync.Mutex
	resetDone bool
}

func (b *emuBase) init(o emulate.Options, c EmulatorConfig) error {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Zone == nil {
		o.Zone = time.UTC
	}
	if c.NonceTTL <= 0 {
		c.NonceTTL = time.Hour
	}
	if c.NonceUses <= 0 {
		c.NonceUses = 30000
	}
	var raw [6]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return fmt.Errorf("shelly emulator: mac: %w", err)
	}
	b.opt, b.cfg = o, c
	b.mac = strings.ToUpper(hex.EncodeToString(raw[:]))
	b.limiter.limit = c.RateLimit
	return nil
}

// Faults is the emulator's fault switch board.
func (b *emuBase) Faults() *emulate.Faults { return &b.faults }

// ServeHTTP serves the device, generic faults applied in front.
func (b *emuBase) ServeHTTP(w http.ResponseWriter, r *http.Request) { b.handler.ServeHTTP(w, r) }

// wrap puts the rate limit and the generic faults in front of h.
func (b *emuBase) wrap(h http.Handler) {
	limited := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !b.limiter.allow(b.opt.Now()) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusTooManyRequests)
			fmt.Fprintln(w, "Too many requests")
			return
		}
		h.ServeHTTP(w, r)
	})
	b.handler = b.faults.Wrap(limited)
}

// counterReset runs reset once each time the counter-reset fault is
// switched on: the counters restart from 0 as after a reboot.
func (b *emuBase) counterReset(reset func()) {
	b.resetMu.Lock()
	defer b.resetMu.Unlock()
	if b.faults.Active() != emulate.CounterReset {
		b.resetDone = false
		return
	}
	if !b.resetDone {
		reset()
		b.resetDone = true
	}
}

// rateLimiter counts requests per wall-clock second.
type rateLimiter struct {
	mu    sync.Mutex
	limit int
	sec   int64
	n     int
}

func (l *rateLimiter) allow(now time.Time) bool {
	if l.limit <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if s := now.Unix(); s != l.sec {
		l.sec, l.n = s, 0
	}
	l.n++
	return l.n <= l.limit
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	w.Write(b)
}

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// digestServer checks HTTP Digest SHA-256 credentials the way a Gen2+
// device does: nonces in firmware 2.x style (base64, ending in '='), each
// good for ttl or maxUses requests, nc strictly counting up.
type digestServer struct {
	realm, user, pass string
	ttl               time.Duration
	maxUses           int
	now               func() time.Time

	mu     sync.Mutex
	nonces map[string]*nonceState
}

type nonceState struct {
	issued time.Time
	uses   int
	lastNC uint64
}

func newDigestServer(realm, user, pass string, c EmulatorConfig, now func() time.Time) *digestServer {
	if user == "" {
		user = "admin"
	}
	return &digestServer{realm: realm, user: user, pass: pass, ttl: c.NonceTTL, maxUses: c.NonceUses, now: now, nonces: map[string]*nonceState{}}
}

// check verifies the Authorization header of r. stale is set when the
// credentials are right but the nonce has expired.
func (d *digestServer) check(r *http.Request) (ok, stale bool) {
	scheme, params := cutScheme(r.Header.Get("Authorization"))
	if !strings.EqualFold(scheme, "Digest") {
		return false, false // Basic auth is refused
	}
	var user, realm, nonce, uri, resp, qop, nc, cnonce, alg string
	if err := eachParam(params, func(k, v string) {
		switch k {
		case "username":
			user = v
		case "realm":
			realm = v
		case "nonce":
			nonce = v
		case "uri":
			uri = v
		case "response":
			resp = v
		case "qop":
			qop = v
		case "nc":
			nc = v
		case "cnonce":
			cnonce = v
		case "algorithm":
			alg = v
		}
	}); err != nil {
		return false, false
	}
	if user != d.user || realm != d.realm || !strings.EqualFold(alg, "SHA-256") || qop != "auth" || cnonce == "" || uri != r.URL.RequestURI() {
		return false, false
	}
	n, err := strconv.ParseUint(nc, 16, 32)
	if err != nil || len(nc) != 8 || n == 0 {
		return false, false
	}
	want := digestResponse(algSHA256, d.user, d.realm, d.pass, r.Method, uri, nonce, nc, cnonce, qop)
	if subtle.ConstantTimeCompare([]byte(want), []byte(resp)) != 1 {
		return false, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.nonces[nonce]
	if st == nil {
		return false, false // never issued, or forgotten after a reboot
	}
	if d.now().Sub(st.issued) > d.ttl || st.uses >= d.maxUses {
		delete(d.nonces, nonce)
		return false, true
	}
	if n <= st.lastNC {
		return false, false // replayed nc
	}
	st.lastNC = n
	st.uses++
	return true, false
}

// challenge answers 401 with a new nonce.
func (d *digestServer) challenge(w http.ResponseWriter, stale bool) {
	var raw [16]byte
	if _, err := rand.Read(raw[:]); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	nonce := base64.StdEncoding.EncodeToString(raw[:]) // 24 characters, ends in "=="
	now := d.now()
	d.mu.Lock()
	for k, st := range d.nonces {
		if now.Sub(st.issued) > d.ttl || len(d.nonces) > 256 {
			delete(d.nonces, k)
		}
	}
	d.nonces[nonce] = &nonceState{issued: now}
	d.mu.Unlock()
	h := fmt.Sprintf(`Digest qop="auth", realm="%s", nonce="%s", algorithm=SHA-256`, d.realm, nonce)
	if stale {
		h += ", stale=true"
	}
	w.Header().Set("WWW-Authenticate", h)
	writeJSON(w, http.StatusUnauthorized, map[string]any{"code": 401, "message": "Unauthorized"})
}
