package promexp_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/logger"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/mqttc/mqtttest"
	"github.com/powermeter/powermeter/internal/promexp"
	"github.com/powermeter/powermeter/internal/promexp/promreg"
	"github.com/powermeter/powermeter/internal/promexp/promtest"
	"github.com/powermeter/powermeter/internal/reading"
)

type fakeMeter struct {
	name string
	n    *atomic.Int64
}

func (m fakeMeter) Read(context.Context) ([]reading.Reading, error) {
	n := m.n.Add(1)
	if m.name == "broken" {
		return nil, meter.Errorf(meter.Unreachable, errors.New("connection refused"), "cannot reach broken")
	}
	if m.name == "garbage" && n%2 == 0 {
		return nil, meter.Errorf(meter.BadAnswer, nil, "html")
	}
	return []reading.Reading{{Power: -412.5, EnergyIn: reading.F(1000), EnergyOut: reading.F(88012.25), Temperature: reading.F(21.5), Voltage: reading.F(231.2)}}, nil
}
func (fakeMeter) Close(context.Context) error { return nil }

func TestLoggerMetricsOnStatusListener(t *testing.T) {
	broker := mqtttest.Shared(t)
	text := fmt.Sprintf(`data_dir = %q
[logger]
source = "home"
[[meters]]
name = "balcony"
type = "shelly"
url = "http://127.0.0.1:9"
[[meters]]
name = "broken"
type = "shelly"
url = "http://127.0.0.1:9"
[[meters]]
name = "garbage"
type = "shelly"
url = "http://127.0.0.1:9"
[[uplinks]]
name = "mq"
protocol = "mqtt"
url = %q
topic_prefix = %q
homeassistant = false
`, t.TempDir(), broker, mqtttest.Prefix(t))
	cfg, err := config.Parse("t.toml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]*atomic.Int64{"balcony": {}, "broken": {}, "garbage": {}}
	clock := logger.NewFakeClock(time.Date(2026, 11, 26, 12, 0, 5, 0, time.UTC), false)
	rounds := make(chan struct{}, 10)
	lg, err := logger.New(cfg, logger.Options{
		Clock: clock, StatusListener: ln, FlushTimeout: 5 * time.Second,
		OnRound:  func(time.Time, int) { rounds <- struct{}{} },
		NewMeter: func(c config.Meter, _ meter.Deps) (meter.Meter, error) { return fakeMeter{c.Name, counts[c.Name]}, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	pm := promreg.NewLogger(lg, "home")
	lg.ObserveRounds(pm.ObserveRound)
	lg.HandleStatus("GET /metrics", pm.Handler())
	var body string
	ctx, cancel := context.WithCancel(context.Background())
	lg2done := make(chan error, 1)
	go func() { lg2done <- lg.Run(ctx) }()
	for range 4 {
		for clock.Sleepers() == 0 {
			time.Sleep(time.Millisecond)
		}
		clock.Advance(10 * time.Second)
		<-rounds
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if strings.Contains(body, `powermeter_rounds_total 4`) && strings.Contains(body, "powermeter_uplink_last_success_timestamp_seconds") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no complete scrape; last:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-lg2done; err != nil {
		t.Fatal(err)
	}
	fams := promtest.Parse(t, body)
	promtest.CheckNaming(t, fams)
	dev := map[string]string{"source": "home", "device": "balcony"}
	for name, want := range map[string]float64{
		"powermeter_power_watts":                    -412.5,
		"powermeter_energy_import_watt_hours_total": 1000,
		"powermeter_energy_export_watt_hours_total": 88012.25,
		"powermeter_temperature_celsius":            21.5,
		"powermeter_voltage_volts":                  231.2,
	} {
		if v, ok := promtest.Value(fams, name, dev); !ok || v != want {
			t.Errorf("%s{balcony} = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if v, ok := promtest.Value(fams, "powermeter_last_reading_timestamp_seconds", dev); !ok || v < float64(time.Date(2026, 11, 26, 12, 0, 10, 0, time.UTC).Unix()) {
		t.Errorf("last reading time %v", v)
	}
	if v, _ := promtest.Value(fams, "powermeter_meter_errors_total", map[string]string{"meter": "broken", "kind": "unreachable"}); v != 4 {
		t.Errorf("errors of broken = %v, want 4 (unreachable)", v)
	}
	if v, _ := promtest.Value(fams, "powermeter_meter_errors_total", map[string]string{"meter": "garbage", "kind": "bad_answer"}); v != 2 {
		t.Errorf("errors of garbage = %v, want 2 (bad_answer)", v)
	}
	if v, _ := promtest.Value(fams, "powermeter_round_duration_seconds", nil); v != 4 {
		t.Errorf("round durations observed: %v, want 4", v)
	}
	if _, ok := promtest.Value(fams, "powermeter_outbox_backlog_readings", map[string]string{"uplink": "mq"}); !ok {
		t.Error("no backlog of uplink mq")
	}
	if v, ok := promtest.Value(fams, "powermeter_rounds_skipped_total", map[string]string{"reason": "late"}); !ok || v != 0 {
		t.Errorf("skipped rounds %v %v", v, ok)
	}
}

// The loggeronly build writes the text format itself: it must parse, keep
// the naming rules and say what client_golang says for the same status.
func TestLeanTextMatchesClientGolang(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 10, 0, time.UTC)
	st := statusFunc(func() logger.Status {
		return logger.Status{
			Meters: []logger.MeterStatus{
				{Name: "balcony", Reads: 7, LastReadings: []reading.Reading{{Device: "balcony", Time: at, Power: -412.5, EnergyOut: reading.F(88012.25), Temperature: reading.F(21.5)}}},
				{Name: "odd \"name\"\\x", Errors: 3, ErrorsByKind: map[string]uint64{"unreachable": 2, "bad_answer": 1}},
			},
			Uplinks:  []logger.UplinkStatus{{Name: "mq", Backlog: 12, Sent: 100, LastSentAt: at, Failing: true, AuthRefusedSince: at}},
			Counters: logger.Counters{Rounds: 9, MissedRounds: 1},
		}
	})
	lean := promexp.NewLean(st, "home")
	full := promreg.NewLogger(st, "home")
	for _, d := range []time.Duration{3 * time.Millisecond, 40 * time.Millisecond, 20 * time.Second} {
		lean.ObserveRound(d)
		full.ObserveRound(d)
	}
	scrape := func(h http.Handler) map[string]*dto.MetricFamily {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
		fams := promtest.Parse(t, rec.Body.String())
		promtest.CheckNaming(t, fams)
		return fams
	}
	a, b := scrape(lean.Handler()), scrape(full.Handler())
	n := 0
	for name, fa := range a {
		fb := b[name]
		if fb == nil {
			t.Errorf("%s: only in the lean output", name)
			continue
		}
		n++
		if fa.GetType() != fb.GetType() || fa.GetHelp() != fb.GetHelp() || len(fa.GetMetric()) != len(fb.GetMetric()) {
			t.Errorf("%s: lean %v/%d series, client_golang %v/%d", name, fa.GetType(), len(fa.GetMetric()), fb.GetType(), len(fb.GetMetric()))
		}
	}
	for name := range b {
		if strings.HasPrefix(name, "powermeter_") && a[name] == nil {
			t.Errorf("%s: missing in the lean output", name)
		}
	}
	if n < 12 {
		t.Errorf("only %d families compared", n)
	}
	for _, fams := range []map[string]*dto.MetricFamily{a, b} {
		if v, _ := promtest.Value(fams, "powermeter_meter_errors_total", map[string]string{"meter": "odd \"name\"\\x", "kind": "unreachable"}); v != 2 {
			t.Errorf("escaped label: %v", v)
		}
		if v, _ := promtest.Value(fams, "powermeter_logger_uplink_auth_refused_since_seconds", map[string]string{"uplink": "mq"}); v != float64(at.Unix()) {
			t.Errorf("uplink auth refused since %v, want %d", v, at.Unix())
		}
		if v, _ := promtest.Value(fams, "powermeter_round_duration_seconds", nil); v != 3 {
			t.Errorf("round histogram count %v", v)
		}
		h := fams["powermeter_round_duration_seconds"].GetMetric()[0].GetHistogram()
		if h.GetSampleSum() < 20.04 || h.GetBucket()[1].GetCumulativeCount() != 1 {
			t.Errorf("histogram %v", h)
		}
	}
}

type statusFunc func() logger.Status

func (f statusFunc) Status() logger.Status { return f() }
