package hass_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/hass"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/mqttc/mqtttest"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/uplink"
)

func sender(t *testing.T, broker, prefix string, meters ...string) uplink.Sender {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "data_dir = %q\n[logger]\nsource = \"home\"\n", t.TempDir())
	types, order := map[string]string{}, []string{}
	for _, m := range meters {
		name, typ, _ := strings.Cut(m, ":")
		fmt.Fprintf(&b, "[[meters]]\nname = %q\ntype = %q\nurl = \"http://127.0.0.1:9\"\nusername = \"u\"\n", name, typ)
		types[name] = typ
		order = append(order, name)
	}
	fmt.Fprintf(&b, "[[uplinks]]\nname = \"mq\"\nprotocol = \"mqtt\"\nurl = %q\ntopic_prefix = %q\ndiscovery_prefix = %q\ntimeout = \"5s\"\n", broker, prefix, prefix+"/ha")
	cfg, err := config.Parse("t.toml", []byte(b.String()), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	s, err := uplink.New(cfg.Uplinks[0], 0, uplink.Options{Source: "home", MeterTypes: types, MeterOrder: order, Interval: 10 * time.Second, Version: "v-test"})
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

func send(t *testing.T, s uplink.Sender, items ...outbox.Item) {
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

func full(seq uint64, meter string) outbox.Item {
	return outbox.Item{Seq: seq, Meter: meter, Reading: reading.Reading{Device: meter, Time: t0.Add(time.Duration(seq) * 10 * time.Second), Power: 100,
		EnergyIn: reading.F(1234), EnergyOut: reading.F(56), Temperature: reading.F(21), Voltage: reading.F(230)}}
}

// HA's rules (home-assistant.io, MQTT sensor and sensor device classes):
// the unit each device class accepts, and the state classes that fit.
var (
	unitsOf = map[string][]string{
		"power":       {"W", "kW"},
		"energy":      {"Wh", "kWh", "MWh"},
		"temperature": {"°C", "°F"},
		"voltage":     {"V", "mV"},
	}
	stateClassOf = map[string][]string{
		"power": {"measurement"}, "temperature": {"measurement"}, "voltage": {"measurement"},
		"energy": {"total", "total_increasing"},
	}
	uniqueIDRE = regexp.MustCompile(`^[a-z0-9_]+$`)
	topicRE    = regexp.MustCompile(`^[^/]+/sensor/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config$`)
)

func configs(msgs []mqtttest.Message, haPrefix string) map[string]mqtttest.Message {
	out := map[string]mqtttest.Message{}
	for _, m := range msgs {
		if strings.HasPrefix(m.Topic, haPrefix+"/sensor/") {
			out[m.Topic] = m
		}
	}
	return out
}

func TestDiscoveryConfigsFollowHASchema(t *testing.T) {
	broker := mqtttest.Shared(t)
	prefix := mqtttest.Prefix(t)
	ha := prefix + "/ha"
	col := mqtttest.Collect(t, broker, ha+"/#", false)
	s := sender(t, broker, prefix, "balcony:fritzdect", "plug:shelly")
	power := outbox.Item{Seq: 2, Meter: "plug", Reading: reading.Reading{Device: "plug", Time: t0, Power: 5}}
	send(t, s, full(1, "balcony"), power)

	msgs := col.WaitFor(t, 10*time.Second, "6 configs", func(m []mqtttest.Message) bool { return len(configs(m, ha)) >= 6 })
	cs := configs(msgs, ha)
	want := map[string]string{ // topic → device_class
		ha + "/sensor/powermeter_home/balcony_power/config":         "power",
		ha + "/sensor/powermeter_home/balcony_energy_import/config": "energy",
		ha + "/sensor/powermeter_home/balcony_energy_export/config": "energy",
		ha + "/sensor/powermeter_home/balcony_temperature/config":   "temperature",
		ha + "/sensor/powermeter_home/balcony_voltage/config":       "voltage",
		ha + "/sensor/powermeter_home/plug_power/config":            "power",
	}
	if len(cs) != len(want) {
		t.Errorf("got %d configs, want %d: %v", len(cs), len(want), cs)
	}
	ids := map[string]bool{}
	for topic, dc := range want {
		m, ok := cs[topic]
		if !ok {
			t.Errorf("no config on %s", topic)
			continue
		}
		if !topicRE.MatchString(strings.TrimPrefix(topic, prefix+"/")) {
			t.Errorf("%s: not <prefix>/sensor/<node_id>/<object_id>/config with HA's allowed characters", topic)
		}
		var c map[string]any
		if err := json.Unmarshal([]byte(m.Payload), &c); err != nil {
			t.Fatalf("%s: %v", topic, err)
		}
		str := func(k string) string { s, _ := c[k].(string); return s }
		if str("device_class") != dc {
			t.Errorf("%s: device_class %q, want %q", topic, str("device_class"), dc)
		}
		if !contains(unitsOf[dc], str("unit_of_measurement")) {
			t.Errorf("%s: unit %q does not fit device_class %s", topic, str("unit_of_measurement"), dc)
		}
		if !contains(stateClassOf[dc], str("state_class")) {
			t.Errorf("%s: state_class %q does not fit device_class %s", topic, str("state_class"), dc)
		}
		if dc == "energy" && str("state_class") != "total_increasing" {
			t.Errorf("%s: energy counters need total_increasing for the Energy dashboard", topic)
		}
		uid := str("unique_id")
		if !uniqueIDRE.MatchString(uid) || ids[uid] {
			t.Errorf("%s: unique_id %q malformed or repeated", topic, uid)
		}
		ids[uid] = true
		if str("default_entity_id") != "sensor."+uid {
			t.Errorf("%s: default_entity_id %q, want sensor.%s", topic, str("default_entity_id"), uid)
		}
		dev := strings.SplitN(strings.TrimPrefix(topic, ha+"/sensor/powermeter_home/"), "_", 2)[0]
		if str("state_topic") != prefix+"/"+dev+"/state" {
			t.Errorf("%s: state_topic %q", topic, str("state_topic"))
		}
		if !regexp.MustCompile(`^\{\{ value_json\.[a-z_]+ \}\}$`).MatchString(str("value_template")) {
			t.Errorf("%s: value_template %q", topic, str("value_template"))
		}
		if str("availability_topic") != prefix+"/status" || str("payload_available") != "online" || str("payload_not_available") != "offline" {
			t.Errorf("%s: availability %q %q %q", topic, str("availability_topic"), str("payload_available"), str("payload_not_available"))
		}
		if ea, _ := c["expire_after"].(float64); ea < 60 {
			t.Errorf("%s: expire_after %v, want at least 60 s", topic, c["expire_after"])
		}
		d, _ := c["device"].(map[string]any)
		idents, _ := d["identifiers"].([]any)
		if len(idents) != 1 || idents[0] != "powermeter_home_"+dev || d["name"] != dev {
			t.Errorf("%s: device %v", topic, d)
		}
		if o, _ := c["origin"].(map[string]any); o["name"] != "powermeter" {
			t.Errorf("%s: origin %v", topic, c["origin"])
		}
		for k := range c {
			if !contains(knownKeys, k) {
				t.Errorf("%s: key %q is not in HA's MQTT sensor schema", topic, k)
			}
		}
	}
	// A subscriber that comes later (HA starting) gets them all, retained.
	late := mqtttest.Collect(t, broker, ha+"/sensor/#", false)
	for _, m := range late.WaitFor(t, 5*time.Second, "6 retained configs", func(m []mqtttest.Message) bool { return len(m) >= 6 }) {
		if !m.Retained || m.Payload != cs[m.Topic].Payload {
			t.Errorf("%s: retained=%v, or not the config sent", m.Topic, m.Retained)
		}
	}
	// The state's fields are the ones the templates read.
	var st map[string]any
	stcol := mqtttest.Collect(t, broker, prefix+"/balcony/state", false)
	got := stcol.WaitFor(t, 5*time.Second, "state", func(m []mqtttest.Message) bool { return len(m) > 0 })
	if err := json.Unmarshal([]byte(got[0].Payload), &st); err != nil {
		t.Fatal(err)
	}
	for _, q := range []hass.Quantity{hass.Power, hass.EnergyImport, hass.EnergyExport, hass.Temperature, hass.Voltage} {
		if _, ok := st[q.Field]; !ok {
			t.Errorf("state %s lacks %s, which the %s template reads", got[0].Payload, q.Field, q.Key)
		}
	}

	// unique ids are stable: a second run publishes the same ones.
	before := len(col.Messages())
	s2 := sender(t, broker, prefix, "balcony:fritzdect", "plug:shelly")
	send(t, s2, full(3, "balcony"))
	msgs = col.WaitFor(t, 10*time.Second, "the second run's configs", func(m []mqtttest.Message) bool { return len(m) >= before+5 })
	for _, m := range msgs[before:] {
		if m.Topic == prefix+"/ha/discovery" || strings.Contains(m.Topic, "/sync/") {
			continue
		}
		var c map[string]any
		_ = json.Unmarshal([]byte(m.Payload), &c)
		var first map[string]any
		_ = json.Unmarshal([]byte(cs[m.Topic].Payload), &first)
		if c["unique_id"] != first["unique_id"] || c["unique_id"] == nil {
			t.Errorf("%s: unique_id changed between runs: %v → %v", m.Topic, first["unique_id"], c["unique_id"])
		}
	}
}

// knownKeys are the sensor options of HA's MQTT sensor documentation
// that we use.
var knownKeys = []string{"name", "unique_id", "default_entity_id", "state_topic", "value_template", "device_class", "state_class",
	"unit_of_measurement", "suggested_display_precision", "availability_topic", "payload_available", "payload_not_available",
	"expire_after", "device", "origin"}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestBirthMessageResendsConfigs(t *testing.T) {
	broker := mqtttest.Shared(t)
	prefix := mqtttest.Prefix(t)
	ha := prefix + "/ha"
	col := mqtttest.Collect(t, broker, ha+"/sensor/#", false)
	s := sender(t, broker, prefix, "plug:shelly")
	send(t, s, full(1, "plug"))
	col.WaitFor(t, 10*time.Second, "5 configs", func(m []mqtttest.Message) bool { return len(m) == 5 })
	col.Publish(t, ha+"/status", false, "offline")
	col.Publish(t, ha+"/status", false, "online")
	col.WaitFor(t, 10*time.Second, "the configs again after HA's birth message", func(m []mqtttest.Message) bool { return len(m) == 10 })
}

func TestRemovedMeterEntitiesCleared(t *testing.T) {
	broker := mqtttest.Shared(t)
	prefix := mqtttest.Prefix(t)
	ha := prefix + "/ha"
	s := sender(t, broker, prefix, "plug:shelly", "grid:shelly")
	send(t, s, full(1, "plug"), full(2, "grid"))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	_ = s.(uplink.Closer).Close(ctx)

	// The next run has no meter "plug": its entities go.
	col := mqtttest.Collect(t, broker, ha+"/sensor/#", false)
	col.WaitFor(t, 10*time.Second, "10 retained configs", func(m []mqtttest.Message) bool { return len(m) == 10 })
	s2 := sender(t, broker, prefix, "grid:shelly")
	send(t, s2, full(3, "grid"))
	msgs := col.WaitFor(t, 10*time.Second, "5 empty configs", func(m []mqtttest.Message) bool {
		n := 0
		for _, x := range m {
			if x.Payload == "" {
				n++
			}
		}
		return n == 5
	})
	for _, m := range msgs {
		if m.Payload == "" && !strings.Contains(m.Topic, "/plug_") {
			t.Errorf("%s cleared, but only plug was removed", m.Topic)
		}
	}
	// and a new subscriber sees only grid's configs retained
	late := mqtttest.Collect(t, broker, ha+"/sensor/#", false)
	got := late.WaitFor(t, 5*time.Second, "grid's 5 configs", func(m []mqtttest.Message) bool { return len(m) >= 5 })
	time.Sleep(200 * time.Millisecond)
	for _, m := range late.Messages() {
		if strings.Contains(m.Topic, "/plug_") {
			t.Errorf("plug's config %s is still retained", m.Topic)
		}
	}
	_ = got
}

func TestSlugStable(t *testing.T) {
	for in, want := range map[string]string{"plug": "plug", "Balcony 1": "balcony_1_", "a_b": "a_b"} {
		got := hass.Slug(in)
		if !strings.HasPrefix(got, want) || !uniqueIDRE.MatchString(got) {
			t.Errorf("Slug(%q) = %q", in, got)
		}
	}
	if hass.Slug("a b") == hass.Slug("a_b") || hass.Slug("a b") != hass.Slug("a b") {
		t.Error("Slug must tell \"a b\" and \"a_b\" apart and be stable")
	}
}

// With the household roles the sensors carry the names HA's Energy
// dashboard asks for; unique ids do not change with a role.
func TestRoleNames(t *testing.T) {
	o := hass.Options{Prefix: "homeassistant", Source: "home", StateTopic: func(d string) string { return "pm/" + d + "/state" }, Availability: "pm/status"}
	cases := []struct {
		dev  hass.Device
		q    hass.Quantity
		want string
	}{
		{hass.Device{Name: "grid", Role: household.Grid}, hass.EnergyImport, "Grid consumption"},
		{hass.Device{Name: "grid", Role: household.Grid}, hass.EnergyExport, "Return to grid"},
		{hass.Device{Name: "dtu", Role: household.PV}, hass.EnergyImport, "Solar production"},
		{hass.Device{Name: "balcony", Role: household.PV, Inverted: true}, hass.EnergyExport, "Solar production"},
		{hass.Device{Name: "balcony", Role: household.PV, Inverted: true}, hass.EnergyImport, "Solar standby consumption"},
		{hass.Device{Name: "fridge", Role: household.Consumer}, hass.EnergyImport, "Consumption"},
		{hass.Device{Name: "akku", Role: household.Battery}, hass.EnergyExport, "Battery discharge"},
		{hass.Device{Name: "fridge"}, hass.EnergyImport, "Energy import"},
		{hass.Device{Name: "fridge", Role: household.Consumer}, hass.Temperature, "Temperature"},
	}
	for _, c := range cases {
		cfg := o.SensorConfig(c.dev, c.q)
		if cfg.Name != c.want {
			t.Errorf("%s %s (%s): name %q, want %q", c.dev.Name, c.q.Key, c.dev.Role, cfg.Name, c.want)
		}
		plain := c.dev
		plain.Role, plain.Inverted = "", false
		if cfg.UniqueID != o.SensorConfig(plain, c.q).UniqueID {
			t.Errorf("%s: the unique id changes with the role", c.dev.Name)
		}
		if c.q.DeviceClass == "energy" && (cfg.StateClass != "total_increasing" || cfg.Unit != "Wh") {
			t.Errorf("%s: %s/%s", c.dev.Name, cfg.StateClass, cfg.Unit)
		}
	}
}
