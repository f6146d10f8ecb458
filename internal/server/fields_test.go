package server

import (
	"net/url"
	"strings"
	"testing"
	"time"
)

const epeverConfig = `
timezone = "Europe/Berlin"
[server]
listen = "127.0.0.1:0"
database = "sqlite:///unused.db"
[[server.sources]]
name = "epever"
key = "epever-key-1"
[[server.sources.devices]]
name = "legacy"
role = "pv"
label = "Solarladeregler"
[[server.sources.fields]]
quantity = "power"
label = "Panel"
[[server.sources.fields]]
quantity = "voltage"
label = "Batterie"
[[server.sources.fields]]
quantity = "current"
label = "Batteriestrom"
[[server.sources.fields]]
quantity = "voltage"
label = "Panelspannung"
[[server.sources.fields]]
quantity = "current"
label = "Panelstrom"
`

// An ESP-Epever line through log.php is stored with the battery voltage
// as a voltage and shown with its units; the page's headline is the
// production and shows no temperature.
func TestEpeverLineStoredAndShownWithUnits(t *testing.T) {
	ts := startServer(t, epeverConfig, nil, nil)
	now := time.Now().In(berlin).Truncate(time.Second)
	stats := now.Format("02.01.2006,15:04:05") + ",85.20,13.45,5.10,18.20,4.68"
	code, body, _ := do(t, "GET", ts.base+"/log.php?key=epever-key-1&stats="+url.QueryEscape(stats), "", "")
	if code != 200 {
		t.Fatalf("log.php: %d %s", code, body)
	}
	rs := stored(t, ts.st, "epever", now.Add(-time.Minute), now.Add(time.Minute))
	if len(rs) != 1 || rs[0].Temperature != nil || rs[0].Voltage == nil || *rs[0].Voltage != 13.45 || len(rs[0].Phases) != 3 {
		t.Fatalf("stored %+v", rs)
	}
	code, page, _ := do(t, "GET", ts.base+"/s/epever", "", "", "Accept-Language", "de")
	if code != 200 {
		t.Fatalf("live page %d", code)
	}
	for _, want := range []string{"Batterie 13,45 V", "Batteriestrom 5,10 A", "Panelspannung 18,20 V", "Panelstrom 4,68 A", "Solarladeregler", "Erzeugung"} {
		if !strings.Contains(page, want) {
			t.Errorf("live page lacks %q", want)
		}
	}
	if strings.Contains(page, "°C") {
		t.Error("live page shows a temperature for a battery voltage")
	}
}
