package uplink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	// meters are the meters this uplink carries, in config order: the
	// fields of a sum line.
	meters []string
	base   string
	log    *slog.Logger
}

// maxSumMeters is the most meters a sum line can carry: date, time, sum and
// temperature leave 12 of the 16 fields.
const maxSumMeters = legacy.MaxFields - 4

func newLegacy(cfg config.Uplink, client *http.Client, o Options) *legacySender {
	want := forMeters(cfg.Meters)
	order := map[string]int{}
	var meters []string
	for i, m := range o.MeterOrder {
		order[m] = i
		if want(m) {
			meters = append(meters, m)
		}
	}
	base := cfg.URL
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return &legacySender{cfg: cfg, client: client, opts: o, want: want, order: order, meters: meters, base: base, log: o.Log}
}

func (l *legacySender) Name() string  { return l.cfg.Name }
func (l *legacySender) MaxBatch() int { return 256 }

// Send sends one line per round. A PHP install does not deduplicate, so
// every line is acknowledged (ack) as soon as it was taken: a crash repeats
// none. Whether a line is current or a replay is decided for each line.
func (l *legacySender) Send(ctx context.Context, items []outbox.Item, newest func() time.Time, ack func(int) error) (int, error) {
	done := 0
	for i := 0; i < len(items); {
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
		live := !group[0].Reading.Backfilled && group[0].Reading.Time.Equal(newest())
		if err := l.post(ctx, line, live); err != nil {
			var se *StatusError
			if !errors.As(err, &se) || se.Code != http.StatusConflict {
				return done, fmt.Errorf("uplink %s: sending %s: %w", l.cfg.Name, line, err)
			}
			// Our server keeps the first reading of a second and says so
			// with 409: sending the line again cannot change that.
			for _, it := range group {
				l.opts.OnReject(Rejected{Item: it, Err: fmt.Errorf("uplink %s: the server keeps another reading for this second: %s", l.cfg.Name, se.Body)})
			}
			l.log.Warn("uplink: the server keeps another reading for this second; line skipped", "uplink", l.cfg.Name, "line", line)
		}
		i, done = j, j
		if ack != nil {
			if err := ack(done); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// Line writes the stats line for the readings of one round, as the
// original logger did: for an uplink of one meter (or combine = "each"),
// one reading as power,temperature[,values…]; for an uplink of several meters (or a meter
// with several devices) sum,temperature,p1,p2,… with one field per meter
// in config order, empty for a meter missing in the round, so the fields
// keep their meaning.
func (l *legacySender) Line(group []outbox.Item) (string, error) {
	if len(group) == 0 {
		return "", fmt.Errorf("no readings")
	}
	t := group[0].Reading.Time
	if len(group) == 1 && (len(l.meters) <= 1 || l.cfg.Combine == "each") {
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
	// One field per reading of a present meter, an empty one (nil) per
	// missing meter; readings of meters outside the list (not expected) go
	// last.
	byMeter := map[string][]outbox.Item{}
	for _, it := range sorted {
		byMeter[it.Meter] = append(byMeter[it.Meter], it)
	}
	var fields []*float64
	for _, m := range l.meters {
		its := byMeter[m]
		delete(byMeter, m)
		if len(its) == 0 {
			fields = append(fields, nil)
		}
		for _, it := range its {
			fields = append(fields, &it.Reading.Power)
		}
	}
	for _, it := range sorted {
		if _, rest := byMeter[it.Meter]; rest {
			fields = append(fields, &it.Reading.Power)
		}
	}
	if 4+len(fields) > legacy.MaxFields {
		return "", fmt.Errorf("stats line: %d values, at most %d", 2+len(fields), legacy.MaxFields-2)
	}
	var sum float64
	var temp *float64
	dec := 2
	for _, it := range sorted {
		sum += it.Reading.Power
		if tv := l.temperature(it); temp == nil && tv != nil {
			temp = tv
			dec = l.tempDecimals(it.Meter)
		}
	}
	head, err := legacy.Format(t, l.opts.Zone, sum, temp, dec, nil)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	b.WriteString(head)
	if temp == nil {
		b.WriteByte(',')
	}
	for i, f := range fields {
		b.WriteByte(',')
		if f == nil {
			continue
		}
		v, err := value(*f, i+1)
		if err != nil {
			return "", err
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// value writes a value field with 2 decimals, refusing what the receiver
// would refuse.
func value(v float64, n int) (string, error) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "", fmt.Errorf("stats line: value %d is not a number", n)
	}
	s := legacy.FormatNumber(v, 2)
	if ip, _, _ := strings.Cut(s, "."); len(ip) > 6 {
		return "", fmt.Errorf("stats line: value %d %s has more than 6 characters before the point", n, s)
	}
	return s, nil
}

// temperature is what the original sent in the temperature field: none
// for a Shelly energy meter with phases (3EM: total,,L1,L2,L3), whose
// temperature is the device's own, not the room's.
//
// An ESP-Epever charge controller's second value is the battery voltage
// (the PHP app's layout PanelP,BatteryV,BatteryI,PanelV,PanelI, with
// $unit2 = 'V').
func (l *legacySender) temperature(it outbox.Item) *float64 {
	switch l.opts.MeterTypes[it.Meter] {
	case "shelly":
		if len(it.Reading.Phases) > 0 {
			return nil
		}
	case "epever":
		return it.Reading.Voltage
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
	// A transport error names the URL, and a GET's URL holds the key; an
	// error page may echo it too.
	var se *StatusError
	if errors.As(err, &se) && l.cfg.Key != "" {
		for _, k := range []string{l.cfg.Key, url.QueryEscape(l.cfg.Key)} {
			se.Body = strings.ReplaceAll(se.Body, k, "(key)")
		}
	}
	return hideURL(err, l.base+"log.php")
}
