// Package opendtu reads Hoymiles micro-inverters through an OpenDTU
// (`/api/livedata/status`), and emulates an OpenDTU with two inverters.
//
// With serial set, the meter reads that inverter (`?inv=<serial>`); without,
// the DTU's total over all inverters. Power is reported as the DTU reports
// it (production positive) and YieldTotal is the EnergyIn counter; invert =
// true flips both.
//
// Micro-inverters switch off every night. An inverter that is not reachable,
// or whose data is older than StaleAfter, produces nothing: the reading says
// 0 W (not an error, or every night would be a failure) and keeps the energy
// counter. After an OpenDTU restart at night the counters read 0 until the
// inverter answers again; a 0 counter of a sleeping inverter is no counter
// and is left out. A reachable inverter whose YieldTotal dropped to 0 (its
// own restart) is passed on as it is: the energy layer treats it as a reset.
package opendtu

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/devhttp"
	"github.com/powermeter/powermeter/internal/reading"
)

func init() {
	meter.Register("opendtu", New)
}

// StaleAfter is the data age beyond which an inverter counts as asleep.
const StaleAfter = 3 * time.Minute

// DefaultUser is OpenDTU's only user.
const DefaultUser = "admin"

// Meter reads one inverter, or the total, of an OpenDTU.
type Meter struct {
	cfg  config.Meter
	c    *devhttp.Client
	path string
	log  *slog.Logger
	now  func() time.Time
}

// New is the meter.Factory for type "opendtu".
func New(cfg config.Meter, deps meter.Deps) (meter.Meter, error) {
	c, err := devhttp.New(cfg, "OpenDTU")
	if err != nil {
		return nil, err
	}
	c.BasicAuth = true
	if c.Username == "" {
		c.Username = DefaultUser
	}
	c.AuthHint = "set password to the OpenDTU admin password (or allow read-only access in its security settings)"
	path := "/api/livedata/status"
	if cfg.Serial != "" {
		path += "?inv=" + url.QueryEscape(cfg.Serial)
	}
	return &Meter{cfg: cfg, c: c, path: path, log: deps.OrDefaults().Log, now: time.Now}, nil
}

// Close has nothing to release.
func (m *Meter) Close(context.Context) error { return nil }

// value is OpenDTU's {"v":…,"u":"W","d":1}.
type value struct {
	V float64 `json:"v"`
	U string  `json:"u"`
}

type channels map[string]map[string]value

type inverter struct {
	Serial    string   `json:"serial"`
	Name      string   `json:"name"`
	DataAge   int64    `json:"data_age"`
	Reachable bool     `json:"reachable"`
	Producing bool     `json:"producing"`
	AC        channels `json:"AC"`
	DC        channels `json:"DC"`
	INV       channels `json:"INV"`
}

type livedata struct {
	Inverters []inverter `json:"inverters"`
	Total     *struct {
		Power      *value `json:"Power"`
		YieldDay   *value `json:"YieldDay"`
		YieldTotal *value `json:"YieldTotal"`
	} `json:"total"`
}

func (inv *inverter) live() bool {
	return inv.Reachable && time.Duration(inv.DataAge)*time.Second <= StaleAfter
}

// scaled converts v to the base unit (W, Wh) from the unit it names.
func (v value) scaled() float64 {
	switch strings.ToLower(v.U) {
	case "kw", "kwh":
		return math.Round(v.V*1e6) / 1e3 // without float noise
	}
	return v.V
}

// Read fetches the live data.
func (m *Meter) Read(ctx context.Context) ([]reading.Reading, error) {
	var ld livedata
	if err := m.c.GetJSON(ctx, m.path, &ld); err != nil {
		return nil, err
	}
	r, err := m.parse(&ld)
	if err == nil && m.cfg.Serial == "" && len(ld.Inverters) == 1 && ld.Inverters[0].live() {
		r.Temperature = m.soleTemperature(ctx, &ld.Inverters[0])
	}
	return m.c.Result(r, err)
}

// soleTemperature is the temperature of a DTU's only inverter, for the
// total: from the status when it carries the inverter's INV channel (older
// firmware), else from ?inv=<serial>. A failure here costs the temperature,
// not the reading.
func (m *Meter) soleTemperature(ctx context.Context, inv *inverter) *float64 {
	if t, ok := inv.INV["0"]["Temperature"]; ok {
		return reading.F(t.V)
	}
	var one livedata
	if err := m.c.GetJSON(ctx, "/api/livedata/status?inv="+url.QueryEscape(inv.Serial), &one); err != nil {
		m.log.Debug("opendtu: no temperature of the only inverter", "meter", m.cfg.Name, "err", err)
		return nil
	}
	for _, i := range one.Inverters {
		if t, ok := i.INV["0"]["Temperature"]; ok && i.Serial == inv.Serial {
			return reading.F(t.V)
		}
	}
	return nil
}

// parse takes the configured inverter (or the total) and checks the reading.
func (m *Meter) parse(ld *livedata) (reading.Reading, error) {
	pick := m.total
	if m.cfg.Serial != "" {
		pick = m.one
	}
	r, err := pick(ld)
	if err == nil {
		err = m.c.Check(r)
	}
	if err != nil {
		return reading.Reading{}, err
	}
	return r, nil
}

func (m *Meter) one(ld *livedata) (reading.Reading, error) {
	w := m.c.Where()
	var inv *inverter
	for i := range ld.Inverters {
		if ld.Inverters[i].Serial == m.cfg.Serial {
			inv = &ld.Inverters[i]
		}
	}
	if inv == nil {
		return reading.Reading{}, meter.Errorf(meter.Config, nil, "%s has no inverter with serial %q (it has: %s)", w, m.cfg.Serial, serials(ld))
	}
	r := reading.Reading{Device: m.cfg.Name, Time: m.now().UTC()}
	ac, hasAC := inv.AC["0"]
	if !hasAC {
		if inv.live() {
			return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "%s sent no AC values for inverter %s", w, inv.Serial)
		}
		return r, nil // asleep since the DTU started: nothing but 0 W
	}
	live := inv.live()
	if y, ok := ac["YieldTotal"]; ok && y.V >= 0 && (live || y.V > 0) {
		r.EnergyIn = reading.F(y.scaled())
	}
	dcKeys := sortedKeys(inv.DC)
	r.Phases = make([]float64, len(dcKeys))
	if !live {
		return r, nil
	}
	p, ok := ac["Power"]
	if !ok {
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "%s sent no AC power for inverter %s", w, inv.Serial)
	}
	r.Power = p.scaled()
	if v, ok := ac["Voltage"]; ok {
		r.Voltage = reading.F(v.V)
	}
	if t, ok := inv.INV["0"]["Temperature"]; ok {
		r.Temperature = reading.F(t.V)
	}
	for i, k := range dcKeys {
		r.Phases[i] = inv.DC[k]["Power"].scaled()
	}
	return r, nil
}

func (m *Meter) total(ld *livedata) (reading.Reading, error) {
	w := m.c.Where()
	if len(ld.Inverters) == 0 {
		return reading.Reading{}, meter.Errorf(meter.Config, nil, "%s has no inverters configured", w)
	}
	if ld.Total == nil || ld.Total.Power == nil {
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "%s sent no total power", w)
	}
	live := false
	for i := range ld.Inverters {
		live = live || ld.Inverters[i].live()
	}
	r := reading.Reading{Device: m.cfg.Name, Time: m.now().UTC()}
	if live {
		r.Power = ld.Total.Power.scaled()
	}
	if y := ld.Total.YieldTotal; y != nil && y.V >= 0 && (live || y.V > 0) {
		r.EnergyIn = reading.F(y.scaled())
	}
	return r, nil
}

func sortedKeys(c channels) []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, ea := strconv.Atoi(keys[i])
		b, eb := strconv.Atoi(keys[j])
		if ea != nil || eb != nil {
			return keys[i] < keys[j]
		}
		return a < b
	})
	return keys
}

func serials(ld *livedata) string {
	if len(ld.Inverters) == 0 {
		return "none"
	}
	s := make([]string, len(ld.Inverters))
	for i, inv := range ld.Inverters {
		s[i] = inv.Serial
	}
	return strings.Join(s, ", ")
}

// Discover lists the DTU's inverters.
func (m *Meter) Discover(ctx context.Context) ([]meter.Device, error) {
	var ld livedata
	if err := m.c.GetJSON(ctx, "/api/livedata/status", &ld); err != nil {
		return nil, err
	}
	out := make([]meter.Device, 0, len(ld.Inverters))
	for _, inv := range ld.Inverters {
		state := "not reachable"
		switch {
		case inv.Reachable && inv.Producing:
			state = "reachable, producing"
		case inv.Reachable:
			state = "reachable, not producing"
		}
		out = append(out, meter.Device{ID: inv.Serial, Name: inv.Name,
			Note: fmt.Sprintf("%s; data %d s old; serial = %q", state, inv.DataAge, inv.Serial)})
	}
	return out, nil
}
