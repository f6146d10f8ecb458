package logger

import (
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/uplink/uplinktest"
)

// The attack run: segment files deleted under a logger whose uplink had
// sent 30 readings; 15 readings later none had been sent, /status showed
// backlog 0 or negative and failing:false, and stopping hung for the whole
// flush timeout. Now the 15 arrive, the repair is logged and counted, and
// nothing is left waiting at the stop.
func TestDeletedSegmentsUnderALoggerStillDeliver(t *testing.T) {
	php := &uplinktest.PHP{Key: "k"}
	srv := httptest.NewServer(php)
	defer srv.Close()
	cfg := testConfig(t, "", fmt.Sprintf("\n[[uplinks]]\nname = \"php\"\nurl = %q\nkey = \"k\"\n", srv.URL+"/"), "a:shelly")
	start := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	run(t, cfg, Options{Clock: NewFakeClock(start, true), NewMeter: newFakes().New, Rounds: 30})
	if n := len(php.Lines()); n != 30 {
		t.Fatalf("first run sent %d lines, want 30", n)
	}
	segs, _ := filepath.Glob(filepath.Join(cfg.DataDir, "outbox", "*.rec"))
	if len(segs) == 0 {
		t.Fatal("no segment files")
	}
	for _, s := range segs {
		os.Remove(s)
	}
	l, logs := run(t, cfg, Options{Clock: NewFakeClock(start.Add(time.Hour), true), NewMeter: newFakes().New, Rounds: 15, FlushTimeout: time.Minute})
	if n := len(php.Lines()); n != 45 {
		t.Fatalf("after the segments were deleted %d of 15 new lines were sent", n-30)
	}
	st := l.Status()
	if st.Uplinks[0].Backlog != 0 || st.Counters.OutboxRepairs != 1 {
		t.Fatalf("status: backlog %d repairs %d", st.Uplinks[0].Backlog, st.Counters.OutboxRepairs)
	}
	if !strings.Contains(logs.String(), "numbering continues") || strings.Contains(logs.String(), "still has readings waiting") {
		t.Fatalf("logs:\n%s", logs.String())
	}
}
