package config

import (
	"net/url"
	"slices"
	"strings"
)

// checkBrokerURL reports a broker URL that is not mqtt://host or mqtts://host.
func checkBrokerURL(add func(key, format string, args ...any), key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		add(key, "missing (the MQTT broker, e.g. \"mqtt://192.168.178.2:1883\")")
	case err != nil || (u.Scheme != "mqtt" && u.Scheme != "mqtts") || u.Host == "":
		add(key, "%q: want mqtt://host:1883 or mqtts://host:8883", raw)
	case u.Path != "" && u.Path != "/" || u.RawQuery != "":
		add(key, "%q: a broker URL has no path or query (topics are set with topic / topic_prefix)", raw)
	}
}

// topicOK reports whether t can be published to (no wildcards, no empty
// levels at the ends).
func topicOK(t string) bool {
	return t != "" && !strings.ContainsAny(t, "+#\x00") && !strings.HasPrefix(t, "/") && !strings.HasSuffix(t, "/")
}

func validateMQTTUplink(p string, u Uplink, add func(key, format string, args ...any)) {
	checkBrokerURL(add, p+".url", u.URL)
	if !topicOK(u.TopicPrefix) {
		add(p+".topic_prefix", "%q: want topic levels like \"powermeter/home\" (no +, #, leading or trailing /)", u.TopicPrefix)
	}
	if !topicOK(u.DiscoveryPrefix) {
		add(p+".discovery_prefix", "%q: want a topic like \"homeassistant\"", u.DiscoveryPrefix)
	}
	if len(u.ClientID) > 128 {
		add(p+".client_id", "longer than 128 characters")
	}
	if u.Key != "" {
		add(p+".key", "an MQTT uplink has no key (use username and password)")
	}
	if u.Password != "" && u.Username == "" {
		add(p+".username", "missing: a password needs a user name")
	}
}

func (c *Config) validateMQTTMeter(p string, m Meter, add func(key, format string, args ...any)) {
	checkBrokerURL(add, p+".url", m.URL)
	if !slices.Contains(MQTTFormats, m.Format) {
		add(p+".format", "%q: want one of %s", m.Format, strings.Join(MQTTFormats, ", "))
	}
	switch {
	case m.Topic == "":
		add(p+".topic", "missing (the device's MQTT topic, e.g. \"tasmota_8C3A1F\")")
	case strings.ContainsAny(m.Topic, "+#\x00"):
		add(p+".topic", "%q: a device topic has no wildcards", m.Topic)
	}
	if m.Format == "json" {
		if m.JSON == nil || m.JSON.Power == "" {
			add(p+".json.power", "missing: format json needs the path of the power value (e.g. \"ENERGY.Power\")")
		} else if u := m.JSON.EnergyUnit; u != "" && u != "Wh" && u != "kWh" {
			add(p+".json.energy_unit", "%q: want Wh or kWh", u)
		}
	} else if m.JSON != nil {
		add(p+".json", "only for format = \"json\"")
	}
	if m.MaxAge.Duration > 0 && m.MaxAge.Duration < c.Logger.Interval.Duration {
		add(p+".max_age", "%v is shorter than the logger interval %v: every round would find the value too old", m.MaxAge.Duration, c.Logger.Interval.Duration)
	}
}
