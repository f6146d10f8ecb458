package uplink_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/mqttc/mqtttest"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/uplink"
)

// mqttConfig parses a config with the given meters and one MQTT uplink.
func mqttConfig(t *testing.T, broker, prefix string, extra string, meters ...string) *config.Config {
	return mqttConfigTB(t, broker, prefix, extra, meters...)
}

func mqttConfigTB(t testing.TB, broker, prefix string, extra string, meters ...string) *config.Config {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir = %q\n[logger]\nsource = \"home\"\n", t.TempDir())
	for _, m := range meters {
		fmt.Fprintf(&b, "[[meters]]\nname = %q\ntype = \"shelly\"\nurl = \"http://127.0.0.1:9\"\n", m)
	}
	fmt.Fprintf(&b, "[[uplinks]]\nname = \"mq\"\nprotocol = \"mqtt\"\nurl = %q\ntopic_prefix = %q\ndiscovery_prefix = %q\ntimeout = \"5s\"\n%s", broker, prefix, prefix+"/ha", extra)
	cfg, err := config.Parse("t.toml", []byte(b.String()), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, b.String())
	}
	return cfg
}

func newMQTTSender(t *testing.T, cfg *config.Config) uplink.Sender {
	t.Helper()
	types := map[string]string{}
	var order []string
	for _, m := range cfg.Meters {
		types[m.Name] = m.Type
		order = append(order, m.Name)
	}
	s, err := uplink.New(cfg.Uplinks[0], 0, uplink.Options{Source: cfg.Logger.Source, MeterTypes: types, MeterOrder: order, Interval: 10 * time.Second, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_ = s.(uplink.Closer).Close(ctx)
	})
	return s
}

// sendAll sends items until all are acknowledged (the first Send may find
// the connection still being made).
func sendAll(t *testing.T, s uplink.Sender, items []outbox.Item) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for len(items) > 0 {
		n, err := s.Send(context.Background(), items, time.Now, nil)
		items = items[n:]
		if err != nil {
			if time.Now().After(deadline) {
				t.Fatalf("send: %v", err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

var t0 = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

func item(seq uint64, meter string, at time.Time, power float64) outbox.Item {
	return outbox.Item{Seq: seq, Meter: meter, Reading: reading.Reading{
		Device: meter, Time: at, Power: power, EnergyIn: reading.F(1000 + power), EnergyOut: reading.F(5),
		Temperature: reading.F(21.5), Voltage: reading.F(230.1),
	}}
}

func byTopic(msgs []mqtttest.Message, topic string) []mqtttest.Message {
	var out []mqtttest.Message
	for _, m := range msgs {
		if m.Topic == topic {
			out = append(out, m)
		}
	}
	return out
}

func decode(t *testing.T, payload string) uplink.Payload {
	t.Helper()
	var p uplink.Payload
	if err := json.Unmarshal([]byte(payload), &p); err != nil {
		t.Fatalf("payload %q: %v", payload, err)
	}
	return p
}

func TestMQTTUplinkReadingsStateAvailability(t *testing.T) {
	broker := mqtttest.Shared(t)
	prefix := mqtttest.Prefix(t)
	col := mqtttest.Collect(t, broker, prefix+"/#", false)
	s := newMQTTSender(t, mqttConfig(t, broker, prefix, "homeassistant = false\n", "plug", "grid"))

	sendAll(t, s, []outbox.Item{
		item(1, "plug", t0, 10), item(2, "grid", t0, -300), item(3, "plug", t0.Add(10*time.Second), 11),
		item(4, "plug", t0.Add(20*time.Second), 12),
	})
	// a replay of an older reading goes to readings but not to the state
	sendAll(t, s, []outbox.Item{item(5, "plug", t0.Add(-10*time.Second), 9)})

	msgs := col.WaitFor(t, 10*time.Second, "4 plug readings", func(m []mqtttest.Message) bool {
		return len(byTopic(m, prefix+"/plug/readings")) == 4
	})
	rd := byTopic(msgs, prefix+"/plug/readings")
	wantPower := []float64{10, 11, 12, 9}
	for i, m := range rd {
		p := decode(t, m.Payload)
		if p.Power != wantPower[i] || p.Meter != "plug" || p.Device != "plug" || m.Retained {
			t.Errorf("readings[%d] = %+v retained=%v, want power %v of plug, not retained", i, p, m.Retained, wantPower[i])
		}
		if p.EnergyIn == nil || *p.EnergyIn != 1000+wantPower[i] || p.Voltage == nil || *p.Voltage != 230.1 {
			t.Errorf("readings[%d] lacks its quantities: %s", i, m.Payload)
		}
	}
	if st := byTopic(msgs, prefix+"/status"); len(st) == 0 || st[len(st)-1].Payload != "online" {
		t.Errorf("availability = %+v, want online", st)
	}

	// A new subscriber gets the retained state: the newest reading, not
	// the replayed one.
	late := mqtttest.Collect(t, broker, prefix+"/+/state", false)
	got := late.WaitFor(t, 5*time.Second, "retained states", func(m []mqtttest.Message) bool { return len(m) >= 2 })
	for _, m := range got {
		p := decode(t, m.Payload)
		if !m.Retained {
			t.Errorf("%s not retained", m.Topic)
		}
		switch m.Topic {
		case prefix + "/plug/state":
			if !p.Time.Equal(t0.Add(20*time.Second)) || p.Power != 12 {
				t.Errorf("plug state = %s, want the reading of %v (12 W)", m.Payload, t0.Add(20*time.Second))
			}
		case prefix + "/grid/state":
			if p.Power != -300 {
				t.Errorf("grid state = %s", m.Payload)
			}
		default:
			t.Errorf("unexpected state topic %s", m.Topic)
		}
	}

	// A second run of the logger (a new client) learns the retained state
	// and does not replace it with an older replay.
	s2 := newMQTTSender(t, mqttConfig(t, broker, prefix, "homeassistant = false\n", "plug", "grid"))
	sendAll(t, s2, []outbox.Item{item(1, "plug", t0.Add(5*time.Second), 99)})
	col.WaitFor(t, 10*time.Second, "the replay on readings", func(m []mqtttest.Message) bool {
		return len(byTopic(m, prefix+"/plug/readings")) == 5
	})
	late2 := mqtttest.Collect(t, broker, prefix+"/plug/state", false)
	got = late2.WaitFor(t, 5*time.Second, "retained state", func(m []mqtttest.Message) bool { return len(m) >= 1 })
	if p := decode(t, got[0].Payload); p.Power != 12 {
		t.Errorf("after a replay by a new run the state is %s, want the newest (12 W)", got[0].Payload)
	}

	// Clean shutdown: offline.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := s.(uplink.Closer).Close(ctx); err != nil {
		t.Fatal(err)
	}
	col.WaitFor(t, 5*time.Second, "offline", func(m []mqtttest.Message) bool {
		st := byTopic(m, prefix+"/status")
		return len(st) > 0 && st[len(st)-1].Payload == "offline"
	})
}

func TestMQTTUplinkBrokerDownSaysSo(t *testing.T) {
	// a port nothing listens on
	cfg := mqttConfig(t, "mqtt://127.0.0.1:9", "pmtest/down", "homeassistant = false\n", "plug")
	s := newMQTTSender(t, cfg)
	n, err := s.Send(context.Background(), []outbox.Item{item(1, "plug", t0, 1)}, time.Now, nil)
	if n != 0 || err == nil || !strings.Contains(err.Error(), "not connected to the MQTT broker") {
		t.Fatalf("Send with the broker down = %d, %v; want 0 and an error saying the broker is not connected", n, err)
	}
}
