package promexp

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/powermeter/powermeter/internal/logger"
)

// The logger's health metrics.
var (
	meterErrorsDesc = prometheus.NewDesc("powermeter_meter_errors_total",
		"Failed meter reads by meter and kind (unreachable, auth, blocked, bad_answer, not_present, busy, config).", []string{"meter", "kind"}, nil)
	meterReadsDesc = prometheus.NewDesc("powermeter_meter_reads_total",
		"Successful meter reads by meter.", []string{"meter"}, nil)
	roundsDesc = prometheus.NewDesc("powermeter_rounds_total",
		"Rounds taken.", nil, nil)
	skippedDesc = prometheus.NewDesc("powermeter_rounds_skipped_total",
		"Rounds not taken, by reason: late (a round took longer than the interval), clock_back, clock_unset.", []string{"reason"}, nil)
	backlogDesc = prometheus.NewDesc("powermeter_outbox_backlog_readings",
		"Readings waiting in the outbox, per uplink.", []string{"uplink"}, nil)
	sentDesc = prometheus.NewDesc("powermeter_uplink_sent_readings_total",
		"Readings delivered, per uplink.", []string{"uplink"}, nil)
	rejectedDesc = prometheus.NewDesc("powermeter_uplink_rejected_readings_total",
		"Readings the target refused for good, per uplink.", []string{"uplink"}, nil)
	lastSentDesc = prometheus.NewDesc("powermeter_uplink_last_success_timestamp_seconds",
		"Time of the uplink's last successful send (Unix seconds).", []string{"uplink"}, nil)
	failingDesc = prometheus.NewDesc("powermeter_uplink_failing",
		"1 while the uplink's last attempt failed.", []string{"uplink"}, nil)
	outboxDroppedDesc = prometheus.NewDesc("powermeter_outbox_dropped_readings_total",
		"Readings dropped because the outbox was full.", nil, nil)
)

// Statuser is what the logger collector reads (logger.Logger).
type Statuser interface {
	Status() logger.Status
}

type loggerCollector struct {
	lg     Statuser
	source string
}

func (c *loggerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{meterErrorsDesc, meterReadsDesc, roundsDesc, skippedDesc, backlogDesc, sentDesc, rejectedDesc, lastSentDesc, failingDesc, outboxDroppedDesc,
		PowerDesc, EnergyImportDesc, EnergyExportDesc, TemperatureDesc, VoltageDesc, LastReadingDesc} {
		ch <- d
	}
}

func (c *loggerCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.lg.Status()
	for _, m := range st.Meters {
		for kind, n := range m.ErrorsByKind {
			ch <- prometheus.MustNewConstMetric(meterErrorsDesc, prometheus.CounterValue, float64(n), m.Name, kind)
		}
		ch <- prometheus.MustNewConstMetric(meterReadsDesc, prometheus.CounterValue, float64(m.Reads), m.Name)
		for _, r := range m.LastReadings {
			Emit(ch, c.source, r)
		}
	}
	ch <- prometheus.MustNewConstMetric(roundsDesc, prometheus.CounterValue, float64(st.Counters.Rounds))
	ch <- prometheus.MustNewConstMetric(skippedDesc, prometheus.CounterValue, float64(st.Counters.MissedRounds), "late")
	ch <- prometheus.MustNewConstMetric(skippedDesc, prometheus.CounterValue, float64(st.Counters.ClockBack), "clock_back")
	ch <- prometheus.MustNewConstMetric(skippedDesc, prometheus.CounterValue, float64(st.Counters.HeldRounds), "clock_unset")
	ch <- prometheus.MustNewConstMetric(outboxDroppedDesc, prometheus.CounterValue, float64(st.Counters.OutboxDropped))
	for _, u := range st.Uplinks {
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(u.Backlog), u.Name)
		ch <- prometheus.MustNewConstMetric(sentDesc, prometheus.CounterValue, float64(u.Sent), u.Name)
		ch <- prometheus.MustNewConstMetric(rejectedDesc, prometheus.CounterValue, float64(u.Rejected), u.Name)
		if !u.LastSentAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(lastSentDesc, prometheus.GaugeValue, float64(u.LastSentAt.UnixMilli())/1000, u.Name)
		}
		failing := 0.0
		if u.Failing {
			failing = 1
		}
		ch <- prometheus.MustNewConstMetric(failingDesc, prometheus.GaugeValue, failing, u.Name)
	}
}

// Logger is the logger's registry: health, its devices' newest readings
// (source = the logger's source) and the Go runtime.
type Logger struct {
	Registry *prometheus.Registry
	rounds   prometheus.Histogram
}

// NewLogger builds the registry for lg.
func NewLogger(lg Statuser, source string) *Logger {
	l := &Logger{
		Registry: prometheus.NewRegistry(),
		rounds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "powermeter_round_duration_seconds",
			Help:    "How long a round (reading every meter and storing the readings) took.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}),
	}
	l.Registry.MustRegister(&loggerCollector{lg: lg, source: source}, l.rounds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return l
}

// ObserveRound records a round's duration (for logger.ObserveRounds).
func (l *Logger) ObserveRound(d time.Duration) { l.rounds.Observe(d.Seconds()) }

// Handler serves the registry in Prometheus' text format.
func (l *Logger) Handler() http.Handler {
	return promhttp.HandlerFor(l.Registry, promhttp.HandlerOpts{})
}
