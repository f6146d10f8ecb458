// Package devhttp is the small HTTP/JSON client the device families built on
// plain HTTP APIs share (Tasmota, AhoyDTU, OpenDTU): it applies the meter's
// timeout, ca_file and insecure settings and turns every way a request can go
// wrong into a typed meter.Error with a sentence a user can act on.
package devhttp

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
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

	http *http.Client
}

// New builds the client for a [[meters]] entry. A bad url or ca_file is a
// *config.Error naming the key.
func New(cfg config.Meter, family string) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(cfg.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, meter.ConfigError(cfg, "url", "%q: want http://host or https://host", cfg.URL)
	}
	timeout := cfg.Timeout.Duration
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	tr := &http.Transport{
		Proxy:                 nil, // devices are on the local network
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       60 * time.Second,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	if cfg.CAFile != "" || cfg.Insecure {
		tc := &tls.Config{InsecureSkipVerify: cfg.Insecure} //nolint:gosec // the user asked for it (self-signed device certificates)
		if cfg.CAFile != "" {
			pem, err := os.ReadFile(cfg.CAFile)
			if err != nil {
				return nil, meter.ConfigError(cfg, "ca_file", "cannot read: %v", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, meter.ConfigError(cfg, "ca_file", "%s holds no PEM certificate", cfg.CAFile)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
	}
	return &Client{
		Family:   family,
		Base:     u,
		Timeout:  timeout,
		Username: cfg.Username,
		Password: cfg.Password,
		http:     &http.Client{Transport: tr, Timeout: timeout},
	}, nil
}

// Where names the device in messages: "Tasmota at http://192.168.1.20".
func (c *Client) Where() string { return c.Family + " at " + c.Base.Redacted() }

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
		return nil, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody+1))
	if err != nil {
		return nil, meter.Errorf(meter.BadAnswer, scrub(err), "%s: the answer broke off", c.Where())
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
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return meter.Errorf(meter.BadAnswer, nil, "%s answered an empty body for %s", c.Where(), redactPath(path))
	}
	if trimmed[0] == '<' {
		return meter.Errorf(meter.BadAnswer, nil, "%s answered HTML, not JSON (a login page or another device at this address?)", c.Where())
	}
	if err := json.Unmarshal(trimmed, v); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) || strings.Contains(err.Error(), "unexpected end of JSON input") {
			return meter.Errorf(meter.BadAnswer, err, "%s answered broken or truncated JSON", c.Where())
		}
		return meter.Errorf(meter.BadAnswer, err, "%s answered JSON of an unexpected shape", c.Where())
	}
	return nil
}

func (c *Client) transportError(ctx context.Context, err error) error {
	err = scrub(err)
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || isTimeout(err) {
		return meter.Errorf(meter.Unreachable, err, "%s did not answer within %v", c.Where(), c.Timeout)
	}
	return meter.Errorf(meter.Unreachable, err, "%s is not reachable", c.Where())
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// scrub drops the URL (it may carry a password in the query) from a
// *url.Error and keeps the cause.
func scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
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
