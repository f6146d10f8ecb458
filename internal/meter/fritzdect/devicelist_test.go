package fritzdect

import (
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

// offlineMeter is a Meter for parsing tests: it never talks to a box.
func offlineMeter(name string, ains ...string) *Meter {
	var norm []string
	for _, a := range ains {
		norm = append(norm, normAIN(a))
	}
	return &Meter{
		cfg:     config.Meter{Name: name, Type: "fritzdect"},
		box:     &box{base: "http://fritz.box", now: time.Now},
		ains:    norm,
		log:     quiet,
		skipped: map[string]string{},
	}
}

// readList runs the Read path on a stored devicelist answer.
func readList(t *testing.T, m *Meter, file string) ([]reading.Reading, error) {
	t.Helper()
	dl, err := parseDeviceList(readTestdata(t, file))
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	devs, err := m.selectDevices(dl)
	if err != nil {
		return nil, err
	}
	var out []reading.Reading
	var errs []error
	for i := range devs {
		r, err := m.toReading(&devs[i], time.Date(2026, 11, 26, 11, 0, 0, 0, time.UTC))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, r)
	}
	return m.finish(out, errs)
}

func eqp(p *float64, v float64) bool { return p != nil && *p == v }

func TestParsePowermeterList(t *testing.T) {
	rs, err := readList(t, offlineMeter("home"), "devicelist_powermeter.xml")
	if err != nil {
		t.Fatal(err)
	}
	// The thermostat, the HAN-FUN units and the <group> are no meters.
	if len(rs) != 1 {
		t.Fatalf("readings %+v", rs)
	}
	r := rs[0]
	if r.Device != "home/balcony" || r.Power != 412.37 || !eqp(r.EnergyIn, 523411) || !eqp(r.Voltage, 231.512) || !eqp(r.Temperature, -3.5) {
		t.Errorf("reading %+v (energy %v voltage %v temp %v)", r, *r.EnergyIn, *r.Voltage, *r.Temperature)
	}
	rs, err = readList(t, offlineMeter("balcony", "11657 0020838"), "devicelist_powermeter.xml")
	if err != nil || len(rs) != 1 || rs[0].Device != "balcony" {
		t.Errorf("one AIN: %+v %v", rs, err)
	}
	_, err = readList(t, offlineMeter("radiator", "099950123456"), "devicelist_powermeter.xml")
	wantKind(t, err, meter.Config)
	_, err = readList(t, offlineMeter("han", "13077 0001234-1"), "devicelist_powermeter.xml")
	wantKind(t, err, meter.Config)
	if !strings.Contains(err.Error(), "without energy meter") {
		t.Errorf("message: %v", err)
	}
}

func TestParseFaultyList(t *testing.T) {
	rs, err := readList(t, offlineMeter("fridge", "08761 0000434"), "devicelist_faulty.xml")
	wantKind(t, err, meter.BadAnswer)
	if rs != nil || !strings.Contains(err.Error(), "no power value") {
		t.Errorf("%v %v", rs, err)
	}
}

func TestParseNotPresent(t *testing.T) {
	_, err := readList(t, offlineMeter("workshop", "087610999999"), "devicelist_notpresent.xml")
	wantKind(t, err, meter.NotPresent)
	rs, err := readList(t, offlineMeter("all"), "devicelist_notpresent.xml")
	if err != nil || len(rs) != 1 || rs[0].Device != "all/fridge" || rs[0].Power != 85.12 || !eqp(rs[0].Voltage, 229.87) {
		t.Errorf("absent device skipped in a several-device meter: %+v %v", rs, err)
	}
	// Not present devices parse to empty values, not to errors.
	dl, _ := parseDeviceList(readTestdata(t, "devicelist_notpresent.xml"))
	d, err := parseDevice(&dl.Devices[0])
	if err != nil || d.Present || d.Power != nil || d.Energy != nil || d.Temp != nil || !d.isMeter() {
		t.Errorf("%+v %v", d, err)
	}
}

func TestParseUmlautName(t *testing.T) {
	dl, err := parseDeviceList(readTestdata(t, "devicelist_umlaut.xml"))
	if err != nil {
		t.Fatal(err)
	}
	d, err := parseDevice(&dl.Devices[0])
	if err != nil || d.Name != "Kühlschrank & Gefriergerät" || *d.Power != 114.58 || *d.Energy != 87830 || *d.Temp != 22 {
		t.Errorf("%+v %v", d, err)
	}
}

func TestParseOldFirmwareList(t *testing.T) {
	rs, err := readList(t, offlineMeter("all"), "devicelist_fw0683.xml")
	if err != nil || len(rs) != 1 {
		t.Fatalf("%+v %v", rs, err)
	}
	r := rs[0]
	if r.Power != 0 || !eqp(r.EnergyIn, 4012) || r.Voltage != nil || !eqp(r.Temperature, 21) {
		t.Errorf("%+v", r)
	}
}

func TestParseBadLists(t *testing.T) {
	for _, bad := range []string{
		"",
		"<!DOCTYPE html><html><body>FRITZ!Box</body></html>",
		`<devicelist version="1"><device identifier="1" functionbitmask="896"><present>1</pres`,
		`<SessionInfo><SID>0000000000000000</SID></SessionInfo>`,
	} {
		if _, err := parseDeviceList([]byte(bad)); err == nil {
			t.Errorf("parseDeviceList(%q): no error", bad)
		}
	}
	// A device with garbage in a number is an error for that device only.
	dl, err := parseDeviceList([]byte(`<devicelist version="1">
<device identifier="08761 0000434" functionbitmask="896"><present>1</present><name>a</name><powermeter><power>12x</power></powermeter></device>
<device identifier="08761 0000435" functionbitmask="896"><present>1</present><name>b</name><powermeter><power>1000</power><energy>inval</energy></powermeter></device>
</devicelist>`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parseDevice(&dl.Devices[0]); err == nil {
		t.Error("power 12x parsed")
	}
	d, err := parseDevice(&dl.Devices[1])
	if err != nil || *d.Power != 1 || d.Energy != nil {
		t.Errorf("%+v %v", d, err)
	}
	m := offlineMeter("one", "087610000434")
	if _, err := m.selectDevices(dl); meter.KindOf(err) != meter.BadAnswer {
		t.Errorf("broken entry of the configured AIN: %v", err)
	}
	m = offlineMeter("all")
	devs, err := m.selectDevices(dl)
	if err != nil || len(devs) != 1 || devs[0].Name != "b" {
		t.Errorf("broken entry of another device: %+v %v", devs, err)
	}
}

func TestParseLatin1(t *testing.T) {
	b := append([]byte(`<?xml version="1.0" encoding="ISO-8859-1"?><devicelist version="1"><device identifier="1" functionbitmask="896"><present>1</present><name>K`), 0xfc)
	b = append(b, []byte(`hl</name></device></devicelist>`)...)
	dl, err := parseDeviceList(b)
	if err != nil || dl.Devices[0].Name != "Kühl" {
		t.Errorf("%+v %v", dl, err)
	}
}
