package server

import (
	"bufio"
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// TestAPICSVDefused: device names that a spreadsheet would run as a formula
// get a leading apostrophe; numbers (a negative power) stay numbers.
func TestAPICSVDefused(t *testing.T) {
	st := openStore(t)
	ts := startServer(t, baseConfig, st, nil)
	ctx := context.Background()
	if err := st.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	rs := []reading.Reading{
		{Device: "=HYPERLINK(\"x\")", Time: t0, Power: -12.5},
		{Device: "@SUM(A1)", Time: t0.Add(time.Second), Power: 1},
		{Device: "-plug", Time: t0.Add(2 * time.Second), Power: -0.25, Phases: []float64{-1, 2}},
		{Device: "grid", Time: t0.Add(3 * time.Second), Power: 3},
	}
	if _, err := st.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	resp, err := client.Get(ts.base + "/api/v1/sources/home/readings?from=2026-06-01T00:00:00Z&to=2026-06-02T00:00:00Z&format=csv")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Disposition") != `attachment; filename="home.csv"` {
		t.Fatalf("%d, Content-Disposition %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	recs, err := csv.NewReader(bufio.NewReader(resp.Body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][3]string{
		{"'=HYPERLINK(\"x\")", "-12.5", ""},
		{"'@SUM(A1)", "1", ""},
		{"'-plug", "-0.25", "-1 2"},
		{"grid", "3", ""},
	}
	if len(recs) != len(want)+1 {
		t.Fatalf("%d records: %v", len(recs), recs)
	}
	for i, w := range want {
		r := recs[i+1]
		if r[1] != w[0] || r[2] != w[1] || r[7] != w[2] {
			t.Errorf("row %d: device %q power %q phases %q, want %q %q %q", i+1, r[1], r[2], r[7], w[0], w[1], w[2])
		}
	}

	// a stored source whose name the config would refuse (an import) still
	// gets a harmless file name
	odd := "x\";y"
	if err := st.EnsureSource(ctx, odd, "UTC"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Insert(ctx, odd, rs[:1]); err != nil {
		t.Fatal(err)
	}
	code, _, hdr := do(t, "GET", ts.base+"/api/v1/sources/"+url.PathEscape(odd)+"/readings?from=2026-06-01T00:00:00Z&format=csv", "", "")
	if cd := hdr.Get("Content-Disposition"); code != 200 || cd != `attachment; filename="x__y.csv"` {
		t.Errorf("source %q: %d, Content-Disposition %q", odd, code, cd)
	}
}
