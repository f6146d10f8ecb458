// Package tasmota reads energy-monitoring plugs and relays running Tasmota
// over its HTTP command interface (`/cm?cmnd=Status%208`), smart-meter read
// heads running Tasmota's SML script (`Status 10`, a mapped group; see
// ParseSML, which the MQTT meter shares), and emulates both.
package tasmota

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/devhttp"
	"github.com/powermeter/powermeter/internal/reading"
)

func init() {
	meter.Register("tasmota", New)
}

// DefaultUser is Tasmota's web user; it cannot be changed on the device.
const DefaultUser = "admin"

// Meter reads one channel of a Tasmota device, or its SML group.
type Meter struct {
	cfg  config.Meter
	c    *devhttp.Client
	path string
	auth string // "&user=…&password=…" or ""
	zone *time.Location
	log  *slog.Logger
	now  func() time.Time
	// sml is the field mapping; smlOnly when [meters.sml] is configured
	// (otherwise SML is used only when the device has no ENERGY section).
	sml        SMLMap
	smlOnly    bool
	fellBack   atomic.Bool // an SML device without [meters.sml] (logged once)
	noStatus10 atomic.Bool // old firmware: Status 8 instead of Status 10
}

// New is the meter.Factory for type "tasmota".
func New(cfg config.Meter, deps meter.Deps) (meter.Meter, error) {
	c, err := devhttp.New(cfg, "Tasmota")
	if err != nil {
		return nil, err
	}
	user := cfg.Username
	if user == "" && cfg.Password != "" {
		user = DefaultUser
	}
	c.Username = user
	c.AuthHint = "set password to the device's web admin password (the user is admin)"
	auth := ""
	if cfg.Password != "" {
		auth = "&user=" + url.QueryEscape(user) + "&password=" + url.QueryEscape(cfg.Password)
	}
	// Status 10 is StatusSNS on current firmware; Status 8 is its older
	// name, still answered, and what plugs have always been read with.
	path := "/cm?cmnd=Status%208" + auth
	if cfg.SML != nil {
		path = "/cm?cmnd=Status%2010" + auth
	}
	deps = deps.OrDefaults()
	return &Meter{cfg: cfg, c: c, path: path, auth: auth, zone: deps.Zone, log: deps.Log, now: time.Now,
		sml: SMLMapFrom(cfg.SML), smlOnly: cfg.SML != nil}, nil
}

// ReadsSML reports whether the meter reads a smart-meter read head's group
// (configured, or found instead of an ENERGY section).
func (m *Meter) ReadsSML() bool { return m.smlOnly || m.fellBack.Load() }

// Close has nothing to release: Tasmota has no sessions.
func (m *Meter) Close(context.Context) error { return nil }

// status8 is the answer to `Status 8`. Other sections than Time and ENERGY
// (smart-meter scripts: SML, sensors) are kept raw to name them in errors.
type status8 struct {
	Warning string                     `json:"WARNING"`
	Command string                     `json:"Command"`
	SNS     map[string]json.RawMessage `json:"StatusSNS"`
}

type energy struct {
	Power        numbers `json:"Power"`
	Total        numbers `json:"Total"`
	Voltage      numbers `json:"Voltage"`
	Current      numbers `json:"Current"`
	Factor       numbers `json:"Factor"`
	ExportActive numbers `json:"ExportActive"`
}

// numbers is a Tasmota value that is a scalar on single-channel devices and
// an array (one per channel) on multi-channel ones.
type numbers struct {
	v   []float64
	arr bool
	set bool
}

func (n *numbers) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	n.set = true
	if len(b) > 0 && b[0] == '[' {
		n.arr = true
		return json.Unmarshal(b, &n.v)
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	n.v = []float64{f}
	return nil
}

// at returns the value for channel ch: an array's element, or the scalar
// (which stands for the whole device) when single is allowed.
func (n numbers) at(ch int) (float64, bool) {
	if !n.set || len(n.v) == 0 {
		return 0, false
	}
	if n.arr {
		if ch < len(n.v) {
			return n.v[ch], true
		}
		return 0, false
	}
	return n.v[0], true
}

// Read asks for Status 8 and returns one reading.
func (m *Meter) Read(ctx context.Context) ([]reading.Reading, error) {
	path := m.path
	if m.noStatus10.Load() {
		path = strings.Replace(path, "Status%2010", "Status%208", 1)
	}
	body, err := m.c.Get(ctx, path)
	if err != nil {
		return nil, err
	}
	var st status8
	if err := m.c.Decode("/cm", body, &st); err != nil {
		return nil, err
	}
	// Firmware without Status 10 (before 8.x) answers Command=Unknown: its
	// StatusSNS is Status 8.
	if st.SNS == nil && st.Command != "" && strings.Contains(path, "Status%2010") {
		m.noStatus10.Store(true)
		m.log.Info("tasmota: the device does not know Status 10; asking Status 8", "meter", m.cfg.Name)
		return m.Read(ctx)
	}
	return m.c.Result(m.parse(&st))
}

func (m *Meter) parse(st *status8) (reading.Reading, error) {
	w := m.c.Where()
	if st.Warning != "" {
		if m.cfg.Password == "" {
			return reading.Reading{}, meter.Errorf(meter.Auth, nil, "%s demands a user and password (%q): set password to the device's web admin password", w, st.Warning)
		}
		return reading.Reading{}, meter.Errorf(meter.Auth, nil, "%s refused user %q with the configured password (%q)", w, m.c.Username, st.Warning)
	}
	if st.SNS == nil {
		if st.Command != "" {
			return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "%s does not know the command Status 8 (answered Command=%q)", w, st.Command)
		}
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "%s answered without a StatusSNS section: is this a Tasmota device?", w)
	}
	raw, ok := st.SNS["ENERGY"]
	if m.smlOnly || !ok {
		if !m.smlOnly {
			if _, has := st.SNS[m.sml.Group]; !has {
				return reading.Reading{}, meter.Errorf(meter.Config, nil, "%s has no ENERGY section in Status 8 (it reports: %s): for a smart-meter read head add a [meters.sml] section naming the group and fields of its script", w, sections(st.SNS))
			}
			if !m.fellBack.Swap(true) {
				m.log.Info("tasmota: no ENERGY section, reading the smart-meter group", "meter", m.cfg.Name, "group", m.sml.Group)
			}
		}
		v, err := ParseSML(st.SNS, m.sml)
		if err != nil {
			return reading.Reading{}, meter.Errorf(meter.KindOf(err), err, "%s", w)
		}
		r, err := v.Reading(m.cfg.Name, m.now())
		if err != nil {
			return reading.Reading{}, meter.Errorf(meter.KindOf(err), errors.Unwrap(err), "%s", w)
		}
		m.deviceTime(st, &r)
		if err := m.c.Check(r); err != nil {
			return reading.Reading{}, err
		}
		return r, nil
	}
	var e energy
	if err := json.Unmarshal(raw, &e); err != nil {
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, err, "%s: the ENERGY section has an unexpected shape", w)
	}
	ch := m.cfg.Channel
	power, ok := e.Power.at(ch)
	switch {
	case !e.Power.set:
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "%s: the ENERGY section has no Power", w)
	case !ok || (!e.Power.arr && ch > 0):
		return reading.Reading{}, meter.Errorf(meter.Config, nil, "%s has %d channel(s) (0..%d); channel = %d does not exist", w, len(e.Power.v), len(e.Power.v)-1, ch)
	}
	r := reading.Reading{Device: m.cfg.Name, Time: m.now().UTC(), Power: precise(e, ch, power)}
	if e.Power.arr {
		r.Phases = append([]float64(nil), e.Power.v...)
	}
	// A scalar Total on a multi-channel device is the sum of all channels:
	// it is no counter of the chosen channel, so it is left out.
	if !e.Power.arr || e.Total.arr {
		if kwh, ok := e.Total.at(ch); ok && kwh >= 0 {
			r.EnergyIn = reading.F(whFromKWh(kwh))
		}
		if kwh, ok := e.ExportActive.at(ch); ok && kwh >= 0 {
			r.EnergyOut = reading.F(whFromKWh(kwh))
		}
	}
	if v, ok := e.Voltage.at(ch); ok {
		r.Voltage = reading.F(v)
	}
	r.Temperature = temperature(st.SNS)
	m.deviceTime(st, &r)
	if err := m.c.Check(r); err != nil {
		return reading.Reading{}, err
	}
	return r, nil
}

// precise is the power as the PHP app computes it: V × I × PF when the
// device reports all three (Power is rounded to whole watts by many
// devices, so a 0.4 W standby would read 0), the sign of Power kept;
// Power otherwise.
func precise(e energy, ch int, power float64) float64 {
	v, okV := e.Voltage.at(ch)
	i, okI := e.Current.at(ch)
	pf, okF := e.Factor.at(ch)
	if !okV || !okI || !okF || v <= 0 || i < 0 || pf < 0 || pf > 1 {
		return power
	}
	p := math.Round(v*i*pf*100) / 100
	if power < 0 {
		p = -p
	}
	return p
}

// temperature is a temperature sensor's value from StatusSNS: a DS18B20
// first, then any other sensor section with a Temperature (the ESP32's own
// chip temperature is left out: it says nothing about the load). Tasmota
// reports in TempUnit, C by default.
func temperature(sns map[string]json.RawMessage) *float64 {
	var names []string
	for k := range sns {
		if k == "ENERGY" || k == "Time" || k == "ESP32" || k == "TempUnit" {
			continue
		}
		names = append(names, k)
	}
	sort.Slice(names, func(a, b int) bool {
		da, db := strings.HasPrefix(names[a], "DS18B20"), strings.HasPrefix(names[b], "DS18B20")
		if da != db {
			return da
		}
		return names[a] < names[b]
	})
	unit := "C"
	if raw, ok := sns["TempUnit"]; ok {
		json.Unmarshal(raw, &unit)
	}
	for _, k := range names {
		var s struct {
			Temperature *float64 `json:"Temperature"`
		}
		if json.Unmarshal(sns[k], &s) != nil || s.Temperature == nil {
			continue
		}
		t := *s.Temperature
		if unit == "F" {
			t = math.Round((t-32)*5/9*10) / 10
		}
		if t < -100 || t > 300 {
			continue
		}
		return &t
	}
	return nil
}

func (m *Meter) deviceTime(st *status8, r *reading.Reading) {
	if rawTime, ok := st.SNS["Time"]; ok {
		var s string
		if json.Unmarshal(rawTime, &s) == nil {
			if t, err := time.ParseInLocation("2006-01-02T15:04:05", s, m.zone); err == nil {
				t = t.UTC()
				r.DeviceTime = &t
			} else {
				m.log.Debug("tasmota: unreadable Time", "meter", m.cfg.Name, "time", s)
			}
		}
	}
}

// whFromKWh converts without float noise (842.117 kWh → 842117 Wh, not
// 842117.0000000001).
func whFromKWh(kwh float64) float64 { return math.Round(kwh*1e6) / 1e3 }

func sections(sns map[string]json.RawMessage) string {
	var names []string
	for k := range sns {
		if k != "Time" {
			names = append(names, k)
		}
	}
	if len(names) == 0 {
		return "nothing but the time"
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// String describes the meter for logs.
func (m *Meter) String() string {
	return fmt.Sprintf("tasmota %s channel %d", m.c.Where(), m.cfg.Channel)
}
