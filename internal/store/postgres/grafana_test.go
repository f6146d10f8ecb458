package postgres

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
)

// TestGrafanaDashboard runs every query of the example Grafana dashboard
// (docs/grafana-dashboard.json) with its macros and variables expanded as
// Grafana's PostgreSQL data source does, against readings both folded and
// recent, then with the first hour reduced to minutes, and checks what
// comes back.
func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../../docs/grafana-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Templating struct {
			List []struct{ Name, Query string }
		}
		Panels []struct {
			Title   string
			Targets []struct{ RawSQL string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatal(err)
	}
	s := openNoFold(t, pgtest.URL(t))
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	var rs []reading.Reading
	for i := range 720 { // two hours of 10-s readings at 1000 W
		rs = append(rs, reading.Reading{Device: "plug", Time: t0.Add(time.Duration(i) * 10 * time.Second), Power: 1000, Temperature: reading.F(21.5)})
	}
	if _, err := s.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fold(ctx, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	from, to := "'"+t0.Format(time.RFC3339)+"'", "'"+t0.Add(2*time.Hour-time.Second).Format(time.RFC3339)+"'"
	expand := strings.NewReplacer("$__timeFilter(time)", "time BETWEEN "+from+" AND "+to,
		"$__timeFrom()", from, "$__timeTo()", to, "$source", "home", "$device", "plug").Replace
	for _, v := range dash.Templating.List {
		var got string
		if err := s.pool.QueryRow(ctx, expand(v.Query)).Scan(&got); err != nil {
			t.Fatalf("variable %s: %v", v.Name, err)
		}
		if want := map[string]string{"source": "home", "device": "plug"}[v.Name]; got != want {
			t.Errorf("variable %s: %q, want %q", v.Name, got, want)
		}
	}
	if len(dash.Panels) == 0 {
		t.Fatal("no panels")
	}
	check := func(when string, wantRows int, wantWh float64) {
		t.Helper()
		for _, p := range dash.Panels {
			for _, q := range p.Targets {
				rows, err := s.pool.Query(ctx, expand(q.RawSQL))
				if err != nil {
					t.Fatalf("%s: panel %q: %v", when, p.Title, err)
				}
				n := 0
				var last []any
				for rows.Next() {
					if last, err = rows.Values(); err != nil {
						t.Fatal(err)
					}
					n++
				}
				if rows.Err() != nil {
					t.Fatalf("%s: panel %q: %v", when, p.Title, rows.Err())
				}
				switch {
				case strings.HasPrefix(p.Title, "Energy"):
					if e, ok := last[0].(float64); n != 1 || !ok || math.Abs(e-wantWh) > 1e-4 { // a minute's energy is kept to the µWh
						t.Errorf("%s: panel %q: %v, want %v Wh\n%s", when, p.Title, last, wantWh, expand(q.RawSQL))
					}
				case n != wantRows:
					t.Errorf("%s: panel %q: %d rows, want %d", when, p.Title, n, wantRows)
				}
			}
		}
	}
	check("raw", len(rs), 719*10*1000/3600.0)
	// The first hour reduced to minutes: their energy (360 readings of
	// 10 s at 1000 W), then 359 steps of the raw readings.
	if _, err := s.Reduce(ctx, "home", t0.Add(time.Hour), 0, meanReduce(t)); err != nil {
		t.Fatal(err)
	}
	check("reduced", 60+360, (360+359)*10*1000/3600.0)
}
