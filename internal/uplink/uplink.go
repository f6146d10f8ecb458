// Package uplink sends queued readings to a server: the legacy log.php
// protocol of the original logger, the native JSON API, or the local store
// when the server runs in the same process.
package uplink

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/outbox"
)

// Sender delivers queued readings to one target.
type Sender interface {
	// Name is the consumer name in the outbox.
	Name() string
	// MaxBatch is how many items Send wants at a time.
	MaxBatch() int
	// Send delivers items (oldest first). newest returns the instant of the
	// newest round taken (asked anew for every request, as a round may be
	// taken meanwhile): items of that round are current, older ones are
	// replays. ack, when not nil, may be called with how many items from
	// the front are handled so far (a sender whose target does not
	// deduplicate calls it after every request); an error from it ends
	// Send with that error. Send returns how many items from the front were
	// handled (sent, or skipped because they are not for this target or can
	// never be accepted); on error the rest is retried later.
	Send(ctx context.Context, items []outbox.Item, newest func() time.Time, ack func(n int) error) (int, error)
}

// Rejected marks an item the target refuses for good (a 400 for that
// reading); it is skipped and counted, not retried.
type Rejected struct {
	Item outbox.Item
	Err  error
}

// Options are what New needs besides the uplink's section.
type Options struct {
	Log  *slog.Logger
	Zone *time.Location
	// MeterTypes maps a meter name to its type (for the legacy decimals;
	// MQTT meters: "mqtt/<format>").
	MeterTypes map[string]string
	// MeterOrder is the order of the configured meters (legacy sum lines).
	MeterOrder []string
	// File is the config file's path, for configuration errors.
	File string
	// OnReject is called for every item dropped as refused.
	OnReject func(Rejected)
	// MeterRoles maps a meter name to its household role, MeterInverted
	// to its invert (Home Assistant's sensor names).
	MeterRoles    map[string]string
	MeterInverted map[string]bool
	// Source is the logger's source name (MQTT topics, HA ids).
	Source string
	// Interval is the logger's interval (HA's expire_after).
	Interval time.Duration
	// Version is powermeter's version (HA's origin).
	Version string
}

// Closer is implemented by senders holding a connection (MQTT): the
// logger closes them when it stops.
type Closer interface {
	Close(ctx context.Context) error
}

// New builds the sender for an [[uplinks]] entry.
func New(cfg config.Uplink, index int, o Options) (Sender, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Zone == nil {
		o.Zone = time.UTC
	}
	if o.OnReject == nil {
		o.OnReject = func(Rejected) {}
	}
	if o.Source == "" {
		o.Source = "home"
	}
	if cfg.Protocol == "mqtt" {
		return newMQTT(cfg, index, o)
	}
	client, err := httpClient(cfg, index, o.Log)
	if err != nil {
		return nil, err
	}
	switch cfg.Protocol {
	case "legacy", "":
		l := newLegacy(cfg, client, o)
		if l.cfg.Combine != "each" && len(l.meters) > maxSumMeters {
			return nil, &config.Error{File: o.File, Key: fmt.Sprintf("uplinks[%d].meters", index), Msg: fmt.Sprintf("%d meters in one legacy line (combine = %q): a stats line holds at most %d; list at most %d meters here, use combine = \"each\", or split them over several uplinks", len(l.meters), "sum", legacy.MaxFields-4, maxSumMeters)}
		}
		return l, nil
	case "native":
		return newNative(cfg, client, o), nil
	}
	return nil, &config.Error{Key: fmt.Sprintf("uplinks[%d].protocol", index), Msg: fmt.Sprintf("%q: want legacy, native or mqtt", cfg.Protocol)}
}

// httpClient builds a client that verifies certificates (with ca_file as an
// extra root) unless insecure is written in the config.
func httpClient(cfg config.Uplink, index int, log *slog.Logger) (*http.Client, error) {
	tlsCfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, &config.Error{Key: fmt.Sprintf("uplinks[%d].ca_file", index), Msg: fmt.Sprintf("cannot read: %v", err)}
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, &config.Error{Key: fmt.Sprintf("uplinks[%d].ca_file", index), Msg: fmt.Sprintf("%s holds no PEM certificate", cfg.CAFile)}
		}
		tlsCfg.RootCAs = pool
	}
	if cfg.Insecure {
		log.Warn("uplink: TLS certificate checks are OFF (insecure = true): anyone on the way can read the key and change readings", "uplink", cfg.Name)
		tlsCfg.InsecureSkipVerify = true
	}
	timeout := cfg.Timeout.Duration
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsCfg,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          2,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       90 * time.Second,
	}
	// Redirects are not followed: a POST would become a GET without the
	// readings, which a PHP install answers with 200 (the readings lost
	// but acknowledged). A 3xx is a failure naming the new address.
	noRedirect := func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: noRedirect}, nil
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Code int
	Body string // shortened for messages
	// Location is where a 3xx answer points (without its query).
	Location string
	raw      []byte // the body as received (up to 64 kB)
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("server answered %d", e.Code)
	if e.Location != "" {
		msg += " (redirect to " + e.Location + "; set the uplink's url to it)"
	}
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

// do sends req and returns the body of a 2xx answer (up to 64 kB); any other
// status is a *StatusError.
func do(client *http.Client, req *http.Request) ([]byte, error) {
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil && resp.StatusCode/100 == 2 {
		return nil, fmt.Errorf("reading the answer: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(body))
		if len(msg) > 200 {
			msg = msg[:200] + "…"
		}
		se := &StatusError{Code: resp.StatusCode, Body: msg, raw: body}
		if resp.StatusCode/100 == 3 {
			// The body of a redirect repeats the new URL, query and key.
			se.Body, se.raw = "", nil
			se.Location = withoutQuery(resp.Header.Get("Location"))
		}
		return nil, se
	}
	return body, nil
}

// withoutQuery cuts the query and fragment off a URL (a key may be in it).
func withoutQuery(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		return u[:i]
	}
	return u
}

// hideURL replaces the URL in a transport error (*url.Error) by safe, so a
// key in the query never reaches a log or /status.
func hideURL(err error, safe string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = safe
	}
	return err
}

// forMeters returns a filter for the uplink's meters (all when empty).
func forMeters(names []string) func(string) bool {
	if len(names) == 0 {
		return func(string) bool { return true }
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return func(m string) bool { return set[m] }
}
