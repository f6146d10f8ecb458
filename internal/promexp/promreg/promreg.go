// Package promreg exposes promexp's metric families through
// prometheus/client_golang: the per-device collector of the server's
// /metrics and the logger's registry (with the Go runtime) of the full
// build.
package promreg

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	px "github.com/powermeter/powermeter/internal/promexp"
)

// LatestFunc returns the newest readings, per source.
type LatestFunc func(ctx context.Context) ([]px.Source, error)

// families is a collector of families made at scrape time (nothing kept
// between scrapes): it is unchecked (no Describe), as the set of series
// follows the devices.
type families struct {
	make func() []px.Family
}

func (c families) Describe(chan<- *prometheus.Desc) {}

func (c families) Collect(ch chan<- prometheus.Metric) {
	for _, f := range c.make() {
		emit(ch, f)
	}
}

// emit sends a family's samples as const metrics.
func emit(ch chan<- prometheus.Metric, f px.Family) {
	if f.Hist != nil {
		d := prometheus.NewDesc(f.Name, f.Help, nil, nil)
		ch <- prometheus.MustNewConstHistogram(d, f.Hist.Count, f.Hist.Sum, f.Hist.Buckets)
		return
	}
	vt := prometheus.GaugeValue
	if f.Type == px.Counter {
		vt = prometheus.CounterValue
	}
	descs := map[string]*prometheus.Desc{}
	for _, s := range f.Samples {
		names := make([]string, 0, len(s.Labels)/2)
		values := make([]string, 0, len(s.Labels)/2)
		for i := 0; i+1 < len(s.Labels); i += 2 {
			names = append(names, s.Labels[i])
			values = append(values, s.Labels[i+1])
		}
		key := ""
		for _, n := range names {
			key += n + "\x00"
		}
		d := descs[key]
		if d == nil {
			d = prometheus.NewDesc(f.Name, f.Help, names, nil)
			descs[key] = d
		}
		ch <- prometheus.MustNewConstMetric(d, vt, s.Value, values...)
	}
}

// NewReadings builds the per-device collector for the server.
func NewReadings(latest LatestFunc, log *slog.Logger) prometheus.Collector {
	if log == nil {
		log = slog.Default()
	}
	errs := prometheus.NewCounter(prometheus.CounterOpts{Name: "powermeter_readings_scrape_errors_total", Help: "Scrapes whose newest readings could not be read."})
	return readings{families{func() []px.Family {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srcs, err := latest(ctx)
		if err != nil {
			errs.Inc()
			log.Warn("metrics: reading the newest readings", "err", err)
		}
		return px.DeviceFamilies(srcs)
	}}, errs}
}

type readings struct {
	families
	errs prometheus.Counter
}

func (r readings) Collect(ch chan<- prometheus.Metric) {
	r.families.Collect(ch)
	ch <- r.errs
}

// Logger is the logger's registry: health, its devices' newest readings
// (source = the logger's source) and the Go runtime.
type Logger struct {
	Registry *prometheus.Registry
	rounds   *px.Hist
}

// NewLogger builds the registry for lg.
func NewLogger(lg px.Statuser, source string) *Logger {
	l := &Logger{Registry: prometheus.NewRegistry(), rounds: px.NewHist(px.RoundBuckets)}
	l.Registry.MustRegister(families{func() []px.Family { return px.LoggerFamilies(lg.Status(), source, l.rounds) }},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return l
}

// ObserveRound records a round's duration (for logger.ObserveRounds).
func (l *Logger) ObserveRound(d time.Duration) { l.rounds.Observe(d) }

// Handler serves the registry in Prometheus' text format.
func (l *Logger) Handler() http.Handler {
	return promhttp.HandlerFor(l.Registry, promhttp.HandlerOpts{})
}
