package storetest

import (
	"errors"
	"strings"
	"testing"

	"github.com/powermeter/powermeter/internal/store"
)

// testImportedDays: summaries of days without readings are stored,
// replaced, listed by range and refused when invalid; an unknown source is
// an error.
func testImportedDays(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	ctx := ctxOf(t)
	di, ok := s.(store.DayImporter)
	if !ok {
		t.Fatal("the store keeps no imported day summaries (store.DayImporter)")
	}
	ensure(t, s, "home", "Europe/Berlin")
	days := []store.ImportedDay{
		{Day: "2024-03-01", InWh: 1234.5, OutWh: 0, PeakW: 812, PeakAt: "12:03:10", First: "07:01:00", Last: "19:59:50", Origin: "chart_stats.csv"},
		{Day: "2024-03-02", InWh: 99, OutWh: 2345.25, PeakW: 640.5, Origin: "chart_stats.csv"},
	}
	n, err := di.PutImportedDays(ctx, "home", days)
	if err != nil || n != 2 {
		t.Fatalf("put: %d %v", n, err)
	}
	// the same again changes nothing; a changed day is replaced
	if n, err := di.PutImportedDays(ctx, "home", days); err != nil || n != 0 {
		t.Errorf("put again: %d %v", n, err)
	}
	days[1].InWh = 100
	if n, err := di.PutImportedDays(ctx, "home", days[1:]); err != nil || n != 1 {
		t.Errorf("replace: %d %v", n, err)
	}
	got, err := di.ImportedDays(ctx, "home", "2024-03-01", "2024-03-31")
	if err != nil || len(got) != 2 || got[0] != days[0] || got[1] != days[1] {
		t.Errorf("list: %+v %v", got, err)
	}
	if got, err := di.ImportedDays(ctx, "home", "2024-03-02", "2024-03-02"); err != nil || len(got) != 1 || got[0].Day != "2024-03-02" {
		t.Errorf("one day: %+v %v", got, err)
	}
	// imported days are no days with readings
	if ds := days_(t, s, "home"); len(ds) != 0 {
		t.Errorf("Days lists %v", ds)
	}
	// invalid: nothing stored
	bad := []store.ImportedDay{{Day: "2024-04-01", InWh: 5, Origin: "x"}, {Day: "2024-04-02", InWh: -1, Origin: "x"}}
	if _, err := di.PutImportedDays(ctx, "home", bad); err == nil || !strings.Contains(err.Error(), "in_wh") {
		t.Errorf("negative energy: %v", err)
	}
	if got, _ := di.ImportedDays(ctx, "home", "2024-04-01", "2024-04-30"); len(got) != 0 {
		t.Errorf("half stored: %+v", got)
	}
	if _, err := di.PutImportedDays(ctx, "nosuch", days); !errors.Is(err, store.ErrUnknownSource) {
		t.Errorf("unknown source: %v", err)
	}
}

func days_(t *testing.T, s store.Store, src string) []string {
	return dayNames(days(t, s, src, "2000-01-01", "2100-01-01"))
}
