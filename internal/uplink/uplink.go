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
	"os"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/outbox"
)

// Sender delivers queued readings to one target.
type Sender interface {
	// Name is the consumer name in the outbox.
	Name() string
	// MaxBatch is how many items Send wants at a time.
	MaxBatch() int
	// Send delivers items (oldest first). newest is the instant of the
	// newest round taken: items of that round are current, older ones are
	// replays. It returns how many items from the front were handled (sent,
	// or skipped because they are not for this target or can never be
	// accepted); on error the rest is retried later.
	Send(ctx context.Context, items []outbox.Item, newest time.Time) (int, error)
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
	// MeterTypes maps a meter name to its type (for the legacy decimals).
	MeterTypes map[string]string
	// MeterOrder is the order of the configured meters (legacy sum lines).
	MeterOrder []string
	// OnReject is called for every item dropped as refused.
	OnReject func(Rejected)
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
	client, err := httpClient(cfg, index, o.Log)
	if err != nil {
		return nil, err
	}
	switch cfg.Protocol {
	case "legacy", "":
		return newLegacy(cfg, client, o), nil
	case "native":
		return newNative(cfg, client, o), nil
	}
	return nil, &config.Error{Key: fmt.Sprintf("uplinks[%d].protocol", index), Msg: fmt.Sprintf("%q: want legacy or native", cfg.Protocol)}
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
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

// StatusError is a non-2xx answer.
type StatusError struct {
	Code int
	Body string
}

func (e *StatusError) Error() string {
	if e.Body != "" {
		return fmt.Sprintf("server answered %d: %s", e.Code, e.Body)
	}
	return fmt.Sprintf("server answered %d", e.Code)
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
		return nil, &StatusError{Code: resp.StatusCode, Body: msg}
	}
	return body, nil
}

// isClientError reports whether err is a 400/422 answer about the request's
// content (not auth, not overload): the data itself is refused.
func isClientError(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Code == http.StatusBadRequest || se.Code == http.StatusUnprocessableEntity)
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
