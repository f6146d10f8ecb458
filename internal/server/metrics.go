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
	ingested  *sourceCounts          // stored and present, by source and protocol
	conflicts *prometheus.CounterVec // source, protocol
	refused   *prometheus.CounterVec // protocol, reason
	wrongKeys prometheus.Counter
	latency   *prometheus.HistogramVec // route, code

	// label lookups cost a hash and a lock per request: the hot ones are
	// looked up once
	latencyBy sync.Map // latencyKey → prometheus.Observer
}

// sourceCounts keeps counters per source — several per source, its
// columns, each a series of one metric with the source's name and the
// column's further label values — and exposes them as a collector.
//
// It keeps plain counters in one flat array rather than a Prometheus
// counter per series: with 100 000 sources the ingest counters were
// 400 000 counters with their label pairs, 216 MB of heap in 4.7 million
// objects, which every garbage collection walked (a quarter of the
// server's CPU while ingesting). The array holds no pointers, so the
// collector skips it.
type sourceCounts struct {
	cols []countColumn

	names  []string         // the sources exposed from the start
	index  map[string]int32 // source → position in names
	counts []atomic.Uint64  // per source, per column

	mu    sync.Mutex
	extra map[string][]atomic.Uint64 // other sources (none in a running server)
}

// countColumn is one counter of every source: its metric and the label
// values after the source's name.
type countColumn struct {
	desc   *prometheus.Desc
	labels []string
}

func newSourceCounts(cols ...countColumn) *sourceCounts {
	return &sourceCounts{cols: cols, index: map[string]int32{}, extra: map[string][]atomic.Uint64{}}
}

// prepare sets the sources whose series are exposed from the start;
// called once, before counting.
func (c *sourceCounts) prepare(sources []string) {
	c.names = sources
	c.index = make(map[string]int32, len(sources))
	for i, n := range sources {
		c.index[n] = int32(i)
	}
	c.counts = make([]atomic.Uint64, len(c.cols)*len(sources))
}

// add adds n to column col of source.
func (c *sourceCounts) add(source string, col int, n uint64) {
	if n == 0 {
		return
	}
	if i, ok := c.index[source]; ok {
		c.counts[int(i)*len(c.cols)+col].Add(n)
		return
	}
	c.mu.Lock()
	e := c.extra[source]
	if e == nil {
		e = make([]atomic.Uint64, len(c.cols))
		c.extra[source] = e
	}
	c.mu.Unlock()
	e[col].Add(n)
}

func (c *sourceCounts) Describe(ch chan<- *prometheus.Desc) {
	seen := map[*prometheus.Desc]bool{}
	for _, col := range c.cols {
		if !seen[col.desc] {
			seen[col.desc] = true
			ch <- col.desc
		}
	}
}

func (c *sourceCounts) Collect(ch chan<- prometheus.Metric) {
	emit := func(name string, vs []atomic.Uint64) {
		for k, col := range c.cols {
			ch <- prometheus.MustNewConstMetric(col.desc, prometheus.CounterValue, float64(vs[k].Load()), append([]string{name}, col.labels...)...)
		}
	}
	for i, n := range c.names {
		emit(n, c.counts[i*len(c.cols):(i+1)*len(c.cols)])
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for n, e := range c.extra {
		emit(n, e)
	}
}

// ingestProtocols are the protocols counted, in the order of the ingest
// counters' columns (stored, present per protocol).
var ingestProtocols = [...]string{"legacy", "native"}

// newIngestCounts counts the readings stored and present per source and
// protocol: powermeter_readings_stored_total and
// powermeter_readings_present_total{source,protocol}, with a series for
// every configured source from the start.
func newIngestCounts() *sourceCounts {
	stored := prometheus.NewDesc("powermeter_readings_stored_total",
		"Readings stored (new), by source and protocol.", []string{"source", "protocol"}, nil)
	present := prometheus.NewDesc("powermeter_readings_present_total",
		"Readings received that were stored already (replays, duplicates).", []string{"source", "protocol"}, nil)
	var cols []countColumn
	for _, p := range ingestProtocols {
		cols = append(cols, countColumn{stored, []string{p}}, countColumn{present, []string{p}})
	}
	return newSourceCounts(cols...)
}

// countIngest counts stored and present readings of source and protocol.
func (m *metrics) countIngest(source, protocol string, stored, present int) {
	p := slices.Index(ingestProtocols[:], protocol)
	if p < 0 {
		panic("metrics: unknown protocol " + protocol)
	}
	m.ingested.add(source, 2*p, uint64(max(stored, 0)))
	m.ingested.add(source, 2*p+1, uint64(max(present, 0)))
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
