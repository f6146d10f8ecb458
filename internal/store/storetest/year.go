package storetest

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// YearReadings is the number of 10-s readings in 365 days.
const YearReadings = 365 * 24 * 360

// YearStart is where FillYear's year begins (UTC).
var YearStart = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// LegacyReading returns reading i of a synthetic legacy series from start:
// one device, every 10 s, power with 2 decimals (a household: base load,
// evening peak, noise) and temperature with 1 decimal, like the original
// logger sends. The same i always gives the same reading.
func LegacyReading(start time.Time, i int) reading.Reading {
	t := start.Add(time.Duration(i) * 10 * time.Second)
	h := float64(t.Hour()) + float64(t.Minute())/60
	// splitmix-style hash of i for deterministic noise in [0, 1)
	x := uint64(i)*0x9E3779B97F4A7C15 + 0x632BE59BD9B4E5BB
	x ^= x >> 31
	x *= 0xBF58476D1CE4E5B9
	x ^= x >> 29
	noise := float64(x>>11) / (1 << 53)
	p := 180 + 900*math.Max(0, math.Sin((h-16)/6*math.Pi)) + 120*noise
	if x%97 == 0 { // a kettle now and then
		p += 2000
	}
	temp := 21 + 2*math.Sin(float64(t.YearDay())/365*2*math.Pi) + 0.5*math.Sin(h/24*2*math.Pi)
	return reading.Reading{
		Device:      "plug",
		Time:        t,
		Power:       math.Round(p*100) / 100,
		Temperature: reading.F(math.Round(temp*10) / 10),
	}
}

// FillYear stores YearReadings legacy readings (LegacyReading from
// YearStart) for source, batch readings per Insert, and returns how many
// were new. It registers the source in Europe/Berlin. It is the data set of
// the bytes-per-reading and one-day-range benchmarks.
func FillYear(ctx context.Context, s store.Store, source string, batch int, progress func(done int)) (int, error) {
	if batch <= 0 {
		batch = 8640
	}
	if err := s.EnsureSource(ctx, source, "Europe/Berlin"); err != nil {
		return 0, err
	}
	inserted := 0
	rs := make([]reading.Reading, 0, batch)
	for i := 0; i < YearReadings; i += batch {
		rs = rs[:0]
		for j := i; j < min(i+batch, YearReadings); j++ {
			rs = append(rs, LegacyReading(YearStart, j))
		}
		res, err := s.Insert(ctx, source, rs)
		if err != nil {
			return inserted, fmt.Errorf("fill year: readings %d..: %w", i, err)
		}
		inserted += res.Inserted
		if progress != nil {
			progress(i + len(rs))
		}
	}
	return inserted, nil
}
