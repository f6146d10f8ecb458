// Package promexp exposes powermeter's readings and the logger's health as
// Prometheus metrics (prometheus/client_golang): per device the newest
// power, energy counters, temperature, voltage and reading time, and for
// the logger meter errors by kind, round durations, skipped rounds, the
// outbox backlog per uplink and the last successful send. The server adds
// the readings collector to its /metrics; the logger serves its own
// registry on its status listener.
//
// Names follow Prometheus' rules: base units (watts, watt-hours, celsius,
// volts, seconds), _total for counters, _timestamp_seconds for instants.
package promexp

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/powermeter/powermeter/internal/reading"
)

// Source is the newest reading of every device of one source.
type Source struct {
	Name     string
	Readings []reading.Reading
}

// LatestFunc returns the newest readings, per source.
type LatestFunc func(ctx context.Context) ([]Source, error)

var deviceLabels = []string{"source", "device"}

// The per-device metrics.
var (
	PowerDesc = prometheus.NewDesc("powermeter_power_watts",
		"Active power of the device's newest reading in W; negative is feed-in (export).", deviceLabels, nil)
	EnergyImportDesc = prometheus.NewDesc("powermeter_energy_import_watt_hours_total",
		"The device's own import energy counter in Wh (it may reset, e.g. a Shelly Gen1 on reboot).", deviceLabels, nil)
	EnergyExportDesc = prometheus.NewDesc("powermeter_energy_export_watt_hours_total",
		"The device's own export (feed-in) energy counter in Wh.", deviceLabels, nil)
	TemperatureDesc = prometheus.NewDesc("powermeter_temperature_celsius",
		"Temperature of the device's newest reading in °C.", deviceLabels, nil)
	VoltageDesc = prometheus.NewDesc("powermeter_voltage_volts",
		"Voltage of the device's newest reading in V.", deviceLabels, nil)
	LastReadingDesc = prometheus.NewDesc("powermeter_last_reading_timestamp_seconds",
		"Time of the device's newest reading (Unix seconds).", deviceLabels, nil)
)

// readings collects the per-device metrics from a LatestFunc at scrape
// time: nothing is kept between scrapes.
type readings struct {
	latest  LatestFunc
	timeout time.Duration
	log     *slog.Logger
	errs    prometheus.Counter
}

// NewReadings builds the per-device collector.
func NewReadings(latest LatestFunc, log *slog.Logger) prometheus.Collector {
	if log == nil {
		log = slog.Default()
	}
	return &readings{latest: latest, timeout: 5 * time.Second, log: log,
		errs: prometheus.NewCounter(prometheus.CounterOpts{Name: "powermeter_readings_scrape_errors_total", Help: "Scrapes whose newest readings could not be read."})}
}

func (c *readings) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{PowerDesc, EnergyImportDesc, EnergyExportDesc, TemperatureDesc, VoltageDesc, LastReadingDesc} {
		ch <- d
	}
	c.errs.Describe(ch)
}

func (c *readings) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	srcs, err := c.latest(ctx)
	if err != nil {
		c.errs.Inc()
		c.log.Warn("metrics: reading the newest readings", "err", err)
	}
	ch <- c.errs
	for _, s := range srcs {
		seen := make(map[string]bool, len(s.Readings))
		for _, r := range s.Readings {
			if seen[r.Device] {
				continue // one series per device
			}
			seen[r.Device] = true
			Emit(ch, s.Name, r)
		}
	}
}

// Emit sends the metrics of one device's reading.
func Emit(ch chan<- prometheus.Metric, source string, r reading.Reading) {
	l := []string{source, r.Device}
	ch <- prometheus.MustNewConstMetric(PowerDesc, prometheus.GaugeValue, r.Power, l...)
	if r.EnergyIn != nil {
		ch <- prometheus.MustNewConstMetric(EnergyImportDesc, prometheus.CounterValue, *r.EnergyIn, l...)
	}
	if r.EnergyOut != nil {
		ch <- prometheus.MustNewConstMetric(EnergyExportDesc, prometheus.CounterValue, *r.EnergyOut, l...)
	}
	if r.Temperature != nil {
		ch <- prometheus.MustNewConstMetric(TemperatureDesc, prometheus.GaugeValue, *r.Temperature, l...)
	}
	if r.Voltage != nil {
		ch <- prometheus.MustNewConstMetric(VoltageDesc, prometheus.GaugeValue, *r.Voltage, l...)
	}
	ch <- prometheus.MustNewConstMetric(LastReadingDesc, prometheus.GaugeValue, float64(r.Time.UnixMilli())/1000, l...)
}
