package energy

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/tariff"
)

// Steps are the row widths Rows knows.
var Steps = []string{"hour", "day", "month", "year"}

// Row is the home's flows and money over one hour, day, month or year.
type Row struct {
	Key   string    // 2026-06-01T13 (local hour), 2026-06-01, 2026-06, 2026
	Start time.Time // local start
	Flow  household.Flow
	Money tariff.Money
	// Appliances is each consumer device's consumption (Wh) by name; not
	// for hours (a day's devices are not split by hour).
	Appliances map[string]float64
	Days       int // days with readings
}

// Rows adds priced day summaries (in order, from Calc.Days) up by step:
// hour, day, month or year; hours are named in zone. Money of an hour
// carries the hour's share of the day's base fee.
func Rows(days []DaySummary, step string, zone *time.Location, home *household.Home, t *tariff.Tariff) ([]Row, error) {
	var out []Row
	keyLen := map[string]int{"day": 10, "month": 7, "year": 4}
	switch step {
	case "hour":
		for i := range days {
			s := &days[i]
			fee := 0.0
			if n := len(s.HourFlows); n > 0 {
				fee = s.Money.BaseFee / float64(n)
			}
			for h, f := range s.HourFlows {
				at := s.Start.Add(time.Duration(h) * time.Hour)
				m := t.Amounts(at, f.Import, f.Export, f.Self)
				m.BaseFee = fee
				out = append(out, Row{Key: at.In(zone).Format("2006-01-02T15"), Start: at.In(zone), Flow: f, Money: m, Days: 1})
			}
		}
		return out, nil
	case "day", "month", "year":
	default:
		return nil, fmt.Errorf("step %q: want hour, day, month or year", step)
	}
	n := keyLen[step]
	for i := range days {
		s := &days[i]
		if len(s.Day) < n {
			continue
		}
		k := s.Day[:n]
		if len(out) == 0 || out[len(out)-1].Key != k {
			out = append(out, Row{Key: k, Start: s.Start.In(zone)})
		}
		r := &out[len(out)-1]
		r.Flow.Add(s.Flow)
		r.Money.Add(s.Money)
		r.Days++
		for _, d := range s.Devices {
			if home.Role(d.Device) == household.Consumer {
				if r.Appliances == nil {
					r.Appliances = map[string]float64{}
				}
				r.Appliances[d.Device] += d.InWh + d.OutWh
			}
		}
	}
	return out, nil
}

// Total adds rows up.
func Total(rows []Row) Row {
	var t Row
	for _, r := range rows {
		t.Flow.Add(r.Flow)
		t.Money.Add(r.Money)
		t.Days += r.Days
		for k, v := range r.Appliances {
			if t.Appliances == nil {
				t.Appliances = map[string]float64{}
			}
			t.Appliances[k] += v
		}
	}
	return t
}

// ApplianceNames lists the appliances of rows, sorted.
func ApplianceNames(rows ...Row) []string {
	seen := map[string]bool{}
	var out []string
	for _, r := range rows {
		for k := range r.Appliances {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// Payback projects the tariff's investment: what the plant earned
// (savings + feed-in revenue) since the investment day and at the pace of
// the last 365 days up to now. ok is false without a tariff or investment.
func (c *Calc) Payback(ctx context.Context, now time.Time) (tariff.Payback, bool, error) {
	t := c.Tariff
	if t == nil || t.Investment <= 0 {
		return tariff.Payback{}, false, nil
	}
	from := t.InvestedOn.In(c.Zone).Format("2006-01-02")
	days, err := c.Totals(ctx, from, now.In(c.Zone).Format("2006-01-02"))
	if err != nil {
		return tariff.Payback{}, false, err
	}
	p, ok := c.PaybackOf(days, now)
	return p, ok, nil
}

// PaybackOf is Payback from priced summaries the caller has already read
// (they must cover the investment day to today; others are ignored).
func (c *Calc) PaybackOf(days []DaySummary, now time.Time) (tariff.Payback, bool) {
	t := c.Tariff
	if t == nil || t.Investment <= 0 {
		return tariff.Payback{}, false
	}
	inv := t.InvestedOn.In(c.Zone).Format("2006-01-02")
	today := now.In(c.Zone)
	yearAgo := today.AddDate(0, 0, -364).Format("2006-01-02")
	var earned, recent float64
	first := ""
	for _, d := range days {
		if d.Day < inv || d.Day > today.Format("2006-01-02") {
			continue
		}
		e := d.Money.Savings + d.Money.Revenue
		earned += e
		if d.Day >= yearAgo {
			recent += e
			if first == "" {
				first = d.Day
			}
		}
	}
	n := 0
	if first != "" {
		f, _ := time.ParseInLocation("2006-01-02", first, c.Zone)
		n = int(today.Sub(f).Hours()/24) + 1
	}
	return t.Project(earned, recent, n, now)
}
