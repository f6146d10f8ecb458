package dashboard

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"path"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"
)

const tokenCookie = "powermeter_read"

// auth guards the pages: open when neither users nor a read token are set.
type auth struct {
	users map[string][]byte // name → bcrypt hash
	token string
	// cookie is the value set after ?token=: derived from the token, so the
	// token itself is not stored in the browser.
	cookie string

	mu sync.Mutex
	ok map[[32]byte]bool // verified Basic credentials (bcrypt is slow)
}

func newAuth(users []string, token string) (*auth, error) {
	a := &auth{users: map[string][]byte{}, token: token, ok: map[[32]byte]bool{}}
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
		m := hmac.New(sha256.New, []byte(token))
		m.Write([]byte("powermeter dashboard read cookie"))
		a.cookie = hex.EncodeToString(m.Sum(nil))
	}
	return a, nil
}

func (a *auth) open() bool { return len(a.users) == 0 && a.token == "" }

func eq(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

// allowed checks a request's credentials.
func (a *auth) allowed(r *http.Request) bool {
	if a.open() {
		return true
	}
	if a.token != "" {
		if c, err := r.Cookie(tokenCookie); err == nil && eq(c.Value, a.cookie) {
			return true
		}
		if v, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && eq(strings.TrimSpace(v), a.token) {
			return true
		}
	}
	if user, pass, ok := r.BasicAuth(); ok && len(a.users) > 0 {
		hash, known := a.users[user]
		if !known {
			return false
		}
		key := sha256.Sum256([]byte(user + "\x00" + pass + "\x00" + string(hash)))
		a.mu.Lock()
		cached := a.ok[key]
		a.mu.Unlock()
		if cached {
			return true
		}
		if bcrypt.CompareHashAndPassword(hash, []byte(pass)) != nil {
			return false
		}
		a.mu.Lock()
		if len(a.ok) > 1000 {
			clear(a.ok)
		}
		a.ok[key] = true
		a.mu.Unlock()
		return true
	}
	return false
}

// guard wraps a page handler with the access check. A valid ?token= sets
// the cookie and redirects to the same address without the token.
func (a *auth) guard(d *Dashboard, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.open() {
			h(w, r)
			return
		}
		q := r.URL.Query()
		if t := q.Get("token"); t != "" && a.token != "" {
			if !eq(t, a.token) {
				a.deny(d, w, r)
				return
			}
			http.SetCookie(w, &http.Cookie{
				Name: tokenCookie, Value: a.cookie, Path: d.o.BasePath + "/",
				MaxAge: 400 * 24 * 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode,
				Secure: r.TLS != nil,
			})
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
		if !a.allowed(r) {
			a.deny(d, w, r)
			return
		}
		h(w, r)
	})
}

func (a *auth) deny(d *Dashboard, w http.ResponseWriter, r *http.Request) {
	if len(a.users) > 0 {
		w.Header().Set("WWW-Authenticate", `Basic realm="powermeter", charset="UTF-8"`)
	}
	p := d.newPage(r, "", nil)
	d.fail(w, r, p, http.StatusUnauthorized, "unauthorized", nil)
}
