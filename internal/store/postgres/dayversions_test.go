package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
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
