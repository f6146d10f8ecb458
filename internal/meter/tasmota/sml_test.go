package tasmota

import (
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/metertest"
)

// serveBody answers every request with body.
func serveBody(t *testing.T, body string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) }))
	t.Cleanup(srv.Close)
	return srv
}

func sns(t *testing.T, s string) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestParseSMLDefaultsAndMapping(t *testing.T) {
	// tele/<topic>/SENSOR of a read head with the common script
	v, err := ParseSML(sns(t, `{"Time":"2026-06-01T12:00:00","SML":{"Total_in":12345.6789,"Total_out":987.654,"Power_curr":-1234,"power_l1":100,"power_l2":-300,"power_l3":-1034,"voltage_l1":230,"voltage_l2":232,"Meter_Id":"0a01"}}`), DefaultSMLMap())
	if err != nil {
		t.Fatal(err)
	}
	r, err := v.Reading("grid", time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if r.Power != -1234 || len(r.Phases) != 3 || r.Phases[2] != -1034 {
		t.Errorf("power %v phases %v", r.Power, r.Phases)
	}
	metertest.Eq(t, "import Wh", r.EnergyIn, 12345678.9)
	metertest.Eq(t, "export Wh", r.EnergyOut, 987654)
	metertest.Eq(t, "voltage (mean of the reported phases)", r.Voltage, 231)

	// another script's names, mapped; missing phases are simply absent
	m := SMLMapFrom(&config.SML{Group: "Verbrauch", TotalIn: "E_in", Power: "P"})
	v, err = ParseSML(sns(t, `{"Verbrauch":{"E_in":5.5,"P":77}}`), m)
	if err != nil {
		t.Fatal(err)
	}
	r, err = v.Reading("grid", time.Now())
	if err != nil || r.Power != 77 || r.EnergyOut != nil || r.Phases != nil {
		t.Errorf("mapped: %+v %v", r, err)
	}
	metertest.Eq(t, "mapped import", r.EnergyIn, 5500)
}

func TestParseSMLErrors(t *testing.T) {
	for _, c := range []struct {
		body string
		m    SMLMap
		kind meter.Kind
		msg  string
	}{
		{`{"MT631":{"E_in":1,"P":2}}`, DefaultSMLMap(), meter.Config, `no group "SML" in the answer (groups there: MT631)`},
		{`{"SML":{"Total_in":1,"P":2}}`, DefaultSMLMap(), meter.Config, `no power field "Power_curr" (fields there: P, Total_in)`},
		{`{"SML":{"Total_in":"abc","Power_curr":2}}`, DefaultSMLMap(), meter.BadAnswer, `SML.Total_in is "abc", not a number`},
		{`{"SML":[1,2]}`, DefaultSMLMap(), meter.BadAnswer, `group "SML" is not a JSON object`},
	} {
		_, err := ParseSML(sns(t, c.body), c.m)
		if meter.KindOf(err) != c.kind || err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want %v %q", c.body, err, c.kind, c.msg)
		}
	}
	// lost sync: zero counters
	v, err := ParseSML(sns(t, `{"SML":{"Total_in":0,"Total_out":0,"Power_curr":0}}`), DefaultSMLMap())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Reading("grid", time.Now()); !errors.Is(err, ErrLostSync) || meter.KindOf(err) != meter.NotPresent {
		t.Errorf("lost sync: %v", err)
	}
	// a household without PV: export 0 is normal
	v, _ = ParseSML(sns(t, `{"SML":{"Total_in":10,"Total_out":0,"Power_curr":5}}`), DefaultSMLMap())
	if _, err := v.Reading("grid", time.Now()); err != nil {
		t.Errorf("export 0 only: %v", err)
	}
}

func TestEmulatorSML(t *testing.T) {
	clk := metertest.NewClock(time.Date(2026, 6, 21, 11, 0, 0, 0, time.UTC))
	e, srv := startEmulator(t, EmulatorConfig{NoEnergy: true, Now: clk.Now, Zone: berlin})
	m := newMeter(t, config.Meter{URL: srv.URL, SML: &config.SML{}})
	if m.path != "/cm?cmnd=Status%2010" {
		t.Errorf("SML meter asks %s, want Status 10", m.path)
	}
	r := metertest.ReadOne(t, m)
	ph := emulate.House3(clk.Now(), berlin)
	if want := math.Round(ph[0] + ph[1] + ph[2]); r.Power != want || want >= 0 {
		t.Errorf("power %v, want %v (feeding in at noon in June)", r.Power, want)
	}
	if len(r.Phases) != 3 || r.Phases[2] >= 0 {
		t.Errorf("phases %v", r.Phases)
	}
	metertest.Eq(t, "import", r.EnergyIn, 9876543)
	in0, out0 := *r.EnergyIn, *r.EnergyOut
	clk.Add(10 * time.Minute)
	r = metertest.ReadOne(t, m)
	if r.Power >= 0 || *r.EnergyOut <= out0 || *r.EnergyIn != in0 {
		t.Errorf("10 minutes of export: in %v→%v out %v→%v", in0, *r.EnergyIn, out0, *r.EnergyOut)
	}
	// invert works on a read head too (installed the other way round)
	ri := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL, SML: &config.SML{}, Invert: true}))
	if ri.Power != -r.Power || *ri.EnergyIn != *r.EnergyOut {
		t.Errorf("inverted %+v vs %+v", ri, r)
	}

	// the head loses sync: an error, no reading with 0 counters
	e.Faults().Set(emulate.LostSync)
	metertest.WantErr(t, m, meter.NotPresent, "lost sync")
	e.Faults().Set(emulate.None)
	metertest.ReadOne(t, m)
}

func TestEmulatorSMLRenamed(t *testing.T) {
	ec, err := ParseProfile("sml-renamed")
	if err != nil {
		t.Fatal(err)
	}
	_, srv := startEmulator(t, ec)
	// defaults do not fit: the error names the group the device has
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL}), meter.Config, "it reports: MT631")
	metertest.WantErr(t, newMeter(t, config.Meter{URL: srv.URL, SML: &config.SML{}}), meter.Config, `no group "SML" in the answer (groups there: MT631)`)
	m := newMeter(t, config.Meter{URL: srv.URL, SML: &config.SML{Group: "MT631", TotalIn: "E_in", TotalOut: "E_out", Power: "P", PowerL1: "P_L1", PowerL2: "P_L2", PowerL3: "P_L3"}})
	r := metertest.ReadOne(t, m)
	if len(r.Phases) != 3 || r.EnergyIn == nil || r.EnergyOut == nil || math.Abs(r.Power-(r.Phases[0]+r.Phases[1]+r.Phases[2])) > 1.5 {
		t.Errorf("renamed: %+v", r)
	}
}

func TestPrecisionAndTemperature(t *testing.T) {
	// a sub-watt standby: Power says 0, V × I × PF says 0.4
	srv := serveBody(t, `{"StatusSNS":{"Time":"2026-02-01T08:30:00","ENERGY":{"Total":1.5,"Power":0,"Voltage":230,"Current":0.004,"Factor":0.43},"DS18B20":{"Id":"0119","Temperature":71.6},"TempUnit":"F"}}`)
	r := metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv.URL}))
	if r.Power != 0.4 {
		t.Errorf("sub-watt power %v, want 0.4", r.Power)
	}
	metertest.Eq(t, "temperature from °F", r.Temperature, 22)
	// no Factor: Power as reported; the ESP32's chip temperature is no sensor
	srv2 := serveBody(t, `{"StatusSNS":{"ENERGY":{"Power":-55,"Voltage":230,"Current":0.25},"ESP32":{"Temperature":51.2}}}`)
	r = metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv2.URL}))
	if r.Power != -55 || r.Temperature != nil {
		t.Errorf("power %v temperature %v", r.Power, r.Temperature)
	}
	// negative power keeps its sign with V × I × PF
	srv3 := serveBody(t, `{"StatusSNS":{"ENERGY":{"Power":-55,"Voltage":230,"Current":0.25,"Factor":0.96},"BME280":{"Temperature":19.5,"Humidity":50}}}`)
	r = metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv3.URL}))
	if r.Power != -55.2 {
		t.Errorf("power %v, want -55.2", r.Power)
	}
	metertest.Eq(t, "other sensor", r.Temperature, 19.5)
	// the emulator's DS18B20
	ec, _ := ParseProfile("fridge,ds18b20")
	_, srv4 := startEmulator(t, ec)
	metertest.Eq(t, "emulated DS18B20", metertest.ReadOne(t, newMeter(t, config.Meter{URL: srv4.URL})).Temperature, 21.4)
}

// Old firmware without Status 10: the read head is asked Status 8.
func TestSMLOldFirmwareStatus8(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := r.URL.Query().Get("cmnd")
		asked = append(asked, c)
		if c == "Status 10" {
			w.Write([]byte(`{"Command":"Unknown"}`))
			return
		}
		w.Write([]byte(`{"StatusSNS":{"Time":"2026-02-01T08:30:00","SML":{"Total_in":10.5,"Power_curr":120}}}`))
	}))
	t.Cleanup(srv.Close)
	m := newMeter(t, config.Meter{URL: srv.URL, SML: &config.SML{}})
	for i := 0; i < 2; i++ {
		if r := metertest.ReadOne(t, m); r.Power != 120 {
			t.Errorf("power %v", r.Power)
		}
	}
	if strings.Join(asked, "|") != "Status 10|Status 8|Status 8" {
		t.Errorf("asked %v", asked)
	}
}
