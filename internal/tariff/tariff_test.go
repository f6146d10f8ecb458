package tariff

import (
	"math"
	"testing"
	"time"
)

func near(t *testing.T, what string, got, want float64) {
	t.Helper()
	if math.Abs(got-want) > 1e-9 {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func berlin(t *testing.T) *time.Location {
	z, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return z
}

func TestWindowsAndMidMonthChange(t *testing.T) {
	z := berlin(t)
	d := func(day, hour int) time.Time { return time.Date(2026, 3, day, hour, 0, 0, 0, z) }
	tr := &Tariff{
		Zone: z,
		Import: []Price{
			// from the 16th a new price, with a cheap night
			{From: d(16, 0), PerKWh: 0.40, Windows: []Window{{From: 22, To: 6, Price: 0.25}}},
			{From: d(1, 0), PerKWh: 0.30, Windows: []Window{{Days: []time.Weekday{time.Saturday, time.Sunday}, From: 0, To: 24, Price: 0.20}}},
		},
		FeedIn:  []Price{{PerKWh: 0.08}},
		BaseFee: 12.40,
	}
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	// 2026-03-13 is a Friday, 14 a Saturday
	near(t, "fri noon", tr.ImportPrice(d(13, 12)), 0.30)
	near(t, "sat noon", tr.ImportPrice(d(14, 12)), 0.20)
	near(t, "sun 15th 23:00 (old price, weekend)", tr.ImportPrice(d(15, 23)), 0.20)
	near(t, "thu 12th 23:00 (old price, no night window)", tr.ImportPrice(d(12, 23)), 0.30)
	near(t, "16th 00:00 (new, night)", tr.ImportPrice(d(16, 0)), 0.25)
	near(t, "16th 12:00", tr.ImportPrice(d(16, 12)), 0.40)
	near(t, "16th 22:00", tr.ImportPrice(d(16, 22)), 0.25)
	near(t, "before any price", tr.ImportPrice(d(1, 0).Add(-time.Hour)), 0)

	// an hour on the 16th at noon: 2 kWh in, 1 kWh out, 0.5 kWh self-consumed
	m := tr.Amounts(d(16, 12), 2000, 1000, 500)
	near(t, "cost", m.Cost, 0.80)
	near(t, "revenue", m.Revenue, 0.08)
	near(t, "savings", m.Savings, 0.20)
	// the same energies on Friday the 13th (old price)
	m2 := tr.Amounts(d(13, 12), 2000, 1000, 500)
	near(t, "old cost", m2.Cost, 0.60)
	m.Add(m2)
	m.BaseFee = tr.DayFee(d(15, 0)) + tr.DayFee(d(16, 0))
	near(t, "base fee of two March days", m.BaseFee, 12.40/31*2)
	near(t, "net", m.Net(), 1.40+12.40/31*2-0.16)
}

func TestCheckNamesField(t *testing.T) {
	bad := []*Tariff{
		{Import: []Price{{PerKWh: -1}}},
		{Import: []Price{{PerKWh: 1, Windows: []Window{{From: 5, To: 25}}}}},
		{FeedIn: []Price{{PerKWh: 1}, {PerKWh: 2}}},
		{BaseFee: -3},
	}
	want := []string{"import[0].price", "import[0].windows[0]", "feed_in[1].from", "base_fee"}
	for i, tr := range bad {
		err := tr.Check()
		if err == nil || len(err.Error()) < len(want[i]) || err.Error()[:len(want[i])] != want[i] {
			t.Errorf("%d: error %v, want it to start with %s", i, err, want[i])
		}
	}
}

func TestPayback(t *testing.T) {
	z := berlin(t)
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, z)
	tr := &Tariff{Zone: z, Investment: 600, InvestedOn: time.Date(2025, 6, 1, 0, 0, 0, 0, z)}
	// 150 earned so far, 146 in the last 365 days: 0.4 a day, 450 left
	p, ok := tr.Project(150, 146, 365, now)
	if !ok || p.Paid {
		t.Fatalf("payback %+v %v", p, ok)
	}
	near(t, "per year", p.PerYear, 146)
	near(t, "remaining", p.Remaining, 450)
	if want := now.Add(1125 * 24 * time.Hour); !p.Date.Equal(want) {
		t.Errorf("date %v, want %v", p.Date, want)
	}
	p, _ = tr.Project(700, 146, 365, now)
	if !p.Paid || !p.Date.Equal(now) {
		t.Errorf("paid: %+v", p)
	}
	if _, ok := (&Tariff{}).Project(1, 1, 1, now); ok {
		t.Error("payback without investment")
	}
}
