package household

import (
	"math"
	"testing"
)

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

// home of the fixtures: grid meter, balcony plant, battery, fridge
func testHome(t *testing.T) *Home {
	t.Helper()
	h, err := New([]Device{
		{Name: "grid", Role: Grid},
		{Name: "balcony", Role: PV, Label: "Balkon"},
		{Name: "battery", Role: Battery},
		{Name: "fridge", Role: Consumer, Temperature: TempRoom},
		{Name: "sensor", Role: Other},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// interval balances what each device measured (Wh in, Wh out as stored).
func interval(h *Home, m map[string][2]float64) Flow {
	var parts []Part
	for name, v := range m {
		parts = append(parts, h.Orient(name, v[0], v[1]))
	}
	return Balance(parts)
}

func TestSunnyNoonWithExport(t *testing.T) {
	h := testHome(t)
	// a quarter hour at noon: the plant makes 150 Wh (the plug counts it
	// as consumption), the grid meter counts 50 Wh fed in
	f := interval(h, map[string][2]float64{"grid": {0, 50}, "balcony": {150, 0}})
	near(t, "production", f.Production, 150)
	near(t, "export", f.Export, 50)
	near(t, "home", f.Home, 100) // 0 + 150 − 50
	near(t, "self", f.Self, 100)
	near(t, "solar→home", f.SolarHome, 100)
	near(t, "grid→home", f.GridHome, 0)
	if a, ok := f.Autarky(); !ok || a != 1 {
		t.Errorf("autarky %v %v, want 1", a, ok)
	}
	if r, ok := f.SelfRate(); !ok || math.Abs(r-2.0/3) > 1e-12 {
		t.Errorf("self rate %v, want 2/3", r)
	}
	// the morning before: 80 Wh from the grid, 20 Wh of sun
	m := interval(h, map[string][2]float64{"grid": {80, 0}, "balcony": {20, 0}})
	near(t, "morning home", m.Home, 100)
	near(t, "morning grid→home", m.GridHome, 80)
	m.Add(f)
	near(t, "day home", m.Home, 200)
	near(t, "day self", m.Self, 120)
	a, _ := m.Autarky()
	near(t, "day autarky", a, 1-80.0/200)
	r, _ := m.SelfRate()
	near(t, "day self rate", r, 120.0/170)
}

func TestBatteryChargesFromSurplusDischargesAtNight(t *testing.T) {
	h := testHome(t)
	// noon: 600 Wh of sun, the battery takes 200 Wh of it, nothing exported
	noon := interval(h, map[string][2]float64{"grid": {0, 0}, "balcony": {600, 0}, "battery": {200, 0}})
	near(t, "noon home", noon.Home, 400)
	near(t, "noon self", noon.Self, 600)
	near(t, "noon solar→home", noon.SolarHome, 400)
	near(t, "noon charge", noon.Charge, 200)
	// night: the battery gives 150 Wh, the grid 50 Wh
	night := interval(h, map[string][2]float64{"grid": {50, 0}, "balcony": {0, 0}, "battery": {0, 150}})
	near(t, "night home", night.Home, 200)
	near(t, "night battery→home", night.BatteryHome, 150)
	near(t, "night grid→home", night.GridHome, 50)
	day := noon
	day.Add(night)
	a, _ := day.Autarky()
	near(t, "autarky", a, 1-50.0/600)
	r, _ := day.SelfRate()
	near(t, "self rate", r, 1)
	near(t, "home = solar + battery + grid", day.SolarHome+day.BatteryHome+day.GridHome, day.Home)
}

func TestCloudyDayNoExport(t *testing.T) {
	h := testHome(t)
	f := interval(h, map[string][2]float64{"grid": {300, 0}, "balcony": {100, 0}})
	near(t, "home", f.Home, 400)
	near(t, "self", f.Self, 100)
	near(t, "export", f.Export, 0)
	a, _ := f.Autarky()
	near(t, "autarky", a, 0.25)
	r, _ := f.SelfRate()
	near(t, "self rate", r, 1)
}

func TestApplianceDuringSunshine(t *testing.T) {
	h := testHome(t)
	// the fridge runs (150 Wh) while the plant makes 500 Wh and 100 Wh go out;
	// the sensor ("other") is no part of the balance
	f := interval(h, map[string][2]float64{"grid": {0, 100}, "balcony": {500, 0}, "fridge": {150, 0}, "sensor": {999, 0}})
	near(t, "home", f.Home, 400) // not 550: the fridge is behind the grid meter
	near(t, "appliances", f.Appliances, 150)
	near(t, "rest", f.Rest, 250)
	near(t, "self", f.Self, 400)
}

func TestNoGridMeter(t *testing.T) {
	h, err := New([]Device{{Name: "legacy", Role: PV, Invert: true}})
	if err != nil {
		t.Fatal(err)
	}
	// an inverter logged as feed-in (negative), read inverted
	f := interval(h, map[string][2]float64{"legacy": {0, 300}})
	near(t, "production", f.Production, 300)
	if f.HomeKnown {
		t.Error("home known without a grid meter")
	}
	if _, ok := f.Autarky(); ok {
		t.Error("autarky without a grid meter")
	}
	if _, ok := f.SelfRate(); ok {
		t.Error("self rate without a grid meter")
	}
}

func TestInvertAndDefaults(t *testing.T) {
	// no roles: today's behaviour, every device a grid meter
	var none *Home
	f := Balance([]Part{none.Orient("plug", 100, 0), none.Orient("legacy", 0, 30)})
	near(t, "import", f.Import, 100)
	near(t, "export", f.Export, 30)
	if none.Configured() || none.Fingerprint() != "" {
		t.Error("a nil home is configured")
	}
	h := testHome(t)
	if r := h.Role("new-plug"); r != Other {
		t.Errorf("unlisted device in a home with roles: %s, want other", r)
	}
	inv, _ := New([]Device{{Name: "grid", Role: Grid, Invert: true}})
	p := inv.Orient("grid", 10, 20)
	if p.In != 20 || p.Out != 10 {
		t.Errorf("invert: %+v", p)
	}
	if inv.Fingerprint() == h.Fingerprint() || inv.Fingerprint() == "" {
		t.Error("fingerprints do not tell homes apart")
	}
	box, _ := New([]Device{{Name: "box", Role: PV}})
	if r := box.Role("box/11657 0020838"); r != PV {
		t.Errorf("device of a meter: %s, want pv", r)
	}
	if h.TemperatureDevice() != "fridge" {
		t.Errorf("temperature device %q", h.TemperatureDevice())
	}
	if _, err := New([]Device{{Name: "a", Role: "solar"}}); err == nil {
		t.Error("unknown role accepted")
	}
	if _, err := New([]Device{{Name: "a", Temperature: TempRoom}, {Name: "b", Temperature: TempDevice}}); err == nil {
		t.Error("two temperatures accepted")
	}
}

func TestFieldMap(t *testing.T) {
	m, err := FieldMap{{Quantity: Power}, {Quantity: Voltage, Label: "Batterie"}, {Quantity: Current}}.Check()
	if err != nil {
		t.Fatal(err)
	}
	if m[1].Unit != "V" || m[2].Unit != "A" || m.Second() != Voltage {
		t.Errorf("epever map %+v", m)
	}
	if f := m.At(5); f.Quantity != Power || f.Unit != "W" {
		t.Errorf("beyond the map: %+v", f)
	}
	if _, err := (FieldMap{{Quantity: Voltage}}).Check(); err == nil {
		t.Error("value 1 as voltage accepted")
	}
	if _, err := (FieldMap{{Quantity: Power}, {Quantity: "speed"}}).Check(); err == nil {
		t.Error("unknown quantity accepted")
	}
	d, _ := FieldMap(nil).Check()
	if d.Second() != Temperature {
		t.Error("default value 2 is not temperature")
	}
	soc, _ := FieldMap{{Quantity: Power}, {Quantity: SoC}}.Check()
	if soc.Second() != Value || soc[1].Unit != "%" {
		t.Errorf("soc map %+v", soc)
	}
}
