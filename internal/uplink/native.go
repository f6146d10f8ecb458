package uplink

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

func (n *nativeSender) Send(ctx context.Context, items []outbox.Item, _ func() time.Time, _ func(int) error) (int, error) {
	return sendFiltered(items, n.want, n.opts.OnReject, func(batch []outbox.Item) (int, error) {
		return n.deliver(ctx, batch)
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

// deliver posts b and returns how many from the front were handled. The
// server stores a batch all or nothing. A 400 that names bad readings
// (items[].index) drops just those, for good, and sends the rest again; a
// 400 or 422 naming none is a failure to retry (it may be about the request,
// not the data). A 413 halves the batch, rejecting nothing.
func (n *nativeSender) deliver(ctx context.Context, b []outbox.Item) (int, error) {
	err := n.post(ctx, b)
	if err == nil {
		return len(b), nil
	}
	var se *StatusError
	if !errors.As(err, &se) {
		return 0, err
	}
	switch se.Code {
	case http.StatusRequestEntityTooLarge:
		if len(b) == 1 {
			return 0, err
		}
		h := len(b) / 2
		k, err := n.deliver(ctx, b[:h])
		if err != nil || k < h {
			return k, err
		}
		k2, err := n.deliver(ctx, b[h:])
		return h + k2, err
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		bad := badItems(se.raw, len(b))
		if len(bad) == 0 {
			return 0, err
		}
		keep := make([]int, 0, len(b)-len(bad))
		rest := make([]outbox.Item, 0, len(b)-len(bad))
		for i, it := range b {
			if msg, ok := bad[i]; ok {
				n.opts.OnReject(Rejected{Item: it, Err: fmt.Errorf("uplink %s: the server refused the reading: %s", n.cfg.Name, msg)})
				continue
			}
			keep = append(keep, i)
			rest = append(rest, it)
		}
		if len(rest) == 0 {
			return len(b), nil
		}
		k, err := n.deliver(ctx, rest)
		if k >= len(rest) {
			return len(b), err
		}
		return keep[k], err
	}
	return 0, err
}

// badItems reads the readings a 400 answer names:
// {"error":…,"items":[{"index":i,"field":…,"error":…}]}. It returns none
// when the answer names none or names one outside the batch.
func badItems(body []byte, n int) map[int]string {
	var ans struct {
		Items []struct {
			Index *int   `json:"index"`
			Field string `json:"field"`
			Error string `json:"error"`
		} `json:"items"`
	}
	if json.Unmarshal(body, &ans) != nil {
		return nil
	}
	bad := make(map[int]string, len(ans.Items))
	for _, it := range ans.Items {
		if it.Index == nil || *it.Index < 0 || *it.Index >= n {
			return nil
		}
		msg := it.Error
		if it.Field != "" {
			msg = it.Field + ": " + msg
		}
		bad[*it.Index] = msg
	}
	return bad
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
		err = hideURL(err, n.url)
		return fmt.Errorf("uplink %s: posting %d readings: %w", n.cfg.Name, len(items), err)
	}
	return nil
}
