package fritzdect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/devhttp"
)

const (
	// roundCache is how long one getdevicelistinfos answer serves all
	// meters of a box (they are read in the same round).
	roundCache = 2 * time.Second
	// minLoginRetry is the least wait after a refused login.
	minLoginRetry = 10 * time.Second
	// rightsBackoff is how long we do not log in again after a fresh
	// session was refused (the user lacks the Smart Home right).
	rightsBackoff = time.Minute
	// maxBody bounds what we read of an answer.
	maxBody = 4 << 20
)

// box is one FRITZ!Box session, shared by every meter that names the same
// URL and user. All use is serialised by mu.
type box struct {
	key     string
	base    string // scheme://host[:port][/prefix], no trailing slash
	user    string
	pass    string
	tlsKey  string // ca_file + insecure, to catch meters that disagree
	hc      *http.Client
	timeout time.Duration
	log     *slog.Logger
	refs    int // guarded by poolMu

	mu           sync.Mutex
	now          func() time.Time
	cacheFor     time.Duration
	sid          string
	sidFresh     bool // the session was made during the current request
	homeAuto     bool
	rightsKnown  bool
	blockedUntil time.Time
	blockCause   error
	legacy       bool // FRITZ!OS without getdevicelistinfos
	// After a fresh session got 403 (missing right), no new login before
	// rightsRetry: the answer would be the same.
	rightsRetry time.Time
	rightsErr   error
	list        *deviceList
	listAt      time.Time
	// api is the configured interface (auto, rest, aha); rest what we
	// know of the REST API; restUnits the units worth asking per device UID.
	api       string
	keepFresh bool
	rest      restState
	restUnits map[string][]string
}

var (
	poolMu sync.Mutex
	pool   = map[string]*box{}
)

// acquire returns the shared box for cfg, creating it on first use.
func acquire(cfg config.Meter, base string, log *slog.Logger, now func() time.Time) (*box, error) {
	tlsKey := cfg.CAFile + "\x00" + strconv.FormatBool(cfg.Insecure)
	key := base + "\x00" + cfg.Username
	poolMu.Lock()
	defer poolMu.Unlock()
	if b, ok := pool[key]; ok {
		if b.pass != cfg.Password {
			return nil, meter.ConfigError(cfg, "password", "differs from another meter that uses the same FRITZ!Box %s and user %s; they share one session", base, cfg.Username)
		}
		if b.tlsKey != tlsKey {
			return nil, meter.ConfigError(cfg, "ca_file", "ca_file/insecure differ from another meter that uses the same FRITZ!Box %s and user %s; they share one connection", base, cfg.Username)
		}
		if b.api != apiOf(cfg) {
			return nil, meter.ConfigError(cfg, "api", "differs from another meter that uses the same FRITZ!Box %s and user %s; they share one session", base, cfg.Username)
		}
		b.refs++
		return b, nil
	}
	https := strings.HasPrefix(base, "https:")
	hc, err := devhttp.NewClient(cfg, devhttp.ClientOptions{
		Transport:  http.DefaultTransport.(*http.Transport).Clone(),
		SkipTLS:    !https,
		NoRedirect: true,
		CAHint:     "export the box's certificate under Internet > Permit Access > FRITZ!Box Services",
	})
	if err != nil {
		return nil, err
	}
	if https && cfg.Insecure {
		log.Warn("fritzdect: insecure = true: the FRITZ!Box certificate is not checked; prefer ca_file", "url", base)
	}
	b := &box{
		key: key, base: base, user: cfg.Username, pass: cfg.Password, tlsKey: tlsKey,
		hc: hc, timeout: devhttp.Timeout(cfg), log: log, refs: 1,
		now: now, cacheFor: roundCache, api: apiOf(cfg),
	}
	pool[key] = b
	return b, nil
}

// release drops one reference; the last one logs out and frees the box.
func (b *box) release(ctx context.Context) error {
	poolMu.Lock()
	b.refs--
	last := b.refs == 0
	if last && pool[b.key] == b {
		delete(pool, b.key)
	}
	poolMu.Unlock()
	if !last {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.logout(ctx)
	b.hc.CloseIdleConnections()
	if err != nil {
		return fmt.Errorf("FRITZ!Box at %s: logout: %w", b.host(), err)
	}
	return nil
}

func apiOf(cfg config.Meter) string {
	if cfg.API == "" {
		return "auto"
	}
	return cfg.API
}

func (b *box) host() string {
	if u, err := url.Parse(b.base); err == nil {
		return u.Host
	}
	return b.base
}

// httpStatusError is a non-200 answer.
type httpStatusError struct {
	code int
	path string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("%s answered %d %s", e.path, e.code, http.StatusText(e.code))
}

func statusOf(err error) int {
	var se *httpStatusError
	if errors.As(err, &se) {
		return se.code
	}
	return 0
}

func (b *box) get(ctx context.Context, path string, q url.Values) ([]byte, error) {
	return b.do(ctx, http.MethodGet, path, q, nil)
}

func (b *box) post(ctx context.Context, path string, q, form url.Values) ([]byte, error) {
	return b.do(ctx, http.MethodPost, path, q, form)
}

// do sends one request with the box's timeout. A non-200 status comes back
// as *httpStatusError (wrapped in a meter error of kind BadAnswer, except
// 403 which callers handle); transport failures are Unreachable.
func (b *box) do(ctx context.Context, method, path string, q, form url.Values) ([]byte, error) {
	return b.doReq(ctx, method, path, q, form, nil)
}

func (b *box) doReq(ctx context.Context, method, path string, q, form url.Values, header map[string]string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, b.timeout)
	defer cancel()
	u := b.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, meter.Errorf(meter.Config, err, "FRITZ!Box URL %s", b.base)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		return nil, b.unreachable(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, b.unreachable(ctx, err)
	}
	code := resp.StatusCode
	// Very old firmware put the error status line inside a 200 answer.
	if code == http.StatusOK && bytes.HasPrefix(data, []byte("HTTP/1.")) {
		if f := strings.Fields(string(data[:min(len(data), 40)])); len(f) >= 2 {
			if c, err := strconv.Atoi(f[1]); err == nil && c >= 400 {
				code = c
			}
		}
	}
	if code != http.StatusOK {
		se := &httpStatusError{code: code, path: path}
		switch code {
		case http.StatusForbidden, http.StatusUnauthorized:
			return nil, meter.Errorf(meter.Auth, se, "FRITZ!Box at %s refused the request", b.host())
		}
		return nil, meter.Errorf(meter.BadAnswer, se, "FRITZ!Box at %s", b.host())
	}
	return data, nil
}

func (b *box) unreachable(ctx context.Context, err error) error {
	// Scrub: *url.Error repeats the URL, SID included.
	cause := devhttp.Scrub(err)
	switch {
	case devhttp.Classify(ctx, err) == devhttp.TimedOut:
		return meter.Errorf(meter.Unreachable, cause, "FRITZ!Box at %s did not answer within %s", b.host(), b.timeout)
	case strings.Contains(cause.Error(), "certificate"):
		return meter.Errorf(meter.Unreachable, cause, "FRITZ!Box at %s: TLS certificate not trusted (set ca_file to the box's certificate, or use http:// in the LAN)", b.host())
	}
	return meter.Errorf(meter.Unreachable, cause, "cannot reach FRITZ!Box at %s", b.host())
}

// badAnswer explains an answer we could not parse.
func (b *box) badAnswer(body []byte, err error, what string) error {
	if looksHTML(body) {
		return meter.Errorf(meter.BadAnswer, nil, "FRITZ!Box at %s answered HTML, not XML, to %s (is the URL a FRITZ!Box?)", b.host(), what)
	}
	return meter.Errorf(meter.BadAnswer, err, "FRITZ!Box at %s sent an answer to %s we cannot read", b.host(), what)
}

func looksHTML(b []byte) bool {
	s := bytes.ToLower(bytes.TrimSpace(b[:min(len(b), 256)]))
	return bytes.HasPrefix(s, []byte("<!doctype html")) || bytes.HasPrefix(s, []byte("<html"))
}

// command runs one homeautoswitch.lua command with a session: it logs in
// when there is none, and on 403 logs in once more and retries once.
// Called with b.mu held.
func (b *box) command(ctx context.Context, cmd, ain string) ([]byte, error) {
	return b.withSession(ctx, func(sid string) ([]byte, error) {
		q := url.Values{"switchcmd": {cmd}, "sid": {sid}}
		if ain != "" {
			q.Set("ain", ain)
		}
		return b.get(ctx, "/webservices/homeautoswitch.lua", q)
	})
}

// withSession runs one request with the session: it logs in when there is
// none, and on 403 (AHA) or 401 (REST) logs in once more and retries once;
// a fresh session refused means the user lacks the Smart Home right.
// Called with b.mu held.
func (b *box) withSession(ctx context.Context, req func(sid string) ([]byte, error)) ([]byte, error) {
	b.sidFresh, b.keepFresh = b.keepFresh, false
	for attempt := 0; ; attempt++ {
		if b.sid == "" {
			if b.now().Before(b.rightsRetry) {
				return nil, b.rightsErr
			}
			if err := b.login(ctx); err != nil {
				return nil, err
			}
		}
		body, err := req(b.sid)
		if c := statusOf(err); c != http.StatusForbidden && c != http.StatusUnauthorized {
			return body, err
		}
		fresh := b.sidFresh
		b.sid = ""
		if fresh || attempt > 0 {
			b.rightsErr = b.forbidden()
			b.rightsRetry = b.now().Add(rightsBackoff)
			return nil, b.rightsErr
		}
		b.log.Debug("fritzdect: session refused, logging in again", "box", b.host())
	}
}

func (b *box) forbidden() error {
	if b.rightsKnown && !b.homeAuto {
		return meter.Errorf(meter.Auth, nil, "FRITZ!Box user %s lacks the Smart Home right: allow it under System > FRITZ!Box Users > %s", b.user, b.user)
	}
	return meter.Errorf(meter.Auth, nil, "FRITZ!Box at %s answered 403 (forbidden) to a fresh session: the user %s probably lacks the Smart Home right (System > FRITZ!Box Users)", b.host(), b.user)
}

var errLegacy = errors.New("FRITZ!OS without getdevicelistinfos")

// deviceList returns the round's device list: one getdevicelistinfos serves
// every meter of the box for cacheFor. It returns errLegacy when the box
// does not know the command (old FRITZ!OS).
func (b *box) deviceList(ctx context.Context) (*deviceList, time.Time, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.legacy {
		return nil, time.Time{}, errLegacy
	}
	now := b.now()
	if b.list != nil && now.Sub(b.listAt) < b.cacheFor && !now.Before(b.listAt) {
		return b.list, b.listAt, nil
	}
	b.list = nil
	if dl, at, handled, err := b.restDeviceList(ctx); handled {
		if err != nil {
			return nil, time.Time{}, err
		}
		b.list, b.listAt = dl, at
		return dl, at, nil
	}
	body, err := b.command(ctx, "getdevicelistinfos", "")
	if c := statusOf(err); c == http.StatusBadRequest || c == http.StatusNotFound {
		b.legacy = true
		b.log.Info("fritzdect: the box does not know getdevicelistinfos (old FRITZ!OS); reading each socket with single commands", "box", b.host())
		return nil, time.Time{}, errLegacy
	}
	if err != nil {
		return nil, time.Time{}, err
	}
	dl, err := parseDeviceList(body)
	if err != nil {
		return nil, time.Time{}, b.badAnswer(body, err, "getdevicelistinfos")
	}
	b.list, b.listAt = dl, b.now()
	return dl, b.listAt, nil
}

// single runs one plain command for one AIN and returns its trimmed answer.
func (b *box) single(ctx context.Context, cmd, ain string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	body, err := b.command(ctx, cmd, ain)
	if err != nil {
		return "", err
	}
	if looksHTML(body) {
		return "", b.badAnswer(body, nil, cmd)
	}
	return strings.TrimSpace(string(body)), nil
}
