package sqlite

import (
	"errors"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// TestDayVersions: DayVersions lists the days and versions Days lists,
// without the summaries and their versions.
func TestDayVersions(t *testing.T) {
	s := openTemp(t)
	ctx := t.Context()
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 6, 1, 10, 0, 0, 0, time.UTC)
	for d := range 3 {
		if _, err := s.Insert(ctx, "home", []reading.Reading{{Device: "plug", Time: t0.AddDate(0, 0, d), Power: 10}}); err != nil {
			t.Fatal(err)
		}
	}
	days, err := s.Days(ctx, "home", "2025-06-01", "2025-06-03")
	if err != nil || len(days) != 3 {
		t.Fatalf("days: %v %v", days, err)
	}
	if ok, err := s.PutDaySummary(ctx, "home", "2025-06-02", days[1].Version, []byte(`{"x":1}`)); !ok || err != nil {
		t.Fatalf("put summary: %v %v", ok, err)
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
	if days[1].SummaryVersion != days[1].Version || string(days[1].Summary) != `{"x":1}` {
		t.Errorf("the summary of 2025-06-02 is not current: %+v", days[1])
	}
	if _, err := s.DayVersions(ctx, "nobody", "2025-06-01", "2025-06-03"); !errors.Is(err, store.ErrUnknownSource) {
		t.Errorf("unknown source: %v", err)
	}
}
