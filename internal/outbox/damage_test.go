package outbox

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func logTo(b *bytes.Buffer) *slog.Logger { return slog.New(slog.NewTextHandler(b, nil)) }

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := filepath.Glob(filepath.Join(dir, "*"+segExt))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(segs)
	return segs
}

func removeAll(t *testing.T, paths []string) {
	t.Helper()
	for _, p := range paths {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// The attack: `rm outbox/*.seg` with the cursor at 30, then 15 readings
// were taken and none sent. Now the numbering continues after the cursor,
// loudly, and the 15 arrive.
func TestDeletedSegmentsDoNotSilenceNewReadings(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{})
	ob.Consumer("u")
	if _, err := ob.Append(items("m", 0, 40)); err != nil {
		t.Fatal(err)
	}
	got, _ := ob.Pending("u", 30)
	if err := ob.Ack("u", got[29].Seq); err != nil {
		t.Fatal(err)
	}
	ob.Close()
	removeAll(t, segFiles(t, dir))

	var logs bytes.Buffer
	ob2 := open(t, dir, Options{Log: logTo(&logs)})
	ob2.Consumer("u")
	if b := ob2.Backlog("u"); b != 0 {
		t.Fatalf("backlog %d right after the segments were deleted, want 0", b)
	}
	if _, err := ob2.Append(items("m", 100, 15)); err != nil {
		t.Fatal(err)
	}
	if b := ob2.Backlog("u"); b != 15 {
		t.Fatalf("backlog %d, want 15", b)
	}
	wantRange(t, drain(t, ob2, "u", 4), 100, 15)
	if ob2.Backlog("u") != 0 || ob2.Len() != 0 && ob2.Len() != 15 {
		t.Fatalf("backlog %d len %d after the drain", ob2.Backlog("u"), ob2.Len())
	}
	if ob2.Repairs() != 1 || !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "numbering continues") {
		t.Fatalf("repair not logged or counted (%d): %s", ob2.Repairs(), logs.String())
	}
}

// Numbers never go backwards, even with every segment and cursor file
// gone: the reservation in the state file carries the numbering.
func TestNumbersNeverGoBackwards(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{SegmentRecords: 8})
	ob.Consumer("u")
	if _, err := ob.Append(items("m", 0, 20)); err != nil {
		t.Fatal(err)
	}
	drain(t, ob, "u", 100)
	ob.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "cursor-*"))
	removeAll(t, append(segFiles(t, dir), files...))

	ob2 := open(t, dir, Options{SegmentRecords: 8, Log: slog.New(slog.DiscardHandler)})
	ob2.Consumer("u")
	if _, err := ob2.Append(items("m", 20, 3)); err != nil {
		t.Fatal(err)
	}
	got, err := ob2.Pending("u", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Seq < 20 {
		t.Fatalf("after deleting everything: %d items, first seq %d (want ≥ 20)", len(got), got[0].Seq)
	}
}

// A flipped byte in the middle of the newest segment costs that record
// only; the ones after it survive the reopen (they used to be cut off).
func TestFlippedByteInTheNewestSegmentCostsOneRecord(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{})
	ob.Consumer("u")
	if _, err := ob.Append(items("m", 0, 20)); err != nil {
		t.Fatal(err)
	}
	ob.Close()
	seg := segFiles(t, dir)[0]
	data, _ := os.ReadFile(seg)
	data[len(data)/3] ^= 0x40
	os.WriteFile(seg, data, 0o644)

	var logs bytes.Buffer
	ob2 := open(t, dir, Options{Log: logTo(&logs)})
	ob2.Consumer("u")
	got := drain(t, ob2, "u", 100)
	if len(got) != 19 {
		t.Fatalf("got %d of 20 after one flipped byte, want 19: %v", len(got), powers(got))
	}
	if ob2.Lost() != 1 || !strings.Contains(logs.String(), "readings lost") {
		t.Fatalf("loss not counted (%d) or logged: %s", ob2.Lost(), logs.String())
	}
	if _, err := ob2.Append(items("m", 20, 5)); err != nil {
		t.Fatal(err)
	}
	wantRange(t, drain(t, ob2, "u", 100), 20, 5)
}

// Every kind of damage to a frame (magic, length, CRC, seq, payload) is
// passed over at the next record.
func TestResyncAfterDamageAnywhereInAFrame(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{SegmentRecords: 100})
	ob.Consumer("u")
	if _, err := ob.Append(items("m", 0, 10)); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Append(items("m", 10, 10)); err != nil {
		t.Fatal(err) // two appends: the damage is in the middle
	}
	ob.Close()
	seg := segFiles(t, dir)[0]
	orig, _ := os.ReadFile(seg)
	recLen := len(orig) / 20 // records are of (nearly) equal size
	for off := 0; off < headerSize+8; off++ {
		data := bytes.Clone(orig)
		at := 5*recLen + off
		for at < len(data) && at >= 0 && !bytes.Equal(data[at-off:at-off+4], magic[:]) {
			at-- // start of record 5's frame
		}
		data[at] ^= 0xff
		os.WriteFile(seg, data, 0o644)
		os.Remove(filepath.Join(dir, cursorFile("u")))
		os.Remove(filepath.Join(dir, stateFile))
		ob2 := open(t, dir, Options{SegmentRecords: 100, Log: slog.New(slog.DiscardHandler)})
		ob2.Consumer("u")
		got := drain(t, ob2, "u", 3)
		ob2.Close()
		if len(got) != 19 {
			t.Fatalf("byte %d of a frame flipped: got %d readings, want 19: %v", off, len(got), powers(got))
		}
	}
}

// A torn or cut newest segment whose lost records had been sent leaves the
// cursor ahead of the log: the numbering continues after the cursor and
// new readings are sent (they used to be skipped, with a negative backlog).
func TestCursorAheadOfACutLogIsRepaired(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{})
	ob.Consumer("u")
	ob.Consumer("slow")
	if _, err := ob.Append(items("m", 0, 20)); err != nil {
		t.Fatal(err)
	}
	drain(t, ob, "u", 100)
	ob.Close()
	seg := segFiles(t, dir)[0]
	fi, _ := os.Stat(seg)
	os.Truncate(seg, fi.Size()/2)

	var logs bytes.Buffer
	ob2 := open(t, dir, Options{Log: logTo(&logs)})
	ob2.Consumer("u")
	ob2.Consumer("slow")
	if b := ob2.Backlog("u"); b != 0 {
		t.Fatalf("backlog %d, want 0", b)
	}
	if b := ob2.Backlog("slow"); b < 9 || b > 20 {
		t.Fatalf("slow backlog %d, want what survived the cut", b)
	}
	if _, err := ob2.Append(items("m", 20, 5)); err != nil {
		t.Fatal(err)
	}
	wantRange(t, drain(t, ob2, "u", 100), 20, 5)
	slow := drain(t, ob2, "slow", 100)
	wantRange(t, slow[len(slow)-5:], 20, 5)
	wantRange(t, slow[:len(slow)-5], 0, len(slow)-5)
	if ob2.Repairs() == 0 || !strings.Contains(logs.String(), "numbering continues") {
		t.Fatalf("repair not counted (%d) or logged: %s", ob2.Repairs(), logs.String())
	}
	// The slow consumer lost the cut records, and that is counted.
	if ob2.Lost() != uint64(20-(len(slow)-5)) {
		t.Fatalf("lost %d, want %d", ob2.Lost(), 20-(len(slow)-5))
	}
	if ob2.Backlog("u") != 0 || ob2.Backlog("slow") != 0 {
		t.Fatalf("backlogs %d %d", ob2.Backlog("u"), ob2.Backlog("slow"))
	}
	// A restart does not report the jump again.
	ob2.Close()
	logs.Reset()
	ob3 := open(t, dir, Options{Log: logTo(&logs)})
	ob3.Consumer("u")
	ob3.Consumer("slow")
	if _, err := ob3.Append(items("m", 25, 2)); err != nil {
		t.Fatal(err)
	}
	wantRange(t, drain(t, ob3, "slow", 100), 25, 2)
	if ob3.Repairs() != 0 || ob3.Lost() != 0 || strings.Contains(logs.String(), "ERROR") {
		t.Fatalf("restart after the repair: repairs %d lost %d: %s", ob3.Repairs(), ob3.Lost(), logs.String())
	}
}

// A deleted cursor file: the consumer resumes at the copy saved in the
// state file, not at the oldest reading (no doubles after a clean stop).
func TestDeletedCursorResumesFromTheState(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{})
	ob.Consumer("u")
	if _, err := ob.Append(items("m", 0, 30)); err != nil {
		t.Fatal(err)
	}
	got, _ := ob.Pending("u", 20)
	ob.Ack("u", got[19].Seq)
	ob.Close()
	removeAll(t, []string{filepath.Join(dir, cursorFile("u"))})

	var logs bytes.Buffer
	ob2 := open(t, dir, Options{Log: logTo(&logs)})
	ob2.Consumer("u")
	wantRange(t, drain(t, ob2, "u", 100), 20, 10)
	if ob2.Repairs() != 1 || !strings.Contains(logs.String(), "cursor file is missing") {
		t.Fatalf("not counted (%d) or logged: %s", ob2.Repairs(), logs.String())
	}
}

// Segment and cursor files deleted while the outbox is open: the open
// segment is restored from its open file, a sealed one costs only what it
// held that was not sent, cursors are rewritten at the next ack.
func TestFilesDeletedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	ob := open(t, dir, Options{SegmentRecords: 5, Log: logTo(&logs)})
	ob.Consumer("u")
	if _, err := ob.Append(items("m", 0, 10)); err != nil {
		t.Fatal(err)
	}
	wantRange(t, drain(t, ob, "u", 3), 0, 10)
	if _, err := ob.Append(items("m", 10, 8)); err != nil {
		t.Fatal(err)
	}
	got, _ := ob.Pending("u", 2)
	ob.Ack("u", got[1].Seq) // 10, 11 sent; 12…17 wait in 000a (sealed) and 000f (open)
	files, _ := filepath.Glob(filepath.Join(dir, "cursor-*"))
	removeAll(t, append(segFiles(t, dir), files...))

	if _, err := ob.Append(items("m", 18, 2)); err != nil {
		t.Fatal(err)
	}
	rest := drain(t, ob, "u", 100)
	// 12…14 were in the deleted sealed segment; 15…19 in the open one.
	wantRange(t, rest, 15, 5)
	if ob.Lost() != 3 || ob.Repairs() != 1 {
		t.Fatalf("lost %d repairs %d, want 3 and 1:\n%s", ob.Lost(), ob.Repairs(), logs.String())
	}
	if ob.Backlog("u") != 0 {
		t.Fatalf("backlog %d", ob.Backlog("u"))
	}
	if _, err := os.Stat(filepath.Join(dir, cursorFile("u"))); err != nil {
		t.Fatalf("cursor not rewritten: %v", err)
	}
	ob.Close()
	ob2 := open(t, dir, Options{SegmentRecords: 5, Log: slog.New(slog.DiscardHandler)})
	ob2.Consumer("u")
	if b := ob2.Backlog("u"); b != 0 {
		t.Fatalf("backlog %d after a restart", b)
	}
}

// Segments of the earlier format (*.seg, no magic) are still read, and
// new records go to a new segment.
func TestLegacySegmentsAreRead(t *testing.T) {
	dir := t.TempDir()
	var buf []byte
	for i, it := range items("m", 0, 5) {
		payload, _ := jsonMarshal(it)
		buf = appendLegacyFrame(buf, uint64(i), payload)
	}
	os.WriteFile(filepath.Join(dir, "0000000000000000"+legacyExt), buf, 0o644)
	os.WriteFile(filepath.Join(dir, cursorFile("u")), []byte("2\n"), 0o644)
	ob := open(t, dir, Options{})
	ob.Consumer("u")
	if _, err := ob.Append(items("m", 5, 3)); err != nil {
		t.Fatal(err)
	}
	wantRange(t, drain(t, ob, "u", 100), 2, 6)
	if len(segFiles(t, dir)) != 1 {
		t.Fatalf("no new-format segment: %v", segFiles(t, dir))
	}
}

func jsonMarshal(it Item) ([]byte, error) { return json.Marshal(&it) }

// appendLegacyFrame writes a record as the earlier version did.
func appendLegacyFrame(dst []byte, seq uint64, payload []byte) []byte {
	var h [legacyHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:16], seq)
	c := crc32.Update(0, castagnoli, h[8:16])
	c = crc32.Update(c, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:8], c)
	return append(append(dst, h[:]...), payload...)
}

// A logger killed before its first append is no repair on the next start.
func TestKilledBeforeTheFirstAppendIsNoRepair(t *testing.T) {
	dir := t.TempDir()
	h := &faultHarness{t: t, dir: dir, sent: map[int]int{}}
	h.open()
	h.crash()
	var logs bytes.Buffer
	ob := open(t, dir, Options{Log: logTo(&logs)})
	ob.Consumer("u")
	if ob.Repairs() != 0 || logs.Len() != 0 {
		t.Fatalf("repairs %d: %s", ob.Repairs(), logs.String())
	}
}

// The open segment cut while a consumer's read position is past the cut:
// the readings appended after the cut still arrive.
func TestOpenSegmentCutUnderAReader(t *testing.T) {
	dir := t.TempDir()
	ob := open(t, dir, Options{Log: slog.New(slog.DiscardHandler)})
	ob.Consumer("u")
	if _, err := ob.Append(items("m", 0, 20)); err != nil {
		t.Fatal(err)
	}
	wantRange(t, drain(t, ob, "u", 100), 0, 20)
	seg := segFiles(t, dir)[0]
	fi, _ := os.Stat(seg)
	if err := os.Truncate(seg, fi.Size()/4); err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Append(items("m", 20, 3)); err != nil {
		t.Fatal(err)
	}
	wantRange(t, drain(t, ob, "u", 100), 20, 3)
	if ob.Repairs() != 1 {
		t.Fatalf("repairs %d", ob.Repairs())
	}
	ob.Close()
	ob2 := open(t, dir, Options{Log: slog.New(slog.DiscardHandler)})
	ob2.Consumer("u")
	if _, err := ob2.Append(items("m", 23, 2)); err != nil {
		t.Fatal(err)
	}
	wantRange(t, drain(t, ob2, "u", 100), 23, 2)
}
