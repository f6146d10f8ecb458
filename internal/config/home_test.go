package config

import (
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/household"
)

const homeTOML = `
[server]
[[server.sources]]
name = "home"
key = "0123456789"
[[server.sources.devices]]
name = "legacy"
role = "pv"
invert = true
label = "Balkon"
[[server.sources.fields]]
quantity = "power"
[[server.sources.fields]]
quantity = "voltage"
label = "Batterie"
[server.sources.tariff]
currency = "EUR"
base_fee = 12
investment = 600
invested_on = "2026-03-01"
[[server.sources.tariff.import]]
price = 0.32
[[server.sources.tariff.import]]
from = "2026-07-01"
price = 0.35
[[server.sources.tariff.import.windows]]
days = ["sat", "sun"]
from = 0
to = 24
price = 0.30
[[server.sources.tariff.feed_in]]
price = 0.08

[[meters]]
name = "grid"
type = "shelly"
url = "http://127.0.0.1:1"
role = "grid"
[[meters]]
name = "fridge"
type = "shelly"
url = "http://127.0.0.1:2"
role = "consumer"
temperature = "device"
`

func TestHomeTariffFields(t *testing.T) {
	c, err := Parse("pm.toml", []byte(homeTOML), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	h := c.Home("home")
	if h.Role("grid") != household.Grid || h.Role("fridge") != household.Consumer || h.Role("legacy") != household.PV {
		t.Errorf("roles: %+v", h.Devices())
	}
	if !h.Device("legacy").Invert || h.Device("legacy").Title() != "Balkon" || h.TemperatureDevice() != "fridge" {
		t.Errorf("legacy device: %+v", h.Device("legacy"))
	}
	if f := c.Fields("home"); f.Second() != household.Voltage || f[1].Unit != "V" {
		t.Errorf("fields %+v", f)
	}
	tr := c.TariffOf("home")
	if tr == nil {
		t.Fatal("no tariff")
	}
	z := c.Timezone.Location
	if p := tr.ImportPrice(time.Date(2026, 7, 4, 12, 0, 0, 0, z)); p != 0.30 { // a Saturday
		t.Errorf("weekend price %v", p)
	}
	if p := tr.ImportPrice(time.Date(2026, 6, 30, 23, 0, 0, 0, z)); p != 0.32 {
		t.Errorf("old price %v", p)
	}
	if c.TariffOf("other") != nil || c.Home("other").Configured() {
		t.Error("an unknown source has a tariff or roles")
	}
}

func TestHomeErrorsNameTheKey(t *testing.T) {
	cases := []struct{ from, to, key string }{
		{`role = "pv"`, `role = "solar"`, "server.sources[0].devices[0].role"},
		{`role = "consumer"`, `role = "fridge"`, "meters[1].role"},
		{`quantity = "voltage"`, `quantity = "speed"`, "server.sources[0].fields"},
		{`days = ["sat", "sun"]`, `days = ["sat", "sunday"]`, "server.sources[0].tariff.import[1].windows[0].days[1]"},
		{`invested_on = "2026-03-01"`, `invested_on = "March"`, "server.sources[0].tariff.invested_on"},
		{`temperature = "device"`, `temperature = "chip"`, "meters[1].temperature"},
	}
	for _, c := range cases {
		src := strings.Replace(homeTOML, c.from, c.to, 1)
		_, err := Parse("pm.toml", []byte(src), func(string) (string, bool) { return "", false })
		if err == nil || !strings.Contains(err.Error(), c.key+": ") {
			t.Errorf("%s: error %v, want one naming %s", c.to, err, c.key)
		}
	}
}
