package migrate_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/migrate"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
)

// TestCopyReduced: a source whose first hours were reduced (retention)
// moves from SQLite to PostgreSQL and back with its reduced minutes kept
// as such (min, max, energy, last reading), its raw readings after them,
// the counts verified; a second copy finds everything present.
func TestCopyReduced(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := openStore(t, sqliteURL(t, "from.db"))
	if err := src.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	var rs []reading.Reading
	for i := range 4 * 360 { // four hours of 10-s readings
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		rs = append(rs,
			reading.Reading{Device: "plug", Time: at, Power: float64(i%97) + 0.25, Temperature: reading.F(21.5)},
			reading.Reading{Device: "grid", Time: at.Add(3 * time.Second), Power: float64(i%13) - 6, EnergyIn: reading.F(float64(i) * 0.75),
				EnergyOut: reading.F(float64(i) / 8), Phases: []float64{1, -2}})
	}
	insert(t, src, "home", rs)
	red, ok := src.(store.Reducer)
	if !ok {
		t.Fatal("the SQLite store is no store.Reducer")
	}
	if res, err := red.Reduce(ctx, "home", t0.Add(150*time.Minute), 0, energy.Reducer(10*time.Second)); err != nil || res.Reduced != 2*150 {
		t.Fatalf("reduce: %+v %v", res, err)
	}
	all := func(st store.Store) string {
		t.Helper()
		var out []reading.Reading
		if err := st.Range(ctx, "home", t0.Add(-time.Hour), t0.Add(24*time.Hour), func(r reading.Reading) error {
			out = append(out, r)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(out)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	want := all(src)
	pg := openStore(t, pgtest.URL(t))
	back := openStore(t, sqliteURL(t, "back.db"))
	for _, step := range []struct {
		name     string
		from, to store.Store
	}{{"sqlite to postgres", src, pg}, {"postgres to sqlite", pg, back}} {
		rep, err := migrate.Copy(ctx, step.from, step.to, migrate.Options{Chunk: 333})
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if _, ins, _ := rep.Totals(); ins != 2*150+2*90*6 {
			t.Errorf("%s: %d inserted, want %d", step.name, ins, 2*150+2*90*6)
		}
		if got := all(step.to); got != want {
			t.Fatalf("%s: the copy differs\n%.600s\n%.600s", step.name, got, want)
		}
		rep, err = migrate.Copy(ctx, step.from, step.to, migrate.Options{Full: true})
		if err != nil {
			t.Fatalf("%s again: %v", step.name, err)
		}
		if read, ins, present := rep.Totals(); ins != 0 || present != read {
			t.Errorf("%s again: read %d, inserted %d, present %d", step.name, read, ins, present)
		}
	}
}
