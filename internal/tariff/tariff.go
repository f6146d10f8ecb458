// Package tariff turns energy into money: import prices with validity
// periods and optional time windows (peak/off-peak by weekday and hour),
// feed-in compensation, a monthly base fee and a currency; the cost,
// revenue and savings of an interval; and an investment's payback.
//
// Prices over time in, amounts out: it knows nothing of HTTP, storage or
// how the energies were measured.
package tariff

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Window is a price for some hours of some weekdays: [From, To) in local
// hours 0…24; From > To wraps past midnight (22 → 6).
type Window struct {
	Days  []time.Weekday // empty: every day
	From  int
	To    int
	Price float64 // per kWh
}

func (w Window) covers(wd time.Weekday, hour int) bool {
	if len(w.Days) > 0 {
		ok := false
		for _, d := range w.Days {
			ok = ok || d == wd
		}
		if !ok {
			return false
		}
	}
	if w.From <= w.To {
		return hour >= w.From && hour < w.To
	}
	return hour >= w.From || hour < w.To
}

// Price is a price per kWh valid from a local day on (until the next
// one's From); the first window covering an hour overrides it.
type Price struct {
	From    time.Time // local midnight it starts; zero: since ever
	PerKWh  float64
	Windows []Window
}

// Tariff is one home's prices.
type Tariff struct {
	Currency string // "EUR" when empty
	Import   []Price
	FeedIn   []Price
	// BaseFee is charged per month (pro rata per day for parts of months).
	BaseFee float64
	// Investment is what the pv plant cost, on InvestedOn (a local day);
	// 0: no payback is computed.
	Investment float64
	InvestedOn time.Time
	Zone       *time.Location // for windows and days (UTC when nil)
}

// Check sorts the price lists and refuses negative prices, windows
// outside 0…24 and two prices from the same day. It names the field.
func (t *Tariff) Check() error {
	if t.Currency == "" {
		t.Currency = "EUR"
	}
	if t.Zone == nil {
		t.Zone = time.UTC
	}
	for _, l := range []struct {
		name string
		ps   []Price
	}{{"import", t.Import}, {"feed_in", t.FeedIn}} {
		sort.SliceStable(l.ps, func(i, j int) bool { return l.ps[i].From.Before(l.ps[j].From) })
		for i, p := range l.ps {
			if p.PerKWh < 0 || math.IsNaN(p.PerKWh) {
				return fmt.Errorf("%s[%d].price: %v is negative", l.name, i, p.PerKWh)
			}
			if i > 0 && p.From.Equal(l.ps[i-1].From) {
				return fmt.Errorf("%s[%d].from: two prices start on %s", l.name, i, p.From.Format("2006-01-02"))
			}
			for j, w := range p.Windows {
				if w.From < 0 || w.From > 24 || w.To < 0 || w.To > 24 || w.From == w.To {
					return fmt.Errorf("%s[%d].windows[%d]: hours %d…%d: want 0…24, from ≠ to", l.name, i, j, w.From, w.To)
				}
				if w.Price < 0 {
					return fmt.Errorf("%s[%d].windows[%d].price: %v is negative", l.name, i, j, w.Price)
				}
			}
		}
	}
	if t.BaseFee < 0 {
		return fmt.Errorf("base_fee: %v is negative", t.BaseFee)
	}
	if t.Investment < 0 {
		return fmt.Errorf("investment: %v is negative", t.Investment)
	}
	return nil
}

func (t *Tariff) zone() *time.Location {
	if t.Zone == nil {
		return time.UTC
	}
	return t.Zone
}

func priceAt(ps []Price, at time.Time) float64 {
	// the last price whose From is not after at
	i := sort.Search(len(ps), func(i int) bool { return ps[i].From.After(at) }) - 1
	if i < 0 {
		return 0
	}
	p := ps[i]
	if len(p.Windows) > 0 {
		wd, h := at.Weekday(), at.Hour()
		for _, w := range p.Windows {
			if w.covers(wd, h) {
				return w.Price
			}
		}
	}
	return p.PerKWh
}

// ImportPrice is the price per kWh taken from the grid at an instant (0
// before the first price).
func (t *Tariff) ImportPrice(at time.Time) float64 {
	if t == nil {
		return 0
	}
	return priceAt(t.Import, at.In(t.zone()))
}

// FeedInPrice is the compensation per kWh fed in at an instant.
func (t *Tariff) FeedInPrice(at time.Time) float64 {
	if t == nil {
		return 0
	}
	return priceAt(t.FeedIn, at.In(t.zone()))
}

// Money is what an interval cost and earned, in the tariff's currency.
type Money struct {
	Cost    float64 `json:"cost"`     // import × import price
	Revenue float64 `json:"revenue"`  // export × feed-in price
	Savings float64 `json:"savings"`  // self-consumed × import price
	BaseFee float64 `json:"base_fee"` // the base fee's share of the days
}

// Add adds another interval's amounts.
func (m *Money) Add(o Money) {
	m.Cost += o.Cost
	m.Revenue += o.Revenue
	m.Savings += o.Savings
	m.BaseFee += o.BaseFee
}

// Net is what the grid connection cost: cost + base fee − revenue.
func (m Money) Net() float64 { return m.Cost + m.BaseFee - m.Revenue }

// Amounts prices the energies (Wh) of an interval starting at at (the
// prices of that instant apply to all of it: give intervals no longer than
// the tariff's windows, an hour at most).
func (t *Tariff) Amounts(at time.Time, importWh, exportWh, selfWh float64) Money {
	if t == nil {
		return Money{}
	}
	ip := t.ImportPrice(at)
	return Money{
		Cost:    importWh / 1000 * ip,
		Revenue: exportWh / 1000 * t.FeedInPrice(at),
		Savings: selfWh / 1000 * ip,
	}
}

// DayFee is the base fee's share of the local day starting at dayStart:
// the monthly fee divided by the days of its month.
func (t *Tariff) DayFee(dayStart time.Time) float64 {
	if t == nil || t.BaseFee == 0 {
		return 0
	}
	l := dayStart.In(t.zone())
	days := time.Date(l.Year(), l.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return t.BaseFee / float64(days)
}

// Payback is an investment's state: what it has earned back and when it
// will have paid for itself, projected from the last year's pace.
type Payback struct {
	Investment float64   `json:"investment"`
	Since      time.Time `json:"since"`
	Earned     float64   `json:"earned"`   // savings + revenue since Since
	PerYear    float64   `json:"per_year"` // the pace of the last 365 days, per year
	Remaining  float64   `json:"remaining"`
	Paid       bool      `json:"paid"`
	// Date is when Earned reaches Investment at PerYear (zero when it
	// never will at this pace); for Paid, today.
	Date time.Time `json:"date,omitzero"`
}

// Project computes the payback from what was earned since the investment
// (earned), what the last days earned (recent over recentDays days, at
// most 365) and now.
func (t *Tariff) Project(earned, recent float64, recentDays int, now time.Time) (Payback, bool) {
	if t == nil || t.Investment <= 0 {
		return Payback{}, false
	}
	p := Payback{Investment: t.Investment, Since: t.InvestedOn, Earned: earned}
	if recentDays > 0 {
		p.PerYear = recent / float64(recentDays) * 365
	}
	p.Remaining = math.Max(0, t.Investment-earned)
	switch {
	case p.Remaining == 0:
		p.Paid = true
		p.Date = now
	case p.PerYear > 0:
		days := p.Remaining / (p.PerYear / 365)
		if days < 365*100 {
			p.Date = now.Add(time.Duration(days * 24 * float64(time.Hour)))
		}
	}
	return p, true
}
