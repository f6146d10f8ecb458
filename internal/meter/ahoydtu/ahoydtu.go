// Package ahoydtu reads a Hoymiles micro-inverter through an AhoyDTU
// (`/api/inverter/id/N`), and emulates an AhoyDTU with two inverters.
//
// The inverter's output is reported as the DTU reports it: positive power,
// YieldTotal as the EnergyIn counter (invert = true flips both, for a
// household view where production is feed-in).
//
// AhoyDTU keeps the last values of an inverter after it went to sleep at
// dusk; only ts_last_success tells. When ts_last_success has not moved for
// StaleAfter, or is older than MaxAge, the inverter is taken to be asleep: a
// sleeping inverter produces nothing, so the reading says 0 W and keeps the
// energy counter (which is still right). An inverter the DTU has never
// reached since it started (ts_last_success = 0) has no counter to report:
// that is a NotPresent error.
package ahoydtu

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/devhttp"
	"github.com/powermeter/powermeter/internal/reading"
)

func init() {
	meter.Register("ahoydtu", New)
}

const (
	// StaleAfter is how long ts_last_success may stand still (as seen by
	// this meter) before the inverter counts as asleep. AhoyDTU polls every
	// 15–30 s by default.
	StaleAfter = 3 * time.Minute
	// MaxAge is how old ts_last_success may be on any read (a first read
	// at night); generous, so clock differences do not matter.
	MaxAge = 15 * time.Minute
)

// Indices in ch[0] (AC) and ch[1..] (DC inputs) of /api/inverter/id/N.
const (
	acU, acI, acP, acF, acPF, acTemp, acYieldTotal = 0, 1, 2, 3, 4, 5, 6
	dcP                                            = 2
)

// Meter reads one inverter of an AhoyDTU.
type Meter struct {
	cfg config.Meter
	c   *devhttp.Client
	log *slog.Logger
	now func() time.Time

	mu         sync.Mutex
	lastTS     int64
	lastChange time.Time
	asleep     bool
}

// New is the meter.Factory for type "ahoydtu"; channel is the inverter's
// position (id) in the DTU's list, counting from 0.
func New(cfg config.Meter, deps meter.Deps) (meter.Meter, error) {
	c, err := devhttp.New(cfg, "AhoyDTU")
	if err != nil {
		return nil, err
	}
	return &Meter{cfg: cfg, c: c, log: deps.OrDefaults().Log, now: time.Now}, nil
}

// Close has nothing to release.
func (m *Meter) Close(context.Context) error { return nil }

type inverter struct {
	Error         string      `json:"error"`
	Name          string      `json:"name"`
	TSLastSuccess int64       `json:"ts_last_success"`
	Ch            [][]float64 `json:"ch"`
}

// Read fetches the inverter's live values.
func (m *Meter) Read(ctx context.Context) ([]reading.Reading, error) {
	var inv inverter
	if err := m.c.GetJSON(ctx, fmt.Sprintf("/api/inverter/id/%d", m.cfg.Channel), &inv); err != nil {
		return nil, err
	}
	return m.c.Result(m.parse(&inv))
}

func (m *Meter) parse(inv *inverter) (reading.Reading, error) {
	w := m.c.Where()
	if inv.Error != "" {
		if strings.Contains(strings.ToLower(inv.Error), "not found") {
			return reading.Reading{}, meter.Errorf(meter.Config, nil, "%s has no inverter with id %d (channel counts from 0 in the DTU's inverter list; 'powermeter discover' lists them)", w, m.cfg.Channel)
		}
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "%s answered an error for inverter %d: %s", w, m.cfg.Channel, inv.Error)
	}
	if len(inv.Ch) == 0 || len(inv.Ch[0]) <= acYieldTotal {
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "%s: inverter %d has no AC values (ch[0] too short)", w, m.cfg.Channel)
	}
	for i, dc := range inv.Ch[1:] {
		if len(dc) <= dcP {
			return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "%s: inverter %d: DC input %d has no power value", w, m.cfg.Channel, i+1)
		}
	}
	if inv.TSLastSuccess <= 0 {
		return reading.Reading{}, meter.Errorf(meter.NotPresent, nil, "%s has no data from inverter %d (%s) since it started: the inverter is asleep or out of radio range", w, m.cfg.Channel, inv.Name)
	}
	now := m.now()
	devTime := time.Unix(inv.TSLastSuccess, 0).UTC()
	m.mu.Lock()
	if inv.TSLastSuccess != m.lastTS {
		m.lastTS, m.lastChange = inv.TSLastSuccess, now
	}
	asleep := now.Sub(m.lastChange) >= StaleAfter || now.Sub(devTime) > MaxAge
	if asleep != m.asleep {
		msg := "ahoydtu: inverter awake again"
		if asleep {
			msg = "ahoydtu: inverter asleep (ts_last_success stands still); reporting 0 W"
		}
		m.log.Info(msg, "meter", m.cfg.Name, "inverter", m.cfg.Channel, "last_success", devTime)
		m.asleep = asleep
	}
	m.mu.Unlock()

	ac := inv.Ch[0]
	r := reading.Reading{Device: m.cfg.Name, Time: now.UTC(), DeviceTime: &devTime}
	if y := ac[acYieldTotal]; y >= 0 {
		r.EnergyIn = reading.F(math.Round(y*1e6) / 1e3) // kWh → Wh without float noise
	}
	if len(inv.Ch) > 1 {
		r.Phases = make([]float64, len(inv.Ch)-1)
	}
	if !asleep {
		r.Power = ac[acP]
		r.Temperature = reading.F(ac[acTemp])
		r.Voltage = reading.F(ac[acU])
		for i, dc := range inv.Ch[1:] {
			r.Phases[i] = dc[dcP]
		}
	}
	if err := m.c.Check(r); err != nil {
		return reading.Reading{}, err
	}
	return r, nil
}

type inverterList struct {
	Inverter []struct {
		ID       int             `json:"id"`
		Name     string          `json:"name"`
		Serial   json.RawMessage `json:"serial"`
		Channels int             `json:"channels"`
		Enabled  *bool           `json:"enabled"`
	} `json:"inverter"`
}

// Discover lists the inverters configured on the DTU (/api/inverter/list).
func (m *Meter) Discover(ctx context.Context) ([]meter.Device, error) {
	var l inverterList
	if err := m.c.GetJSON(ctx, "/api/inverter/list", &l); err != nil {
		return nil, err
	}
	out := make([]meter.Device, 0, len(l.Inverter))
	for _, inv := range l.Inverter {
		serial := strings.Trim(string(inv.Serial), `"`)
		note := fmt.Sprintf("%d DC input(s); channel = %d", inv.Channels, inv.ID)
		if inv.Enabled != nil && !*inv.Enabled {
			note += "; disabled on the DTU"
		}
		out = append(out, meter.Device{ID: strconv.Itoa(inv.ID), Name: inv.Name, Model: "serial " + serial, Note: note})
	}
	return out, nil
}
