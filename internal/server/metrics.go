package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the server's Prometheus metrics, in a registry of its own (two
// servers in one process do not collide).
type metrics struct {
	reg       *prometheus.Registry
	stored    *prometheus.CounterVec // source, protocol
	present   *prometheus.CounterVec // source, protocol
	refused   *prometheus.CounterVec // protocol, reason
	wrongKeys prometheus.Counter
	latency   *prometheus.HistogramVec // route, code
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
	m.reg.MustRegister(m.stored, m.present, m.refused, m.wrongKeys, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
