// Package promexp defines powermeter's Prometheus metrics once: per
// device the newest power, energy counters, temperature, voltage and
// reading time; for the logger meter errors by kind, round durations,
// skipped rounds, the outbox backlog per uplink and the last successful
// send. promreg exposes them through prometheus/client_golang (server and
// full build); Lean writes the same text format itself for the loggeronly
// build (client_golang would add 3.4 MB to the binary and 2 MB to the
// resident memory of a router).
//
// Names follow Prometheus' rules: base units (watts, celsius, volts,
// seconds; energy in watt_hours as the devices count it), _total for
// counters, _timestamp_seconds for instants.
package promexp

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/logger"
	"github.com/powermeter/powermeter/internal/reading"
)

// The metric kinds.
const (
	Gauge     = "gauge"
	Counter   = "counter"
	Histogram = "histogram"
)

// Sample is one series of a family.
type Sample struct {
	Labels []string // name, value, name, value …
	Value  float64
}

// Family is one metric family: what both outputs (client_golang's
// registry in the full build, the plain text writer in the loggeronly
// build) are made from, so a name is defined once.
type Family struct {
	Name, Help, Type string
	Samples          []Sample
	Hist             *HistSnapshot // Type histogram
}

// Source is the newest reading of every device of one source.
type Source struct {
	Name     string
	Readings []reading.Reading
}

// DeviceFamilies are the per-device metrics of the newest readings.
func DeviceFamilies(srcs []Source) []Family {
	fams := []Family{
		{Name: "powermeter_power_watts", Help: "Active power of the device's newest reading in W; negative is feed-in (export).", Type: Gauge},
		{Name: "powermeter_energy_import_watt_hours_total", Help: "The device's own import energy counter in Wh (it may reset, e.g. a Shelly Gen1 on reboot).", Type: Counter},
		{Name: "powermeter_energy_export_watt_hours_total", Help: "The device's own export (feed-in) energy counter in Wh.", Type: Counter},
		{Name: "powermeter_temperature_celsius", Help: "Temperature of the device's newest reading in °C.", Type: Gauge},
		{Name: "powermeter_voltage_volts", Help: "Voltage of the device's newest reading in V.", Type: Gauge},
		{Name: "powermeter_last_reading_timestamp_seconds", Help: "Time of the device's newest reading (Unix seconds).", Type: Gauge},
	}
	for _, s := range srcs {
		seen := make(map[string]bool, len(s.Readings))
		for _, r := range s.Readings {
			if seen[r.Device] {
				continue // one series per device
			}
			seen[r.Device] = true
			l := []string{"source", s.Name, "device", r.Device}
			add := func(i int, v *float64) {
				if v != nil {
					fams[i].Samples = append(fams[i].Samples, Sample{l, *v})
				}
			}
			p, t := r.Power, float64(r.Time.UnixMilli())/1000
			add(0, &p)
			add(1, r.EnergyIn)
			add(2, r.EnergyOut)
			add(3, r.Temperature)
			add(4, r.Voltage)
			add(5, &t)
		}
	}
	return fams
}

// LoggerFamilies are the logger's health metrics and its devices' newest
// readings (as source).
func LoggerFamilies(st logger.Status, source string, rounds *Hist) []Family {
	var (
		errs   = Family{Name: "powermeter_meter_errors_total", Help: "Failed meter reads by meter and kind (unreachable, auth, blocked, bad_answer, not_present, busy, config).", Type: Counter}
		reads  = Family{Name: "powermeter_meter_reads_total", Help: "Successful meter reads by meter.", Type: Counter}
		backl  = Family{Name: "powermeter_outbox_backlog_readings", Help: "Readings waiting in the outbox, per uplink.", Type: Gauge}
		sent   = Family{Name: "powermeter_uplink_sent_readings_total", Help: "Readings delivered, per uplink.", Type: Counter}
		rej    = Family{Name: "powermeter_uplink_rejected_readings_total", Help: "Readings the target refused for good, per uplink.", Type: Counter}
		last   = Family{Name: "powermeter_uplink_last_success_timestamp_seconds", Help: "Time of the uplink's last successful send (Unix seconds).", Type: Gauge}
		failng = Family{Name: "powermeter_uplink_failing", Help: "1 while the uplink's last attempt failed.", Type: Gauge}
		// the logger's built-in /metrics names (internal/logger), kept
		inRow   = Family{Name: "powermeter_logger_meter_failures_in_a_row", Help: "Failed reads in a row.", Type: Gauge}
		mAuth   = Family{Name: "powermeter_logger_meter_auth_refused_since_seconds", Help: "Unix time since when the meter refuses our login (0: it does not).", Type: Gauge}
		uAuth   = Family{Name: "powermeter_logger_uplink_auth_refused_since_seconds", Help: "Unix time since when the uplink's server refuses our key with 401/403 (0: it does not).", Type: Gauge}
		unixOr0 = func(t time.Time) float64 {
			if t.IsZero() {
				return 0
			}
			return float64(t.Unix())
		}
		devs = Source{Name: source}
	)
	for _, m := range st.Meters {
		kinds := make([]string, 0, len(m.ErrorsByKind))
		for k := range m.ErrorsByKind {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		for _, k := range kinds {
			errs.Samples = append(errs.Samples, Sample{[]string{"meter", m.Name, "kind", k}, float64(m.ErrorsByKind[k])})
		}
		reads.Samples = append(reads.Samples, Sample{[]string{"meter", m.Name}, float64(m.Reads)})
		inRow.Samples = append(inRow.Samples, Sample{[]string{"meter", m.Name}, float64(m.Failures)})
		mAuth.Samples = append(mAuth.Samples, Sample{[]string{"meter", m.Name}, unixOr0(m.AuthRefusedSince)})
		devs.Readings = append(devs.Readings, m.LastReadings...)
	}
	for _, u := range st.Uplinks {
		l := []string{"uplink", u.Name}
		backl.Samples = append(backl.Samples, Sample{l, float64(u.Backlog)})
		sent.Samples = append(sent.Samples, Sample{l, float64(u.Sent)})
		rej.Samples = append(rej.Samples, Sample{l, float64(u.Rejected)})
		if !u.LastSentAt.IsZero() {
			last.Samples = append(last.Samples, Sample{l, float64(u.LastSentAt.UnixMilli()) / 1000})
		}
		f := 0.0
		if u.Failing {
			f = 1
		}
		failng.Samples = append(failng.Samples, Sample{l, f})
		uAuth.Samples = append(uAuth.Samples, Sample{l, unixOr0(u.AuthRefusedSince)})
	}
	c := st.Counters
	fams := []Family{errs, reads,
		{Name: "powermeter_rounds_total", Help: "Rounds taken.", Type: Counter, Samples: []Sample{{nil, float64(c.Rounds)}}},
		{Name: "powermeter_rounds_skipped_total", Help: "Rounds not taken, by reason: late (a round took longer than the interval), clock_back, clock_unset.", Type: Counter,
			Samples: []Sample{{[]string{"reason", "late"}, float64(c.MissedRounds)}, {[]string{"reason", "clock_back"}, float64(c.ClockBack)}, {[]string{"reason", "clock_unset"}, float64(c.HeldRounds)}}},
		{Name: "powermeter_outbox_dropped_readings_total", Help: "Readings dropped because the outbox was full.", Type: Counter, Samples: []Sample{{nil, float64(c.OutboxDropped)}}},
		backl, sent, rej, last, failng, inRow, mAuth, uAuth,
		{Name: "powermeter_logger_readings_total", Help: "Readings taken.", Type: Counter, Samples: []Sample{{nil, float64(c.Readings)}}},
	}
	if rounds != nil {
		s := rounds.Snapshot()
		fams = append(fams, Family{Name: "powermeter_round_duration_seconds", Help: "How long a round (reading every meter and storing the readings) took.", Type: Histogram, Hist: &s})
	}
	return append(fams, DeviceFamilies([]Source{devs})...)
}

// RoundBuckets are the round duration histogram's upper bounds (s).
var RoundBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Hist is a small histogram (no dependencies, for both builds).
type Hist struct {
	mu     sync.Mutex
	bounds []float64
	counts []uint64 // per bucket, not cumulative
	sum    float64
	count  uint64
}

// NewHist makes a histogram with the given upper bounds.
func NewHist(bounds []float64) *Hist {
	return &Hist{bounds: bounds, counts: make([]uint64, len(bounds))}
}

// Observe records d.
func (h *Hist) Observe(d time.Duration) {
	v := d.Seconds()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.sum += v
	h.count++
	if i := sort.SearchFloat64s(h.bounds, v); i < len(h.bounds) {
		h.counts[i]++
	}
}

// HistSnapshot is a histogram's state: cumulative counts per upper bound.
type HistSnapshot struct {
	Count   uint64
	Sum     float64
	Buckets map[float64]uint64
	Bounds  []float64
}

// Snapshot copies the state.
func (h *Hist) Snapshot() HistSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	s := HistSnapshot{Count: h.count, Sum: h.sum, Buckets: make(map[float64]uint64, len(h.bounds)), Bounds: h.bounds}
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i]
		s.Buckets[b] = cum
	}
	return s
}

// WriteText writes fams in Prometheus' text exposition format (0.0.4).
func WriteText(w io.Writer, fams []Family) error {
	var b strings.Builder
	for _, f := range fams {
		if len(f.Samples) == 0 && f.Hist == nil {
			continue
		}
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", f.Name, escapeHelp(f.Help), f.Name, f.Type)
		for _, s := range f.Samples {
			fmt.Fprintf(&b, "%s%s %s\n", f.Name, labels(s.Labels), num(s.Value))
		}
		if h := f.Hist; h != nil {
			for _, ub := range h.Bounds {
				fmt.Fprintf(&b, "%s_bucket%s %d\n", f.Name, labels([]string{"le", num(ub)}), h.Buckets[ub])
			}
			fmt.Fprintf(&b, "%s_bucket%s %d\n%s_sum %s\n%s_count %d\n", f.Name, labels([]string{"le", "+Inf"}), h.Count, f.Name, num(h.Sum), f.Name, h.Count)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func num(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

func labels(kv []string) string {
	if len(kv) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(escapeValue(kv[i+1]))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var (
	helpEsc  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEsc = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEsc.Replace(s) }
func escapeValue(s string) string { return valueEsc.Replace(s) }

// Statuser is what the logger metrics read (logger.Logger).
type Statuser interface {
	Status() logger.Status
}
