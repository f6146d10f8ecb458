package fritzdect

import (
	"math"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/meter"
)

func TestParseDeviceStats(t *testing.T) {
	ds, err := parseDeviceStats(readTestdata(t, "devicestats_power.xml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Power) != 1 || len(ds.Voltage) != 1 || len(ds.Temperature) != 1 || len(ds.Energy) != 2 {
		t.Fatalf("series: %+v", ds)
	}
	p := ds.Power[0]
	if p.Grid != 10*time.Second || p.DataTime.Unix() != 1764158400 || len(p.Values) != 360 {
		t.Errorf("power: grid %v datatime %v n %d", p.Grid, p.DataTime, len(p.Values))
	}
	if *p.Values[0] != 50 || *p.Values[1] != 49.9 || p.Values[350] != nil {
		t.Errorf("power values: %v %v %v", *p.Values[0], *p.Values[1], p.Values[350])
	}
	if *ds.Voltage[0].Values[0] != 230 || *ds.Temperature[0].Values[0] != 20 || ds.Energy[1].Grid != 24*time.Hour {
		t.Errorf("voltage/temperature/energy %+v", ds)
	}
	if finest(ds.Energy).Grid != 24*time.Hour {
		t.Error("finest energy series is not the daily one")
	}

	ds, err = parseDeviceStats(readTestdata(t, "devicestats_temperature_only.xml"))
	if err != nil || finest(ds.Power) != nil {
		t.Errorf("temperature only: %+v %v", ds, err)
	}

	for _, bad := range []string{
		`<devicestats><power><stats count="3" grid="10">1,2</stats></power></devicestats>`,
		`<devicestats><power><stats count="2" grid="x">1,2</stats></power></devicestats>`,
		`<devicestats><power><stats count="2" grid="10" datatime="soon">1,2</stats></power></devicestats>`,
		`<devicestats><power><stats count="2" grid="10">1,zwei</stats></power></devicestats>`,
		`<html></html>`,
	} {
		if _, err := parseDeviceStats([]byte(bad)); err == nil {
			t.Errorf("parseDeviceStats(%q): no error", bad)
		}
	}
}

func TestHistoryFromStats(t *testing.T) {
	ds, err := parseDeviceStats(readTestdata(t, "devicestats_power.xml"))
	if err != nil {
		t.Fatal(err)
	}
	m := offlineMeter("plug", "087610000434")
	newest := time.Unix(1764158400, 0).UTC()
	rs := m.historyOf("08761 0000434", ds, time.Now(), time.Time{})
	if len(rs) != 350 { // 10 values are "-"
		t.Fatalf("%d readings, want 350", len(rs))
	}
	first, last := rs[0], rs[len(rs)-1]
	if !first.Time.Equal(newest.Add(-349*10*time.Second)) || first.Power != 15.1 || !eqp(first.Voltage, 230.349) {
		t.Errorf("oldest %+v", first)
	}
	if !last.Time.Equal(newest) || last.Power != 50 || !last.Backfilled || last.Device != "plug" || last.EnergyIn != nil {
		t.Errorf("newest %+v", last)
	}
	for i := 1; i < len(rs); i++ {
		if rs[i].Time.Sub(rs[i-1].Time) != 10*time.Second {
			t.Fatalf("reading %d not 10 s after the previous", i)
		}
	}
	// Only what lies after since.
	rs = m.historyOf("08761 0000434", ds, time.Now(), newest.Add(-100*time.Second))
	if len(rs) != 10 || !rs[0].Time.Equal(newest.Add(-90*time.Second)) {
		t.Errorf("since: %d readings from %v", len(rs), rs[0].Time)
	}
	// Without datatime the newest value is from the time of the request.
	ds, err = parseDeviceStats(readTestdata(t, "devicestats_nodatatime.xml"))
	if err != nil {
		t.Fatal(err)
	}
	asked := time.Date(2026, 11, 26, 11, 0, 5, 400e6, time.UTC)
	rs = m.historyOf("08761 0000434", ds, asked, asked.Add(-time.Minute))
	if len(rs) != 6 || !rs[5].Time.Equal(asked.Truncate(time.Second)) || rs[0].Power != 12.34 || rs[0].Voltage != nil {
		t.Errorf("no datatime: %+v", rs)
	}
	// invert and threshold apply to history too.
	m.cfg.Invert = true
	rs = m.historyOf("08761 0000434", ds, asked, asked.Add(-15*time.Second))
	if len(rs) != 2 || rs[0].Power != -12.34 {
		t.Errorf("inverted history %+v", rs)
	}
}

func TestHistoryFromEmulator(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{}, clk)
	cfg := meterCfg(srv.URL, "balcony")
	cfg.AIN = EmuAINSolar
	m := newMeter(t, cfg, clk)
	since := clk.Now().Add(-30 * time.Minute)
	rs, err := m.History(bg, since)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 180 {
		t.Fatalf("%d readings for 30 min, want 180", len(rs))
	}
	for i, r := range rs {
		if !r.Time.After(since) || !r.Backfilled || r.Device != "balcony" || r.Voltage == nil {
			t.Fatalf("reading %d: %+v", i, r)
		}
		if i > 0 && !r.Time.After(rs[i-1].Time) {
			t.Fatalf("not oldest first at %d", i)
		}
		want := math.Round(emu.PowerAt(EmuAINSolar, r.Time)*100) / 100
		if math.Abs(r.Power-want) > 0.011 {
			t.Fatalf("%v: %v W, want %v W", r.Time, r.Power, want)
		}
		if err := r.Validate(); err != nil {
			t.Fatal(err)
		}
	}
	if last := rs[len(rs)-1]; !last.Time.Equal(clk.Now().Truncate(10 * time.Second)) {
		t.Errorf("newest at %v, want %v", last.Time, clk.Now().Truncate(10*time.Second))
	}

	// Auto mode: both present meters, merged oldest first; the unplugged
	// socket (all zeros on the box) is left out.
	all := newMeter(t, meterCfg(srv.URL, "all"), clk)
	rs, err = all.History(bg, clk.Now().Add(-time.Minute))
	if err != nil || len(rs) != 12 {
		t.Fatalf("auto: %d readings, %v", len(rs), err)
	}
	for _, r := range rs {
		if r.Device != "all/balkon-sued" && r.Device != "all/kuehlschrank" {
			t.Errorf("device %s", r.Device)
		}
	}

	// Without datatime (older FRITZ!OS 7) the request time anchors the series.
	_, srv2 := newEmu(t, EmulatorOptions{NoDataTime: true}, clk)
	cfg2 := meterCfg(srv2.URL, "fridge")
	cfg2.AIN = EmuAINFridge
	rs, err = newMeter(t, cfg2, clk).History(bg, clk.Now().Add(-time.Minute))
	if err != nil || len(rs) != 6 || !rs[5].Time.Equal(clk.Now()) {
		t.Errorf("no datatime: %+v %v", rs, err)
	}
}

func TestHistoryErrors(t *testing.T) {
	clk := newClock()
	emu, srv := newEmu(t, EmulatorOptions{}, clk)
	cfg := meterCfg(srv.URL, "fridge")
	cfg.AIN = EmuAINFridge
	m := newMeter(t, cfg, clk)
	emu.Faults().Set("truncated")
	rs, err := m.History(bg, clk.Now().Add(-time.Hour))
	wantKind(t, err, meter.BadAnswer)
	if rs != nil {
		t.Error("readings with an error")
	}
}
