package dashboard

import (
	"strings"
	"testing"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/reading"
)

// The home page's headline: the home's consumption (not the sum of a grid
// meter and the plug behind it), the production for a plant without a grid
// meter, and a temperature only from the device chosen for it.
func TestHomeHeadline(t *testing.T) {
	st := openStore(t)
	at := testNow.Add(-20e9).UTC()
	insert(t, st, "home",
		reading.Reading{Device: "grid", Time: at, Power: 446, Temperature: reading.F(41.5)}, // a device chip
		reading.Reading{Device: "fridge", Time: at, Power: 85, Temperature: reading.F(30.1)},
		reading.Reading{Device: "room", Time: at, Power: 0, Temperature: reading.F(21.4)})
	insert(t, st, "cabin", reading.Reading{Device: "legacy", Time: at, Power: -312.5, Temperature: reading.F(35)})
	homes := map[string]*household.Home{}
	var err error
	if homes["home"], err = household.New([]household.Device{
		{Name: "grid", Role: household.Grid}, {Name: "fridge", Role: household.Consumer},
		{Name: "room", Role: household.Other, Temperature: household.TempRoom}}); err != nil {
		t.Fatal(err)
	}
	if homes["cabin"], err = household.New([]household.Device{{Name: "legacy", Role: household.PV, Invert: true}}); err != nil {
		t.Fatal(err)
	}
	d := newTestDashboard(t, st, Options{
		Sources: []config.Source{srcConf("home", "k1-never-shown"), srcConf("cabin", "k2-never-shown")},
		Home:    func(s string) *household.Home { return homes[s] }})
	r := get(t, mux(d), "/", "Accept-Language", "en")
	if r.code != 200 {
		t.Fatalf("home page %d", r.code)
	}
	cards := strings.Split(r.body, `class="card source`)
	if len(cards) != 3 {
		t.Fatalf("%d source cards", len(cards)-1)
	}
	home, cabin := cards[1], cards[2]
	if !strings.Contains(home, "446 W") || strings.Contains(home, "531 W") || !strings.Contains(home, "Home consumption") {
		t.Errorf("home headline: %s", home)
	}
	if !strings.Contains(home, "21.4 °C") || strings.Contains(home, "31.0 °C") || strings.Contains(home, "41.5 °C") {
		t.Errorf("home temperature: only the room's 21.4 °C, got %s", home)
	}
	if !strings.Contains(cabin, ">312 W") || !strings.Contains(cabin, "Production") { // 312.5 W, fed in, read inverted
		t.Errorf("pv-only headline: %s", cabin)
	}
	if strings.Contains(cabin, "°C") {
		t.Errorf("a temperature without a chosen device: %s", cabin)
	}
}
