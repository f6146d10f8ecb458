package server

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

const energyConfig = `
[server]
listen = "127.0.0.1:0"
database = "sqlite:///unused.db"
[[server.sources]]
name = "solar"
key = "solar-key-01"
timezone = "UTC"
[[server.sources.devices]]
name = "grid"
role = "grid"
[[server.sources.devices]]
name = "pv"
role = "pv"
label = "Balkon"
[[server.sources.devices]]
name = "fridge"
role = "consumer"
[server.sources.tariff]
currency = "EUR"
base_fee = 30
investment = 600
invested_on = "2026-06-01"
[[server.sources.tariff.import]]
price = 0.30
[[server.sources.tariff.feed_in]]
price = 0.08
`

// sunnyDays writes days of 10-s readings with counters from UTC midnight
// of day0: 00–06 h the home draws 200 W (fridge 100 W); 06–12 h the plant
// makes 500 W, the home draws 300 W, 200 W go out; 12–24 h 300 W from the
// grid.
func sunnyDays(day0 time.Time, days int) []reading.Reading {
	var out []reading.Reading
	var gIn, gOut, pv, fr float64
	for s := 0; s <= days*86400; s += 10 {
		h := math.Mod(math.Floor(float64(s-5)/3600)+24, 24)
		var grid, sun, fridge float64
		switch {
		case h < 6:
			grid, fridge = 200, 100
		case h < 12:
			grid, sun, fridge = -200, 500, 100
		default:
			grid = 300
		}
		k := 10.0 / 3600
		if s > 0 {
			if grid > 0 {
				gIn += grid * k
			} else {
				gOut -= grid * k
			}
			pv += sun * k
			fr += fridge * k
		}
		t := day0.Add(time.Duration(s) * time.Second)
		out = append(out,
			reading.Reading{Device: "fridge", Time: t, Power: fridge, EnergyIn: reading.F(fr)},
			reading.Reading{Device: "grid", Time: t, Power: grid, EnergyIn: reading.F(gIn), EnergyOut: reading.F(gOut)},
			reading.Reading{Device: "pv", Time: t, Power: sun, EnergyIn: reading.F(pv)},
		)
	}
	return out
}

type energyAnswer struct {
	Currency string `json:"currency"`
	Devices  []struct {
		Name, Role, Label string
	} `json:"devices"`
	Total   energyRow   `json:"total"`
	Rows    []energyRow `json:"rows"`
	Payback *struct {
		Earned  float64 `json:"earned"`
		PerYear float64 `json:"per_year"`
		Date    string  `json:"date"`
	} `json:"payback"`
}

func TestEnergyAPI(t *testing.T) {
	ts := startServer(t, energyConfig, nil, nil)
	day0 := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	if _, err := ts.st.Insert(context.Background(), "solar", sunnyDays(day0, 2)); err != nil {
		t.Fatal(err)
	}
	get := func(q string) energyAnswer {
		t.Helper()
		code, body, _ := do(t, "GET", ts.base+"/api/v1/sources/solar/energy?"+q, "", "", "Authorization", "Bearer solar-key-01")
		if code != 200 {
			t.Fatalf("%s: %d %s", q, code, body)
		}
		var a energyAnswer
		if err := json.Unmarshal([]byte(body), &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := get("from=2026-06-01&to=2026-06-01&step=day")
	if len(a.Rows) != 1 || a.Currency != "EUR" || len(a.Devices) != 3 {
		t.Fatalf("answer %+v", a)
	}
	d := a.Rows[0]
	want := map[string][2]float64{
		"import": {d.ImportWh, 4800}, "export": {d.ExportWh, 1200}, "production": {d.ProductionWh, 3000},
		"home": {*d.HomeWh, 6600}, "self": {d.SelfWh, 1800}, "rest": {*d.RestWh, 5400}, "fridge": {d.Appliances["fridge"], 1200},
		"autarky": {*d.Autarky, r4(1 - 4800.0/6600)}, "self rate": {*d.SelfRate, 0.6},
		"cost": {d.Cost, 1.44}, "revenue": {d.Revenue, 0.096}, "savings": {d.Savings, 0.54}, "base fee": {d.BaseFee, 1},
	}
	for k, v := range want {
		if math.Abs(v[0]-v[1]) > 1e-3 {
			t.Errorf("%s = %v, want %v", k, v[0], v[1])
		}
	}
	h := get("from=2026-06-01&to=2026-06-02&step=hour")
	if len(h.Rows) != 48 || h.Rows[7].Key != "2026-06-01T07" || h.Rows[7].ExportWh != 200 || *h.Rows[7].HomeWh != 300 {
		t.Fatalf("hours: %d rows, row 7 %+v", len(h.Rows), h.Rows[7])
	}
	if *h.Total.HomeWh != 13200 || math.Abs(h.Total.Savings-1.08) > 1e-9 {
		t.Errorf("two days by hour: home %v savings %v", *h.Total.HomeWh, h.Total.Savings)
	}
	m := get("from=2026-06-01&to=2026-06-30&step=month")
	if len(m.Rows) != 1 || m.Rows[0].Key != "2026-06" || m.Rows[0].Days != 3 || // the last reading is at midnight of the 3rd
		*m.Rows[0].HomeWh != 13200 {
		t.Fatalf("month %+v", m.Rows)
	}
	if m.Payback == nil || math.Abs(m.Payback.Earned-2*(0.54+0.096)) > 1e-9 || m.Payback.PerYear <= 0 || m.Payback.Date != "" { // two days in half a year: no payback within 100 years, no date
		t.Errorf("payback %+v", m.Payback)
	}
	for q, msg := range map[string]string{"step=week": "step", "from=June": "from", "from=2026-06-02&to=2026-06-01": "to"} {
		code, body, _ := do(t, "GET", ts.base+"/api/v1/sources/solar/energy?"+q, "", "", "Authorization", "Bearer solar-key-01")
		if code != 400 || !strings.Contains(body, msg) {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
}
