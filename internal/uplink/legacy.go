package uplink

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/outbox"
)

// legacySender speaks the original logger's log.php protocol: one stats
// line per request.
type legacySender struct {
	cfg    config.Uplink
	client *http.Client
	opts   Options
	want   func(string) bool
	order  map[string]int
	base   string
	log    *slog.Logger
}

// linesPerSend bounds the replayed lines sent between two cursor updates,
// so a crash repeats at most this many lines to a receiver that does not
// deduplicate (a PHP install); current lines are acknowledged one by one.
const linesPerSend = 32

func newLegacy(cfg config.Uplink, client *http.Client, o Options) *legacySender {
	order := map[string]int{}
	for i, m := range o.MeterOrder {
		order[m] = i
	}
	base := cfg.URL
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return &legacySender{cfg: cfg, client: client, opts: o, want: forMeters(cfg.Meters), order: order, base: base, log: o.Log}
}

func (l *legacySender) Name() string  { return l.cfg.Name }
func (l *legacySender) MaxBatch() int { return 256 }

func (l *legacySender) Send(ctx context.Context, items []outbox.Item, newest time.Time) (int, error) {
	done, lines := 0, 0
	for i := 0; i < len(items) && lines < linesPerSend; {
		if !l.want(items[i].Meter) {
			i++
			done = i
			continue
		}
		group := []outbox.Item{items[i]}
		j := i + 1
		if l.cfg.Combine != "each" {
			for j < len(items) && items[j].Reading.Time.Equal(items[i].Reading.Time) && items[j].Reading.Backfilled == items[i].Reading.Backfilled {
				if l.want(items[j].Meter) {
					group = append(group, items[j])
				}
				j++
			}
			// The round may go on in the next batch: send it complete then.
			if j == len(items) && len(items) >= l.MaxBatch() && i > 0 {
				break
			}
		}
		line, err := l.Line(group)
		if err != nil {
			for _, it := range group {
				l.opts.OnReject(Rejected{Item: it, Err: err})
			}
			l.log.Error("uplink: reading cannot be written as a stats line; skipped", "uplink", l.cfg.Name, "time", group[0].Reading.Time, "err", err)
			i, done = j, j
			continue
		}
		live := !group[0].Reading.Backfilled && group[0].Reading.Time.Equal(newest)
		if err := l.post(ctx, line, live); err != nil {
			return done, fmt.Errorf("uplink %s: sending %s: %w", l.cfg.Name, line, err)
		}
		i, done = j, j
		lines++
		if live {
			// Current lines are acknowledged one by one: a crash never
			// repeats one to a receiver that does not deduplicate.
			break
		}
	}
	return done, nil
}

// Line writes the stats line for the readings of one round, as the
// original logger did: one reading as power,temperature[,values…];
// several as sum,temperature,p1,p2,… (meters in config order).
func (l *legacySender) Line(group []outbox.Item) (string, error) {
	if len(group) == 0 {
		return "", fmt.Errorf("no readings")
	}
	t := group[0].Reading.Time
	if len(group) == 1 {
		r := group[0].Reading
		return legacy.Format(t, l.opts.Zone, r.Power, l.temperature(group[0]), l.tempDecimals(group[0].Meter), r.Phases)
	}
	sorted := append([]outbox.Item(nil), group...)
	sort.SliceStable(sorted, func(a, b int) bool {
		oa, ob := l.order[sorted[a].Meter], l.order[sorted[b].Meter]
		if oa != ob {
			return oa < ob
		}
		return sorted[a].Reading.Device < sorted[b].Reading.Device
	})
	var sum float64
	var temp *float64
	dec := 2
	extra := make([]float64, 0, len(sorted))
	for _, it := range sorted {
		sum += it.Reading.Power
		extra = append(extra, it.Reading.Power)
		if t := l.temperature(it); temp == nil && t != nil {
			temp = t
			dec = l.tempDecimals(it.Meter)
		}
	}
	return legacy.Format(t, l.opts.Zone, sum, temp, dec, extra)
}

// temperature is what the original sent in the temperature field: none
// for a Shelly energy meter with phases (3EM: total,,L1,L2,L3), whose
// temperature is the device's own, not the room's.
func (l *legacySender) temperature(it outbox.Item) *float64 {
	if l.opts.MeterTypes[it.Meter] == "shelly" && len(it.Reading.Phases) > 0 {
		return nil
	}
	return it.Reading.Temperature
}

// tempDecimals: FRITZ!DECT reports 0.1 °C, the original wrote 1 decimal;
// Shelly and the others 2.
func (l *legacySender) tempDecimals(meter string) int {
	if l.opts.MeterTypes[meter] == "fritzdect" {
		return 1
	}
	return 2
}

// post sends one line: live lines as configured (GET like the ESP8266, or
// POST); replays always as POST with buffer=1 so the PHP app does not show
// them as the current value.
func (l *legacySender) post(ctx context.Context, line string, live bool) error {
	var req *http.Request
	var err error
	if live && l.cfg.Method != "post" {
		// The stats go unescaped, as the ESP8266 sent them.
		u := l.base + "log.php?key=" + url.QueryEscape(l.cfg.Key) + "&stats=" + line
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	} else {
		body := "stats=" + url.QueryEscape(line) + "&key=" + url.QueryEscape(l.cfg.Key)
		if !live {
			body += "&buffer=1"
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, l.base+"log.php", strings.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	}
	if err != nil {
		return fmt.Errorf("building the request: %w", err)
	}
	req.Header.Set("User-Agent", "powermeter")
	_, err = do(l.client, req)
	return err
}
