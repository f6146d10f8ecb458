// Package shelly reads Shelly devices: Gen1 (Plug S, 1PM, 2.5, EM, 3EM) over
// their REST API with HTTP Basic auth, and Gen2/3/4 (Plus, Pro, Mini) over
// RPC with HTTP Digest SHA-256 auth. The generation is detected from
// GET /shelly, which never needs auth.
//
// The package also holds emulators of a Gen1 Plug S (or 3EM), a Gen2 Plus
// Plug S (or a Gen3 PM Mini) and a Pro 3EM, registered with internal/emulate.
package shelly

import (
	"bytes"
	"context"
	"encoding/json"
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
	"github.com/powermeter/powermeter/internal/reading"
)

func init() {
	meter.Register("shelly", func(cfg config.Meter, deps meter.Deps) (meter.Meter, error) {
		return New(cfg, deps)
	})
}

// maxBody bounds what is read from a device (a Gen2 status is a few kB).
const maxBody = 1 << 20

// Back-off after a 429 without Retry-After: doubling from minBackoff.
const (
	minBackoff = 2 * time.Second
	maxBackoff = time.Minute
)

// Meter reads one Shelly device.
type Meter struct {
	cfg     config.Meter
	base    string // scheme://host[:port][/prefix], no trailing slash
	where   string // "Shelly at http://…" for messages
	user    string
	pass    string
	timeout time.Duration
	hc      *http.Client
	log     *slog.Logger
	zone    *time.Location
	now     func() time.Time

	// gen2 component keys for the configured channel, built once.
	keys gen2Keys

	mu        sync.Mutex // one Read at a time; guards everything below
	dev       *device    // nil until detected, and again after a failure
	dig       digestClient
	notBefore time.Time // after a 429: send nothing before this
	backoff   time.Duration
	buf       bytes.Buffer
}

// device is what GET /shelly told us.
type device struct {
	gen   int    // 1, 2, 3, 4…
	model string // SHPLG-S, SNPL-00112EU …
	id    string // Gen2+: shellyplusplugs-aabbccddeeff
	auth  bool   // auth is enabled on the device
}

// shellyInfo is the union of the Gen1 and Gen2+ answers of GET /shelly.
type shellyInfo struct {
	Gen    int    `json:"gen"`
	Type   string `json:"type"`  // Gen1
	Model  string `json:"model"` // Gen2+
	ID     string `json:"id"`
	App    string `json:"app"`
	Auth   bool   `json:"auth"`    // Gen1
	AuthEn bool   `json:"auth_en"` // Gen2+
}

// New builds a Shelly meter from its config section.
func New(cfg config.Meter, deps meter.Deps) (*Meter, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, meter.ConfigError(cfg, "url", "%q: want http://host or https://host (the Shelly's address)", cfg.URL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, meter.ConfigError(cfg, "url", "%q: give only the device's address, without ?query or #fragment", cfg.URL)
	}
	if cfg.Channel < 0 || cfg.Channel > 15 {
		return nil, meter.ConfigError(cfg, "channel", "%d: want 0..15 (the switch, meter or emeter number, starting at 0)", cfg.Channel)
	}
	hc, err := devhttp.NewClient(cfg, devhttp.ClientOptions{
		SkipTLS:    u.Scheme != "https",
		NoRedirect: true, // digest auth is per URI: never follow redirects silently
	})
	if err != nil {
		return nil, err
	}
	user := cfg.Username
	if user == "" && cfg.Password != "" {
		user = "admin"
	}
	deps = deps.OrDefaults()
	m := &Meter{
		cfg:     cfg,
		base:    u.String(),
		where:   "Shelly at " + u.Redacted(),
		user:    user,
		pass:    cfg.Password,
		timeout: devhttp.Timeout(cfg),
		hc:      hc,
		log:     deps.Log.With("meter", cfg.Name, "type", "shelly"),
		zone:    deps.Zone,
		now:     time.Now,
		keys:    newGen2Keys(cfg.Channel),
	}
	m.dig.user, m.dig.pass = user, cfg.Password
	return m, nil
}

// Read asks the device once and returns one complete reading or a typed
// error.
func (m *Meter) Read(ctx context.Context) ([]reading.Reading, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ready(ctx); err != nil {
		return nil, err
	}
	var (
		r   reading.Reading
		err error
	)
	if m.dev.gen == 1 {
		r, err = m.readGen1(ctx)
	} else {
		r, err = m.readGen2(ctx)
	}
	if err == nil {
		r.Device = m.cfg.Name
		r.Time = m.now().UTC()
		meter.Apply(m.cfg, &r)
		if verr := r.Validate(); verr != nil {
			err = meter.Errorf(meter.BadAnswer, verr, "%s answered values that do not make a valid reading", m.where)
		}
	}
	if err != nil {
		switch meter.KindOf(err) {
		case meter.NotPresent, meter.Busy:
			// The device answered sensibly: nothing to re-detect.
		default:
			m.dev = nil // it may have been replaced or re-flashed
		}
		return nil, err
	}
	return []reading.Reading{r}, nil
}

// Discover lists the channels the device measures (for `powermeter discover`).
func (m *Meter) Discover(ctx context.Context) ([]meter.Device, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.ready(ctx); err != nil {
		return nil, err
	}
	var out []meter.Device
	if m.dev.gen == 1 {
		st, err := m.fetchGen1(ctx)
		if err != nil {
			m.dev = nil
			return nil, err
		}
		out = m.gen1Channels(st)
		m.nameGen1Channels(ctx, out)
	} else {
		st, err := m.fetchGen2(ctx)
		if err != nil {
			m.dev = nil
			return nil, err
		}
		out = m.gen2Channels(st)
		m.nameGen2Channels(ctx, out)
	}
	if len(out) == 0 {
		return nil, meter.Errorf(meter.Config, nil, "%s (%s) measures no power", m.where, m.dev.model)
	}
	return out, nil
}

// Close drops idle connections.
func (m *Meter) Close(context.Context) error {
	m.hc.CloseIdleConnections()
	return nil
}

// ready refuses to send during a 429 back-off and detects the device when
// it is not known (yet, or again). Called with m.mu held.
func (m *Meter) ready(ctx context.Context) error {
	if err := m.waitBusy(); err != nil {
		return err
	}
	if m.dev == nil {
		return m.detect(ctx)
	}
	return nil
}

// detect asks GET /shelly which generation this is.
func (m *Meter) detect(ctx context.Context) error {
	resp, body, err := m.get(ctx, "/shelly", nil)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound {
		return meter.Errorf(meter.BadAnswer, nil, "%s has no /shelly endpoint (404): is this address really a Shelly?", m.where)
	}
	if resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden {
		return meter.Errorf(meter.Auth, nil, "%s refused GET /shelly with HTTP %d, which a Shelly never protects: is a proxy or another device at this address?", m.where, resp.StatusCode)
	}
	if err := m.checkStatus(resp, body); err != nil {
		return err
	}
	var info shellyInfo
	if err := m.decode("/shelly", resp, body, &info); err != nil {
		return err
	}
	d := &device{gen: info.Gen, model: info.Model, id: info.ID}
	switch {
	case info.Gen == 0 && info.Type != "":
		d.gen, d.model, d.auth = 1, info.Type, info.Auth
	case info.Gen >= 2:
		d.auth = info.AuthEn
		if d.model == "" {
			d.model = info.App
		}
	default:
		return meter.Errorf(meter.BadAnswer, nil, "%s answered /shelly without \"gen\" or \"type\": is this address really a Shelly?", m.where)
	}
	if d.auth && m.pass == "" {
		hint := "set password (Gen2+ devices always use the user admin)"
		if d.gen == 1 {
			hint = "set password, and username if it is not admin"
		}
		return meter.Errorf(meter.Auth, nil, "%s (%s) has authentication enabled but no password is configured: %s", m.where, d.model, hint)
	}
	if d.gen >= 2 && m.dig.has() && d.id != "" && m.dig.ch.realm != d.id {
		m.dig.reset() // another device answers at this address now
	}
	m.dev = d
	m.log.Debug("shelly detected", "gen", d.gen, "model", d.model, "auth", d.auth)
	return nil
}

// get sends one GET with the meter's timeout and returns the answer with its
// body read. Only a transport failure or a 429 is an error here; auth is
// the caller's, via setAuth. The body is valid until the next request.
func (m *Meter) get(ctx context.Context, path string, setAuth func(*http.Request) error) (*http.Response, []byte, error) {
	if err := m.waitBusy(); err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, m.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.base+path, nil)
	if err != nil {
		return nil, nil, meter.Errorf(meter.Config, err, "%s: cannot build the request for %s", m.where, path)
	}
	req.Header.Set("Accept", "application/json")
	if setAuth != nil {
		if err := setAuth(req); err != nil {
			return nil, nil, meter.Errorf(meter.Auth, err, "%s: cannot build the credentials", m.where)
		}
	}
	resp, err := m.hc.Do(req)
	if err != nil {
		return nil, nil, m.transportError(ctx, err)
	}
	defer resp.Body.Close()
	m.buf.Reset()
	if _, err := m.buf.ReadFrom(io.LimitReader(resp.Body, maxBody+1)); err != nil {
		if ctx.Err() != nil {
			return nil, nil, m.transportError(ctx, err)
		}
		return nil, nil, meter.Errorf(meter.BadAnswer, devhttp.Scrub(err), "%s: the answer to %s broke off", m.where, path)
	}
	if m.buf.Len() > maxBody {
		return nil, nil, meter.Errorf(meter.BadAnswer, nil, "%s answered more than %d bytes for %s", m.where, maxBody, path)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		return nil, nil, m.tooMany(resp)
	}
	m.backoff = 0
	return resp, m.buf.Bytes(), nil
}

// waitBusy refuses to send while a 429 back-off runs.
func (m *Meter) waitBusy() error {
	if now := m.now(); now.Before(m.notBefore) {
		return meter.Errorf(meter.Busy, nil, "%s asked to back off (HTTP 429); not asking again before %s (in %v)",
			m.where, m.notBefore.UTC().Format("15:04:05 UTC"), m.notBefore.Sub(now).Round(100*time.Millisecond))
	}
	return nil
}

// tooMany records a 429: Retry-After when given, else a doubling back-off.
func (m *Meter) tooMany(resp *http.Response) error {
	d := time.Duration(0)
	if s := resp.Header.Get("Retry-After"); s != "" {
		if n, err := strconv.Atoi(strings.TrimSpace(s)); err == nil && n > 0 {
			d = time.Duration(n) * time.Second
		} else if t, err := http.ParseTime(s); err == nil {
			d = t.Sub(m.now())
		}
	}
	if d <= 0 {
		d = max(minBackoff, 2*m.backoff)
	}
	d = min(d, maxBackoff)
	m.backoff = d
	m.notBefore = m.now().Add(d)
	return meter.Errorf(meter.Busy, nil, "%s answered 429 Too Many Requests (too many clients?); waiting %v before asking again", m.where, d)
}

// checkStatus turns a non-200 answer (other than 401 and 429, which callers
// handle) into a typed error.
func (m *Meter) checkStatus(resp *http.Response, body []byte) error {
	code := resp.StatusCode
	if code == http.StatusOK {
		return nil
	}
	detail := errorDetail(body)
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden:
		return meter.Errorf(meter.Auth, nil, "%s refused access (HTTP %d)%s", m.where, code, detail)
	case http.StatusNotFound:
		return meter.Errorf(meter.BadAnswer, nil, "%s answered 404 Not Found for %s%s: is the firmware too old, or is this another device?", m.where, resp.Request.URL.Path, detail)
	}
	return meter.Errorf(meter.BadAnswer, nil, "%s answered HTTP %d %s%s", m.where, code, http.StatusText(code), detail)
}

// errorDetail extracts a short reason from an error body: a Gen2 JSON
// {"code":…,"message":…} or a Gen1 text/plain line.
func errorDetail(body []byte) string {
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] == '<' {
		return ""
	}
	var e struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if b[0] == '{' && json.Unmarshal(b, &e) == nil && e.Message != "" {
		return fmt.Sprintf(" (%s, code %d)", truncate(e.Message, 120), e.Code)
	}
	if b[0] == '{' {
		return ""
	}
	return " (" + truncate(strings.ToValidUTF8(string(b), "?"), 120) + ")"
}

// decode parses a JSON answer and says what is wrong with it if it cannot.
func (m *Meter) decode(path string, resp *http.Response, body []byte, v any) error {
	problem, err := devhttp.Unmarshal(body, v)
	if problem == devhttp.Empty {
		return meter.Errorf(meter.BadAnswer, nil, "%s answered an empty body for %s", m.where, path)
	}
	if problem == devhttp.HTML || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		return meter.Errorf(meter.BadAnswer, nil, "%s answered HTML, not JSON, for %s (a login page, a proxy, or another device at this address?)", m.where, path)
	}
	switch problem {
	case devhttp.Truncated:
		return meter.Errorf(meter.BadAnswer, err, "%s answered truncated JSON for %s (%d bytes)", m.where, path, len(bytes.TrimSpace(body)))
	case devhttp.Broken:
		return meter.Errorf(meter.BadAnswer, err, "%s answered broken JSON for %s", m.where, path)
	case devhttp.Shape:
		return meter.Errorf(meter.BadAnswer, err, "%s answered JSON of an unexpected shape for %s", m.where, path)
	}
	return nil
}

func (m *Meter) transportError(ctx context.Context, err error) error {
	if devhttp.Classify(ctx, err) == devhttp.Cancelled {
		return meter.Errorf(meter.Unreachable, ctx.Err(), "%s: reading was cancelled", m.where)
	}
	return devhttp.TransportError(ctx, err, m.where, m.timeout)
}
