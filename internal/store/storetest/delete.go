package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// testDelete: Delete removes one device's readings of a time range, keeps
// the others, updates Latest and Sources, gives touched days a new version
// and drops days left empty.
func testDelete(t *testing.T, open func(*testing.T) store.Store, _ *config) {
	s := open(t)
	d, ok := s.(store.Deleter)
	if !ok {
		t.Fatal("the backend does not implement store.Deleter")
	}
	ctx := ctxOf(t)
	ensure(t, s, "home", "Europe/Berlin")
	glitch := at("2106-02-07T06:28:15Z")
	insert(t, s, "home",
		rd("a", at("2026-11-25T10:00:00Z"), 1), rd("a", at("2026-11-25T11:00:00Z"), 2),
		rd("a", at("2026-11-26T10:00:00Z"), 3), rd("b", at("2026-11-26T10:00:00Z"), 4),
		rd("a", glitch, 5), rd("b", at("2026-11-27T10:00:00Z"), 6))
	before := days(t, s, "home", "2026-11-25", "2026-11-27")
	if len(before) != 3 {
		t.Fatalf("days before: %v", dayNames(before))
	}
	ok2, err := s.PutDaySummary(ctx, "home", "2026-11-26", before[1].Version, []byte("cached"))
	if err != nil || !ok2 {
		t.Fatalf("PutDaySummary: %v %v", ok2, err)
	}
	n, err := d.Delete(ctx, "home", "a", at("2026-11-25T23:00:00Z"), at("2200-01-01T00:00:00Z"))
	if err != nil || n != 2 {
		t.Fatalf("Delete a from 2026-11-26 local: %d %v, want 2", n, err)
	}
	var got []string
	for _, r := range all(t, s, "home") {
		got = append(got, fmt.Sprintf("%s %s %g", r.Device, r.Time.Format("2006-01-02T15"), r.Power))
	}
	want := []string{"a 2026-11-25T10 1", "a 2026-11-25T11 2", "b 2026-11-26T10 4", "b 2026-11-27T10 6"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("left %v, want %v", got, want)
	}
	latest, err := s.Latest(ctx, "home")
	if err != nil {
		t.Fatal(err)
	}
	if len(latest) != 2 || latest[0].Device != "a" || !latest[0].Time.Equal(at("2026-11-25T11:00:00Z")) || latest[1].Power != 6 {
		t.Fatalf("Latest after the delete: %+v", latest)
	}
	last, ok3, err := s.LastTime(ctx, "home")
	if err != nil || !ok3 || !last.Equal(at("2026-11-27T10:00:00Z")) {
		t.Fatalf("LastTime after the delete: %v %v %v", last, ok3, err)
	}
	infos, err := s.Sources(ctx)
	if err != nil || len(infos) != 1 || infos[0].Count != 4 || !infos[0].Last.Equal(at("2026-11-27T10:00:00Z")) {
		t.Fatalf("Sources after the delete: %+v %v", infos, err)
	}
	after := days(t, s, "home", "2026-11-25", "2200-12-31")
	if fmt.Sprint(dayNames(after)) != "[2026-11-25 2026-11-26 2026-11-27]" {
		t.Fatalf("days after: %v (the 2106 day must go)", dayNames(after))
	}
	if after[1].Version == before[1].Version || after[1].SummaryVersion == after[1].Version {
		t.Fatalf("2026-11-26 keeps its version %d (summary at %d): the cached summary would be taken", after[1].Version, after[1].SummaryVersion)
	}
	// the last readings of a device: it has none left
	if n, err := d.Delete(ctx, "home", "a", at("2000-01-01T00:00:00Z"), at("2200-01-01T00:00:00Z")); err != nil || n != 2 {
		t.Fatalf("Delete the rest of a: %d %v", n, err)
	}
	if latest, err := s.Latest(ctx, "home"); err != nil || len(latest) != 1 || latest[0].Device != "b" {
		t.Fatalf("Latest with a empty: %+v %v", latest, err)
	}
	if ds := days(t, s, "home", "2026-11-25", "2026-11-25"); len(ds) != 0 {
		t.Fatalf("2026-11-25 has no readings left but is listed")
	}
	// nothing to delete, an unknown device, an unknown source
	if n, err := d.Delete(ctx, "home", "nope", at("2000-01-01T00:00:00Z"), at("2200-01-01T00:00:00Z")); err != nil || n != 0 {
		t.Fatalf("unknown device: %d %v", n, err)
	}
	if _, err := d.Delete(ctx, "nowhere", "a", at("2000-01-01T00:00:00Z"), at("2200-01-01T00:00:00Z")); !errors.Is(err, store.ErrUnknownSource) {
		t.Fatalf("unknown source: %v", err)
	}
	// inserting again works as before
	if res := insert(t, s, "home", reading.Reading{Device: "a", Time: at("2026-11-26T10:00:00Z"), Power: 30}); res.Inserted != 1 {
		t.Fatalf("insert after delete: %+v", res)
	}
}
