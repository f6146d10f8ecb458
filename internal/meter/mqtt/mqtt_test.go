package mqtt_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/meter"
	_ "github.com/powermeter/powermeter/internal/meter/all"
	mqttmeter "github.com/powermeter/powermeter/internal/meter/mqtt"
	"github.com/powermeter/powermeter/internal/mqttc"
	"github.com/powermeter/powermeter/internal/mqttc/mqtttest"
	"github.com/powermeter/powermeter/internal/reading"
)

// fixed is the emulators' clock: both paths read the same values.
var fixed = time.Date(2026, 6, 21, 11, 0, 0, 0, time.UTC)

func emulator(t *testing.T, kind string) emulate.Emulator {
	t.Helper()
	at := fixed
	if kind == "opendtu" || kind == "ahoydtu" {
		// the DTU meters compare the inverter's last contact with the
		// real clock: the coming 11:00 UTC (daylight, never in the past)
		at = time.Now().UTC().Truncate(24 * time.Hour).Add(35 * time.Hour)
	}
	em, err := emulate.New(kind, emulate.Options{Now: func() time.Time { return at }, Zone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	return em
}

func getJSON(t *testing.T, h http.Handler, path string, v any) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	if err := json.Unmarshal(rec.Body.Bytes(), v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func newClient(t *testing.T, broker string) *mqttc.Client {
	t.Helper()
	c, err := mqttc.New(mqttc.Options{URL: broker})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background(), nil) })
	deadline := time.Now().Add(10 * time.Second)
	for !c.Connected() {
		if time.Now().After(deadline) {
			t.Fatal("publisher cannot connect")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

func newMeter(t *testing.T, cfg config.Meter) meter.Meter {
	t.Helper()
	cfg.Type = "mqtt"
	cfg.Timeout.Duration = 5 * time.Second
	m, err := meter.New(cfg, meter.Deps{Zone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m
}

// readUntil publishes (again) and reads until the meter has a reading.
func readUntil(t *testing.T, m meter.Meter, publish func()) reading.Reading {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		publish()
		// a Read waits for the first message; the publish may have come
		// before the subscription, so publish again now and then
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		rs, err := m.Read(ctx)
		cancel()
		if err == nil {
			// The device's values come as several messages: publish once
			// more, and read when all of the first ones are surely in (one
			// connection keeps the order).
			publish()
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := m.(interface{ Sync(context.Context) error }).Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if rs, err = m.Read(ctx); err != nil {
				t.Fatal(err)
			}
			return rs[0]
		}
		last = err
		time.Sleep(30 * time.Millisecond)
	}
	t.Fatalf("no reading: %v", last)
	return reading.Reading{}
}

// httpReading reads the same emulator with its HTTP family.
func httpReading(t *testing.T, em http.Handler, cfg config.Meter) reading.Reading {
	t.Helper()
	srv := httptest.NewServer(em)
	t.Cleanup(srv.Close)
	cfg.URL = srv.URL
	cfg.Timeout.Duration = 5 * time.Second
	m, err := meter.New(cfg, meter.Deps{Zone: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(context.Background())
	rs, err := m.Read(context.Background())
	if err != nil {
		t.Fatalf("HTTP read: %v", err)
	}
	return rs[0]
}

func f(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func same(t *testing.T, what string, got, want reading.Reading) {
	t.Helper()
	if got.Power != want.Power || f(got.EnergyIn) != f(want.EnergyIn) || f(got.EnergyOut) != f(want.EnergyOut) ||
		f(got.Temperature) != f(want.Temperature) || f(got.Voltage) != f(want.Voltage) || len(got.Phases) != len(want.Phases) {
		t.Errorf("%s over MQTT = %+v (in %v out %v temp %v volt %v phases %v)\n over HTTP = %+v (in %v out %v temp %v volt %v phases %v)", what,
			got.Power, f(got.EnergyIn), f(got.EnergyOut), f(got.Temperature), f(got.Voltage), got.Phases,
			want.Power, f(want.EnergyIn), f(want.EnergyOut), f(want.Temperature), f(want.Voltage), want.Phases)
	}
	if got.Power == 0 && got.EnergyIn == nil {
		t.Errorf("%s: an empty reading proves nothing", what)
	}
}

// Each format: the emulator publishes like the device, the MQTT meter
// reads what the HTTP meter reads from the same emulator.
func TestRoundTripEachFormat(t *testing.T) {
	broker := mqtttest.Shared(t)
	cases := []struct {
		kind, format string
		setup        func(t *testing.T, em http.Handler, base string) (topic string, httpCfg config.Meter)
	}{
		{"tasmota", "tasmota", func(t *testing.T, em http.Handler, base string) (string, config.Meter) {
			return base, config.Meter{Name: "m", Type: "tasmota"}
		}},
		{"shelly-gen2", "shelly", func(t *testing.T, em http.Handler, base string) (string, config.Meter) {
			return base, config.Meter{Name: "m", Type: "shelly"}
		}},
		{"opendtu", "opendtu", func(t *testing.T, em http.Handler, base string) (string, config.Meter) {
			var ld struct {
				Inverters []struct{ Serial string } `json:"inverters"`
			}
			getJSON(t, em, "/api/livedata/status", &ld)
			return base + "/" + ld.Inverters[0].Serial, config.Meter{Name: "m", Type: "opendtu", Serial: ld.Inverters[0].Serial}
		}},
		{"ahoydtu", "ahoydtu", func(t *testing.T, em http.Handler, base string) (string, config.Meter) {
			var list struct {
				Inverter []struct{ Name string } `json:"inverter"`
			}
			getJSON(t, em, "/api/inverter/list", &list)
			return base + "/" + list.Inverter[0].Name, config.Meter{Name: "m", Type: "ahoydtu"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.kind, func(t *testing.T) {
			em := emulator(t, tc.kind)
			base := strings.ReplaceAll(mqtttest.Prefix(t), "/", "_")
			if tc.kind == "opendtu" || tc.kind == "ahoydtu" {
				base = mqtttest.Prefix(t) // topics below a prefix: solar/<serial>/…
			}
			topic, httpCfg := tc.setup(t, em, base)
			c := newClient(t, broker)
			p := &mqttmeter.Publisher{Kind: tc.kind, Topic: base, Device: em, Client: c}
			if err := p.Online(context.Background()); err != nil {
				t.Fatal(err)
			}
			m := newMeter(t, config.Meter{Name: "m", Format: tc.format, Topic: topic, URL: broker})
			got := readUntil(t, m, func() {
				if err := p.Once(context.Background()); err != nil {
					t.Fatal(err)
				}
			})
			same(t, tc.kind, got, httpReading(t, em, httpCfg))
			if got.Device != "m" {
				t.Errorf("device %q, want the meter's name", got.Device)
			}
		})
	}
}

func TestTasmotaSMLAndLWT(t *testing.T) {
	broker := mqtttest.Shared(t)
	topic := strings.ReplaceAll(mqtttest.Prefix(t), "/", "_")
	c := newClient(t, broker)
	m := newMeter(t, config.Meter{Name: "grid", Format: "tasmota", Topic: topic, URL: broker, SML: &config.SML{}})
	sensor := `{"Time":"2026-11-26T13:00:00","SML":{"Total_in":12345.678,"Total_out":432.1,"Power_curr":-512,"Meter_Id":"0a01"}}`
	pub := func(suffix, payload string, retain bool) {
		if err := c.Publish(context.Background(), mqttc.Message{Topic: "tele/" + topic + "/" + suffix, Payload: []byte(payload), QoS: 1, Retain: retain}); err != nil {
			t.Fatal(err)
		}
	}
	r := readUntil(t, m, func() { pub("SENSOR", sensor, false) })
	if r.Power != -512 || f(r.EnergyIn) != 12345678.0 || f(r.EnergyOut) != 432100.0 {
		t.Errorf("SML reading = %v W, in %v, out %v; want -512 W, 12345678 Wh, 432100 Wh", r.Power, f(r.EnergyIn), f(r.EnergyOut))
	}
	if r.DeviceTime == nil || !r.DeviceTime.Equal(time.Date(2026, 11, 26, 13, 0, 0, 0, time.UTC)) {
		t.Errorf("device time %v", r.DeviceTime)
	}
	// LWT Offline: an unreachable device, named
	pub("LWT", "Offline", true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := m.Read(context.Background())
		if err != nil {
			if meter.KindOf(err) != meter.Unreachable || !strings.Contains(err.Error(), "offline") || !strings.Contains(err.Error(), topic) {
				t.Errorf("offline device: %v (kind %v)", err, meter.KindOf(err))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("LWT Offline not noticed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pub("LWT", "Online", true)
	readUntil(t, m, func() { pub("SENSOR", sensor, false) })
	// garbage: a bad answer, named
	pub("SENSOR", "<html>", false)
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, err := m.Read(context.Background())
		if err != nil {
			if meter.KindOf(err) != meter.BadAnswer {
				t.Errorf("garbage: %v (kind %v), want a bad answer", err, meter.KindOf(err))
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("garbage not noticed")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTooOldIsUnreachable(t *testing.T) {
	broker := mqtttest.Shared(t)
	topic := mqtttest.Prefix(t) + "/plug"
	c := newClient(t, broker)
	m := newMeter(t, config.Meter{Name: "p", Format: "json", Topic: topic, URL: broker, MaxAge: config.Duration{Duration: 50 * time.Millisecond},
		JSON: &config.JSONPaths{Power: "data.p", EnergyIn: "data.e", EnergyUnit: "kWh", Phases: []string{"ph.0", "ph.1"}}})
	pub := func() {
		if err := c.Publish(context.Background(), mqttc.Message{Topic: topic, Payload: []byte(`{"data":{"p":"42.5","e":1.2345},"ph":[1,2]}`), QoS: 1}); err != nil {
			t.Fatal(err)
		}
	}
	r := readUntil(t, m, pub)
	if r.Power != 42.5 || f(r.EnergyIn) != 1234.5 || len(r.Phases) != 2 {
		t.Errorf("json reading %+v in %v", r, f(r.EnergyIn))
	}
	time.Sleep(80 * time.Millisecond)
	_, err := m.Read(context.Background())
	if meter.KindOf(err) != meter.Unreachable || !strings.Contains(err.Error(), "old") {
		t.Errorf("a value past max_age: %v, want unreachable saying it is too old", err)
	}
}

func TestBrokerDownSaysSo(t *testing.T) {
	m := newMeter(t, config.Meter{Name: "p", Format: "tasmota", Topic: "x", URL: "mqtt://127.0.0.1:9"})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_, err := m.Read(ctx)
	if meter.KindOf(err) != meter.Unreachable || !strings.Contains(err.Error(), "broker cannot be reached") {
		t.Fatalf("broker down: %v", err)
	}
}

func TestBrokerRestartReconnects(t *testing.T) {
	b := mqtttest.Start(t)
	topic := mqtttest.Prefix(t) + "/x"
	m := newMeter(t, config.Meter{Name: "p", Format: "json", Topic: topic, URL: b.URL, JSON: &config.JSONPaths{Power: "p"}})
	c := newClient(t, b.URL)
	pub := func() {
		_ = c.Publish(context.Background(), mqttc.Message{Topic: topic, Payload: []byte(`{"p":1}`), QoS: 1})
	}
	readUntil(t, m, pub)
	b.Stop(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := m.Read(context.Background()); err != nil && strings.Contains(err.Error(), "broker cannot be reached") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the meter does not say the broker is gone")
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Begin(t)
	readUntil(t, m, pub)
}

// A first Read (the first round, `powermeter read`) waits for the first
// message instead of failing at once.
func TestFirstReadWaitsForTheFirstMessage(t *testing.T) {
	broker := mqtttest.Shared(t)
	topic := mqtttest.Prefix(t) + "/first"
	c := newClient(t, broker)
	m := newMeter(t, config.Meter{Name: "p", Format: "json", Topic: topic, URL: broker, JSON: &config.JSONPaths{Power: "p"}})
	go func() {
		time.Sleep(500 * time.Millisecond)
		_ = c.Publish(context.Background(), mqttc.Message{Topic: topic, Payload: []byte(`{"p":7}`), QoS: 1})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rs, err := m.Read(ctx)
	if err != nil || rs[0].Power != 7 {
		t.Fatalf("first read = %v, %v; want 7 W once the message came", rs, err)
	}
}
