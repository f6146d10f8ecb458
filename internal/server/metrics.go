package server

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/powermeter/powermeter/internal/promexp"
)

// metrics are the server's Prometheus metrics, in a registry of its own (two
// servers in one process do not collide).
type metrics struct {
	reg       *prometheus.Registry
	stored    *prometheus.CounterVec // source, protocol
	present   *prometheus.CounterVec // source, protocol
	conflicts *prometheus.CounterVec // source, protocol
	refused   *prometheus.CounterVec // protocol, reason
	wrongKeys prometheus.Counter
	latency   *prometheus.HistogramVec // route, code

	// label lookups cost a hash and a lock per request: the hot ones are
	// looked up once
	ingestBy  map[ingestKey]*ingestCounters // filled in New, read-only after
	latencyBy sync.Map                      // latencyKey → prometheus.Observer
}

type ingestKey struct{ source, protocol string }

// ingestCounters are the stored and present counters of one source and
// protocol.
type ingestCounters struct{ stored, present prometheus.Counter }

type latencyKey struct {
	route string
	code  int
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		stored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "powermeter_readings_stored_total",
			Help: "Readings stored (new), by source and protocol.",
		}, []string{"source", "protocol"}),
		present: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "powermeter_readings_present_total",
			Help: "Readings received that were stored already (replays, duplicates).",
		}, []string{"source", "protocol"}),
		conflicts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "powermeter_readings_conflicts_total",
			Help: "Readings received for a device and second that holds other values already (the first is kept).",
		}, []string{"source", "protocol"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "powermeter_requests_refused_total",
			Help: "Ingest requests refused, by protocol and reason.",
		}, []string{"protocol", "reason"}),
		wrongKeys: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "powermeter_wrong_keys_total",
			Help: "Requests with a key or token that matches nothing.",
		}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "powermeter_http_request_duration_seconds",
			Help:    "HTTP request latency by route and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route", "code"}),
	}
	m.ingestBy = map[ingestKey]*ingestCounters{}
	m.reg.MustRegister(m.stored, m.present, m.conflicts, m.refused, m.wrongKeys, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// prepareIngest looks up the counters of a source for both protocols.
// It is called for every configured source before serving starts.
func (m *metrics) prepareIngest(source string) {
	for _, p := range []string{"legacy", "native"} {
		m.ingestBy[ingestKey{source, p}] = &ingestCounters{
			stored:  m.stored.WithLabelValues(source, p),
			present: m.present.WithLabelValues(source, p),
		}
	}
}

// ingest returns the counters of source and protocol.
func (m *metrics) ingest(source, protocol string) *ingestCounters {
	if c, ok := m.ingestBy[ingestKey{source, protocol}]; ok {
		return c
	}
	return &ingestCounters{
		stored:  m.stored.WithLabelValues(source, protocol),
		present: m.present.WithLabelValues(source, protocol),
	}
}

// observeLatency records the duration of a request of route answered
// with code.
func (m *metrics) observeLatency(route string, code int, seconds float64) {
	k := latencyKey{route, code}
	o, ok := m.latencyBy.Load(k)
	if !ok {
		o, _ = m.latencyBy.LoadOrStore(k, m.latency.WithLabelValues(route, strconv.Itoa(code)))
	}
	o.(prometheus.Observer).Observe(seconds)
}

// latestAll is the newest reading of every device of every source, for
// the per-device metrics.
func (s *Server) latestAll(ctx context.Context) ([]promexp.Source, error) {
	infos, err := s.st.Sources(ctx)
	if err != nil {
		return nil, fmt.Errorf("listing the sources: %w", err)
	}
	out := make([]promexp.Source, 0, len(infos))
	for _, in := range infos {
		rs, err := s.st.Latest(ctx, in.Name)
		if err != nil {
			return out, fmt.Errorf("newest readings of %s: %w", in.Name, err)
		}
		out = append(out, promexp.Source{Name: in.Name, Readings: rs})
	}
	return out, nil
}
