package store

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// Conflicts returns the indexes of the readings in rs for which st holds a
// reading of the same device and second with other values: the store kept
// the first one and dropped the newer (a second Insert of the same instant
// changes nothing). Call it after an Insert that reported readings already
// present; it reads the stored readings in the time span of rs once.
func Conflicts(ctx context.Context, st Store, source string, rs []reading.Reading) ([]int, error) {
	if len(rs) == 0 {
		return nil, nil
	}
	type key struct {
		device string
		sec    int64
	}
	want := make(map[key]int, len(rs))
	from, to := rs[0].Time, rs[0].Time
	for i, r := range rs {
		want[key{r.Device, r.Time.Unix()}] = i
		if r.Time.Before(from) {
			from = r.Time
		}
		if r.Time.After(to) {
			to = r.Time
		}
	}
	from = from.Truncate(time.Second)
	to = to.Truncate(time.Second).Add(time.Second)
	var out []int
	err := st.Range(ctx, source, from, to, func(got reading.Reading) error {
		i, ok := want[key{got.Device, got.Time.Unix()}]
		if ok && !SameValues(got, rs[i]) {
			out = append(out, i)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("comparing with the stored readings: %w", err)
	}
	return out, nil
}

// SameValues reports whether two readings of one device and instant carry
// the same measurements, to the precision every backend stores (0.001).
func SameValues(a, b reading.Reading) bool {
	if !near(a.Power, b.Power) || !nearP(a.EnergyIn, b.EnergyIn) || !nearP(a.EnergyOut, b.EnergyOut) ||
		!nearP(a.Temperature, b.Temperature) || !nearP(a.Voltage, b.Voltage) || len(a.Phases) != len(b.Phases) {
		return false
	}
	for i := range a.Phases {
		if !near(a.Phases[i], b.Phases[i]) {
			return false
		}
	}
	return true
}

// near: a backend rounds to 0.001, so a stored value is within 0.0005 of
// what was sent.
func near(a, b float64) bool {
	return math.Abs(a-b) <= 0.000501+1e-12*math.Max(math.Abs(a), math.Abs(b))
}

func nearP(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return near(*a, *b)
}
