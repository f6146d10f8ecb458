package energy

import (
	"context"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	_ "github.com/powermeter/powermeter/internal/store/postgres"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
	_ "github.com/powermeter/powermeter/internal/store/sqlite"
)

// TestRetentionOnStores reduces the synthetic home around the autumn clock
// change in real stores (SQLite; PostgreSQL with POWERMETER_TEST_POSTGRES)
// with Reducer, in small batches, first up to a horizon in the night the
// clocks go back, then beyond the days: the days computed from the store
// afterwards keep the energy, flows and peaks of the raw readings. This
// checks the prev and next the stores give Reducer.
func TestRetentionOnStores(t *testing.T) {
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			ctx := context.Background()
			url := "sqlite://" + t.TempDir() + "/r.db"
			if backend == "postgres" {
				url = pgtest.URL(t)
			}
			st, err := store.Open(ctx, url)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			red, ok := st.(store.Reducer)
			if !ok {
				t.Fatalf("%s does not reduce", backend)
			}
			loc := berlin(t)
			days := []string{"2026-10-24", "2026-10-25", "2026-10-26"}
			first, _, _ := DayBounds(days[0], loc)
			_, last, _ := DayBounds(days[len(days)-1], loc)
			rs := synthHome(first.Add(-2*time.Hour), last.Add(2*time.Hour), 11)
			if err := st.EnsureSource(ctx, "home", loc.String()); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < len(rs); i += 10000 {
				if _, err := st.Insert(ctx, "home", rs[i:min(i+10000, len(rs))]); err != nil {
					t.Fatal(err)
				}
			}
			home := roles(t)
			calc := &Calc{Store: st, Source: "home", Zone: loc, Home: home, Now: func() time.Time { return time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC) }}
			compute := func() []DaySummary {
				var out []DaySummary
				for _, d := range days {
					s, err := calc.Compute(ctx, d, nil)
					if err != nil {
						t.Fatal(err)
					}
					out = append(out, s)
				}
				return out
			}
			raw := compute()
			fn := Reducer(10 * time.Second)
			for _, h := range []time.Time{time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC), last.Add(time.Hour)} {
				for calls := 0; ; calls++ {
					res, err := red.Reduce(ctx, "home", h, 5000, fn)
					if err != nil {
						t.Fatal(err)
					}
					if res.Done {
						break
					}
					if calls > 1000 {
						t.Fatal("Reduce does not finish")
					}
				}
				sameEnergy(t, backend+" horizon "+h.Format(time.RFC3339), raw, compute())
			}
			n := 0
			if err := st.Range(ctx, "home", first, last, func(r reading.Reading) error {
				if r.Reduced == nil {
					t.Fatalf("a raw reading left before the horizon: %+v", r)
				}
				n++
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d raw readings, %d reduced minutes in the days", backend, len(rs), n)
		})
	}
}
