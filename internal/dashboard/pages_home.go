package dashboard

import (
	"context"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/tariff"
)

// homeRow is one row of the overview's household table: the flows and
// money of energy.Rows, formatted where a template cannot call.
type homeRow struct {
	Key                     string
	Flow                    household.Flow
	Money                   tariff.Money
	Autarky, SelfRate       float64
	HasAutarky, HasSelfRate bool
}

func toHomeRow(r energy.Row) homeRow {
	h := homeRow{Key: r.Key, Flow: r.Flow, Money: r.Money}
	h.Autarky, h.HasAutarky = r.Flow.Autarky()
	h.SelfRate, h.HasSelfRate = r.Flow.SelfRate()
	return h
}

// homeView is the overview's household part: production, self-consumption,
// autarky and money per month of the year and per day of the month, and
// the plant's payback.
type homeView struct {
	Currency string
	HasMoney bool
	HasPV    bool
	Known    bool // a grid meter: home, self-consumption and autarky exist
	Months   []homeRow
	Year     homeRow
	Days     []homeRow
	Month    homeRow
	Payback  *tariff.Payback
}

// homeOverview builds the household part of the overview for a source
// whose devices have roles (nil otherwise).
func (d *Dashboard) homeOverview(ctx context.Context, source string, zone *time.Location, days []energy.DaySummary, year, month string) *homeView {
	home, tr := d.homeOf(source), d.tariffOf(source)
	if !home.Configured() {
		return nil
	}
	v := &homeView{HasMoney: tr != nil, HasPV: home.Has(household.PV), Known: home.Has(household.Grid)}
	if tr != nil {
		v.Currency = tr.Currency
	}
	var inYear, inMonth []energy.DaySummary
	for _, s := range days {
		if s.Day[:4] == year {
			inYear = append(inYear, s)
		}
		if s.Day[:7] == month {
			inMonth = append(inMonth, s)
		}
	}
	ms, _ := energy.Rows(inYear, "month", zone, home, tr)
	for _, r := range ms {
		v.Months = append(v.Months, toHomeRow(r))
	}
	v.Year = toHomeRow(energy.Total(ms))
	ds, _ := energy.Rows(inMonth, "day", zone, home, tr)
	for _, r := range ds {
		v.Days = append(v.Days, toHomeRow(r))
	}
	v.Month = toHomeRow(energy.Total(ds))
	calc := d.calc(source, zone)
	// days are every day of the source, priced: the payback needs no
	// second read
	if p, ok := calc.PaybackOf(days, d.o.Now()); ok {
		v.Payback = &p
	}
	return v
}

// dayHome is the day page's household figures (nil for a home without
// roles).
func (d *Dashboard) dayHome(source string, s energy.DaySummary) (*homeRow, string) {
	if !d.homeOf(source).Configured() {
		return nil, ""
	}
	t := d.tariffOf(source)
	s.Price(t) // a copy: the caller's summary may come from the cache
	r := toHomeRow(energy.Row{Key: s.Day, Flow: s.Flow, Money: s.Money})
	cur := ""
	if t != nil {
		cur = t.Currency
	}
	return &r, cur
}

// legacyDevice is the device log.php lines are stored under.
const legacyDevice = "legacy"

// fieldsOf is the field map of a source's legacy lines (nil: the default).
func (d *Dashboard) fieldsOf(source string) household.FieldMap {
	if d.o.Fields == nil {
		return nil
	}
	return d.o.Fields(source)
}

// homeCells is what the "homecells" template gets: the page and a row.
type homeCells struct {
	P any
	R homeRow
}

func init() {
	funcs["cells"] = func(p any, r homeRow) homeCells { return homeCells{p, r} }
}
