// Package config loads and validates powermeter's TOML configuration file.
//
// The file is read once and checked fully before anything starts: every error
// names the key (and, where it can be found, the line) and what is wrong.
// String values may use ${VAR} to read the environment (for secrets).
package config

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // routers without /usr/share/zoneinfo must still know Europe/Berlin

	"github.com/BurntSushi/toml"

	"github.com/powermeter/powermeter/internal/household"
)

// DefaultZone is the time zone used when the file names none.
const DefaultZone = "Europe/Berlin"

// Config is the whole configuration file.
type Config struct {
	Timezone Zone     `toml:"timezone"`
	DataDir  string   `toml:"data_dir"`
	Server   *Server  `toml:"server"`
	Meters   []Meter  `toml:"meters"`
	Logger   Logger   `toml:"logger"`
	Uplinks  []Uplink `toml:"uplinks"`

	// Path is the file the configuration was read from ("" for defaults).
	Path string `toml:"-"`
	// Warnings are accepted but doubtful settings (e.g. a short source
	// key), for the log and the check verb.
	Warnings []*Error `toml:"-"`
}

// MinKeyLen is the key length new sources should have; shorter keys (an
// old ESP8266 logger's, kept in its flash) are accepted with a warning.
const MinKeyLen = 8

// Server is the [server] section: the receiver, API and dashboard.
type Server struct {
	Listen   string `toml:"listen"`
	Database string `toml:"database"`
	// MaxBodyBytes limits request bodies (default 4 MiB).
	MaxBodyBytes int64          `toml:"max_body_bytes"`
	Sources      []Source       `toml:"sources"`
	byName       map[string]int // index of Sources by name (Parse builds it)
	Dashboard    Dashboard      `toml:"dashboard"`
	// Metrics serves Prometheus metrics at /metrics, to the dashboard's
	// users, its read token or MetricsToken (never to an ingest key).
	Metrics bool `toml:"metrics"`
	// MetricsToken, when set, also grants /metrics (Bearer or ?token=).
	MetricsToken string `toml:"metrics_token"`
	// MaxFuture refuses readings timed more than this ahead of the
	// server's clock (default 24h).
	MaxFuture Duration `toml:"max_future"`
	// TrustedProxies are the addresses or networks (CIDR) of reverse
	// proxies whose X-Forwarded-For / Forwarded header names the client.
	TrustedProxies []string `toml:"trusted_proxies"`
	// Retention is [server.retention]: raw readings older than Raw are
	// reduced to one row per device and minute.
	Retention Retention `toml:"retention"`
}

// Retention is [server.retention].
type Retention struct {
	// Raw is how long raw readings are kept ("365d"); zero: forever.
	Raw LongDuration `toml:"raw"`
	// Every is how often the background job looks for readings to reduce
	// (default 1h).
	Every Duration `toml:"every"`
	// Batch is how many raw readings one transaction reduces (default
	// 1000: on SQLite an insert then waits about 10 ms for a slice, with
	// 8640 it waited 80 ms; BenchmarkInsertDuringReduce).
	Batch int `toml:"batch"`
}

// RetentionOf is how long source keeps raw readings: its own retention,
// else [server.retention] raw; zero: forever.
func (s *Server) RetentionOf(source string) time.Duration {
	if src, ok := s.Source(source); ok && src.Retention.Set {
		return src.Retention.Duration
	}
	return s.Retention.Raw.Duration
}

// Source is one home / logger that may send readings.
type Source struct {
	Name     string `toml:"name"`
	Key      string `toml:"key"`
	Timezone Zone   `toml:"timezone"`
	// Devices give the source's devices roles (see internal/household);
	// for the logger's own source the [[meters]] roles apply too.
	Devices []SourceDevice `toml:"devices"`
	// Fields say what the values of a legacy stats line mean (value 1, 2,
	// …); empty: power in W, temperature in °C, then powers.
	Fields []SourceField `toml:"fields"`
	// Tariff prices the source's energy (optional).
	Tariff *Tariff `toml:"tariff"`
	// ChartMaxW fixes the top of the day chart's power axis (W); 0: scaled
	// to the day. ?ymax= overrides it per view.
	ChartMaxW float64 `toml:"chart_max_w"`
	// ChartTempRange fixes the day chart's temperature axis [min, max] °C.
	ChartTempRange []float64 `toml:"chart_temp_range"`
	// Retention overrides [server.retention] raw for this source ("30d";
	// "forever" keeps every raw reading).
	Retention LongDuration `toml:"retention"`
}

// SourceDevice is one [[server.sources.devices]] entry.
type SourceDevice struct {
	Name   string `toml:"name"`
	Role   string `toml:"role"`
	Label  string `toml:"label"`
	Invert bool   `toml:"invert"`
	// Temperature shows the device's temperature with the home: "room" or
	// "device" (at most one device per source).
	Temperature string `toml:"temperature"`
}

// SourceField is one [[server.sources.fields]] entry: value n of a stats
// line.
type SourceField struct {
	Quantity string `toml:"quantity"`
	Unit     string `toml:"unit"`
	Label    string `toml:"label"`
}

// Dashboard is [server.dashboard]: optional protection of the web pages.
type Dashboard struct {
	// Users are "name:bcrypt-hash" entries; when set, pages need Basic auth.
	Users []string `toml:"users"`
	// ReadToken, when set, also grants read access (?token= or Bearer).
	ReadToken string `toml:"read_token"`
}

// Meter is one [[meters]] entry: a device (or a box of devices) to poll.
type Meter struct {
	Name     string   `toml:"name"`
	Type     string   `toml:"type"`
	URL      string   `toml:"url"`
	Username string   `toml:"username"`
	Password string   `toml:"password"`
	AIN      string   `toml:"ain"`
	AINs     []string `toml:"ains"`
	Channel  int      `toml:"channel"`
	// Serial selects an inverter on an OpenDTU (default: all, summed).
	Serial         string  `toml:"serial"`
	PowerThreshold float64 `toml:"power_threshold"`
	Invert         bool    `toml:"invert"`
	// Role, Label and Temperature describe the meter's device(s) to the
	// home of the logger's source (see SourceDevice).
	Role        string   `toml:"role"`
	Label       string   `toml:"label"`
	Temperature string   `toml:"temperature"`
	Timeout     Duration `toml:"timeout"`
	CAFile      string   `toml:"ca_file"`
	Insecure    bool     `toml:"insecure"`
	// InvertAINs flips the sign of only these devices of a several-device
	// FRITZ!Box meter (AINs, or the device names the box gives them).
	InvertAINs []string `toml:"invert_ains"`
	// Names is how a several-device FRITZ!Box meter names its devices:
	// "box" (default: a slug of the name on the box) or "ain".
	Names string `toml:"names"`
	// SML reads a smart-meter read head (Tasmota SML script) instead of
	// Tasmota's ENERGY section; nil = ENERGY (or SML when only that is there).
	SML *SML `toml:"sml"`
	// API picks the FRITZ!Box interface: "auto" (default: the REST API of
	// FRITZ!OS 8.2 when the box offers it), "rest" or "aha".
	API string `toml:"api"`

	// MQTT meters (type = "mqtt"): url is the broker (mqtt:// or mqtts://).
	// Format is what the device publishes: tasmota, shelly, opendtu,
	// ahoydtu or json.
	Format string `toml:"format"`
	// Topic is the device's topic (Tasmota's %topic%, the Shelly's topic
	// prefix or shellies/<id>, OpenDTU's serial, AhoyDTU's inverter name;
	// format json: the full topic). A format's default prefix is added
	// when the topic has no '/'.
	Topic string `toml:"topic"`
	// MaxAge: a value older than this reads like an unreachable device
	// (default 3 × the logger interval, at least 30 s; Tasmota sends every
	// TelePeriod, so set it above that).
	MaxAge   Duration `toml:"max_age"`
	ClientID string   `toml:"client_id"`
	// JSON maps values to dotted paths in the payload (format json).
	JSON *JSONPaths `toml:"json"`

	// Index is the position in the file (for error messages).
	Index int `toml:"-"`
}

// SML maps the fields of a Tasmota smart-meter script's group
// ([meters.sml]); every name is optional and defaults to the common script:
// group "SML", Total_in, Total_out, Power_curr, power_l1..3, voltage_l1..3,
// current_l1..3.
type SML struct {
	Group     string `toml:"group"`
	TotalIn   string `toml:"total_in"`
	TotalOut  string `toml:"total_out"`
	Power     string `toml:"power"`
	PowerL1   string `toml:"power_l1"`
	PowerL2   string `toml:"power_l2"`
	PowerL3   string `toml:"power_l3"`
	VoltageL1 string `toml:"voltage_l1"`
	VoltageL2 string `toml:"voltage_l2"`
	VoltageL3 string `toml:"voltage_l3"`
	CurrentL1 string `toml:"current_l1"`
	CurrentL2 string `toml:"current_l2"`
	CurrentL3 string `toml:"current_l3"`
}

// JSONPaths are dotted paths ("ENERGY.Power", "data.0.p") into a JSON
// payload, for meters of format json.
type JSONPaths struct {
	Power       string   `toml:"power"`
	EnergyIn    string   `toml:"energy_in"`
	EnergyOut   string   `toml:"energy_out"`
	Temperature string   `toml:"temperature"`
	Voltage     string   `toml:"voltage"`
	Phases      []string `toml:"phases"`
	// EnergyUnit is "Wh" (default) or "kWh".
	EnergyUnit string `toml:"energy_unit"`
	// Time is a path to an RFC 3339 time or epoch seconds; without it the
	// arrival time counts.
	Time string `toml:"time"`
}

// Logger is the [logger] section.
type Logger struct {
	Interval     Duration `toml:"interval"`
	StatusListen string   `toml:"status_listen"`
	StatusLED    string   `toml:"status_led"`
	NTPServer    string   `toml:"ntp_server"`
	// OutboxMax bounds the outbox in readings (default 30 days × 10 meters).
	OutboxMax int `toml:"outbox_max"`
	// Source is the name the logger writes under when it stores directly
	// into the local [server] (default: the first source, or "home").
	Source string `toml:"source"`
}

// Uplink is one [[uplinks]] entry: a server the logger forwards to.
type Uplink struct {
	Name     string   `toml:"name"`
	URL      string   `toml:"url"`
	Protocol string   `toml:"protocol"`
	Key      string   `toml:"key"`
	Meters   []string `toml:"meters"`
	Method   string   `toml:"method"`
	Combine  string   `toml:"combine"`
	CAFile   string   `toml:"ca_file"`
	Insecure bool     `toml:"insecure"`
	Timeout  Duration `toml:"timeout"`

	// MQTT uplinks (protocol = "mqtt"; url mqtt://host:1883 or mqtts://).
	Username string `toml:"username"`
	Password string `toml:"password"`
	ClientID string `toml:"client_id"`
	// TopicPrefix is where the readings go (default "powermeter/<source>").
	TopicPrefix string `toml:"topic_prefix"`
	// HomeAssistant turns discovery on or off (default on).
	HomeAssistant *bool `toml:"homeassistant"`
	// DiscoveryPrefix is Home Assistant's discovery prefix (default
	// "homeassistant").
	DiscoveryPrefix string `toml:"discovery_prefix"`
}

// Discovery reports whether Home Assistant discovery is on.
func (u Uplink) Discovery() bool { return u.HomeAssistant == nil || *u.HomeAssistant }

// MeterTypes are the meter families the registry knows.
var MeterTypes = []string{"fritzdect", "shelly", "tasmota", "ahoydtu", "opendtu", "epever", "mqtt"}

// MQTTFormats are the payload formats of MQTT meters.
var MQTTFormats = []string{"tasmota", "shelly", "opendtu", "ahoydtu", "json"}

// Zone is an IANA time zone name, checked when the file is read.
type Zone struct{ *time.Location }

// UnmarshalText implements encoding.TextUnmarshaler.
func (z *Zone) UnmarshalText(b []byte) error {
	loc, err := time.LoadLocation(string(b))
	if err != nil || string(b) == "" {
		return fmt.Errorf("unknown time zone %q (want an IANA name like %q)", b, DefaultZone)
	}
	z.Location = loc
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (z Zone) MarshalText() ([]byte, error) {
	if z.Location == nil {
		return nil, nil
	}
	return []byte(z.String()), nil
}

// Duration is a time.Duration written as "10s", "2m".
type Duration struct{ time.Duration }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("not a duration %q (write it like \"10s\" or \"2m\")", b)
	}
	if v < 0 {
		return fmt.Errorf("negative duration %q", b)
	}
	d.Duration = v
	return nil
}

// LongDuration is a duration that may be written in days: "365d",
// "1d12h", or as Duration ("36h"); "forever" (or "0") is zero. Set tells
// a given value from an absent one.
type LongDuration struct {
	time.Duration
	Set bool
}

var daysRE = regexp.MustCompile(`^([0-9]+)d(.*)$`)

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *LongDuration) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	bad := fmt.Errorf("not a duration %q (write it like \"365d\", \"90d\" or \"36h\"; \"forever\" keeps everything)", b)
	var v time.Duration
	switch m := daysRE.FindStringSubmatch(s); {
	case s == "forever" || s == "0":
	case m != nil:
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100*366 {
			return bad
		}
		v = time.Duration(n) * 24 * time.Hour
		if m[2] != "" {
			rest, err := time.ParseDuration(m[2])
			if err != nil || rest < 0 {
				return bad
			}
			v += rest
		}
	default:
		var err error
		if v, err = time.ParseDuration(s); err != nil {
			return bad
		}
		if v < 0 {
			return fmt.Errorf("negative duration %q", b)
		}
	}
	d.Duration, d.Set = v, true
	return nil
}

// ParseNet reads an IP address (as a one-address network) or a CIDR network.
func ParseNet(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Error is a configuration error. It names the key and, where known, the line.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			fmt.Fprintf(&b, ":%d", e.Line)
		}
		b.WriteString(": ")
	} else if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one file.
type Errors []*Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// IsConfigError reports whether err came from loading or checking a config.
func IsConfigError(err error) bool {
	var e *Error
	var es Errors
	return errors.As(err, &e) || errors.As(err, &es)
}

// Load reads, expands and validates the file at path.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, &Error{File: path, Msg: fmt.Sprintf("cannot read the config file: %v", err)}
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse decodes data (read from path, which is used in messages only),
// expands ${VAR} with lookup and validates the result.
func Parse(path string, data []byte, lookup func(string) (string, bool)) (*Config, error) {
	var c Config
	md, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&c)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			key := pe.LastKey
			msg := pe.Message
			if pe.Message == "" {
				msg = err.Error()
			}
			if pe.Position.Line > 0 && key != "" {
				key = newLineIndex(data).indexKeyAt(pe.Position.Line, key)
			}
			return nil, &Error{File: path, Line: pe.Position.Line, Key: key, Msg: msg}
		}
		msg := strings.TrimPrefix(err.Error(), "toml: ")
		if m := decodeErrRE.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			return nil, &Error{File: path, Line: line, Key: newLineIndex(data).indexKeyAt(line, m[2]), Msg: m[3]}
		}
		return nil, &Error{File: path, Msg: msg}
	}
	c.Path = path
	lines := newLineIndex(data)
	var errs Errors
	add := func(key, format string, args ...any) {
		errs = append(errs, &Error{File: path, Line: lines.find(key), Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	seenUnknown := map[string]int{}
	for _, k := range md.Undecoded() {
		// Keys inside array tables come without their index
		// ("meters.urll"): find the n-th place the key is written.
		key := k.String()
		line, indexed := lines.locate(key, seenUnknown[key])
		seenUnknown[key]++
		errs = append(errs, &Error{File: path, Line: line, Key: indexed, Msg: "unknown key (misspelt, or in the wrong section?)"})
	}
	expandEnv(reflect.ValueOf(&c).Elem(), "", lookup, add)
	c.applyDefaults()
	c.validate(add)
	c.warn(func(key, format string, args ...any) {
		c.Warnings = append(c.Warnings, &Error{File: path, Line: lines.find(key), Key: key, Msg: fmt.Sprintf(format, args...)})
	})
	if len(errs) > 0 {
		return nil, errs
	}
	if c.Server != nil {
		c.Server.indexSources()
	}
	return &c, nil
}

// Default is the configuration used when no file is given: a server on
// 127.0.0.1:8080 with an SQLite file under ./powermeter-data/.
func Default() *Config {
	c := &Config{Server: &Server{}}
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	if c.Timezone.Location == nil {
		c.Timezone.Location, _ = time.LoadLocation(DefaultZone)
	}
	if c.DataDir == "" {
		c.DataDir = "powermeter-data"
	}
	if s := c.Server; s != nil {
		if s.Listen == "" {
			s.Listen = "127.0.0.1:8080"
		}
		if s.Database == "" {
			s.Database = "sqlite://" + strings.TrimSuffix(c.DataDir, "/") + "/powermeter.db"
		}
		if s.MaxBodyBytes == 0 {
			s.MaxBodyBytes = 4 << 20
		}
		if s.MaxFuture.Duration == 0 {
			s.MaxFuture.Duration = 24 * time.Hour
		}
		if s.Retention.Every.Duration == 0 {
			s.Retention.Every.Duration = time.Hour
		}
		if s.Retention.Batch == 0 {
			s.Retention.Batch = 1000
		}
		for i := range s.Sources {
			if s.Sources[i].Timezone.Location == nil {
				s.Sources[i].Timezone = c.Timezone
			}
		}
	}
	for i := range c.Meters {
		m := &c.Meters[i]
		m.Index = i
		if m.Timeout.Duration == 0 {
			m.Timeout.Duration = 5 * time.Second
		}
		// a smart-meter read head sits at the grid connection
		if (m.Type == "tasmota" || m.Type == "mqtt" && m.Format == "tasmota") && m.SML != nil && m.Role == "" {
			m.Role = string(household.Grid)
		}
	}
	if c.Logger.Interval.Duration == 0 {
		c.Logger.Interval.Duration = 10 * time.Second
	}
	if c.Logger.OutboxMax == 0 {
		c.Logger.OutboxMax = 30 * 8640 * 10
	}
	if c.Logger.Source == "" {
		c.Logger.Source = "home"
		if c.Server != nil && len(c.Server.Sources) > 0 {
			c.Logger.Source = c.Server.Sources[0].Name
		}
	}
	for i := range c.Uplinks {
		u := &c.Uplinks[i]
		if u.Protocol == "" {
			u.Protocol = "legacy"
		}
		if u.Method == "" {
			u.Method = "get"
		}
		if u.Combine == "" {
			u.Combine = "sum"
		}
		if u.Timeout.Duration == 0 {
			u.Timeout.Duration = 10 * time.Second
		}
		if u.Protocol == "mqtt" {
			if u.TopicPrefix == "" {
				u.TopicPrefix = "powermeter/" + c.Logger.Source
			}
			u.TopicPrefix = strings.TrimSuffix(u.TopicPrefix, "/")
			if u.DiscoveryPrefix == "" {
				u.DiscoveryPrefix = "homeassistant"
			}
		}
	}
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// checkName reports a missing (with the message missing), malformed or
// repeated name at key, and records it in seen.
func checkName(add func(key, format string, args ...any), key, name, missing string, seen map[string]bool) {
	switch {
	case name == "":
		add(key, "%s", missing)
	case !nameRE.MatchString(name):
		add(key, "%q: use letters, digits, '.', '_' or '-' (at most 64)", name)
	case seen[name]:
		add(key, "%q is used twice", name)
	}
	seen[name] = true
}

func (c *Config) validate(add func(key, format string, args ...any)) {
	if s := c.Server; s != nil {
		if _, _, err := net.SplitHostPort(s.Listen); err != nil {
			add("server.listen", "%q is not host:port (e.g. \"127.0.0.1:8080\")", s.Listen)
		}
		if !strings.HasPrefix(s.Database, "sqlite://") && !strings.HasPrefix(s.Database, "postgres://") && !strings.HasPrefix(s.Database, "postgresql://") {
			add("server.database", "%q: want sqlite:///path/to/file.db or postgres://user@host/db", s.Database)
		}
		if s.MaxBodyBytes < 1024 {
			add("server.max_body_bytes", "%d is too small (at least 1024)", s.MaxBodyBytes)
		}
		if s.MaxFuture.Duration < time.Minute {
			add("server.max_future", "%s is too small (at least 1m: clocks drift)", s.MaxFuture.Duration)
		}
		for i, p := range s.TrustedProxies {
			if _, err := ParseNet(p); err != nil {
				add(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q: want an IP address or a network like \"10.0.0.0/8\"", p)
			}
		}
		checkRetention := func(key string, d LongDuration) {
			if d.Duration != 0 && d.Duration < 24*time.Hour {
				add(key, "%s is too short (at least 1d; \"forever\" or absent keeps every raw reading)", d.Duration)
			}
		}
		checkRetention("server.retention.raw", s.Retention.Raw)
		if r := s.Retention; r.Every.Duration < time.Minute || r.Every.Duration > 24*time.Hour {
			add("server.retention.every", "%s: want 1m to 24h", r.Every.Duration)
		}
		if b := s.Retention.Batch; b < 60 || b > 100_000 {
			add("server.retention.batch", "%d: want 60 to 100000 raw readings per transaction", b)
		}
		for i, src := range s.Sources {
			checkRetention(fmt.Sprintf("server.sources[%d].retention", i), src.Retention)
		}
		if s.MetricsToken != "" && len(s.MetricsToken) < 16 {
			add("server.metrics_token", "too short (at least 16 characters)")
		}
		names := map[string]bool{}
		keys := map[string]string{}
		for i, src := range s.Sources {
			p := fmt.Sprintf("server.sources[%d]", i)
			checkName(add, p+".name", src.Name, "missing (every source needs a name)", names)
			switch {
			case src.Key == "":
				add(p+".key", "missing (the key the logger sends; use ${VAR} to read it from the environment)")
			case keys[src.Key] != "":
				add(p+".key", "same key as source %q: keys tell sources apart", keys[src.Key])
			}
			keys[src.Key] = src.Name
			if src.ChartMaxW < 0 || src.ChartMaxW > 1e7 {
				add(p+".chart_max_w", "%v: want a power in W above 0 (or 0 to scale to the day)", src.ChartMaxW)
			}
			if r := src.ChartTempRange; r != nil && (len(r) != 2 || r[0] >= r[1]) {
				add(p+".chart_temp_range", "%v: want [min, max] in °C with min below max", r)
			}
		}
		for i, src := range s.Sources {
			c.validateSource(add, fmt.Sprintf("server.sources[%d]", i), src)
		}
		for i, u := range s.Dashboard.Users {
			name, hash, ok := strings.Cut(u, ":")
			if !ok || name == "" || !strings.HasPrefix(hash, "$2") {
				add(fmt.Sprintf("server.dashboard.users[%d]", i), "want \"name:bcrypt-hash\" (make one with: powermeter hash-password)")
			}
		}
	}
	meterNames := map[string]bool{}
	for i, m := range c.Meters {
		p := fmt.Sprintf("meters[%d]", i)
		checkName(add, p+".name", m.Name, "missing", meterNames)
		known := false
		for _, t := range MeterTypes {
			known = known || t == m.Type
		}
		if !known {
			add(p+".type", "%q: want one of %s", m.Type, strings.Join(MeterTypes, ", "))
		}
		if m.Type == "mqtt" {
			c.validateMQTTMeter(p, m, add)
		} else if m.Format != "" || m.Topic != "" {
			add(p+".format", "format and topic are only for type = \"mqtt\"")
		} else if m.URL == "" {
			add(p+".url", "missing (the device's address, e.g. \"http://192.168.178.1\")")
		} else if u, err := url.Parse(m.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(p+".url", "%q: want http://host or https://host", m.URL)
		}
		if m.Type == "fritzdect" && m.Username == "" {
			add(p+".username", "missing: FRITZ!OS 7.24 and later need a user name; the box creates one like \"fritz1234\" (see System > FRITZ!Box Users)")
		}
		if m.AIN != "" && len(m.AINs) > 0 {
			add(p+".ains", "give either ain or ains, not both")
		}
		if m.Channel < 0 {
			add(p+".channel", "negative")
		}
		if m.PowerThreshold < 0 {
			add(p+".power_threshold", "negative")
		}
		if _, err := household.ParseRole(m.Role); err != nil {
			add(p+".role", "%v", err)
		}
		if m.Temperature != "" && m.Temperature != household.TempRoom && m.Temperature != household.TempDevice {
			add(p+".temperature", "%q: want room or device", m.Temperature)
		}
		if len(m.InvertAINs) > 0 && m.Type != "fritzdect" {
			add(p+".invert_ains", "only for type fritzdect (one [[meters]] entry per device elsewhere: set invert there)")
		}
		if len(m.InvertAINs) > 0 && m.Invert {
			add(p+".invert_ains", "give either invert (every device) or invert_ains (only these), not both")
		}
		if m.Names != "" && m.Names != "box" && m.Names != "ain" {
			add(p+".names", "%q: want box (the names on the FRITZ!Box) or ain", m.Names)
		}
		if m.API != "" && m.API != "auto" && m.API != "rest" && m.API != "aha" {
			add(p+".api", "%q: want auto, rest (FRITZ!OS 8.2+) or aha", m.API)
		}
		if m.SML != nil && m.Type != "tasmota" && !(m.Type == "mqtt" && m.Format == "tasmota") {
			add(p+".sml", "only for type tasmota, or mqtt with format tasmota (a read head running Tasmota's SML script)")
		}
		if m.Type == "fritzdect" && m.Invert && m.AIN == "" && len(m.AINs) == 0 {
			add(p+".invert", "would flip every device on the FRITZ!Box (a fridge would show feed-in): name the solar ones in invert_ains = [\"…\"], or pick one with ain")
		}
	}
	if l := c.Logger; l.StatusListen != "" {
		if _, _, err := net.SplitHostPort(l.StatusListen); err != nil {
			add("logger.status_listen", "%q is not host:port", l.StatusListen)
		}
	}
	if c.Logger.Interval.Duration < time.Second {
		add("logger.interval", "%v is too short (at least 1s)", c.Logger.Interval.Duration)
	}
	upNames := map[string]bool{}
	for i, u := range c.Uplinks {
		p := fmt.Sprintf("uplinks[%d]", i)
		if u.Name == "" {
			add(p+".name", "missing")
		} else if upNames[u.Name] {
			add(p+".name", "%q is used twice", u.Name)
		}
		upNames[u.Name] = true
		if u.Protocol == "mqtt" {
			validateMQTTUplink(p, u, add)
		} else {
			if pu, err := url.Parse(u.URL); u.URL == "" || err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
				add(p+".url", "%q: want the server's base URL, e.g. \"https://example.com/powermeter/\"", u.URL)
			}
			if u.Protocol != "legacy" && u.Protocol != "native" {
				add(p+".protocol", "%q: want legacy, native or mqtt", u.Protocol)
			}
			if u.Key == "" {
				add(p+".key", "missing")
			}
		}
		if u.Method != "get" && u.Method != "post" {
			add(p+".method", "%q: want get or post", u.Method)
		}
		if u.Combine != "sum" && u.Combine != "each" {
			add(p+".combine", "%q: want sum or each", u.Combine)
		}
		for j, name := range u.Meters {
			if !meterNames[name] {
				add(fmt.Sprintf("%s.meters[%d]", p, j), "no meter is named %q", name)
			}
		}
	}
}

// warn reports settings that are accepted but doubtful.
func (c *Config) warn(add func(key, format string, args ...any)) {
	if c.Server == nil {
		return
	}
	for i, src := range c.Server.Sources {
		if src.Key != "" && len(src.Key) < MinKeyLen {
			add(fmt.Sprintf("server.sources[%d].key", i), "only %d characters: accepted for an existing logger that cannot be changed, but easy to guess; give new loggers a key of at least %d characters", len(src.Key), MinKeyLen)
		}
	}
}

// indexSources indexes Sources by name for Source (the first of a name,
// as the linear search finds it).
func (s *Server) indexSources() {
	s.byName = make(map[string]int, len(s.Sources))
	for i, src := range s.Sources {
		if _, ok := s.byName[src.Name]; !ok {
			s.byName[src.Name] = i
		}
	}
}

// Source returns the configured source called name.
func (s *Server) Source(name string) (Source, bool) {
	// By the index Parse built: a server with 100 000 sources looked each
	// one up in turn at start-up (20 s of CPU).
	if i, ok := s.byName[name]; ok && i < len(s.Sources) && s.Sources[i].Name == name {
		return s.Sources[i], true
	}
	for _, src := range s.Sources {
		if src.Name == name {
			return src, true
		}
	}
	return Source{}, false
}

var decodeErrRE = regexp.MustCompile(`^line (\d+) \(last key "([^"]*)"\): (.*)$`)

var envRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// expandEnv replaces ${VAR} in every string field; a variable that is not set
// is an error naming the key.
func expandEnv(v reflect.Value, path string, lookup func(string) (string, bool), add func(key, format string, args ...any)) {
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			expandEnv(v.Elem(), path, lookup, add)
		}
	case reflect.Struct:
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := f.Tag.Get("toml")
			if tag == "-" || !f.IsExported() {
				continue
			}
			name := tag
			if path != "" {
				name = path + "." + tag
			}
			expandEnv(v.Field(i), name, lookup, add)
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			expandEnv(v.Index(i), fmt.Sprintf("%s[%d]", path, i), lookup, add)
		}
	case reflect.String:
		s := v.String()
		if !strings.Contains(s, "${") {
			return
		}
		v.SetString(envRE.ReplaceAllStringFunc(s, func(m string) string {
			name := m[2 : len(m)-1]
			val, ok := lookup(name)
			if !ok {
				add(path, "environment variable %s is not set", name)
			}
			return val
		}))
	}
}

// lineIndex finds the line of a key like "meters[1].url" in the file text.
type lineIndex struct{ lines []string }

func newLineIndex(data []byte) lineIndex {
	return lineIndex{lines: strings.Split(string(data), "\n")}
}

var (
	tableRE    = regexp.MustCompile(`^\s*\[\s*([A-Za-z0-9_.\-]+)\s*\]`)
	arrTableRE = regexp.MustCompile(`^\s*\[\[\s*([A-Za-z0-9_.\-]+)\s*\]\]`)
	keyRE      = regexp.MustCompile(`^\s*([A-Za-z0-9_\-]+)\s*=`)
	indexRE    = regexp.MustCompile(`\[\d+\]`)
)

// tableAt returns the table (with array indexes, "meters[1]") that line
// (1-based) belongs to.
func (li lineIndex) tableAt(line int) string {
	counts := map[string]int{}
	table := ""
	for n, l := range li.lines {
		if n >= line {
			break
		}
		if m := arrTableRE.FindStringSubmatch(l); m != nil {
			table = fmt.Sprintf("%s[%d]", m[1], counts[m[1]])
			counts[m[1]]++
		} else if m := tableRE.FindStringSubmatch(l); m != nil {
			table = m[1]
		}
	}
	return table
}

// indexKeyAt turns a key the decoder reports without array indexes
// ("meters.channel") into the indexed one ("meters[1].channel") using the
// table that line is in.
func (li lineIndex) indexKeyAt(line int, key string) string {
	table := li.tableAt(line)
	i := strings.LastIndex(key, ".")
	if i < 0 || table == "" || indexRE.ReplaceAllString(table, "") != key[:i] {
		return key
	}
	return table + key[i:]
}

// locate finds the n-th (0-based) place a key given without array indexes
// ("meters.urll") is written; it returns its line and the indexed key
// ("meters[1].urll"), or 0 and key when it is not found.
func (li lineIndex) locate(key string, n int) (int, string) {
	want, leaf := "", key
	if i := strings.LastIndex(key, "."); i >= 0 {
		want, leaf = key[:i], key[i+1:]
	}
	counts := map[string]int{}
	table := ""
	for ln, line := range li.lines {
		if m := keyRE.FindStringSubmatch(line); m != nil {
			if m[1] == leaf && indexRE.ReplaceAllString(table, "") == want {
				if n == 0 {
					if table == "" {
						return ln + 1, leaf
					}
					return ln + 1, table + "." + leaf
				}
				n--
			}
			continue
		}
		if m := arrTableRE.FindStringSubmatch(line); m != nil {
			table = fmt.Sprintf("%s[%d]", m[1], counts[m[1]])
			counts[m[1]]++
		} else if m := tableRE.FindStringSubmatch(line); m != nil {
			table = m[1]
		}
	}
	return li.find(key), key
}

// find returns the 1-based line of key, or that of its table's header when
// the key is not written there, or 0.
func (li lineIndex) find(key string) int {
	// key like "meters[1].url" → table "meters[1]", leaf "url".
	want, leafWant := "", key
	if i := strings.LastIndex(key, "."); i >= 0 {
		want, leafWant = key[:i], key[i+1:]
	}
	leafWant = indexRE.ReplaceAllString(leafWant, "")
	counts := map[string]int{}
	table := ""
	header := 0 // first line of the wanted table's header
	for n, line := range li.lines {
		if m := keyRE.FindStringSubmatch(line); m != nil {
			if table == want && m[1] == leafWant {
				return n + 1
			}
			continue
		}
		if m := arrTableRE.FindStringSubmatch(line); m != nil {
			// nested array tables: "server.sources" → "server.sources[i]"
			table = fmt.Sprintf("%s[%d]", m[1], counts[m[1]])
			counts[m[1]]++
		} else if m := tableRE.FindStringSubmatch(line); m != nil {
			table = m[1]
		} else {
			continue
		}
		if header == 0 && want != "" && table == want {
			header = n + 1
		}
	}
	return header
}

// LineOf returns the line of key ("meters[1].ain") in the file text data,
// or that of its table's header, or 0: for errors found after Parse.
func LineOf(data []byte, key string) int { return newLineIndex(data).find(key) }
