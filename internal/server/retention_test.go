package server

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// retentionYear is a year (and a few days) of readings of two devices,
// every day in two 20-minute windows: one across local midnight (so
// across both DST changes too), one at 11:45 UTC; and one more for the
// plug at an hour that moves through the day. "plug" reports power only,
// on the 10-s grid, with a missing reading now and then (a step of 20 s,
// bridged) and a 2-minute hole every few days (not bridged); "em" reports
// import and export counters off the grid (second 5) that go on counting
// between the windows (a counter step across hours), feeds in at times,
// and resets its counters once. Every ninth day the em misses the window
// across local midnight (its counter step from the noon before to the
// noon after spans midnight), and every ninth day another it is silent
// for the window's middle ten minutes (23:55 to 00:05, across midnight and
// a quarter hour's boundary): once reduced, the minute after such a gap
// keeps its own energy apart from the gap's (reading.Reduced.Gap).
func retentionYear() []reading.Reading {
	var rs []reading.Reading
	in, out := 50000.0, 1000.0
	n := 0
	window := func(w time.Time, plugOnly, noon bool, day int) {
		in += 7.25 // used between the windows
		for i := range 120 {
			n++
			t := w.Add(time.Duration(i) * 10 * time.Second)
			p := 150 + 90*math.Sin(float64(n)/40) + float64(n%7)
			if !(n%53 == 0 || (day%5 == 2 && i >= 40 && i < 52)) {
				rs = append(rs, reading.Reading{Device: "plug", Time: t, Power: math.Round(p*100) / 100})
			}
			if plugOnly {
				continue
			}
			silent := !noon && (day%9 == 4 || (day%9 == 6 && i >= 30 && i < 90))
			q := 300*math.Sin(float64(n)/25) + 40
			if q > 0 {
				in += q * 10 / 3600
			} else {
				out -= q * 10 / 3600
			}
			if day == 200 && i == 60 {
				in, out = 0, 0 // a counter reset (a replaced meter)
			}
			if silent {
				continue
			}
			rs = append(rs, reading.Reading{Device: "em", Time: t.Add(5 * time.Second), Power: math.Round(q*1000) / 1000,
				EnergyIn: reading.F(math.Round(in*1000) / 1000), EnergyOut: reading.F(math.Round(out*1000) / 1000)})
		}
	}
	for day := range 372 {
		midnight := time.Date(2025, 1, 1+day, 0, 0, 0, 0, berlin)
		noon := time.Date(2025, 1, 1+day, 11, 45, 0, 0, time.UTC)
		window(midnight.Add(-10*time.Minute), false, false, day)
		if h := (day * 7) % 24; h >= 2 && h <= 10 {
			window(midnight.Add(time.Duration(h)*time.Hour+10*time.Minute), true, false, day)
		}
		window(noon, false, true, day)
	}
	return rs
}

// dayEnergies computes every day's energy (import, export) of source home
// with the energy package, from the store as it is.
func dayEnergies(t *testing.T, st store.Store, from, to string) map[string][2]float64 {
	t.Helper()
	ctx := t.Context()
	ds, err := st.Days(ctx, "home", from, to)
	if err != nil {
		t.Fatal(err)
	}
	c := &energy.Calc{Store: st, Source: "home", Zone: berlin, Interval: 10 * time.Second,
		Now: func() time.Time { return time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC) }}
	out := map[string][2]float64{}
	for _, d := range ds {
		s, err := c.Compute(ctx, d.Day, nil)
		if err != nil {
			t.Fatalf("energy of %s: %v", d.Day, err)
		}
		out[d.Day] = [2]float64{s.InWh, s.OutWh}
	}
	return out
}

// TestRetentionYearEnergy is the test: a year of readings in a
// real SQLite file, every day's energy computed before and after the
// [server.retention] job reduced them (up to a horizon in the middle of
// a day, so one day is half reduced, half raw) is the same to the
// milliwatt-hour, and so to the Wh.
func TestRetentionYearEnergy(t *testing.T) {
	st := openStore(t)
	cfg := parseConfig(t, strings.Replace(baseConfig, "[[server.sources]]", "[server.retention]\nraw = \"30d\"\nbatch = 5000\n[[server.sources]]", 1))
	ctx := t.Context()
	if err := st.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	rs := retentionYear()
	for i := 0; i < len(rs); i += 20000 {
		if _, err := st.Insert(ctx, "home", rs[i:min(i+20000, len(rs))]); err != nil {
			t.Fatal(err)
		}
	}
	before := dayEnergies(t, st, "2024-12-31", "2026-01-31")
	if len(before) < 370 {
		t.Fatalf("%d days with readings, want 372 or so", len(before))
	}

	job := NewRetention(cfg, st, testLog(t))
	if job == nil {
		t.Fatal("no retention job for a config with [server.retention] raw = 30d")
	}
	horizon := time.Date(2026, 1, 5, 11, 57, 0, 0, time.UTC) // inside the day's first window
	job.now = func() time.Time { return horizon.Add(30*24*time.Hour + 40*time.Second) }
	results, err := job.Pass(ctx)
	if err != nil {
		t.Fatalf("retention pass: %v", err)
	}
	if len(results) != 1 || results[0].Source != "home" || !results[0].Done || !results[0].Until.Equal(horizon) {
		t.Fatalf("retention pass = %+v, want home reduced until %s", results, horizon)
	}
	var raw int64
	for _, r := range rs {
		if r.Time.Before(horizon) {
			raw++
		}
	}
	if res := results[0]; res.Raw != raw || res.Reduced > raw/5 || res.Reduced < raw/7 {
		t.Errorf("retention pass: %d raw readings into %d rows, want %d raw readings into about a sixth as many rows", res.Raw, res.Reduced, raw)
	}
	if got := sourceCount(t, st); got != int64(len(rs))-raw+results[0].Reduced {
		t.Errorf("source count after the reduction: %d, want %d", got, int64(len(rs))-raw+results[0].Reduced)
	}

	after := dayEnergies(t, st, "2024-12-31", "2026-01-31")
	if len(after) != len(before) {
		t.Errorf("%d days after the reduction, %d before", len(after), len(before))
	}
	var worst float64
	var worstDay string
	bad := 0
	for day, b := range before {
		a := after[day]
		for k := range 2 {
			d := math.Abs(a[k] - b[k])
			if d > worst {
				worst, worstDay = d, day
			}
			if d >= 0.005 || math.Round(a[k]) != math.Round(b[k]) {
				bad++
				if bad <= 10 {
					t.Errorf("day %s: %s %.6f Wh after the reduction, %.6f Wh before", day, []string{"import", "export"}[k], a[k], b[k])
				}
			}
		}
	}
	t.Logf("%d days, %d raw readings reduced to %d rows; largest difference %.2g Wh (%s)", len(before), results[0].Raw, results[0].Reduced, worst, worstDay)

	// A second pass has nothing to do.
	again, err := job.Pass(ctx)
	if err != nil || len(again) != 0 {
		t.Errorf("second pass = %+v %v, want nothing done", again, err)
	}
}

func sourceCount(t *testing.T, st store.Store) int64 {
	t.Helper()
	infos, err := st.Sources(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range infos {
		if si.Name == "home" {
			return si.Count
		}
	}
	return 0
}

// TestRetentionServe: the server runs the job in the background while it
// serves, counts in its metrics what it reduced, keeps taking readings,
// and stops with it.
func TestRetentionServe(t *testing.T) {
	st := openStore(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := st.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-40 * 24 * time.Hour).Truncate(time.Hour)
	var rs []reading.Reading
	for i := range 720 {
		rs = append(rs, reading.Reading{Device: "plug", Time: old.Add(time.Duration(i) * 10 * time.Second), Power: float64(100 + i%10)})
	}
	if _, err := st.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, strings.Replace(baseConfig, "[[server.sources]]", "[server.retention]\nraw = \"30d\"\nbatch = 100\n[[server.sources]]", 1), st, nil)
	// The job's counters say when it is done.
	want := []string{`powermeter_retention_raw_readings_total{source="home"} 720`, `powermeter_retention_rows_written_total{source="home"} 120`}
	for {
		_, metrics, _ := do(t, "GET", ts.base+"/metrics", "", "")
		if strings.Contains(metrics, want[0]) && strings.Contains(metrics, want[1]) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the retention job did not reduce the 720 readings of 40 days ago; metrics:\n%s", metrics)
		case <-time.After(20 * time.Millisecond):
		}
	}
	if h, err := st.(store.Reducer).Horizon(ctx, "home"); err != nil || h.Before(time.Now().Add(-31*24*time.Hour)) {
		t.Errorf("horizon after the job: %s %v, want about 30 days ago", h, err)
	}
	var got []reading.Reading
	if err := st.Range(ctx, "home", old, old.Add(2*time.Hour), func(r reading.Reading) error { got = append(got, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 120 || got[0].Reduced == nil || got[0].Reduced.Count != 6 {
		t.Fatalf("after the job: %d readings (%+v), want 120 reduced minutes", len(got), got)
	}
	// The read API's CSV carries the reduced minutes' columns for a range
	// before the horizon, and keeps its usual header after it.
	q := "?format=csv&from=" + old.UTC().Format(time.RFC3339) + "&to=" + old.Add(2*time.Hour).UTC().Format(time.RFC3339)
	code, body, _ := do(t, "GET", ts.base+"/api/v1/sources/home/readings"+q, "", "")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	wantHead := strings.Join(append(append([]string{}, csvHeader...), csvReduced...), ",")
	if code != 200 || len(lines) != 121 || lines[0] != wantHead {
		t.Fatalf("CSV before the horizon: %d, %d lines, header %q", code, len(lines), lines[0])
	}
	// the first minute: 100..105 W, mean 102.5, its last raw reading at +50 s
	wantRow := old.UTC().Format(time.RFC3339) + ",plug,102.5,,,,,,,6,100,105,"
	if !strings.HasPrefix(lines[1], wantRow) || !strings.HasSuffix(lines[1], ","+old.Add(50*time.Second).UTC().Format(time.RFC3339)+",105,,") {
		t.Errorf("CSV reduced row %q, want %s…", lines[1], wantRow)
	}
	q = "?format=csv&from=" + time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	if code, body, _ := do(t, "GET", ts.base+"/api/v1/sources/home/readings"+q, "", ""); code != 200 || !strings.HasPrefix(body, strings.Join(csvHeader, ",")+"\n") {
		t.Errorf("CSV after the horizon: %d %q", code, body)
	}
	// ingest goes on
	code, body, _ = do(t, "POST", ts.base+"/api/v1/readings", "application/json",
		fmt.Sprintf(`{"readings":[{"device":"plug","time":%q,"power_w":5}]}`, time.Now().UTC().Format(time.RFC3339)), "Authorization", "Bearer "+homeKey)
	if code != 200 {
		t.Fatalf("ingest after the job: %d %s", code, body)
	}
	ts.stop()
	if err := <-ts.done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	ts.done <- nil // for the cleanup
}

// TestRetentionStopsMidway: a shutdown while the job is inside a slice
// ends Serve cleanly; the slice is rolled back, the store is reduced up to
// its horizon and raw from there with every raw reading accounted for,
// and the next run finishes.
func TestRetentionStopsMidway(t *testing.T) {
	st := openStore(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	if err := st.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-60 * 24 * time.Hour).Truncate(time.Hour)
	const n = 8640
	rs := make([]reading.Reading, n)
	for i := range rs {
		rs[i] = reading.Reading{Device: "plug", Time: old.Add(time.Duration(i) * 10 * time.Second), Power: float64(100 + i%10)}
	}
	if _, err := st.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	cfg := strings.Replace(baseConfig, "[[server.sources]]", "[server.retention]\nraw = \"30d\"\nbatch = 600\n[[server.sources]]", 1)
	// The job's third slice waits inside the reduce function (inside its
	// transaction) until the server is told to stop.
	inSlice, release := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	ts := startServer(t, cfg, st, func(s *Server) {
		fn := s.retention.fn
		s.retention.fn = func(prev *reading.Reading, raw []reading.Reading, next *reading.Reading) []reading.Reading {
			if calls.Add(1) == 3 {
				close(inSlice)
				<-release
			}
			return fn(prev, raw, next)
		}
	})
	select {
	case <-inSlice:
	case <-ctx.Done():
		t.Fatal("the retention job did not reach its third slice")
	}
	ts.stop()
	close(release)
	if err := <-ts.done; err != nil {
		t.Errorf("Serve: %v", err)
	}
	ts.done <- nil // for the cleanup
	red := st.(store.Reducer)
	h, err := red.Horizon(ctx, "home")
	if err != nil {
		t.Fatal(err)
	}
	count := func() (raw, reduced int) {
		err := st.Range(ctx, "home", old, old.Add(n*10*time.Second), func(r reading.Reading) error {
			switch {
			case r.Reduced != nil && !r.Time.Before(h), r.Reduced == nil && r.Time.Before(h):
				return fmt.Errorf("reading at %s (reduced: %v) on the wrong side of the horizon %s", r.Time, r.Reduced != nil, h)
			case r.Reduced != nil:
				reduced += r.Reduced.Count
			default:
				raw++
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return raw, reduced
	}
	raw, reduced := count()
	if raw+reduced != n || reduced == 0 || reduced > 2*600 {
		t.Errorf("after a shutdown in the third slice: %d raw readings and %d in reduced minutes, want the two slices before (at most 1200) reduced, %d in all", raw, reduced, n)
	}
	// the next run (the verb, or the next start) goes on from there
	job := NewRetention(parseConfig(t, cfg), st, testLog(t))
	if res, err := job.Pass(ctx); err != nil || len(res) != 1 || !res[0].Done || res[0].Raw != int64(raw) {
		t.Fatalf("the next pass: %+v %v, want the other %d raw readings", res, err, raw)
	}
	if h, err = red.Horizon(ctx, "home"); err != nil {
		t.Fatal(err)
	}
	if raw, reduced := count(); raw != 0 || reduced != n {
		t.Errorf("after the next pass: %d raw, %d reduced, want all %d reduced", raw, reduced, n)
	}
}
