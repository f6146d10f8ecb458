package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
)

// nativeSender posts batches to <url>/api/v1/readings. The server stores a
// reading once per device and instant, so a replay never duplicates.
type nativeSender struct {
	cfg    config.Uplink
	client *http.Client
	opts   Options
	want   func(string) bool
	url    string
}

func newNative(cfg config.Uplink, client *http.Client, o Options) *nativeSender {
	base := cfg.URL
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return &nativeSender{cfg: cfg, client: client, opts: o, want: forMeters(cfg.Meters), url: base + "api/v1/readings"}
}

func (n *nativeSender) Name() string  { return n.cfg.Name }
func (n *nativeSender) MaxBatch() int { return 500 }

func (n *nativeSender) Send(ctx context.Context, items []outbox.Item, _ time.Time) (int, error) {
	return sendFiltered(items, n.want, n.opts.OnReject, func(batch []outbox.Item) (int, error) {
		return bisect(batch, n.opts.OnReject, func(b []outbox.Item) error { return n.post(ctx, b) })
	})
}

// sendFiltered validates and filters items, hands the rest to deliver and
// maps its count back to a count of items (filtered ones included).
func sendFiltered(items []outbox.Item, want func(string) bool, onReject func(Rejected), deliver func([]outbox.Item) (int, error)) (int, error) {
	idx := make([]int, 0, len(items))
	batch := make([]outbox.Item, 0, len(items))
	for i, it := range items {
		if !want(it.Meter) {
			continue
		}
		if err := it.Reading.Validate(); err != nil {
			onReject(Rejected{Item: it, Err: err})
			continue
		}
		idx = append(idx, i)
		batch = append(batch, it)
	}
	if len(batch) == 0 {
		return len(items), nil
	}
	k, err := deliver(batch)
	if k >= len(batch) {
		return len(items), err
	}
	return idx[k], err
}

// bisect sends b; when the server refuses the content (400), it halves the
// batch until the refused readings are found, skips those and sends the
// rest. It returns how many from the front were handled.
func bisect(b []outbox.Item, onReject func(Rejected), send func([]outbox.Item) error) (int, error) {
	err := send(b)
	if err == nil {
		return len(b), nil
	}
	if !isClientError(err) {
		return 0, err
	}
	if len(b) == 1 {
		onReject(Rejected{Item: b[0], Err: err})
		return 1, nil
	}
	h := len(b) / 2
	k, err := bisect(b[:h], onReject, send)
	if err != nil {
		return k, err
	}
	k2, err := bisect(b[h:], onReject, send)
	return h + k2, err
}

type nativeBody struct {
	Readings []reading.Reading `json:"readings"`
}

func (n *nativeSender) post(ctx context.Context, items []outbox.Item) error {
	body := nativeBody{Readings: make([]reading.Reading, len(items))}
	for i, it := range items {
		body.Readings[i] = it.Reading
	}
	data, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("uplink %s: encoding readings: %w", n.cfg.Name, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.url, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("uplink %s: building the request: %w", n.cfg.Name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+n.cfg.Key)
	req.Header.Set("User-Agent", "powermeter")
	if _, err := do(n.client, req); err != nil {
		return fmt.Errorf("uplink %s: posting %d readings: %w", n.cfg.Name, len(items), err)
	}
	return nil
}
