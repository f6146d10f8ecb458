//go:build !loggeronly

package cli

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// demoHistoryDays is how much history the demo writes before it polls
// (tests shorten it: the race detector makes the SQLite writes slow).
var demoHistoryDays = 14

// demoHome is the demo's home in one instant, from the same load models
// the emulators serve: the balcony plant's output (FRITZ!DECT 210), the
// fridge (Shelly Plug S) and the three phases at the grid (Pro 3EM), which
// see the house's loads minus the plant.
func demoHome(t time.Time, zone *time.Location) (solar, fridge float64, phases [3]float64) {
	return emulate.Solar(t, zone, 600), math.Round(emulate.Fridge(t)*100) / 100, emulate.House3(t, zone)
}

// demoHistory returns demoHistoryDays days of 10-s readings up to now
// (exclusive) for the demo's three devices. They carry no counters: the
// emulators' counters start where they start, and a history counter
// joining them would count the difference as energy; the history's
// energy is integrated from its 10-s powers.
func demoHistory(now time.Time, zone *time.Location) []reading.Reading {
	end := now.Truncate(10 * time.Second)
	start := end.Add(-time.Duration(demoHistoryDays) * 24 * time.Hour)
	n := int(end.Sub(start) / (10 * time.Second))
	out := make([]reading.Reading, 0, 3*n)
	for t := start; t.Before(end); t = t.Add(10 * time.Second) {
		solar, fridge, ph := demoHome(t, zone)
		grid := math.Round((ph[0]+ph[1]+ph[2])*100) / 100
		temp := math.Round((12+6*math.Sin(float64(t.Unix())/86400*2*math.Pi))*10) / 10
		out = append(out,
			reading.Reading{Device: "balcony", Time: t, Power: solar, Temperature: reading.F(temp)},
			reading.Reading{Device: "fridge", Time: t, Power: fridge},
			reading.Reading{Device: "grid", Time: t, Power: grid, Phases: []float64{ph[0], ph[1], ph[2]}},
		)
	}
	return out
}

// writeDemoHistory fills an empty demo source with history.
func writeDemoHistory(ctx context.Context, st store.Store, source string, zone *time.Location, now time.Time) (int, error) {
	if err := st.EnsureSource(ctx, source, zone.String()); err != nil {
		return 0, fmt.Errorf("registering the demo source: %w", err)
	}
	if _, ok, err := st.LastTime(ctx, source); err != nil {
		return 0, fmt.Errorf("looking at the demo source: %w", err)
	} else if ok {
		return 0, nil // kept from an earlier run (--dir)
	}
	rs := demoHistory(now, zone)
	for i := 0; i < len(rs); i += 30000 {
		if _, err := st.Insert(ctx, source, rs[i:min(i+30000, len(rs))]); err != nil {
			return 0, fmt.Errorf("writing the demo history: %w", err)
		}
	}
	return len(rs), nil
}
