package dashboard

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	_ "github.com/powermeter/powermeter/internal/store/sqlite"
)

var berlin = func() *time.Location {
	l, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		panic(err)
	}
	return l
}()

// testNow is the fixed "now" of the handler tests: Monday 30 March 2026,
// 12:00 in Berlin (the day after the spring clock change).
var testNow = time.Date(2026, 3, 30, 12, 0, 0, 0, berlin)

// countingStore counts Range calls, to see which days were recomputed.
type countingStore struct {
	store.Store
	ranges atomic.Int64
}

func (c *countingStore) Range(ctx context.Context, source string, from, to time.Time, fn func(reading.Reading) error) error {
	c.ranges.Add(1)
	return c.Store.Range(ctx, source, from, to, fn)
}

func openStore(t testing.TB) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+t.TempDir()+"/x.db")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func srcConf(name, key string) config.Source {
	return config.Source{Name: name, Key: key, Timezone: config.Zone{Location: berlin}}
}

func newTestDashboard(t testing.TB, st store.Store, o Options) *Dashboard {
	t.Helper()
	if o.Sources == nil {
		o.Sources = []config.Source{srcConf("home", "ingest-key-never-shown")}
	}
	if o.Now == nil {
		o.Now = func() time.Time { return testNow }
	}
	if o.SummaryBudget == 0 {
		// tests expect complete pages (the budget is tested on its own)
		o.SummaryBudget = 10 * time.Minute
	}
	d, err := New(st, o)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mux(d *Dashboard) *http.ServeMux {
	m := http.NewServeMux()
	d.Register(m)
	return m
}

func insert(t testing.TB, st store.Store, source string, rs ...reading.Reading) {
	t.Helper()
	ctx := context.Background()
	if err := st.EnsureSource(ctx, source, "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	for len(rs) > 0 {
		n := min(len(rs), 20000)
		if _, err := st.Insert(ctx, source, rs[:n]); err != nil {
			t.Fatal(err)
		}
		rs = rs[n:]
	}
}

// series returns readings of device every 10 s from from (inclusive) to to
// (exclusive), power from fn.
func series(device string, from, to time.Time, fn func(t time.Time) float64) []reading.Reading {
	var rs []reading.Reading
	for t := from.UTC(); t.Before(to); t = t.Add(10 * time.Second) {
		rs = append(rs, reading.Reading{Device: device, Time: t, Power: fn(t)})
	}
	return rs
}

type resp struct {
	code int
	body string
	h    http.Header
}

func get(t testing.TB, h http.Handler, path string, hdr ...string) resp {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Result().Body)
	return resp{rec.Code, string(b), rec.Result().Header}
}
