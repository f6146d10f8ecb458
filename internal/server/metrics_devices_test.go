package server

import (
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/promexp/promtest"
)

// /metrics carries the newest reading of every device, parsed with
// Prometheus' text parser, the names within Prometheus' naming rules.
func TestMetricsPerDevice(t *testing.T) {
	ts := startServer(t, baseConfig, nil, nil)
	body := `{"readings":[
	 {"device":"balcony","time":"2026-11-26T12:00:00Z","power_w":-400,"energy_in_wh":10,"energy_out_wh":88012.25,"temperature_c":21.5,"voltage_v":231.2},
	 {"device":"balcony","time":"2026-11-26T12:00:10Z","power_w":-412.5,"energy_in_wh":10,"energy_out_wh":88013.5,"temperature_c":21.5,"voltage_v":231.2},
	 {"device":"fridge","time":"2026-11-26T12:00:10Z","power_w":80}]}`
	if code, b, _ := do(t, "POST", ts.base+"/api/v1/readings", "application/json", body, "Authorization", "Bearer "+homeKey); code != 200 {
		t.Fatalf("ingest: %d %s", code, b)
	}
	code, scrape, _ := do(t, "GET", ts.base+"/metrics", "", "")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	fams := promtest.Parse(t, scrape)
	promtest.CheckNaming(t, fams)
	bal := map[string]string{"source": "home", "device": "balcony"}
	for name, want := range map[string]float64{
		"powermeter_power_watts":                    -412.5,
		"powermeter_energy_import_watt_hours_total": 10,
		"powermeter_energy_export_watt_hours_total": 88013.5,
		"powermeter_temperature_celsius":            21.5,
		"powermeter_voltage_volts":                  231.2,
		"powermeter_last_reading_timestamp_seconds": float64(time.Date(2026, 11, 26, 12, 0, 10, 0, time.UTC).Unix()),
	} {
		if v, ok := promtest.Value(fams, name, bal); !ok || v != want {
			t.Errorf("%s{balcony} = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if v, ok := promtest.Value(fams, "powermeter_power_watts", map[string]string{"source": "home", "device": "fridge"}); !ok || v != 80 {
		t.Errorf("fridge power %v %v", v, ok)
	}
	if _, ok := promtest.Value(fams, "powermeter_temperature_celsius", map[string]string{"device": "fridge"}); ok {
		t.Error("a device without a temperature got a temperature series")
	}
	if strings.Count(scrape, `powermeter_power_watts{device="balcony"`) != 1 {
		t.Error("one series per device")
	}
}
