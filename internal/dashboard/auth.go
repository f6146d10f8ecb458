package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

const tokenCookie = "powermeter_read"

// Guard slows down and blocks addresses that send wrong credentials (the
// server passes its wrong-key limiter, so wrong dashboard credentials and
// wrong keys count together). Only wrong credentials count: a request
// without any, or with a stale cookie, does not.
type Guard interface {
	// Blocked reports whether r is to be refused as blocked (its address or
	// user is), and for how long still. A Guard may also implement
	// Succeeded(*http.Request), told of every request that got in.
	Blocked(r *http.Request) (time.Duration, bool)
	// Fail records wrong credentials from r's address. It returns how long
	// to wait before answering, or that the address is now blocked and for
	// how long.
	Fail(r *http.Request) (wait, blockedFor time.Duration)
}

// auth guards the pages: open when neither users nor a read token are set.
type auth struct {
	users map[string][]byte // name → bcrypt hash
	token [sha256.Size]byte // SHA-256 of the read token
	has   bool              // a read token is set
	// cookie is the value set after ?token=: derived from the token, so the
	// token itself is not stored in the browser.
	cookie      [sha256.Size]byte // SHA-256 of the cookie value
	cookieValue string
	guard       Guard

	mu sync.Mutex
	ok map[[32]byte]bool // verified Basic credentials (bcrypt is slow)
}

func newAuth(users []string, token string, g Guard) (*auth, error) {
	a := &auth{users: map[string][]byte{}, ok: map[[32]byte]bool{}, guard: g}
	for i, u := range users {
		name, hash, found := strings.Cut(u, ":")
		if !found || name == "" || !strings.HasPrefix(hash, "$2") {
			return nil, fmt.Errorf("dashboard: users[%d]: want \"name:bcrypt-hash\"", i)
		}
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("dashboard: users[%d] (%s): not a bcrypt hash: %w", i, name, err)
		}
		a.users[name] = []byte(hash)
	}
	if token != "" {
		a.has = true
		a.token = sha256.Sum256([]byte(token))
		m := hmac.New(sha256.New, []byte(token))
		m.Write([]byte("powermeter dashboard read cookie"))
		a.cookieValue = hex.EncodeToString(m.Sum(nil))
		a.cookie = sha256.Sum256([]byte(a.cookieValue))
	}
	return a, nil
}

func (a *auth) open() bool { return len(a.users) == 0 && !a.has }

// matches compares v with a secret by SHA-256 digest, so the time taken
// tells neither the secret's length nor its content.
func matches(v string, digest [sha256.Size]byte) bool {
	d := sha256.Sum256([]byte(v))
	return subtle.ConstantTimeCompare(d[:], digest[:]) == 1
}

// dummyHash is compared against for unknown user names, so that they cost
// as much as known ones and names cannot be probed by timing.
var dummyHash = sync.OnceValue(func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("no such user"), bcrypt.DefaultCost)
	if err != nil {
		return []byte("$2a$10$")
	}
	return h
})

// check checks a request's credentials; presented tells whether it offered
// a read token or a user (a cookie does not count: a stale one is no guess).
func (a *auth) check(r *http.Request) (ok, presented bool) {
	if a.open() {
		return true, false
	}
	if a.has {
		if c, err := r.Cookie(tokenCookie); err == nil && matches(c.Value, a.cookie) {
			return true, true
		}
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			return matches(strings.TrimSpace(v), a.token), true
		}
	}
	user, pass, ok := r.BasicAuth()
	if !ok || len(a.users) == 0 {
		return false, ok
	}
	hash, known := a.users[user]
	if !known {
		hash = dummyHash()
	}
	key := sha256.Sum256([]byte(user + "\x00" + pass + "\x00" + string(hash)))
	a.mu.Lock()
	cached := a.ok[key]
	a.mu.Unlock()
	if cached && known {
		return true, true
	}
	if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil || !known {
		return false, true
	}
	a.mu.Lock()
	if len(a.ok) > 1000 {
		clear(a.ok)
	}
	a.ok[key] = true
	a.mu.Unlock()
	return true, true
}

// wrap wraps a page handler with the access check. A valid ?token= sets
// the cookie and redirects to the same address without the token. Wrong
// credentials are slowed down and blocked by the Guard, if there is one.
func (a *auth) wrap(d *Dashboard, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.open() {
			h(w, r)
			return
		}
		if a.guard != nil {
			if left, blocked := a.guard.Blocked(r); blocked {
				a.tooMany(d, w, r, left)
				return
			}
		}
		q := r.URL.Query()
		if t := q.Get("token"); t != "" && a.has {
			if !matches(t, a.token) {
				a.failed(d, w, r)
				return
			}
			http.SetCookie(w, &http.Cookie{
				Name: tokenCookie, Value: a.cookieValue, Path: d.o.BasePath + "/",
				MaxAge: 400 * 24 * 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode,
				Secure: r.TLS != nil,
			})
			a.succeeded(r)
			q.Del("token")
			// a relative Location keeps working behind a path-stripping proxy
			rel := path.Base(r.URL.Path)
			if strings.HasSuffix(r.URL.Path, "/") {
				rel = "./"
			}
			if enc := q.Encode(); enc != "" {
				rel += "?" + enc
			}
			w.Header().Set("Location", rel)
			w.WriteHeader(http.StatusSeeOther)
			return
		}
		ok, presented := a.check(r)
		switch {
		case ok:
			a.succeeded(r)
			h(w, r)
		case presented:
			a.failed(d, w, r)
		default:
			a.deny(d, w, r)
		}
	})
}

// succeeded tells the Guard, when it wants to know, which credentials got
// in (so they may pass a later block of the address).
func (a *auth) succeeded(r *http.Request) {
	if s, ok := a.guard.(interface{ Succeeded(*http.Request) }); ok {
		s.Succeeded(r)
	}
}

// failed answers wrong credentials: after the Guard's delay with 401, or
// with 429 once the address is blocked.
func (a *auth) failed(d *Dashboard, w http.ResponseWriter, r *http.Request) {
	if a.guard != nil {
		wait, block := a.guard.Fail(r)
		if block > 0 {
			a.tooMany(d, w, r, block)
			return
		}
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-r.Context().Done():
				t.Stop()
				return
			}
		}
	}
	a.deny(d, w, r)
}

func (a *auth) tooMany(d *Dashboard, w http.ResponseWriter, r *http.Request, left time.Duration) {
	secs := int((left + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
	d.fail(w, r, d.newPage(r, "", nil), http.StatusTooManyRequests, "blocked", nil)
}

func (a *auth) deny(d *Dashboard, w http.ResponseWriter, r *http.Request) {
	if len(a.users) > 0 {
		w.Header().Set("WWW-Authenticate", `Basic realm="powermeter", charset="UTF-8"`)
	}
	p := d.newPage(r, "", nil)
	d.fail(w, r, p, http.StatusUnauthorized, "unauthorized", nil)
}
