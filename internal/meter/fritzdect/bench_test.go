package fritzdect

import (
	"strings"
	"testing"
)

// BenchmarkRead is one round of one meter covering every energy meter of
// the emulated box: one getdevicelistinfos over a kept session, parsed into
// readings (the round cache is off so every iteration asks the box).
func BenchmarkRead(b *testing.B) {
	_, srv := newEmu(b, EmulatorOptions{}, nil)
	m := newMeter(b, meterCfg(srv.URL, "bench"), nil)
	m.box.mu.Lock()
	m.box.cacheFor = 0
	m.box.mu.Unlock()
	if _, err := m.Read(bg); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rs, err := m.Read(bg)
		if err != nil || len(rs) != 2 {
			b.Fatal(rs, err)
		}
	}
}

// BenchmarkReadREST is the same round over the FRITZ!OS 8.2 REST API:
// overview/devices and the units of the three energy meters (four
// requests), round cache off.
func BenchmarkReadREST(b *testing.B) {
	emu, srv := newEmu(b, EmulatorOptions{FritzOS82: true}, nil)
	m := newMeter(b, meterCfg(srv.URL, "bench"), nil)
	m.box.mu.Lock()
	m.box.cacheFor = 0
	m.box.mu.Unlock()
	if _, err := m.Read(bg); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rs, err := m.Read(bg)
		if err != nil || len(rs) != 2 {
			b.Fatal(rs, err)
		}
	}
	b.StopTimer()
	if emu.Stats().Commands["getdevicelistinfos"] != 0 {
		b.Fatal("read over AHA")
	}
}

// BenchmarkReadCached is a second meter of the same box in the same round:
// it is served from the round's answer without a request.
func BenchmarkReadCached(b *testing.B) {
	clk := newClock()
	_, srv := newEmu(b, EmulatorOptions{}, clk)
	m := newMeter(b, meterCfg(srv.URL, "bench"), clk)
	if _, err := m.Read(bg); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Read(bg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParse is the client's own share of a round: parsing the box's
// device list (four devices) and building the readings.
func BenchmarkParse(b *testing.B) {
	emu := NewEmulator(EmulatorOptions{Now: newClock().Now})
	var sb strings.Builder
	sb.WriteString(`<devicelist version="1" fwversion="7.57">`)
	for _, d := range emu.devices {
		emu.writeDevice(&sb, d, start, false)
	}
	sb.WriteString("</devicelist>\n")
	body := []byte(sb.String())
	m := offlineMeter("bench")
	b.ReportAllocs()
	for b.Loop() {
		dl, err := parseDeviceList(body)
		if err != nil {
			b.Fatal(err)
		}
		devs, err := m.selectDevices(dl)
		if err != nil || len(devs) != 3 {
			b.Fatal(devs, err)
		}
		for i := range devs {
			if devs[i].Present {
				if _, err := m.toReading(&devs[i], start); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
}
