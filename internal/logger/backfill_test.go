package logger

import (
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/meter/fritzdect"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
)

// The logger was down for five minutes; the FRITZ!Box (emulated, with its
// 10-s power history) fills the gap through the real FRITZ!DECT client.
func TestBackfillFromTheFritzBoxEmulator(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 4, 0, time.UTC)
	clk := NewFakeClock(now, true)
	box := fritzdect.NewEmulator(fritzdect.EmulatorOptions{Username: "fritz1234", Password: "geheim", Iter1: 10, Iter2: 10, Now: clk.Now})
	srv := httptest.NewServer(box)
	defer srv.Close()
	cfg := parseConfig(t, fmt.Sprintf("timezone = \"Europe/Berlin\"\ndata_dir = %q\n[[meters]]\nname = \"balcony\"\ntype = \"fritzdect\"\nurl = %q\nusername = \"fritz1234\"\npassword = \"geheim\"\nain = %q\n", t.TempDir(), srv.URL, fritzdect.EmuAINSolar))

	last := time.Date(2026, 6, 1, 11, 55, 0, 0, time.UTC)
	ob, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ob.Append([]outbox.Item{{Meter: "balcony", Reading: reading.Reading{Device: "balcony", Time: last, Power: 300}}})
	ob.Close()

	l, _ := run(t, cfg, Options{Clock: clk, Rounds: 1})
	ob2, err := outbox.Open(filepath.Join(cfg.DataDir, "outbox"), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ob2.Close()
	its, err := ob2.Pending("check", 1000)
	if err != nil {
		t.Fatal(err)
	}
	var filled []outbox.Item
	for _, it := range its[1:] {
		if it.Reading.Backfilled {
			filled = append(filled, it)
		}
	}
	if len(filled) < 29 || len(filled) > 30 {
		t.Fatalf("backfilled %d readings, want the 29–30 rounds of the five minutes", len(filled))
	}
	prev := last
	for _, it := range filled {
		r := it.Reading
		if !r.Time.After(prev) || r.Time.Sub(prev) > 20*time.Second || !r.Time.Equal(r.Time.Truncate(10*time.Second)) || r.Device != "balcony" || r.Power <= 0 {
			t.Fatalf("backfilled reading %+v after %v", r, prev)
		}
		prev = r.Time
	}
	if live := its[len(its)-1].Reading; live.Backfilled || !live.Time.Equal(time.Date(2026, 6, 1, 12, 0, 10, 0, time.UTC)) {
		t.Fatalf("live round %+v", live)
	}
	if got := l.Status().Meters[0].Backfilled; got != uint64(len(filled)) {
		t.Fatalf("status counts %d backfilled", got)
	}
}
