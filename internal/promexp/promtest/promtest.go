// Package promtest parses a Prometheus scrape with Prometheus' own text
// parser and checks metric names against Prometheus' naming rules.
package promtest

import (
	"regexp"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Parse parses a scrape with Prometheus' own text parser.
func Parse(t testing.TB, body string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the scrape does not parse: %v\n%s", err, body)
	}
	return fams
}

var (
	nameRE  = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	// base units only (prometheus.io "Metric and label naming")
	// (watt_hours is what the issue asks for: the unit the devices count)
	badUnits = regexp.MustCompile(`(kilo|milli|micro|mega|kwh|_kw_|_ms$|_ms_|celcius|fahrenheit|_minutes|_percent)`)
)

// CheckNaming applies Prometheus' naming rules to every powermeter_ family.
func CheckNaming(t testing.TB, fams map[string]*dto.MetricFamily) {
	t.Helper()
	for name, f := range fams {
		if !strings.HasPrefix(name, "powermeter_") {
			continue
		}
		if !nameRE.MatchString(name) || badUnits.MatchString(name) {
			t.Errorf("%s: not a valid name in base units", name)
		}
		if f.GetHelp() == "" {
			t.Errorf("%s: no HELP", name)
		}
		switch f.GetType() {
		case dto.MetricType_COUNTER:
			if !strings.HasSuffix(name, "_total") {
				t.Errorf("%s: a counter's name ends in _total", name)
			}
		case dto.MetricType_GAUGE:
			if strings.HasSuffix(name, "_total") {
				t.Errorf("%s: a gauge's name must not end in _total", name)
			}
			if strings.Contains(name, "timestamp") && !strings.HasSuffix(name, "_timestamp_seconds") {
				t.Errorf("%s: a time is _timestamp_seconds", name)
			}
		case dto.MetricType_HISTOGRAM:
			if !strings.HasSuffix(name, "_seconds") {
				t.Errorf("%s: durations are in seconds", name)
			}
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if !labelRE.MatchString(l.GetName()) || strings.HasPrefix(l.GetName(), "__") {
					t.Errorf("%s: label %q is not a valid label name", name, l.GetName())
				}
			}
		}
	}
}

// Value returns the value of the series of family name whose labels
// include want (a histogram: its sample count).
func Value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}
