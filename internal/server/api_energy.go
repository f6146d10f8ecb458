package server

import (
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/tariff"
)

// energyRow is one row of GET …/energy: every flow (Wh), the rates and
// every amount.
type energyRow struct {
	Key           string             `json:"key,omitempty"`
	Start         string             `json:"start,omitempty"`
	Days          int                `json:"days"`
	ImportWh      float64            `json:"import_wh"`
	ExportWh      float64            `json:"export_wh"`
	ProductionWh  float64            `json:"production_wh"`
	ChargeWh      float64            `json:"battery_charge_wh"`
	DischargeWh   float64            `json:"battery_discharge_wh"`
	SelfWh        float64            `json:"self_consumption_wh"`
	HomeWh        *float64           `json:"home_wh"`
	SolarHomeWh   float64            `json:"solar_to_home_wh"`
	BatteryHomeWh float64            `json:"battery_to_home_wh"`
	GridHomeWh    float64            `json:"grid_to_home_wh"`
	AppliancesWh  float64            `json:"appliances_wh"`
	RestWh        *float64           `json:"rest_of_home_wh"`
	Appliances    map[string]float64 `json:"appliance_wh,omitempty"`
	Autarky       *float64           `json:"autarky"`
	SelfRate      *float64           `json:"self_consumption_rate"`
	Cost          float64            `json:"cost"`
	Revenue       float64            `json:"revenue"`
	Savings       float64            `json:"savings"`
	BaseFee       float64            `json:"base_fee"`
	Net           float64            `json:"net_cost"`
	HomeKnown     bool               `json:"home_known"`
}

func r3(v float64) float64 { return math.Round(v*1000) / 1000 }
func r4(v float64) float64 { return math.Round(v*10000) / 10000 }

func apiRow(r energy.Row, zone *time.Location) energyRow {
	f, m := r.Flow, r.Money
	out := energyRow{
		Key: r.Key, Days: r.Days,
		ImportWh: r3(f.Import), ExportWh: r3(f.Export), ProductionWh: r3(f.Production),
		ChargeWh: r3(f.Charge), DischargeWh: r3(f.Discharge), AppliancesWh: r3(f.Appliances),
		Cost: r4(m.Cost), Revenue: r4(m.Revenue), Savings: r4(m.Savings), BaseFee: r4(m.BaseFee), Net: r4(m.Net()),
		HomeKnown: f.HomeKnown,
	}
	if !r.Start.IsZero() {
		out.Start = r.Start.In(zone).Format(time.RFC3339)
	}
	if f.HomeKnown {
		h, rest := r3(f.Home), r3(f.Rest)
		out.HomeWh, out.RestWh = &h, &rest
		out.SelfWh, out.SolarHomeWh, out.BatteryHomeWh, out.GridHomeWh = r3(f.Self), r3(f.SolarHome), r3(f.BatteryHome), r3(f.GridHome)
	}
	if v, ok := f.Autarky(); ok {
		v = r4(v)
		out.Autarky = &v
	}
	if v, ok := f.SelfRate(); ok {
		v = r4(v)
		out.SelfRate = &v
	}
	if len(r.Appliances) > 0 {
		out.Appliances = map[string]float64{}
		for k, v := range r.Appliances {
			out.Appliances[k] = r3(v)
		}
	}
	return out
}

type apiDevice struct {
	Name   string `json:"name"`
	Role   string `json:"role"`
	Label  string `json:"label,omitempty"`
	Invert bool   `json:"invert,omitempty"`
}

// apiEnergy is GET /api/v1/sources/{name}/energy?from=&to=&step=: the
// home's flows and money per hour, day, month or year. from and to are
// local days (YYYY-MM-DD, inclusive; an RFC 3339 time counts as its local
// day); from defaults to the first of this month, to to today.
func (s *Server) apiEnergy(w http.ResponseWriter, r *http.Request) {
	name, zone, ok := s.readableSource(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	now := time.Now().In(zone)
	from := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, zone).Format("2006-01-02")
	to := now.Format("2006-01-02")
	day := func(key, v string) (string, bool) {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t.In(zone).Format("2006-01-02"), true
		}
		if _, err := time.ParseInLocation("2006-01-02", v, zone); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: key + ": " + strconv.Quote(v) + ": want YYYY-MM-DD or an RFC 3339 time"})
			return "", false
		}
		return v, true
	}
	if v := q.Get("from"); v != "" {
		if from, ok = day("from", v); !ok {
			return
		}
	}
	if v := q.Get("to"); v != "" {
		if to, ok = day("to", v); !ok {
			return
		}
	}
	if to < from {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "to: must not lie before from"})
		return
	}
	step := q.Get("step")
	if step == "" {
		step = "day"
	}
	home, tr := s.cfg.Home(name), s.cfg.TariffOf(name)
	calc := &energy.Calc{Store: s.st, Source: name, Zone: zone, Interval: s.cfg.Logger.Interval.Duration, Log: s.log,
		Cache: s.days, Home: home, Tariff: tr}
	if _, err := energy.Rows(nil, step, zone, home, tr); err != nil {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: err.Error()})
		return
	}
	var days []energy.DaySummary
	var err error
	if step == "hour" {
		days, err = calc.Totals(r.Context(), from, to)
	} else {
		days, err = calc.Days(r.Context(), from, to)
	}
	if err != nil {
		s.storeFailed(w, "computing the energy", err)
		return
	}
	rows, _ := energy.Rows(days, step, zone, home, tr)
	body := struct {
		Source   string          `json:"source"`
		Zone     string          `json:"zone"`
		From     string          `json:"from"`
		To       string          `json:"to"`
		Step     string          `json:"step"`
		Currency string          `json:"currency,omitempty"`
		Devices  []apiDevice     `json:"devices"`
		Missing  []string        `json:"cannot_know,omitempty"`
		Total    energyRow       `json:"total"`
		Rows     []energyRow     `json:"rows"`
		Payback  *tariff.Payback `json:"payback,omitempty"`
	}{Source: name, Zone: zone.String(), From: from, To: to, Step: step, Devices: []apiDevice{}, Rows: make([]energyRow, 0, len(rows))}
	if tr != nil {
		body.Currency = tr.Currency
	}
	for _, d := range home.Devices() {
		body.Devices = append(body.Devices, apiDevice{Name: d.Name, Role: string(home.Role(d.Name)), Label: d.Label, Invert: d.Invert})
	}
	if !home.Has(household.Grid) {
		body.Missing = []string{"home_wh", "self_consumption_wh", "autarky", "self_consumption_rate", "rest_of_home_wh"}
	}
	for _, row := range rows {
		body.Rows = append(body.Rows, apiRow(row, zone))
	}
	body.Total = apiRow(energy.Total(rows), zone)
	if tr != nil && tr.Investment > 0 && from <= tr.InvestedOn.In(zone).Format("2006-01-02") && to >= now.Format("2006-01-02") {
		// the range read covers the investment to today
		if p, ok := calc.PaybackOf(days, now); ok {
			body.Payback = &p
		}
	} else if p, ok, err := calc.Payback(r.Context(), now); err != nil {
		s.storeFailed(w, "computing the payback", err)
		return
	} else if ok {
		body.Payback = &p
	}
	writeJSON(w, http.StatusOK, body)
}
