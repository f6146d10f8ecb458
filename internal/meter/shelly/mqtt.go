package shelly

import (
	"encoding/json"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

// Gen2StatusReader reads a Gen2+ Shelly's components as it publishes them
// over MQTT (<prefix>/status/<component>, NotifyStatus and
// NotifyFullStatus on <prefix>/events/rpc): the same objects as in
// Shelly.GetStatus, read exactly as the HTTP meter reads them.
type Gen2StatusReader struct{ m *Meter }

// NewGen2StatusReader builds a reader for cfg's channel; where names the
// device in messages.
func NewGen2StatusReader(cfg config.Meter, deps meter.Deps, where string) *Gen2StatusReader {
	deps = deps.OrDefaults()
	return &Gen2StatusReader{m: &Meter{cfg: cfg, where: where, log: deps.Log, zone: deps.Zone, now: time.Now,
		keys: newGen2Keys(cfg.Channel), dev: &device{gen: 2, model: "MQTT"}}}
}

// Parse reads the configured channel from the merged component statuses.
func (g *Gen2StatusReader) Parse(st map[string]json.RawMessage) (reading.Reading, error) {
	return g.m.gen2Reading(st)
}
