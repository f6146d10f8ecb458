// Package mqtt is the meter family for devices that push over MQTT
// (type = "mqtt"): it subscribes to what Tasmota, Shelly (Gen1 and Gen2+),
// OpenDTU and AhoyDTU already publish, or to any JSON with a path per
// value, and each round reads the newest value that arrived. A value older
// than max_age, or a device whose last will / online topic says offline,
// reads like an unreachable device; a broker that is down is reconnected
// with back-off, and every Read says so until it is back.
//
// Meters of one broker share one connection (internal/mqttc); what arrived
// outlives a meter that the logger re-creates.
package mqtt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/shelly"
	"github.com/powermeter/powermeter/internal/meter/tasmota"
	"github.com/powermeter/powermeter/internal/mqttc"
	"github.com/powermeter/powermeter/internal/reading"
)

func init() { meter.Register("mqtt", New) }

// DefaultMaxAge is how old a value may be by format when max_age is not
// set: Tasmota sends every TelePeriod (300 s unless set lower), a Gen1
// Shelly every 30 s, a Gen2+ Shelly on change (its energy counter changes
// every minute); the DTUs every few seconds.
var DefaultMaxAge = map[string]time.Duration{
	"tasmota": 11 * time.Minute,
	"shelly":  3 * time.Minute,
	"opendtu": time.Minute,
	"ahoydtu": time.Minute,
	"json":    time.Minute,
}

// FirstWait is how long after subscribing a Read waits for the first
// message (bounded by its context): devices that publish often (a DTU,
// Tasmota with TelePeriod 10) are read in the first round.
var FirstWait = 15 * time.Second

// Meter reads one device's MQTT topics.
type Meter struct {
	cfg    config.Meter
	deps   meter.Deps
	cn     *conn
	f      *feed
	base   string // the device's topic base (or the full topic for json)
	where  string // "Tasmota tele/x via mqtt://broker" for messages
	maxAge time.Duration
	now    func() time.Time
	closed bool

	tas   *tasmota.SensorReader
	gen2  *shelly.Gen2StatusReader
	gen1  bool
	paths *config.JSONPaths
}

// New is the meter.Factory for type "mqtt".
func New(cfg config.Meter, deps meter.Deps) (meter.Meter, error) {
	deps = deps.OrDefaults()
	broker, _, err := mqttc.ParseURL(cfg.URL)
	if err != nil {
		return nil, meter.ConfigError(cfg, "url", "%v", err)
	}
	m := &Meter{cfg: cfg, deps: deps, maxAge: cfg.MaxAge.Duration, now: time.Now}
	if m.maxAge <= 0 {
		m.maxAge = DefaultMaxAge[cfg.Format]
	}
	topic := strings.Trim(cfg.Topic, "/")
	hasLevels := strings.Contains(topic, "/")
	switch cfg.Format {
	case "tasmota":
		m.base = "tele/" + topic
		if hasLevels {
			m.base = topic
		}
		m.where = "Tasmota " + m.base
		u := &url.URL{Scheme: "mqtt", Host: strings.TrimPrefix(strings.TrimPrefix(broker, "tcp://"), "ssl://"), Path: "/" + m.base + "/SENSOR"}
		m.tas = tasmota.NewSensorReader(cfg, deps, u)
	case "shelly":
		m.base = topic
		m.gen1 = strings.HasPrefix(topic, "shellies/")
		m.where = "Shelly " + m.base
		if !m.gen1 {
			m.gen2 = shelly.NewGen2StatusReader(cfg, deps, m.where)
		}
	case "opendtu":
		m.base = "solar/" + topic
		if hasLevels {
			m.base = topic
		}
		m.where = "OpenDTU " + m.base
	case "ahoydtu":
		m.base = "inverter/" + topic
		if hasLevels {
			m.base = topic
		}
		m.where = "AhoyDTU " + m.base
	case "json":
		m.base = topic
		m.where = "MQTT topic " + m.base
		m.paths = cfg.JSON
		if m.paths == nil || m.paths.Power == "" {
			return nil, meter.ConfigError(cfg, "json.power", "missing: format json needs the path of the power value")
		}
	default:
		return nil, meter.ConfigError(cfg, "format", "%q: want one of %s", cfg.Format, strings.Join(config.MQTTFormats, ", "))
	}
	m.where += " via " + broker
	cn, err := acquire(cfg, deps.Log)
	if err != nil {
		return nil, meter.ConfigError(cfg, "url", "%v", err)
	}
	m.cn = cn
	m.f = cn.feed(cfg.Format+"\x00"+m.base, m.subscribe)
	return m, nil
}

// subscribe makes the format's subscriptions for a new feed.
func (m *Meter) subscribe(f *feed) {
	base := m.base
	rel := func(topic string) string { return strings.TrimPrefix(strings.TrimPrefix(topic, base), "/") }
	now := time.Now
	switch m.cfg.Format {
	case "tasmota":
		m.cn.subscribe(base+"/SENSOR", func(_ string, p []byte) { f.set("SENSOR", p, now()) })
		m.cn.subscribe(base+"/LWT", func(_ string, p []byte) {
			f.setOnline(!strings.EqualFold(strings.TrimSpace(string(p)), "offline"), now())
		})
	case "shelly":
		if m.gen1 {
			m.cn.subscribe(base+"/#", func(topic string, p []byte) {
				k := rel(topic)
				if k == "online" {
					f.setOnline(strings.TrimSpace(string(p)) != "false", now())
					return
				}
				f.set(k, p, now())
			})
			return
		}
		m.cn.subscribe(base+"/online", func(_ string, p []byte) { f.setOnline(strings.TrimSpace(string(p)) != "false", now()) })
		m.cn.subscribe(base+"/status/+", func(topic string, p []byte) { f.set(rel(topic), p, now()) })
		m.cn.subscribe(base+"/events/rpc", func(_ string, p []byte) { gen2Event(f, p, now()) })
	case "opendtu", "ahoydtu":
		m.cn.subscribe(base+"/#", func(topic string, p []byte) { f.set(rel(topic), p, now()) })
	case "json":
		m.cn.subscribe(base, func(_ string, p []byte) { f.set("", p, now()) })
	}
}

// gen2Event merges a NotifyStatus / NotifyFullStatus into the stored
// component statuses (status/<component>).
func gen2Event(f *feed, p []byte, at time.Time) {
	var ev struct {
		Method string                     `json:"method"`
		Params map[string]json.RawMessage `json:"params"`
	}
	if json.Unmarshal(p, &ev) != nil || (ev.Method != "NotifyStatus" && ev.Method != "NotifyFullStatus") {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for comp, raw := range ev.Params {
		if comp == "ts" || !strings.Contains(comp, ":") && comp != "sys" {
			continue
		}
		key := "status/" + comp
		if ev.Method == "NotifyStatus" {
			raw = mergeJSON(f.values[key].data, raw)
		}
		f.values[key] = value{data: raw, at: at}
	}
	f.gotOnce.Do(func() { close(f.got) })
}

// mergeJSON lays the fields of upd over those of old (both objects).
func mergeJSON(old, upd []byte) []byte {
	var o, u map[string]json.RawMessage
	if json.Unmarshal(old, &o) != nil || o == nil {
		return upd
	}
	if json.Unmarshal(upd, &u) != nil {
		return old
	}
	for k, v := range u {
		o[k] = v
	}
	b, err := json.Marshal(o)
	if err != nil {
		return upd
	}
	return b
}

// Sync returns once everything the broker had queued for the meter's
// connection is delivered (tests and tools).
func (m *Meter) Sync(ctx context.Context) error {
	return m.cn.c.Barrier(ctx, "powermeter/_meters")
}

// Close releases the meter's hold on the broker connection (kept a while
// for a re-created meter).
func (m *Meter) Close(context.Context) error {
	if !m.closed {
		m.closed = true
		m.cn.release()
	}
	return nil
}

// errNoData is returned by a format's read before anything arrived.
var errNoData = errors.New("nothing received yet")

// Read returns the device's newest values.
func (m *Meter) Read(ctx context.Context) ([]reading.Reading, error) {
	// Just made (a first round, `powermeter read`): the connection may
	// still be coming up.
	for !m.cn.c.EverConnected() && m.cn.c.State().Err == nil && time.Since(m.f.created) < FirstWait && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	if st := m.cn.c.State(); !st.Connected {
		why := ""
		if st.Err != nil {
			why = ": " + st.Err.Error()
		}
		return nil, meter.Errorf(meter.Unreachable, nil, "%s: the MQTT broker cannot be reached%s (reconnecting with back-off)", m.where, why)
	}
	vals, offline, offlineAt := m.f.snapshot()
	if len(vals) == 0 && time.Since(m.f.created) < FirstWait {
		// Just subscribed (a first round, `powermeter read`): wait for
		// the first message, as long as the read may take.
		select {
		case <-m.f.got:
		case <-ctx.Done():
		case <-time.After(FirstWait - time.Since(m.f.created)):
		}
		vals, offline, offlineAt = m.f.snapshot()
	}
	now := m.now()
	if offline && m.cfg.Format != "opendtu" && m.cfg.Format != "ahoydtu" {
		return nil, meter.Errorf(meter.Unreachable, nil, "%s says it is offline (its last will / online topic, since %s)", m.where, offlineAt.Format(time.RFC3339))
	}
	r, at, err := m.parse(vals, now)
	if errors.Is(err, errNoData) {
		return nil, meter.Errorf(meter.Unreachable, nil, "%s: nothing received yet (is the topic right? is the device publishing?)", m.where)
	}
	if err != nil {
		var me *meter.Error
		if errors.As(err, &me) {
			return nil, err
		}
		return nil, meter.Errorf(meter.BadAnswer, err, "%s published something unusable", m.where)
	}
	if age := now.Sub(at); age > m.maxAge {
		return nil, meter.Errorf(meter.Unreachable, nil, "%s: the newest value is %s old (max_age %s): the device stopped publishing", m.where, age.Round(time.Second), m.maxAge)
	}
	r.Device = m.cfg.Name
	r.Time = now.UTC()
	meter.Apply(m.cfg, &r)
	if err := r.Validate(); err != nil {
		return nil, meter.Errorf(meter.BadAnswer, err, "%s published values out of range", m.where)
	}
	return []reading.Reading{r}, nil
}

// parse builds the reading from what arrived and says when its newest
// power value came.
func (m *Meter) parse(vals map[string]value, now time.Time) (reading.Reading, time.Time, error) {
	switch m.cfg.Format {
	case "tasmota":
		v, ok := vals["SENSOR"]
		if !ok {
			return reading.Reading{}, time.Time{}, errNoData
		}
		r, err := m.tas.Parse(v.data, v.at)
		return r, v.at, err
	case "shelly":
		if m.gen1 {
			return m.parseGen1(vals)
		}
		st := map[string]json.RawMessage{}
		var at time.Time
		for k, v := range vals {
			if comp, ok := strings.CutPrefix(k, "status/"); ok {
				st[comp] = v.data
				if comp != "sys" && v.at.After(at) {
					at = v.at
				}
			}
		}
		if at.IsZero() {
			return reading.Reading{}, time.Time{}, errNoData
		}
		r, err := m.gen2.Parse(st)
		return r, at, err
	case "opendtu":
		return m.parseDTU(vals, now, dtuKeys{power: "0/power", yield: "0/yieldtotal", temp: "0/temperature", volt: "0/voltage", live: "status/reachable", dc: "/power", dcPrefix: ""})
	case "ahoydtu":
		return m.parseDTU(vals, now, dtuKeys{power: "ch0/P_AC", yield: "ch0/YieldTotal", temp: "ch0/Temp", volt: "ch0/U_AC", live: "available", dc: "/P_DC", dcPrefix: "ch"})
	case "json":
		v, ok := vals[""]
		if !ok {
			return reading.Reading{}, time.Time{}, errNoData
		}
		return m.parseJSON(v)
	}
	return reading.Reading{}, time.Time{}, fmt.Errorf("unknown format %q", m.cfg.Format)
}

// number reads a payload that is a bare number.
func number(v value) (float64, error) {
	var f float64
	if err := json.Unmarshal(v.data, &f); err != nil {
		return 0, fmt.Errorf("%q is not a number", clip(v.data))
	}
	return f, nil
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}

// parseGen1 reads shellies/<id>/relay/<ch>/… or emeter/<ch>/….
func (m *Meter) parseGen1(vals map[string]value) (reading.Reading, time.Time, error) {
	ch := fmt.Sprint(m.cfg.Channel)
	var r reading.Reading
	var at time.Time
	if v, ok := vals["relay/"+ch+"/power"]; ok {
		p, err := number(v)
		if err != nil {
			return r, at, err
		}
		r.Power, at = p, v.at
		if e, ok := vals["relay/"+ch+"/energy"]; ok {
			wmin, err := number(e)
			if err != nil {
				return r, at, err
			}
			r.EnergyIn = reading.F(wmin / 60) // watt-minutes
		}
	} else if v, ok := vals["emeter/"+ch+"/power"]; ok {
		p, err := number(v)
		if err != nil {
			return r, at, err
		}
		r.Power, at = p, v.at
		for key, dst := range map[string]**float64{"total": &r.EnergyIn, "total_returned": &r.EnergyOut, "voltage": &r.Voltage} {
			if e, ok := vals["emeter/"+ch+"/"+key]; ok {
				x, err := number(e)
				if err != nil {
					return r, at, err
				}
				*dst = reading.F(x)
			}
		}
	} else {
		return r, at, errNoData
	}
	if t, ok := vals["temperature"]; ok {
		if x, err := number(t); err == nil {
			r.Temperature = reading.F(x)
		}
	}
	return r, at, nil
}

type dtuKeys struct {
	power, yield, temp, volt, live string
	dc, dcPrefix                   string // DC input n: dcPrefix+n+dc
}

// parseDTU reads an inverter's values from OpenDTU's solar/<serial>/… or
// AhoyDTU's inverter/<name>/…: production positive, YieldTotal (kWh) as
// the import counter, like the HTTP meters. An inverter that is not
// reachable / available produces 0 W (not an error: every night).
func (m *Meter) parseDTU(vals map[string]value, now time.Time, k dtuKeys) (reading.Reading, time.Time, error) {
	var r reading.Reading
	asleep := false
	var liveAt time.Time
	if v, ok := vals[k.live]; ok {
		s := strings.TrimSpace(string(v.data))
		asleep, liveAt = s == "0" || s == "false", v.at
	}
	if y, ok := vals[k.yield]; ok {
		kwh, err := number(y)
		if err != nil {
			return r, time.Time{}, err
		}
		if kwh > 0 || !asleep {
			r.EnergyIn = reading.F(whFromKWh(kwh))
		}
	}
	if asleep {
		return r, now, nil
	}
	v, ok := vals[k.power]
	if !ok {
		if !liveAt.IsZero() {
			return r, time.Time{}, meter.Errorf(meter.NotPresent, nil, "%s: the inverter is reachable but published no AC power yet", m.where)
		}
		return r, time.Time{}, errNoData
	}
	p, err := number(v)
	if err != nil {
		return r, time.Time{}, err
	}
	r.Power = p
	for key, dst := range map[string]**float64{k.temp: &r.Temperature, k.volt: &r.Voltage} {
		if x, ok := vals[key]; ok {
			if f, err := number(x); err == nil {
				*dst = reading.F(f)
			}
		}
	}
	for n := 1; n <= 16; n++ {
		x, ok := vals[fmt.Sprintf("%s%d%s", k.dcPrefix, n, k.dc)]
		if !ok {
			break
		}
		f, err := number(x)
		if err != nil {
			return r, time.Time{}, err
		}
		r.Phases = append(r.Phases, f)
	}
	return r, v.at, nil
}

func whFromKWh(kwh float64) float64 { return math.Round(kwh*1e6) / 1e3 }
