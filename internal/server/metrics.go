package server

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/powermeter/powermeter/internal/promexp"
)

// metrics are the server's Prometheus metrics, in a registry of its own (two
// servers in one process do not collide).
type metrics struct {
	reg       *prometheus.Registry
	ingested  *ingestCounts          // stored and present, by source and protocol
	conflicts *prometheus.CounterVec // source, protocol
	refused   *prometheus.CounterVec // protocol, reason
	wrongKeys prometheus.Counter
	latency   *prometheus.HistogramVec // route, code

	// label lookups cost a hash and a lock per request: the hot ones are
	// looked up once
	latencyBy sync.Map // latencyKey → prometheus.Observer
}

type ingestKey struct{ source, protocol string }

// ingestCounts counts the readings stored and present per source and
// protocol, exposed as powermeter_readings_stored_total and
// powermeter_readings_present_total{source,protocol} with a series for
// every configured source from the start.
//
// It keeps plain counters in one flat array rather than a Prometheus
// counter per series: with 100 000 sources those were 400 000 counters
// with their label pairs, 216 MB of heap in 4.7 million objects, which
// every garbage collection walked (a quarter of the server's CPU while
// ingesting). The array holds no pointers, so the collector skips it.
type ingestCounts struct {
	stored, present *prometheus.Desc

	names  []string         // configured sources
	index  map[string]int32 // source → position in names
	counts []atomic.Uint64  // per source and protocol: stored, present

	mu    sync.Mutex
	extra map[ingestKey]*[2]atomic.Uint64 // sources not configured (none in a running server)
}

// ingestProtocols are the protocols counted, in the order of counts.
var ingestProtocols = [...]string{"legacy", "native"}

func newIngestCounts() *ingestCounts {
	return &ingestCounts{
		stored: prometheus.NewDesc("powermeter_readings_stored_total",
			"Readings stored (new), by source and protocol.", []string{"source", "protocol"}, nil),
		present: prometheus.NewDesc("powermeter_readings_present_total",
			"Readings received that were stored already (replays, duplicates).", []string{"source", "protocol"}, nil),
		index: map[string]int32{},
		extra: map[ingestKey]*[2]atomic.Uint64{},
	}
}

// prepare sets the configured sources; called once, before serving.
func (c *ingestCounts) prepare(sources []string) {
	c.names = sources
	c.index = make(map[string]int32, len(sources))
	for i, n := range sources {
		c.index[n] = int32(i)
	}
	c.counts = make([]atomic.Uint64, 2*len(ingestProtocols)*len(sources))
}

// add counts stored and present readings of source and protocol.
func (c *ingestCounts) add(source, protocol string, stored, present int) {
	p := slices.Index(ingestProtocols[:], protocol)
	i, ok := c.index[source]
	if !ok || p < 0 {
		c.mu.Lock()
		e := c.extra[ingestKey{source, protocol}]
		if e == nil {
			e = new([2]atomic.Uint64)
			c.extra[ingestKey{source, protocol}] = e
		}
		c.mu.Unlock()
		e[0].Add(uint64(stored))
		e[1].Add(uint64(present))
		return
	}
	at := 2 * (int(i)*len(ingestProtocols) + p)
	if stored > 0 {
		c.counts[at].Add(uint64(stored))
	}
	if present > 0 {
		c.counts[at+1].Add(uint64(present))
	}
}

func (c *ingestCounts) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.stored
	ch <- c.present
}

func (c *ingestCounts) Collect(ch chan<- prometheus.Metric) {
	for i, n := range c.names {
		for p, proto := range ingestProtocols {
			at := 2 * (i*len(ingestProtocols) + p)
			ch <- prometheus.MustNewConstMetric(c.stored, prometheus.CounterValue, float64(c.counts[at].Load()), n, proto)
			ch <- prometheus.MustNewConstMetric(c.present, prometheus.CounterValue, float64(c.counts[at+1].Load()), n, proto)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, e := range c.extra {
		ch <- prometheus.MustNewConstMetric(c.stored, prometheus.CounterValue, float64(e[0].Load()), k.source, k.protocol)
		ch <- prometheus.MustNewConstMetric(c.present, prometheus.CounterValue, float64(e[1].Load()), k.source, k.protocol)
	}
}

type latencyKey struct {
	route string
	code  int
}

func newMetrics() *metrics {
	m := &metrics{
		reg:      prometheus.NewRegistry(),
		ingested: newIngestCounts(),
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
	m.reg.MustRegister(m.ingested, m.conflicts, m.refused, m.wrongKeys, m.latency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// prepareIngest sets the configured sources, whose counters are exposed
// from the start. It is called once, before serving starts.
func (m *metrics) prepareIngest(sources []string) {
	m.ingested.prepare(sources)
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
