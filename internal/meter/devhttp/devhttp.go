// Package devhttp is the small HTTP/JSON client the device families built on
// plain HTTP APIs share (Tasmota, AhoyDTU, OpenDTU): it applies the meter's
// timeout, ca_file and insecure settings and turns every way a request can go
// wrong into a typed meter.Error with a sentence a user can act on.
//
// Its lower layer (NewClient, TLSConfig, Timeout, Classify, TransportError)
// also serves the families with their own protocol handling (Shelly,
// FRITZ!DECT).
package devhttp

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

// MaxBody bounds what is read from a device (their answers are a few kB).
const MaxBody = 1 << 20

// Client talks to one device.
type Client struct {
	// Family names the device in messages ("Tasmota").
	Family string
	// Base is the device's base URL (cfg.url without a trailing slash).
	Base *url.URL
	// Timeout bounds each request (cfg.timeout).
	Timeout time.Duration
	// Username and Password are sent as Basic auth when BasicAuth is set.
	Username, Password string
	BasicAuth          bool
	// AuthHint is appended to 401/403 messages ("the user is always admin").
	AuthHint string

	cfg  config.Meter
	http *http.Client
}

// New builds the client for a [[meters]] entry. A bad url or ca_file is a
// *config.Error naming the key.
func New(cfg config.Meter, family string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, meter.ConfigError(cfg, "url", "%q: want http://host or https://host", cfg.URL)
	}
	timeout := Timeout(cfg)
	hc, err := NewClient(cfg, ClientOptions{})
	if err != nil {
		return nil, err
	}
	hc.Timeout = timeout // besides Get's context: a second bound on the whole request
	return &Client{
		Family:   family,
		Base:     u,
		Timeout:  timeout,
		Username: cfg.Username,
		Password: cfg.Password,
		cfg:      cfg,
		http:     hc,
	}, nil
}

// Where names the device in messages: "Tasmota at http://192.168.1.20".
func (c *Client) Where() string { return c.Family + " at " + c.Base.Redacted() }

// Check is nil for a valid reading, else the BadAnswer error for values
// out of range.
func (c *Client) Check(r reading.Reading) error {
	if err := r.Validate(); err != nil {
		return meter.Errorf(meter.BadAnswer, err, "%s answered values out of range", c.Where())
	}
	return nil
}

// Result ends a Read with the reading the family parsed (and checked): a
// parse error passes through, else the meter's threshold and invert are
// applied and r is the one reading.
func (c *Client) Result(r reading.Reading, err error) ([]reading.Reading, error) {
	if err != nil {
		return nil, err
	}
	meter.Apply(c.cfg, &r)
	return []reading.Reading{r}, nil
}

// GetJSON fetches path (with its query, already escaped) and decodes the JSON
// answer into v. Every failure is a *meter.Error.
func (c *Client) GetJSON(ctx context.Context, path string, v any) error {
	body, err := c.Get(ctx, path)
	if err != nil {
		return err
	}
	return c.Decode(path, body, v)
}

// Get fetches path and returns the body of a 200 answer.
func (c *Client) Get(ctx context.Context, path string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Base.String()+path, nil)
	if err != nil {
		return nil, meter.Errorf(meter.Config, err, "%s: cannot build the request for %s", c.Where(), redactPath(path))
	}
	req.Header.Set("Accept", "application/json")
	if c.BasicAuth && c.Password != "" {
		req.SetBasicAuth(c.Username, c.Password)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, TransportError(ctx, err, c.Where(), c.Timeout)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, meter.Errorf(meter.BadAnswer, Scrub(err), "%s: the answer broke off", c.Where())
	}
	if len(body) > MaxBody {
		return nil, meter.Errorf(meter.BadAnswer, nil, "%s: answer larger than %d bytes", c.Where(), MaxBody)
	}
	switch code := resp.StatusCode; {
	case code == http.StatusOK:
		return body, nil
	case code == http.StatusUnauthorized || code == http.StatusForbidden:
		who := "without a password"
		if c.Password != "" {
			who = "with the configured password"
			if c.Username != "" {
				who = fmt.Sprintf("for user %q", c.Username)
			}
		}
		msg := fmt.Sprintf("%s refused access %s (HTTP %d)", c.Where(), who, code)
		if c.AuthHint != "" {
			msg += "; " + c.AuthHint
		}
		return nil, meter.Errorf(meter.Auth, nil, "%s", msg)
	case code == http.StatusTooManyRequests:
		return nil, meter.Errorf(meter.Busy, nil, "%s asks to back off (HTTP 429)", c.Where())
	case code == http.StatusNotFound:
		return nil, meter.Errorf(meter.BadAnswer, nil, "%s answered 404 Not Found for %s: is this really a %s (or its firmware too old)?", c.Where(), redactPath(path), c.Family)
	default:
		return nil, meter.Errorf(meter.BadAnswer, nil, "%s answered HTTP %d %s", c.Where(), code, http.StatusText(code))
	}
}

// Decode parses a JSON body and classifies what is wrong with it.
func (c *Client) Decode(path string, body []byte, v any) error {
	switch problem, err := Unmarshal(body, v); problem {
	case Empty:
		return meter.Errorf(meter.BadAnswer, nil, "%s answered an empty body for %s", c.Where(), redactPath(path))
	case HTML:
		return meter.Errorf(meter.BadAnswer, nil, "%s answered HTML, not JSON (a login page or another device at this address?)", c.Where())
	case Truncated, Broken:
		return meter.Errorf(meter.BadAnswer, err, "%s answered broken or truncated JSON", c.Where())
	case Shape:
		return meter.Errorf(meter.BadAnswer, err, "%s answered JSON of an unexpected shape", c.Where())
	}
	return nil
}

// Problem is what is wrong with a JSON answer.
type Problem int

const (
	// NoProblem: decoded.
	NoProblem Problem = iota
	// Empty: nothing but white space.
	Empty
	// HTML: a markup page (a login page, a proxy, another device).
	HTML
	// Truncated: the JSON ends in the middle of a value.
	Truncated
	// Broken: the JSON is wrong somewhere.
	Broken
	// Shape: valid JSON that does not fit v.
	Shape
)

// Unmarshal decodes a device's JSON answer into v and says what is wrong
// with it if it cannot (with json's error for Truncated, Broken and Shape).
func Unmarshal(body []byte, v any) (Problem, error) {
	b := bytes.TrimSpace(body)
	switch {
	case len(b) == 0:
		return Empty, nil
	case b[0] == '<':
		return HTML, nil
	}
	err := json.Unmarshal(b, v)
	var se *json.SyntaxError
	switch {
	case err == nil:
		return NoProblem, nil
	case truncatedJSON(b):
		return Truncated, err
	case errors.As(err, &se):
		return Broken, err
	}
	return Shape, err
}

// truncatedJSON tells a body that ends in the middle of a value from one
// that is wrong somewhere (only the streaming decoder tells them apart).
func truncatedJSON(b []byte) bool {
	var v any
	return errors.Is(json.NewDecoder(bytes.NewReader(b)).Decode(&v), io.ErrUnexpectedEOF)
}

// redactPath hides password= values in a path for messages.
func redactPath(p string) string {
	base, q, ok := strings.Cut(p, "?")
	if !ok {
		return p
	}
	vals, err := url.ParseQuery(q)
	if err != nil {
		return base
	}
	if vals.Has("password") {
		vals.Set("password", "xxxxx")
	}
	return base + "?" + vals.Encode()
}
