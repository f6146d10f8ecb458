// Package hass builds Home Assistant's MQTT discovery messages for the
// devices the logger reads and keeps them published: one HA device per
// meter device, a sensor per quantity the device reports (power, energy
// import and export counters, temperature, voltage), configs sent again
// when Home Assistant announces itself (birth message), and empty
// retained configs for the entities of meters removed from the config.
//
// It knows nothing of the outbox: the MQTT uplink tells it which devices
// it has seen (Seen) and when the connection is (re)made (Connected).
package hass

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/mqttc"
	"github.com/powermeter/powermeter/internal/reading"
)

// Options describe where the states are and where discovery goes.
type Options struct {
	// Prefix is HA's discovery prefix (default "homeassistant").
	Prefix string
	// Source names the home (part of unique ids and device ids).
	Source string
	// StateTopic returns the retained JSON state topic of a device.
	StateTopic func(device string) string
	// Availability is the logger's online/offline topic (its last will).
	Availability string
	// ExpireAfter makes HA show a sensor unavailable when no state came
	// for so long (0: never).
	ExpireAfter time.Duration
	// Meters are the configured meters by name, with their type (and
	// format, for MQTT meters); entities of other meters are removed.
	Meters map[string]string
	// Registry is the retained topic where the published config topics
	// are kept (default <Availability's parent>/discovery).
	Registry string
	Version  string
	Log      *slog.Logger
}

// Quantity is one sensor of a device.
type Quantity struct {
	Key         string // object id suffix: power, energy_import …
	Name        string
	Field       string // the JSON field in the state payload
	DeviceClass string
	StateClass  string
	Unit        string
	Precision   int
}

// The quantities a reading can carry, in the order they appear in HA.
var (
	Power        = Quantity{"power", "Power", "power_w", "power", "measurement", "W", 1}
	EnergyImport = Quantity{"energy_import", "Energy import", "energy_in_wh", "energy", "total_increasing", "Wh", 0}
	EnergyExport = Quantity{"energy_export", "Energy export", "energy_out_wh", "energy", "total_increasing", "Wh", 0}
	Temperature  = Quantity{"temperature", "Temperature", "temperature_c", "temperature", "measurement", "°C", 1}
	Voltage      = Quantity{"voltage", "Voltage", "voltage_v", "voltage", "measurement", "V", 1}
)

// Quantities returns the quantities r carries.
func Quantities(r reading.Reading) []Quantity {
	qs := []Quantity{Power}
	if r.EnergyIn != nil {
		qs = append(qs, EnergyImport)
	}
	if r.EnergyOut != nil {
		qs = append(qs, EnergyExport)
	}
	if r.Temperature != nil {
		qs = append(qs, Temperature)
	}
	if r.Voltage != nil {
		qs = append(qs, Voltage)
	}
	return qs
}

// Slug makes s usable in topics and ids: lower-case letters, digits and
// '_'. When that changes s, a short hash of s is added, so "a b" and "a_b"
// stay apart and the result is stable.
func Slug(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	out := b.String()
	if out == s && out != "" {
		return out
	}
	h := fnv.New32a()
	h.Write([]byte(s))
	return fmt.Sprintf("%s_%06x", strings.Trim(out, "_"), h.Sum32()&0xffffff)
}

// Device is one meter device as HA sees it.
type Device struct {
	Meter     string // the [[meters]] name
	MeterType string // fritzdect, shelly, … or mqtt/<format>
	Name      string // reading.Device
	// Role is the meter's household role (grid, pv, battery, consumer,
	// other, or ""): it names the sensors the way HA's Energy dashboard
	// asks for them. Inverted says the meter's invert is set (a solar
	// plug measured as consumption: production is then the export
	// counter).
	Role     household.Role
	Inverted bool
}

// Title is a quantity's entity name for the device's role: grid
// consumption / return to grid for the grid meter, solar production for a
// plant, charge / discharge for a battery, consumption for an appliance.
func (d Device) Title(q Quantity) string {
	imp, exp := q.Key == EnergyImport.Key, q.Key == EnergyExport.Key
	switch d.Role {
	case household.Grid:
		switch {
		case imp:
			return "Grid consumption"
		case exp:
			return "Return to grid"
		case q.Key == Power.Key:
			return "Grid power"
		}
	case household.PV:
		prod, other := imp, exp
		if d.Inverted {
			prod, other = exp, imp
		}
		switch {
		case prod:
			return "Solar production"
		case other:
			return "Solar standby consumption"
		case q.Key == Power.Key:
			return "Solar power"
		}
	case household.Battery:
		switch {
		case imp:
			return "Battery charge"
		case exp:
			return "Battery discharge"
		}
	case household.Consumer:
		switch {
		case imp:
			return "Consumption"
		case exp:
			return "Energy returned"
		}
	}
	return q.Name
}

// deviceID is the HA device identifier (stable: source and device name).
func (o Options) deviceID(d Device) string {
	return "powermeter_" + Slug(o.Source) + "_" + Slug(d.Name)
}

// UniqueID is the stable unique_id of a device's quantity.
func (o Options) UniqueID(d Device, q Quantity) string { return o.deviceID(d) + "_" + q.Key }

// ConfigTopic is where the discovery config of a device's quantity goes.
func (o Options) ConfigTopic(d Device, q Quantity) string {
	return fmt.Sprintf("%s/sensor/powermeter_%s/%s_%s/config", o.Prefix, Slug(o.Source), Slug(d.Name), q.Key)
}

// makers maps a meter type to HA's manufacturer and model fields.
var makers = map[string][2]string{
	"fritzdect":    {"AVM", "FRITZ!DECT"},
	"shelly":       {"Shelly", "Shelly"},
	"tasmota":      {"Tasmota", "Tasmota"},
	"ahoydtu":      {"Hoymiles", "via AhoyDTU"},
	"opendtu":      {"Hoymiles", "via OpenDTU"},
	"mqtt/tasmota": {"Tasmota", "Tasmota (MQTT)"},
	"mqtt/shelly":  {"Shelly", "Shelly (MQTT)"},
	"mqtt/opendtu": {"Hoymiles", "via OpenDTU (MQTT)"},
	"mqtt/ahoydtu": {"Hoymiles", "via AhoyDTU (MQTT)"},
	"mqtt/json":    {"", "MQTT JSON"},
}

// Config is one sensor's discovery payload (HA's MQTT sensor schema; full
// key names, no abbreviations).
type Config struct {
	Name                string         `json:"name"`
	UniqueID            string         `json:"unique_id"`
	DefaultEntityID     string         `json:"default_entity_id"`
	StateTopic          string         `json:"state_topic"`
	ValueTemplate       string         `json:"value_template"`
	DeviceClass         string         `json:"device_class"`
	StateClass          string         `json:"state_class"`
	Unit                string         `json:"unit_of_measurement"`
	Precision           int            `json:"suggested_display_precision"`
	AvailabilityTopic   string         `json:"availability_topic"`
	PayloadAvailable    string         `json:"payload_available"`
	PayloadNotAvailable string         `json:"payload_not_available"`
	ExpireAfter         int            `json:"expire_after,omitempty"`
	Device              ConfigDevice   `json:"device"`
	Origin              map[string]any `json:"origin"`
}

// ConfigDevice is the device block of a config.
type ConfigDevice struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer,omitempty"`
	Model        string   `json:"model,omitempty"`
	SWVersion    string   `json:"sw_version,omitempty"`
}

// SensorConfig builds the discovery payload of d's quantity q.
func (o Options) SensorConfig(d Device, q Quantity) Config {
	mk := makers[d.MeterType]
	model := mk[1]
	if d.Meter != d.Name {
		model = strings.TrimSpace(model + " (meter " + d.Meter + ")")
	}
	c := Config{
		Name:                d.Title(q),
		UniqueID:            o.UniqueID(d, q),
		DefaultEntityID:     "sensor." + o.UniqueID(d, q),
		StateTopic:          o.StateTopic(d.Name),
		ValueTemplate:       "{{ value_json." + q.Field + " }}",
		DeviceClass:         q.DeviceClass,
		StateClass:          q.StateClass,
		Unit:                q.Unit,
		Precision:           q.Precision,
		AvailabilityTopic:   o.Availability,
		PayloadAvailable:    "online",
		PayloadNotAvailable: "offline",
		ExpireAfter:         int(o.ExpireAfter / time.Second),
		Device: ConfigDevice{
			Identifiers:  []string{o.deviceID(d)},
			Name:         d.Name,
			Manufacturer: mk[0],
			Model:        model,
		},
		Origin: map[string]any{"name": "powermeter", "sw_version": o.Version},
	}
	return c
}

// published is what was sent for one device.
type published struct {
	dev    Device
	keys   []string          // quantity keys, sorted
	topics map[string]string // config topic → meter
}

// Discovery keeps the configs published on one connection.
type Discovery struct {
	o   Options
	c   *mqttc.Client
	log *slog.Logger

	mu      sync.Mutex
	devices map[string]*published // by device name
	// registry is every config topic this source has published (also by
	// earlier runs), with its meter.
	registry map[string]string
	loaded   bool
	resend   chan struct{}
}

// New builds the discovery for client c. Call Connected after every
// (re)connect and Seen for every device's newest reading.
func New(c *mqttc.Client, o Options) *Discovery {
	if o.Prefix == "" {
		o.Prefix = "homeassistant"
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Registry == "" {
		o.Registry = strings.TrimSuffix(o.Availability, "/status") + "/discovery"
	}
	return &Discovery{o: o, c: c, log: o.Log, devices: map[string]*published{}, registry: map[string]string{}, resend: make(chan struct{}, 1)}
}

// Options returns the discovery's options.
func (d *Discovery) Options() Options { return d.o }

// BirthTopic is where Home Assistant announces that it (re)started.
func (d *Discovery) BirthTopic() string { return d.o.Prefix + "/status" }

// Run subscribes to HA's birth message and re-sends every config when
// it says "online", until ctx ends. Start it once.
func (d *Discovery) Run(ctx context.Context) {
	_ = d.c.Subscribe(ctx, d.BirthTopic(), 1, func(_ string, payload []byte) {
		if strings.TrimSpace(string(payload)) == "online" {
			select {
			case d.resend <- struct{}{}:
			default:
			}
		}
	})
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.resend:
		}
		d.log.Info("hass: Home Assistant (re)started: sending the discovery configs again")
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := d.PublishAll(wctx); err != nil {
			d.log.Warn("hass: re-sending the discovery configs", "err", err)
		}
		cancel()
	}
}

// Connected loads the registry of earlier runs (once) and clears the
// entities of meters no longer configured. Call it after each connect.
func (d *Discovery) Connected(ctx context.Context) error {
	d.mu.Lock()
	loaded := d.loaded
	d.mu.Unlock()
	if !loaded {
		prev, err := d.loadRegistry(ctx)
		if err != nil {
			return err
		}
		d.mu.Lock()
		maps.Copy(d.registry, prev)
		d.loaded = true
		d.mu.Unlock()
	}
	return d.clearRemoved(ctx)
}

// loadRegistry reads the retained registry of earlier runs.
func (d *Discovery) loadRegistry(ctx context.Context) (map[string]string, error) {
	got := make(chan []byte, 1)
	h := func(_ string, payload []byte) {
		select {
		case got <- append([]byte(nil), payload...):
		default:
		}
	}
	if err := d.c.Subscribe(ctx, d.o.Registry, 1, h); err != nil {
		return nil, err
	}
	if err := d.c.Barrier(ctx, d.o.Registry); err != nil {
		return nil, fmt.Errorf("hass: reading the registry %s: %w", d.o.Registry, err)
	}
	out := map[string]string{}
	select {
	case p := <-got:
		if len(p) > 0 {
			var reg struct {
				Configs map[string]string `json:"configs"`
			}
			if err := json.Unmarshal(p, &reg); err != nil {
				d.log.Warn("hass: the registry topic holds no JSON; starting afresh", "topic", d.o.Registry, "err", err)
			}
			maps.Copy(out, reg.Configs)
		}
	default:
	}
	return out, nil
}

// clearRemoved publishes empty retained configs for the entities of meters
// that are not configured any more, and the registry without them.
func (d *Discovery) clearRemoved(ctx context.Context) error {
	d.mu.Lock()
	var gone []string
	for topic, m := range d.registry {
		if _, ok := d.o.Meters[m]; !ok {
			gone = append(gone, topic)
		}
	}
	d.mu.Unlock()
	if len(gone) == 0 {
		return nil
	}
	slices.Sort(gone)
	for _, topic := range gone {
		if err := d.c.Publish(ctx, mqttc.Message{Topic: topic, QoS: 1, Retain: true}); err != nil {
			return err
		}
		d.log.Info("hass: removed the entity of a meter no longer configured", "topic", topic, "meter", d.registry[topic])
		d.mu.Lock()
		delete(d.registry, topic)
		d.mu.Unlock()
	}
	return d.saveRegistry(ctx)
}

func (d *Discovery) saveRegistry(ctx context.Context) error {
	d.mu.Lock()
	data, err := json.Marshal(struct {
		Configs map[string]string `json:"configs"`
	}{d.registry})
	d.mu.Unlock()
	if err != nil {
		return err
	}
	return d.c.Publish(ctx, mqttc.Message{Topic: d.o.Registry, Payload: data, QoS: 1, Retain: true})
}

// Seen publishes the configs of dev when it is new or reports quantities
// it did not before (r is its newest reading).
func (d *Discovery) Seen(ctx context.Context, dev Device, r reading.Reading) error {
	qs := Quantities(r)
	keys := make([]string, len(qs))
	for i, q := range qs {
		keys[i] = q.Key
	}
	slices.Sort(keys)
	d.mu.Lock()
	p := d.devices[dev.Name]
	same := p != nil && p.dev == dev && slices.Equal(p.keys, keys)
	d.mu.Unlock()
	if same {
		return nil
	}
	np := &published{dev: dev, keys: keys, topics: map[string]string{}}
	if err := d.publishDevice(ctx, np, qs); err != nil {
		return err
	}
	d.mu.Lock()
	d.devices[dev.Name] = np
	changed := false
	for t, m := range np.topics {
		if d.registry[t] != m {
			d.registry[t] = m
			changed = true
		}
	}
	d.mu.Unlock()
	if changed {
		return d.saveRegistry(ctx)
	}
	return nil
}

func (d *Discovery) publishDevice(ctx context.Context, p *published, qs []Quantity) error {
	for _, q := range qs {
		topic := d.o.ConfigTopic(p.dev, q)
		data, err := json.Marshal(d.o.SensorConfig(p.dev, q))
		if err != nil {
			return fmt.Errorf("hass: encoding the config of %s: %w", topic, err)
		}
		if err := d.c.Publish(ctx, mqttc.Message{Topic: topic, Payload: data, QoS: 1, Retain: true}); err != nil {
			return fmt.Errorf("hass: publishing %s: %w", topic, err)
		}
		p.topics[topic] = p.dev.Meter
	}
	return nil
}

// PublishAll sends every known device's configs again.
func (d *Discovery) PublishAll(ctx context.Context) error {
	d.mu.Lock()
	devs := slices.Collect(maps.Values(d.devices))
	d.mu.Unlock()
	for _, p := range devs {
		var qs []Quantity
		for _, q := range []Quantity{Power, EnergyImport, EnergyExport, Temperature, Voltage} {
			if slices.Contains(p.keys, q.Key) {
				qs = append(qs, q)
			}
		}
		np := &published{dev: p.dev, keys: p.keys, topics: map[string]string{}}
		if err := d.publishDevice(ctx, np, qs); err != nil {
			return err
		}
	}
	return nil
}
