package devhttp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/url"
	"os"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
)

// DefaultTimeout limits a request when the meter sets no timeout.
const DefaultTimeout = 5 * time.Second

// Timeout is the meter's timeout, or DefaultTimeout.
func Timeout(cfg config.Meter) time.Duration {
	if cfg.Timeout.Duration > 0 {
		return cfg.Timeout.Duration
	}
	return DefaultTimeout
}

// ClientOptions are what the families' HTTP clients differ in.
type ClientOptions struct {
	// Transport is set up (TLS, idle connections) and used. Nil: a new one
	// for a device on the local network, without proxy, whose dial, TLS
	// handshake and response header each wait at most the meter's timeout.
	Transport *http.Transport
	// SkipTLS leaves ca_file and insecure unread and unapplied (for a
	// family that ignores them on an http:// URL). Without it they are
	// checked and applied whenever set.
	SkipTLS bool
	// NoRedirect hands a redirect back as the answer instead of following
	// it (digest auth and session ids are per URL).
	NoRedirect bool
	// CAHint is added in brackets to the message for a ca_file that holds
	// no certificate (where to get one).
	CAHint string
}

// NewClient builds the HTTP client for a [[meters]] entry from its timeout,
// ca_file and insecure. A bad ca_file is a *config.Error naming the key.
// Requests are bounded by the caller's context (see Timeout), not by the
// client.
func NewClient(cfg config.Meter, o ClientOptions) (*http.Client, error) {
	tr := o.Transport
	if tr == nil {
		timeout := Timeout(cfg)
		tr = &http.Transport{
			Proxy:                 nil, // devices are on the local network
			DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
			IdleConnTimeout:       60 * time.Second,
			TLSHandshakeTimeout:   timeout,
			ResponseHeaderTimeout: timeout,
		}
	}
	tr.MaxIdleConnsPerHost = 2 // one meter asks one device at a time
	if !o.SkipTLS && (cfg.CAFile != "" || cfg.Insecure) {
		tc, err := TLSConfig(cfg, o.CAHint)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = tc
	}
	hc := &http.Client{Transport: tr}
	if o.NoRedirect {
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	}
	return hc, nil
}

// TLSConfig trusts the certificates in cfg.CAFile (when set) and skips the
// check when cfg.Insecure is set. caHint is added in brackets to the
// message for a file without a certificate.
func TLSConfig(cfg config.Meter, caHint string) (*tls.Config, error) {
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: cfg.Insecure, //nolint:gosec // asked for by the user (self-signed device certificates)
	}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, meter.ConfigError(cfg, "ca_file", "cannot read: %v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			if caHint != "" {
				caHint = " (" + caHint + ")"
			}
			return nil, meter.ConfigError(cfg, "ca_file", "%s holds no PEM certificate%s", cfg.CAFile, caHint)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// Failure is how a request failed before a whole answer came.
type Failure int

const (
	// Unreachable: refused, reset, no route, DNS, TLS …
	Unreachable Failure = iota
	// TimedOut: the context's deadline or a network timeout.
	TimedOut
	// Cancelled: the caller's context was cancelled.
	Cancelled
)

// Classify tells how a request made with ctx failed (err from Do or from
// reading the body). A timeout wins over a cancellation.
func Classify(ctx context.Context, err error) Failure {
	var ne net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(Scrub(err), &ne) && ne.Timeout():
		return TimedOut
	case ctx.Err() != nil:
		return Cancelled
	}
	return Unreachable
}

// Scrub drops the URL a *url.Error repeats (it may carry a password or a
// session id) and keeps the cause.
func Scrub(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// TransportError is the meter.Unreachable error for a failed request to
// the device named by where ("Tasmota at http://…"): "… did not answer
// within 5s" or "… is not reachable", with the scrubbed cause.
func TransportError(ctx context.Context, err error, where string, timeout time.Duration) error {
	if Classify(ctx, err) == TimedOut {
		return meter.Errorf(meter.Unreachable, Scrub(err), "%s did not answer within %v", where, timeout)
	}
	return meter.Errorf(meter.Unreachable, Scrub(err), "%s is not reachable", where)
}
