// Package epever reads an EPEVER solar charge controller through the
// ESP-Epever bridge firmware (an ESP8266 on the controller's RS485 port
// that serves `GET /AllJsonData`), and emulates one.
//
// The reading: Power is the panel power (W, positive: production as the
// controller reports it; invert = true books it as feed-in), Voltage the
// battery voltage, and Phases the PHP app's values 3–5 in its order:
// battery current (A), panel voltage (V), panel current (A). On a legacy
// uplink the line is then the PHP app's own:
// `PanelP,BatteryV,BatteryI,PanelV,PanelI`.
package epever

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/devhttp"
	"github.com/powermeter/powermeter/internal/reading"
)

func init() {
	meter.Register("epever", func(cfg config.Meter, deps meter.Deps) (meter.Meter, error) {
		return New(cfg, deps)
	})
}

// Path is the bridge's data endpoint.
const Path = "/AllJsonData"

// Meter reads one ESP-Epever bridge.
type Meter struct {
	cfg config.Meter
	c   *devhttp.Client
	now func() time.Time
}

// New builds the meter; it does not talk to the device.
func New(cfg config.Meter, deps meter.Deps) (*Meter, error) {
	c, err := devhttp.New(cfg, "ESP-Epever")
	if err != nil {
		return nil, err
	}
	c.BasicAuth = cfg.Password != ""
	return &Meter{cfg: cfg, c: c, now: time.Now}, nil
}

// Close has nothing to release.
func (m *Meter) Close(context.Context) error { return nil }

// num is a value the bridge sends as a JSON number or a numeric string.
type num struct {
	v   float64
	set bool
}

func (n *num) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		n.v, n.set = f, true
		return nil
	}
	if err := json.Unmarshal(b, &n.v); err != nil {
		return err
	}
	n.set = true
	return nil
}

type allData struct {
	PanelP   num `json:"PanelP"`
	PanelV   num `json:"PanelV"`
	PanelI   num `json:"PanelI"`
	BatteryV num `json:"BatteryV"`
	BatteryI num `json:"BatteryI"`
}

// Read fetches /AllJsonData and returns one reading.
func (m *Meter) Read(ctx context.Context) ([]reading.Reading, error) {
	var d allData
	if err := m.c.GetJSON(ctx, Path, &d); err != nil {
		return nil, err
	}
	return m.c.Result(m.parse(&d))
}

func (m *Meter) parse(d *allData) (reading.Reading, error) {
	var missing []string
	for _, f := range []struct {
		name string
		n    num
	}{{"PanelP", d.PanelP}, {"BatteryV", d.BatteryV}, {"BatteryI", d.BatteryI}, {"PanelV", d.PanelV}, {"PanelI", d.PanelI}} {
		if !f.n.set {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "%s answered %s without %s: is this an ESP-Epever bridge?", m.c.Where(), Path, strings.Join(missing, ", "))
	}
	r := reading.Reading{
		Device:  m.cfg.Name,
		Time:    m.now().UTC(),
		Power:   d.PanelP.v,
		Phases:  []float64{d.BatteryI.v, d.PanelV.v, d.PanelI.v},
		Voltage: nil,
	}
	if d.BatteryV.v >= 0 {
		r.Voltage = reading.F(d.BatteryV.v)
	}
	if err := m.c.Check(r); err != nil {
		return reading.Reading{}, err
	}
	return r, nil
}

// String describes the meter for logs.
func (m *Meter) String() string { return "epever " + m.c.Where() }
