package outbox

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func items(meter string, from, n int) []Item {
	out := make([]Item, n)
	for i := range out {
		out[i] = Item{Meter: meter, Reading: reading.Reading{Device: meter, Time: t0.Add(time.Duration(from+i) * 10 * time.Second), Power: float64(from + i), EnergyIn: reading.F(1000 + float64(from+i))}}
	}
	return out
}

func open(t *testing.T, dir string, o Options) *Outbox {
	t.Helper()
	ob, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ob.Close() })
	return ob
}

// drain reads everything for consumer name in batches of batch and acks.
func drain(t *testing.T, ob *Outbox, name string, batch int) []Item {
	t.Helper()
	var all []Item
	for {
		got, err := ob.Pending(name, batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			return all
		}
		all = append(all, got...)
		if err := ob.Ack(name, got[len(got)-1].Seq); err != nil {
			t.Fatal(err)
		}
	}
}

func powers(its []Item) []int {
	out := make([]int, len(its))
	for i, it := range its {
		out[i] = int(it.Reading.Power)
	}
	return out
}

func wantRange(t *testing.T, got []Item, from, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("got %d items, want %d", len(got), n)
	}
	for i, it := range got {
		if int(it.Reading.Power) != from+i {
			t.Fatalf("item %d has power %v, want %d (got %v…)", i, it.Reading.Power, from+i, powers(got[:min(10, len(got))]))
		}
		if !it.Reading.Time.Equal(t0.Add(time.Duration(from+i) * 10 * time.Second)) {
			t.Fatalf("item %d time %v", i, it.Reading.Time)
		}
	}
}

func TestAppendPendingAckAcrossSegmentsAndReopen(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{SegmentRecords: 7})
	ob.Consumer("a")
	ob.Consumer("b")
	for i := 0; i < 10; i++ {
		if _, err := ob.Append(items("m", i*5, 5)); err != nil {
			t.Fatal(err)
		}
	}
	if got := ob.Backlog("a"); got != 50 {
		t.Fatalf("backlog a = %d", got)
	}
	first, err := ob.Pending("a", 20)
	if err != nil {
		t.Fatal(err)
	}
	wantRange(t, first, 0, 20)
	if err := ob.Ack("a", first[19].Seq); err != nil {
		t.Fatal(err)
	}
	if got := ob.Backlog("a"); got != 30 {
		t.Fatalf("backlog a after ack = %d", got)
	}
	if got := ob.Backlog("b"); got != 50 {
		t.Fatalf("b must not move with a: backlog %d", got)
	}
	ob.Close()

	ob2 := open(t, dir, Options{SegmentRecords: 7})
	ob2.Consumer("a")
	ob2.Consumer("b")
	wantRange(t, drain(t, ob2, "a", 8), 20, 30)
	wantRange(t, drain(t, ob2, "b", 1000), 0, 50)
	if _, err := ob2.Append(items("m", 50, 3)); err != nil {
		t.Fatal(err)
	}
	wantRange(t, drain(t, ob2, "a", 2), 50, 3)
	// Sent segments are removed (the newest two stay).
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segExt))
	if len(segs) > 2 {
		t.Fatalf("%d segment files left after everything was sent: %v", len(segs), segs)
	}
}

func TestDeadConsumerKeepsSegmentsLiveOneMovesOn(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{SegmentRecords: 10})
	ob.Consumer("live")
	ob.Consumer("dead")
	for i := 0; i < 10; i++ {
		if _, err := ob.Append(items("m", i*10, 10)); err != nil {
			t.Fatal(err)
		}
		drain(t, ob, "live", 100)
	}
	if ob.Backlog("live") != 0 || ob.Backlog("dead") != 100 {
		t.Fatalf("backlogs live %d dead %d", ob.Backlog("live"), ob.Backlog("dead"))
	}
	wantRange(t, drain(t, ob, "dead", 33), 0, 100)
}

func TestTornTailIsCut(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(size int64) (truncate int64, garbage []byte)
	}{
		{"half a header", func(size int64) (int64, []byte) { return size, []byte{9, 0, 0} }},
		{"half a payload", func(size int64) (int64, []byte) { return size - 5, nil }},
		{"zeros after a power loss", func(size int64) (int64, []byte) { return size, make([]byte, 4096) }},
		{"flipped byte in the last record", func(size int64) (int64, []byte) { return -1, nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var logs bytes.Buffer
			ob := open(t, dir, Options{})
			ob.Consumer("u")
			if _, err := ob.Append(items("m", 0, 20)); err != nil {
				t.Fatal(err)
			}
			ob.Close()
			segs, _ := filepath.Glob(filepath.Join(dir, "*"+segExt))
			if len(segs) != 1 {
				t.Fatalf("segments %v", segs)
			}
			fi, _ := os.Stat(segs[0])
			tr, garbage := tc.cut(fi.Size())
			want := 20
			switch {
			case tr < 0:
				data, _ := os.ReadFile(segs[0])
				data[len(data)-3] ^= 0xff
				os.WriteFile(segs[0], data, 0o644)
				want = 19
			case tr < fi.Size():
				os.Truncate(segs[0], tr)
				want = 19
			default:
				f, _ := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
				f.Write(garbage)
				f.Close()
			}
			ob2 := open(t, dir, Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
			ob2.Consumer("u")
			got := drain(t, ob2, "u", 100)
			wantRange(t, got, 0, want)
			if !bytes.Contains(logs.Bytes(), []byte("torn")) {
				t.Errorf("the cut was not logged: %s", logs.String())
			}
			// Appending after the cut continues the sequence.
			if _, err := ob2.Append(items("m", want, 5)); err != nil {
				t.Fatal(err)
			}
			wantRange(t, drain(t, ob2, "u", 100), want, 5)
		})
	}
}

func TestBoundDropsOldestLoudlyAndCounts(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	ob := open(t, dir, Options{Max: 25, SegmentRecords: 10, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ob.Consumer("u")
	if _, err := ob.Append(items("m", 0, 20)); err != nil {
		t.Fatal(err)
	}
	if ob.Dropped() != 0 || logs.Len() != 0 {
		t.Fatalf("dropped before the bound: %d %s", ob.Dropped(), logs.String())
	}
	if _, err := ob.Append(items("m", 20, 12)); err != nil {
		t.Fatal(err)
	}
	if ob.Dropped() != 7 {
		t.Fatalf("dropped %d, want 7", ob.Dropped())
	}
	if !bytes.Contains(logs.Bytes(), []byte("level=WARN")) || !bytes.Contains(logs.Bytes(), []byte("dropped=7")) {
		t.Fatalf("drop not logged as a warning: %s", logs.String())
	}
	if ob.Backlog("u") != 25 || ob.Len() != 25 {
		t.Fatalf("backlog %d len %d, want 25", ob.Backlog("u"), ob.Len())
	}
	ob.Close()
	// The head survives a restart.
	ob2 := open(t, dir, Options{Max: 25, SegmentRecords: 10})
	ob2.Consumer("u")
	wantRange(t, drain(t, ob2, "u", 4), 7, 25)
}

func TestLastTimes(t *testing.T) {
	ob := open(t, t.TempDir(), Options{SegmentRecords: 16})
	ob.Consumer("u")
	for i := 0; i < 50; i++ {
		its := append(items("a", i, 1), items("b", i, 1)...)
		if i >= 40 {
			its = items("a", i, 1) // b stopped at 39
		}
		if _, err := ob.Append(its); err != nil {
			t.Fatal(err)
		}
	}
	got, err := ob.LastTimes(t0)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(got))
	for k := range got {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if fmt.Sprint(keys) != fmt.Sprint([]string{"a\x00a", "b\x00b"}) {
		t.Fatalf("keys %q", keys)
	}
	if !got["a\x00a"].Equal(t0.Add(49*10*time.Second)) || !got["b\x00b"].Equal(t0.Add(39*10*time.Second)) {
		t.Fatalf("last times %v", got)
	}
}

func TestNotify(t *testing.T) {
	ob := open(t, t.TempDir(), Options{})
	ch := ob.Notify()
	select {
	case <-ch:
		t.Fatal("notified before an append")
	default:
	}
	ob.Append(items("m", 0, 1))
	select {
	case <-ch:
	case <-time.After(time.Second):
		t.Fatal("no notification after an append")
	}
}

func TestDamagedOlderSegmentIsSkippedNotBlocking(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	ob := open(t, dir, Options{SegmentRecords: 10, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ob.Consumer("u")
	for i := 0; i < 3; i++ {
		if _, err := ob.Append(items("m", i*10, 10)); err != nil {
			t.Fatal(err)
		}
	}
	// Flip a byte in the middle of the first segment (record 5 or so).
	segs, _ := filepath.Glob(filepath.Join(dir, "*"+segExt))
	sort.Strings(segs)
	data, _ := os.ReadFile(segs[0])
	data[len(data)/2] ^= 0xff
	os.WriteFile(segs[0], data, 0o644)

	// Only the damaged record is lost: the reader resyncs at the next one.
	got := drain(t, ob, "u", 7)
	if len(got) != 29 {
		t.Fatalf("got %d readings, want 29 (all but the damaged one): %v", len(got), powers(got))
	}
	wantRange(t, got[len(got)-20:], 10, 20)
	if !bytes.Contains(logs.Bytes(), []byte("readings lost")) || !bytes.Contains(logs.Bytes(), []byte("lost=1")) {
		t.Fatalf("not logged: %s", logs.String())
	}
	if ob.Lost() != 1 {
		t.Fatalf("Lost() = %d, want 1", ob.Lost())
	}
}

func TestSecondOpenIsRefused(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{})
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Open: %v", err)
	}
	ob.Close()
	ob2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	ob2.Close()
}

// Readings every consumer has handled do not count against the bound: after
// more than Max readings went through, nothing is dropped or logged.
func TestNoDropsOfReadingsAlreadySent(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	ob := open(t, dir, Options{Max: 25, SegmentRecords: 10, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	ob.Consumer("u")
	for i := 0; i < 10; i++ {
		if _, err := ob.Append(items("m", i*5, 5)); err != nil {
			t.Fatal(err)
		}
		wantRange(t, drain(t, ob, "u", 100), i*5, 5)
	}
	if ob.Dropped() != 0 || strings.Contains(logs.String(), "outbox full") {
		t.Fatalf("dropped %d readings that were all sent; log:\n%s", ob.Dropped(), logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "head")); err == nil {
		t.Fatal("head file written although nothing was dropped")
	}
	// The uplink goes down: 20 more (fewer than Max) wait and all arrive.
	for i := 10; i < 14; i++ {
		if _, err := ob.Append(items("m", i*5, 5)); err != nil {
			t.Fatal(err)
		}
	}
	wantRange(t, drain(t, ob, "u", 100), 50, 20)
	if ob.Dropped() != 0 {
		t.Fatalf("dropped %d", ob.Dropped())
	}
}

// The bound is measured from the slowest consumer and counts only what it
// had not handled.
func TestBoundCountsOnlyUnsentReadings(t *testing.T) {
	ob := open(t, t.TempDir(), Options{Max: 25, SegmentRecords: 10, Log: slog.New(slog.DiscardHandler)})
	ob.Consumer("fast")
	ob.Consumer("slow")
	if _, err := ob.Append(items("m", 0, 10)); err != nil {
		t.Fatal(err)
	}
	drain(t, ob, "fast", 100)
	drain(t, ob, "slow", 100)
	if _, err := ob.Append(items("m", 10, 30)); err != nil {
		t.Fatal(err)
	}
	drain(t, ob, "fast", 100)
	// slow waits for 30 > 25: the 5 oldest of those are dropped.
	if ob.Dropped() != 5 {
		t.Fatalf("dropped %d, want 5", ob.Dropped())
	}
	wantRange(t, drain(t, ob, "slow", 100), 15, 25)
}

// An Append that fails part way (a new segment cannot be created) reports
// how many it stored, so the caller appends only the rest: nothing doubles.
func TestAppendReportsWhatItStoredBeforeAnError(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{SegmentRecords: 5})
	ob.Consumer("u")
	if _, err := ob.Append(items("m", 0, 3)); err != nil {
		t.Fatal(err)
	}
	// A directory where the next segment file goes makes the rotation fail.
	block := filepath.Join(dir, "0000000000000005.rec")
	if err := os.Mkdir(block, 0o755); err != nil {
		t.Fatal(err)
	}
	batch := items("m", 3, 4)
	n, err := ob.Append(batch)
	if err == nil || n != 2 {
		t.Fatalf("Append = %d, %v; want 2 stored and an error", n, err)
	}
	if err := os.Remove(block); err != nil {
		t.Fatal(err)
	}
	if m, err := ob.Append(batch[n:]); err != nil || m != 2 {
		t.Fatalf("Append of the rest = %d, %v", m, err)
	}
	wantRange(t, drain(t, ob, "u", 100), 0, 7)
}

// A cursor that cannot be persisted still moves in memory: the batch is
// not handed out again.
func TestAckMovesTheCursorEvenWhenSavingFails(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{SegmentRecords: 10})
	ob.Consumer("u")
	if _, err := ob.Append(items("m", 0, 6)); err != nil {
		t.Fatal(err)
	}
	got, err := ob.Pending("u", 3)
	if err != nil || len(got) != 3 {
		t.Fatalf("Pending = %d, %v", len(got), err)
	}
	// A directory in place of the temporary cursor file makes saving fail.
	tmp := filepath.Join(dir, cursorFile("u")+".tmp")
	if err := os.Mkdir(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := ob.Ack("u", got[2].Seq); err == nil {
		t.Fatal("Ack reported no error although the cursor could not be saved")
	}
	if ob.Backlog("u") != 3 {
		t.Fatalf("backlog %d after the ack, want 3", ob.Backlog("u"))
	}
	rest, err := ob.Pending("u", 100)
	if err != nil {
		t.Fatal(err)
	}
	wantRange(t, rest, 3, 3)
}
