package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/postgres/pgtest"
)

// TestDayVersions: DayVersions lists the days and versions Days lists,
// without the summaries and their versions, with readings folded into
// chunks and still in recent.
func TestDayVersions(t *testing.T) {
	t.Parallel()
	if listVersionsSQL == listDaysSQL {
		t.Fatal("listVersionsSQL selects the summaries (listDaysSQL changed: adapt the replacement)")
	}
	s, _ := open(t)
	ctx := context.Background()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	t1 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	for d := range 3 {
		if _, err := s.Insert(ctx, "home", []reading.Reading{{Device: "plug", Time: t1.AddDate(0, 0, d), Power: 10}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Fold(ctx, t1.AddDate(0, 0, 1)); err != nil { // the first day into chunks
		t.Fatal(err)
	}
	days, err := s.Days(ctx, "home", "2025-06-01", "2025-06-03")
	if err != nil || len(days) != 3 {
		t.Fatalf("days: %v %v", days, err)
	}
	for _, d := range days[:2] {
		if ok, err := s.PutDaySummary(ctx, "home", d.Day, d.Version, []byte(`{"x":1}`)); !ok || err != nil {
			t.Fatalf("put summary of %s: %v %v", d.Day, ok, err)
		}
	}
	days, err = s.Days(ctx, "home", "2025-06-01", "2025-06-03")
	if err != nil {
		t.Fatal(err)
	}
	vs, err := s.DayVersions(ctx, "home", "2025-06-01", "2025-06-03")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != len(days) {
		t.Fatalf("versions %v, days %v", vs, days)
	}
	for i := range vs {
		if vs[i].Summary != nil || vs[i].SummaryVersion != 0 || vs[i].Day != days[i].Day || vs[i].Version != days[i].Version {
			t.Errorf("versions[%d] = %+v, days[%d] = %+v", i, vs[i], i, days[i])
		}
	}
	for _, d := range days[:2] {
		if d.SummaryVersion != d.Version || string(d.Summary) != `{"x":1}` {
			t.Errorf("the summary of %s is not current: %+v", d.Day, d)
		}
	}
	if _, err := s.DayVersions(ctx, "nobody", "2025-06-01", "2025-06-03"); !errors.Is(err, store.ErrUnknownSource) {
		t.Errorf("unknown source: %v", err)
	}
}

// TestPutSummaryDuringFold: a fold moving a day's readings into chunks
// does not change the day's version, so a summary of that version put
// while the fold's transaction is open is taken once the fold commits.
// (It was refused: the update waited for the days row the fold wrote,
// then re-checked it against its older view of recent, counting the moved
// readings twice.)
func TestPutSummaryDuringFold(t *testing.T) {
	t.Parallel()
	s := openNoFold(t, pgtest.URL(t))
	ctx := context.Background()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	var rs []reading.Reading
	for k := range 200 {
		rs = append(rs, reading.Reading{Device: "plug", Time: day.Add(time.Duration(k) * 10 * time.Second), Power: float64(k)})
	}
	if _, err := s.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	days, err := s.Days(ctx, "home", "2025-06-01", "2025-06-01")
	if err != nil || len(days) != 1 {
		t.Fatalf("days: %v %v", days, err)
	}
	// the fold's transaction, held open while the summary is put
	sid, upto := s.sources["home"], day.Add(24*time.Hour)
	if err := s.ensurePartitions(ctx, day, upto); err != nil {
		t.Fatal(err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if err := s.lockSource(ctx, tx, sid); err != nil {
		t.Fatal(err)
	}
	var n, chunks int64
	if err := tx.QueryRow(ctx, foldSQL, sid, upto).Scan(&n, &chunks); err != nil || n != 200 {
		t.Fatalf("fold: %d readings, %v", n, err)
	}
	type put struct {
		ok  bool
		err error
	}
	done := make(chan put, 1)
	go func() {
		ok, err := s.PutDaySummary(ctx, "home", "2025-06-01", days[0].Version, []byte(`{}`))
		done <- put{ok, err}
	}()
	time.Sleep(300 * time.Millisecond) // let the put reach the fold's locks
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if p := <-done; !p.ok || p.err != nil {
		t.Fatalf("summary put during a fold: %v %v", p.ok, p.err)
	}
	after, err := s.Days(ctx, "home", "2025-06-01", "2025-06-01")
	if err != nil || after[0].Version != days[0].Version || after[0].SummaryVersion != days[0].Version {
		t.Fatalf("after the fold: %+v (before %+v), %v", after, days, err)
	}
}
