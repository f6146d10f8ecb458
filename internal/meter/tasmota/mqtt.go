package tasmota

import (
	"encoding/json"
	"net/url"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/devhttp"
	"github.com/powermeter/powermeter/internal/reading"
)

// SensorReader reads what a Tasmota publishes on tele/<topic>/SENSOR: the
// same JSON as the StatusSNS section of Status 8 / Status 10 (ENERGY, or
// a smart-meter script's group), so the MQTT meter reads it exactly as the
// HTTP meter reads the answer of the device.
type SensorReader struct {
	mu sync.Mutex
	m  *Meter
	at time.Time // the arrival time of the payload being parsed
}

// NewSensorReader builds a reader for cfg; where names the topic in
// messages (mqtt://broker/tele/<topic>/SENSOR).
func NewSensorReader(cfg config.Meter, deps meter.Deps, where *url.URL) *SensorReader {
	deps = deps.OrDefaults()
	s := &SensorReader{}
	s.m = &Meter{cfg: cfg, c: &devhttp.Client{Family: "Tasmota", Base: where}, zone: deps.Zone, log: deps.Log,
		now: func() time.Time { return s.at }, sml: SMLMapFrom(cfg.SML), smlOnly: cfg.SML != nil}
	return s
}

// Parse reads one SENSOR payload that arrived at at.
func (s *SensorReader) Parse(payload []byte, at time.Time) (reading.Reading, error) {
	var sns map[string]json.RawMessage
	if err := json.Unmarshal(payload, &sns); err != nil || sns == nil {
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, err, "%s published something that is not a SENSOR JSON object", s.m.c.Where())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.at = at
	return s.m.parse(&status8{SNS: sns})
}
