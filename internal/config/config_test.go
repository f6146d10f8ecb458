package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

const full = `timezone = "Europe/Berlin"
data_dir = "/var/lib/powermeter"

[server]
listen   = "127.0.0.1:8080"
database = "sqlite:///var/lib/powermeter/powermeter.db"

[[server.sources]]
name = "home"
key  = "${POWERMETER_HOME_KEY}"
timezone = "Europe/Vienna"

[[server.sources]]
name = "garden"
key  = "garden-key-123"

[[meters]]
name = "balcony"
type = "fritzdect"
url = "http://fritz.box"
username = "fritz3456"
password = "${FRITZ_PASSWORD}"
ain = "11657 0020838"
power_threshold = 0.25

[logger]
interval = "10s"

[[uplinks]]
name = "php"
url = "https://example.com/powermeter/"
key = "k"
meters = ["balcony"]
`

func TestParseFull(t *testing.T) {
	c, err := Parse("pm.toml", []byte(full), env(map[string]string{"POWERMETER_HOME_KEY": "s3cret-home", "FRITZ_PASSWORD": "pa€s"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Sources[0].Key != "s3cret-home" || c.Meters[0].Password != "pa€s" {
		t.Errorf("env not expanded: %q %q", c.Server.Sources[0].Key, c.Meters[0].Password)
	}
	if c.Server.Sources[0].Timezone.String() != "Europe/Vienna" || c.Server.Sources[1].Timezone.String() != "Europe/Berlin" {
		t.Errorf("zones = %v, %v", c.Server.Sources[0].Timezone, c.Server.Sources[1].Timezone)
	}
	if c.Logger.Interval.Duration != 10*time.Second || c.Meters[0].Timeout.Duration != 5*time.Second {
		t.Errorf("durations = %v %v", c.Logger.Interval, c.Meters[0].Timeout)
	}
	u := c.Uplinks[0]
	if u.Protocol != "legacy" || u.Method != "get" || u.Combine != "sum" {
		t.Errorf("uplink defaults = %+v", u)
	}
	if c.Logger.Source != "home" {
		t.Errorf("logger source = %q", c.Logger.Source)
	}
}

func TestDefault(t *testing.T) {
	c := Default()
	if c.Server.Listen != "127.0.0.1:8080" || c.Server.Database != "sqlite://powermeter-data/powermeter.db" {
		t.Errorf("defaults = %+v", c.Server)
	}
	if c.Timezone.String() != DefaultZone {
		t.Errorf("zone = %v", c.Timezone)
	}
}

// Each bad file must give an error naming the key, and the line where the
// key is written.
func TestErrorsNameKeyAndLine(t *testing.T) {
	cases := []struct {
		name, file string
		key        string
		line       int
		contains   string
	}{
		{"bad zone", "timezone = \"Europe/Berln\"\n", "timezone", 1, "unknown time zone"},
		{"unknown key", "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n", "server.lisen", 3, "unknown key"},
		{"bad duration", "[logger]\ninterval = \"10\"\n", "logger.interval", 2, "not a duration"},
		{"short interval", "[logger]\ninterval = \"100ms\"\n", "logger.interval", 2, "too short"},
		{"missing env", "[server]\n[[server.sources]]\nname = \"a\"\nkey = \"${NOPE}\"\n", "server.sources[0].key", 4, "NOPE is not set"},
		{"dup source", "[server]\n[[server.sources]]\nname = \"a\"\nkey = \"12345678\"\n[[server.sources]]\nname = \"a\"\nkey = \"87654321\"\n", "server.sources[1].name", 6, "used twice"},
		{"same key", "[server]\n[[server.sources]]\nname = \"a\"\nkey = \"12345678\"\n[[server.sources]]\nname = \"b\"\nkey = \"12345678\"\n", "server.sources[1].key", 7, "same key"},
		{"chart temp range", "[server]\n[[server.sources]]\nname = \"a\"\nkey = \"12345678\"\nchart_temp_range = [30, 10]\n", "server.sources[0].chart_temp_range", 5, "min below max"},
		{"chart max", "[server]\n[[server.sources]]\nname = \"a\"\nkey = \"12345678\"\nchart_max_w = -5\n", "server.sources[0].chart_max_w", 5, "above 0"},
		{"meter type", "[[meters]]\nname = \"m\"\ntype = \"fritz\"\nurl = \"http://x\"\n", "meters[0].type", 3, "want one of"},
		{"fritz user", "[[meters]]\nname = \"m\"\ntype = \"fritzdect\"\nurl = \"http://fritz.box\"\n", "meters[0].username", 1, "fritz1234"},
		{"meter url", "[[meters]]\nname = \"m\"\ntype = \"shelly\"\nurl = \"fritz.box\"\n", "meters[0].url", 4, "http://"},
		{"uplink meter", "[[meters]]\nname = \"m\"\ntype = \"shelly\"\nurl = \"http://x\"\n[[uplinks]]\nname = \"u\"\nurl = \"http://y/\"\nkey = \"k\"\nmeters = [\"n\"]\n", "uplinks[0].meters[0]", 9, "no meter is named"},
		{"uplink protocol", "[[uplinks]]\nname = \"u\"\nurl = \"http://y/\"\nkey = \"k\"\nprotocol = \"smtp\"\n", "uplinks[0].protocol", 5, "legacy, native or mqtt"},
		{"meter typo", "[[meters]]\nname = \"m\"\ntype = \"shelly\"\nurl = \"http://x\"\n[[meters]]\nname = \"n\"\ntype = \"shelly\"\nurl = \"http://x\"\nurll = \"http://x\"\n", "meters[1].urll", 9, "unknown key"},
		{"meter wrong type", "[[meters]]\nname = \"m\"\ntype = \"shelly\"\nurl = \"http://x\"\n[[meters]]\nname = \"n\"\nchannel = \"x\"\n", "meters[1].channel", 7, "incompatible types"},
		{"meter duration", "[[meters]]\nname = \"m\"\ntimeout = \"x\"\n", "meters[0].timeout", 3, "not a duration"},
		{"source typo", "[server]\n[[server.sources]]\nname = \"a\"\nkey = \"12345678\"\n[[server.sources]]\nname = \"b\"\nkey = \"87654321\"\nkee = 1\n", "server.sources[1].kee", 8, "unknown key"},
		{"uplink typo", "[[uplinks]]\nname = \"u\"\nurl = \"http://y/\"\nkey = \"k\"\nprotocl = \"legacy\"\n", "uplinks[0].protocl", 5, "unknown key"},
		{"uplink duration", "[[uplinks]]\nname = \"u\"\nurl = \"http://y/\"\nkey = \"k\"\ntimeout = 5\n", "uplinks[0].timeout", 5, "not a duration"},
		{"database", "[server]\ndatabase = \"mysql://x\"\n", "server.database", 2, "sqlite"},
		{"retention raw", "[server]\n[server.retention]\nraw = \"365\"\n", "server.retention.raw", 3, "not a duration"},
		{"retention short", "[server]\n[server.retention]\nraw = \"2h\"\n", "server.retention.raw", 3, "at least 1d"},
		{"retention every", "[server]\n[server.retention]\nraw = \"30d\"\nevery = \"1s\"\n", "server.retention.every", 4, "1m to 24h"},
		{"retention batch", "[server]\n[server.retention]\nbatch = 5\n", "server.retention.batch", 3, "60 to"},
		{"source retention", "[server]\n[[server.sources]]\nname = \"a\"\nkey = \"12345678\"\nretention = \"3x\"\n", "server.sources[0].retention", 5, "not a duration"},
		{"wrong type", "[server]\nlisten = 8080\n", "", 2, "incompatible types"},
		{"syntax", "[server\nlisten = 1\n", "", 2, "table name"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("pm.toml", []byte(c.file), env(nil))
			if err == nil {
				t.Fatal("accepted")
			}
			if !IsConfigError(err) {
				t.Fatalf("%v is not a config error", err)
			}
			var e *Error
			var es Errors
			switch {
			case errors.As(err, &es):
				e = nil
				for _, x := range es {
					if x.Key == c.key && e == nil {
						e = x
					}
				}
				if e == nil {
					t.Fatalf("no error for key %q in:\n%v", c.key, err)
				}
			case errors.As(err, &e):
			}
			if c.key != "" && e.Key != c.key {
				t.Errorf("key = %q, want %q (%v)", e.Key, c.key, err)
			}
			if e.Line != c.line {
				t.Errorf("line = %d, want %d (%v)", e.Line, c.line, err)
			}
			if !strings.Contains(e.Error(), c.contains) || !strings.HasPrefix(e.Error(), "pm.toml:") {
				t.Errorf("message %q lacks %q or the file name", e.Error(), c.contains)
			}
		})
	}
}

func TestLineIndexFind(t *testing.T) {
	li := newLineIndex([]byte("timezone = \"UTC\"\n[server]\nlisten = \"x\"\n[[server.sources]]\nname = \"a\"\n[[server.sources]]\nname = \"b\"\n[[meters]]\nname = \"m\"\n"))
	for key, want := range map[string]int{
		"timezone":               1,
		"server.listen":          3,
		"server.database":        2, // not written: the table's header
		"server.sources[1].name": 7,
		"server.sources[1].key":  6,
		"server.sources[0].name": 5,
		"meters[0].name":         9,
		"meters[1].name":         0, // no such table
		"logger.interval":        0,
		"listen":                 0, // a top-level key, not server's
	} {
		if got := li.find(key); got != want {
			t.Errorf("find(%q) = %d, want %d", key, got, want)
		}
	}
}

func TestSMLMeterDefaultsToGridRole(t *testing.T) {
	c, err := Parse("pm.toml", []byte(`
[[meters]]
name = "grid"
type = "tasmota"
url = "http://127.0.0.1:1"
[meters.sml]
group = "MT631"

[[meters]]
name = "plug"
type = "tasmota"
url = "http://127.0.0.1:2"
`), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if c.Meters[0].Role != "grid" || c.Meters[0].SML.Group != "MT631" || c.Meters[1].Role != "" {
		t.Errorf("roles %q %q, sml %+v", c.Meters[0].Role, c.Meters[1].Role, c.Meters[0].SML)
	}
	_, err = Parse("pm.toml", []byte(`
[[meters]]
name = "box"
type = "fritzdect"
url = "http://127.0.0.1:1"
username = "u"
invert = true
`), func(string) (string, bool) { return "", false })
	if err == nil || !strings.Contains(err.Error(), "meters[0].invert: would flip every device") {
		t.Errorf("ain-less invert: %v", err)
	}
}

// A short key (an old logger's, in its flash) is accepted with a warning
// naming the key and its line; 8 and more give no warning.
func TestShortKeyWarns(t *testing.T) {
	c, err := Parse("pm.toml", []byte("[server]\n[[server.sources]]\nname = \"old\"\nkey = \"abc\"\n[[server.sources]]\nname = \"new\"\nkey = \"12345678\"\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Warnings) != 1 {
		t.Fatalf("warnings = %v, want one", c.Warnings)
	}
	w := c.Warnings[0]
	if w.Key != "server.sources[0].key" || w.Line != 4 || !strings.Contains(w.Error(), "only 3 characters") {
		t.Errorf("warning = %v", w)
	}
}

func TestRetention(t *testing.T) {
	c, err := Parse("pm.toml", []byte(`[server]
[server.retention]
raw = "365d"
[[server.sources]]
name = "a"
key = "12345678"
[[server.sources]]
name = "b"
key = "87654321"
retention = "30d12h"
[[server.sources]]
name = "c"
key = "87654329"
retention = "forever"
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	r := c.Server.Retention
	if r.Raw.Duration != 365*24*time.Hour || r.Every.Duration != time.Hour || r.Batch != 1000 {
		t.Errorf("[server.retention] = %+v, want raw 365d, every 1h, batch 1000", r)
	}
	for src, want := range map[string]time.Duration{"a": 365 * 24 * time.Hour, "b": 30*24*time.Hour + 12*time.Hour, "c": 0, "d": 365 * 24 * time.Hour} {
		if got := c.Server.RetentionOf(src); got != want {
			t.Errorf("RetentionOf(%s) = %s, want %s", src, got, want)
		}
	}
	d, err := Parse("pm.toml", []byte("[server]\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Server.RetentionOf("x"); got != 0 {
		t.Errorf("retention without [server.retention] = %s, want 0 (forever)", got)
	}
}

// TestSourceByName: Source finds every configured source by the index
// Parse builds, and still finds the right one when the list changed
// after parsing (tests and tools edit it).
func TestSourceByName(t *testing.T) {
	var b strings.Builder
	b.WriteString("[server]\nlisten = \"127.0.0.1:8080\"\ndatabase = \"sqlite:///x.db\"\n")
	for i := range 50 {
		fmt.Fprintf(&b, "[[server.sources]]\nname = \"s%02d\"\nkey = \"key-%02d-0123456789\"\nretention = \"%dd\"\n", i, i, i+1)
	}
	c, err := Parse("t.toml", []byte(b.String()), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		name := fmt.Sprintf("s%02d", i)
		src, ok := c.Server.Source(name)
		if !ok || src.Name != name || src.Key != fmt.Sprintf("key-%02d-0123456789", i) {
			t.Fatalf("Source(%q) = %q, %v", name, src.Name, ok)
		}
		if d := c.Server.RetentionOf(name); d != time.Duration(i+1)*24*time.Hour {
			t.Fatalf("RetentionOf(%q) = %s", name, d)
		}
	}
	if _, ok := c.Server.Source("nope"); ok {
		t.Error("an unknown source found")
	}
	// edited after Parse: swapped and appended
	s := c.Server.Sources
	s[0], s[1] = s[1], s[0]
	c.Server.Sources = append(s, Source{Name: "late"})
	for _, name := range []string{"s00", "s01", "late"} {
		if src, ok := c.Server.Source(name); !ok || src.Name != name {
			t.Errorf("after editing: Source(%q) = %q, %v", name, src.Name, ok)
		}
	}
}
