// Package outbox is the logger's durable queue of readings awaiting upload.
//
// Readings are appended to segment files in a directory, each record framed
// with a magic, its length, a CRC-32C and its sequence number (frame.go).
// Append returns after fsync, so a reading survives SIGKILL and power loss.
// Each consumer (an uplink) has its own cursor, persisted atomically in its
// own file, so a dead target never holds back a live one. The outbox is
// bounded: only when more than Max readings are waiting are the oldest
// dropped, with a warning, and counted.
//
// Damage is contained and loud: a damaged record is skipped and the reader
// resyncs at the next one; a torn tail of the newest segment is cut on
// Open; deleted segment or cursor files cost only what they held. Sequence
// numbers never go backwards (a reservation is persisted in the state
// file), so no consumer's position is ever ahead of the log; one found
// ahead (files deleted or cut) is repaired on Open. Each of these is logged
// and counted (Lost, Repairs).
//
// Memory use does not grow with the backlog: only the segment list and the
// cursors are kept in memory.
package outbox

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// Item is one queued reading: its sequence number, the meter that took it
// and the reading itself.
type Item struct {
	Seq     uint64          `json:"-"`
	Meter   string          `json:"m"`
	Reading reading.Reading `json:"r"`
}

// Options tune an outbox.
type Options struct {
	// Max is the most readings kept waiting (default 30 days × 10 meters at
	// 10 s). When an Append would exceed it, the oldest are dropped.
	Max int
	// SegmentRecords is how many records go into one segment file before a
	// new one is started (default 4096).
	SegmentRecords int
	Log            *slog.Logger
}

type segment struct {
	first  uint64 // seq of the first record
	count  uint64 // the numbers the file covers (first … first+count-1)
	path   string
	legacy bool // written by an earlier version (read only)
}

type readHint struct {
	seq    uint64 // next seq expected at offset
	first  uint64 // segment it refers to
	offset int64
}

// Outbox is a durable, bounded, multi-consumer queue. It is safe for
// concurrent use.
type Outbox struct {
	dir  string
	opts Options
	log  *slog.Logger

	mu    sync.Mutex
	segs  []segment
	w     *os.File // the newest segment, open for appending (nil: start a new one)
	wSize int64
	next  uint64 // seq the next record gets
	head  uint64 // oldest seq still kept (earlier ones were dropped)
	// droppedBelow is the head the bound set (numbers below it were
	// dropped and counted).
	droppedBelow uint64
	// cut is the range of numbers Open found cut or deleted at the end of
	// the log that had records.
	cut [2]uint64
	// saved tells that the state file was written in this run.
	saved     bool
	st        state
	cursors   map[string]uint64
	consumers map[string]bool
	hints     map[string]readHint
	noted     map[string]uint64 // per consumer: losses below it were reported
	restored  map[string]bool   // cursors taken from the state's copy
	dropped   uint64
	lost      uint64
	repairs   uint64
	notify    chan struct{}
	closed    bool
	// rd is reused by reads (under mu) to keep garbage low.
	rd   segReader
	lock *os.File
}

// Open opens (or creates) the outbox in dir.
func Open(dir string, opts Options) (*Outbox, error) {
	if opts.Max <= 0 {
		opts.Max = 30 * 8640 * 10
	}
	if opts.SegmentRecords <= 0 {
		opts.SegmentRecords = 4096
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("outbox: create %s: %w", dir, err)
	}
	o := &Outbox{
		dir: dir, opts: opts, log: opts.Log,
		cursors:   map[string]uint64{},
		consumers: map[string]bool{},
		hints:     map[string]readHint{},
		noted:     map[string]uint64{},
		restored:  map[string]bool{},
		notify:    make(chan struct{}),
	}
	_, err := os.Stat(filepath.Join(dir, "lock"))
	used := err == nil
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	o.lock = lock
	if err := o.load(used); err != nil {
		o.unlock()
		return nil, err
	}
	return o, nil
}

// load reads the directory; used tells that it held an outbox before.
func (o *Outbox) load(used bool) error {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return fmt.Errorf("outbox: read %s: %w", o.dir, err)
	}
	st, err := readState(o.dir)
	if err != nil {
		o.log.Error("outbox: unreadable state file; numbering continues after the files found", "err", err)
		o.repairs++
	}
	o.st = st
	hasState, hasLegacy := false, false
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, segExt) || strings.HasSuffix(name, legacyExt):
			legacy := strings.HasSuffix(name, legacyExt)
			hasLegacy = hasLegacy || legacy
			first, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSuffix(name, segExt), legacyExt), 16, 64)
			if err != nil || !e.Type().IsRegular() {
				o.log.Warn("outbox: ignoring a file with a foreign name or type", "file", name)
				continue
			}
			o.segs = append(o.segs, segment{first: first, path: filepath.Join(o.dir, name), legacy: legacy})
		case strings.HasPrefix(name, "cursor-") && !strings.HasSuffix(name, ".tmp"):
			raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(name, "cursor-"))
			if err != nil {
				continue
			}
			v, err := readUint(filepath.Join(o.dir, name))
			if err != nil {
				o.log.Warn("outbox: unreadable cursor file", "consumer", string(raw), "err", err)
				continue
			}
			o.cursors[string(raw)] = v
		case name == "head":
			v, err := readUint(filepath.Join(o.dir, name))
			if err != nil {
				o.log.Warn("outbox: unreadable head file", "err", err)
				continue
			}
			o.head = v
			o.droppedBelow = v
		case name == stateFile:
			hasState = true
		}
	}
	if used && !hasState && !hasLegacy {
		// Not a first start, nor an outbox of an earlier version.
		o.log.Error("outbox: the state file is missing (deleted?); positions and numbering start from the files that are left")
		o.repairs++
	}
	// A consumer whose cursor file is gone resumes at the copy in the state.
	for name, v := range st.Cursors {
		if _, ok := o.cursors[name]; !ok {
			o.log.Error("outbox: a consumer's cursor file is missing; resuming at its position saved in the state file (readings sent after that are sent again)", "consumer", name, "position", v)
			o.repairs++
			o.cursors[name] = v
			o.restored[name] = true
		}
	}
	sort.Slice(o.segs, func(i, j int) bool { return o.segs[i].first < o.segs[j].first })
	for i := 0; i+1 < len(o.segs); i++ {
		s := &o.segs[i]
		s.count = o.segs[i+1].first - s.first
		// A segment ends where a jump begins.
		for _, j := range o.st.Jumps {
			if j[0] >= s.first && j[0] < s.first+s.count {
				s.count = j[0] - s.first
			}
		}
	}
	derived := o.head
	if len(o.segs) > 0 {
		last := &o.segs[len(o.segs)-1]
		span, good, err := o.scanNewest(last)
		if err != nil {
			return err
		}
		last.count = span
		derived = last.first + span
		if !last.legacy {
			f, err := os.OpenFile(last.path, os.O_RDWR|os.O_APPEND, 0o644)
			if err != nil {
				return fmt.Errorf("outbox: open %s: %w", last.path, err)
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return fmt.Errorf("outbox: sync %s: %w", last.path, err)
			}
			o.w, o.wSize = f, good
		}
	}
	// The numbering must continue above every position and every number
	// that may have been handed out.
	floor, why := o.head, "head"
	for name, c := range o.cursors {
		if c > floor {
			floor, why = c, "position of "+name
		}
	}
	if o.st.Next > floor {
		floor, why = o.st.Next, "numbers handed out before"
	}
	hadRecords := floor // numbers below it had records
	if o.st.Reserved > floor && (len(o.segs) == 0 || o.segs[len(o.segs)-1].first < o.st.ReservedSeg) {
		floor, why = o.st.Reserved, "numbers reserved before (the newest segment file is missing)"
	}
	o.next = derived
	if floor > derived {
		o.log.Error("outbox: the log ends before numbers already used: segment files were deleted or cut; the numbering continues after them", "log_end", derived, "continues_at", floor, "because", why)
		o.repairs++
		// Records up to a cursor or the saved next number existed: a
		// consumer behind them lost them (counted when it registers).
		o.cut = [2]uint64{derived, hadRecords}
		o.st.Jumps = append(o.st.Jumps, [2]uint64{derived, floor})
		o.next = floor
		if o.w != nil {
			o.w.Close()
			o.w = nil // the next append starts a new segment at the new number
		}
		if err := o.saveState(); err != nil {
			return err
		}
	}
	if o.head > o.next {
		o.head = o.next
	}
	if len(o.segs) > 0 && o.head < o.segs[0].first {
		o.head = o.segs[0].first
	}
	o.pruneJumps(o.head)
	if !hasState && !o.saved {
		// From now on a missing state file means it was deleted.
		if err := o.saveState(); err != nil {
			o.log.Warn("outbox: cannot save the state file", "err", err)
		}
	}
	return nil
}

// scanNewest counts the numbers the newest segment covers and cuts a torn
// or damaged tail. It returns the span and the size kept.
func (o *Outbox) scanNewest(s *segment) (span uint64, good int64, err error) {
	f, err := os.Open(s.path)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: open %s: %w", s.path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: %w", err)
	}
	r := segReader{f: f, size: fi.Size(), legacy: s.legacy}
	expect := s.first
	var rerr error
	for {
		seq, _, err := r.next()
		if err != nil {
			rerr = err
			break
		}
		if seq < expect || seq-expect > uint64(maxPayload) {
			continue // not a record of this place (garbage that passed the CRC)
		}
		expect = seq + 1
		good = r.off
	}
	if rerr != nil && !errors.Is(rerr, io.EOF) && !errors.Is(rerr, errTail) {
		return 0, 0, fmt.Errorf("outbox: read %s: %w", s.path, rerr)
	}
	if r.skipped > 0 {
		o.log.Error("outbox: damaged records in the newest segment; they are skipped, the records after them kept", "file", filepath.Base(s.path), "bytes", r.skipped)
	}
	if fi.Size() > good && !s.legacy {
		o.repairs++
		o.log.Warn("outbox: cutting a torn or corrupt tail (a write was interrupted)", "file", filepath.Base(s.path), "bytes", fi.Size()-good)
		if err := os.Truncate(s.path, good); err != nil {
			return 0, 0, fmt.Errorf("outbox: cut torn tail of %s: %w", s.path, err)
		}
	}
	return expect - s.first, good, nil
}

// Append stores items durably (fsync) and returns how many of them it
// stored: on an error the first n are stored (and must not be appended
// again), the rest are not. Seq in the items is ignored.
func (o *Outbox) Append(items []Item) (n int, err error) {
	if len(items) == 0 {
		return 0, nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return 0, errors.New("outbox: closed")
	}
	o.checkOpenSegment()
	stored := 0
	for stored < len(items) {
		if err = o.appendChunk(items[stored:], &stored); err != nil {
			break
		}
	}
	if stored == 0 {
		return 0, err
	}
	o.bound()
	close(o.notify)
	o.notify = make(chan struct{})
	return stored, err
}

// checkOpenSegment restores the open segment's file when it was deleted or
// replaced while open: its content is still readable through the open
// handle. Called with mu held.
func (o *Outbox) checkOpenSegment() {
	if o.w == nil {
		return
	}
	seg := o.segs[len(o.segs)-1]
	wfi, err := o.w.Stat()
	if err != nil {
		return
	}
	if fi, err := os.Stat(seg.path); err == nil && os.SameFile(fi, wfi) {
		if size := wfi.Size(); size < o.wSize {
			// Cut under us: what was past the cut is gone; appends go on
			// at the new end and reads must not trust old offsets.
			o.log.Error("outbox: the open segment file was cut while open; the readings past the cut are lost", "file", filepath.Base(seg.path), "bytes", o.wSize-size)
			o.repairs++
			o.wSize = size
			clear(o.hints)
		}
		return
	}
	o.repairs++
	data := make([]byte, o.wSize)
	if _, err := o.w.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
		o.log.Error("outbox: the open segment file was deleted and cannot be read back; starting a new one", "file", filepath.Base(seg.path), "err", err)
		o.w.Close()
		o.w = nil
		return
	}
	o.log.Error("outbox: the open segment file was deleted or replaced; restored it from the open file", "file", filepath.Base(seg.path), "bytes", len(data))
	if err := writeFileAtomic(o.dir, filepath.Base(seg.path), data); err != nil {
		o.log.Error("outbox: cannot restore the open segment; starting a new one", "err", err)
		o.w.Close()
		o.w = nil
		return
	}
	f, err := os.OpenFile(seg.path, os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		o.log.Error("outbox: cannot reopen the restored segment; starting a new one", "err", err)
		o.w.Close()
		o.w = nil
		return
	}
	o.w.Close()
	o.w = f
}

// appendChunk writes as many of rest as fit into the open segment (starting
// a new one when it is full) and adds how many it stored to *stored.
func (o *Outbox) appendChunk(rest []Item, stored *int) error {
	if o.w == nil || o.segs[len(o.segs)-1].count >= uint64(o.opts.SegmentRecords) {
		if err := o.rotate(); err != nil {
			return err
		}
	}
	seg := &o.segs[len(o.segs)-1]
	room := uint64(o.opts.SegmentRecords) - min(seg.count, uint64(o.opts.SegmentRecords))
	n := min(uint64(len(rest)), room)
	if o.next+n > o.st.Reserved {
		// Reserve numbers before handing them out, a segment at a time.
		o.st.Reserved, o.st.ReservedSeg = max(o.next+n, seg.first+uint64(o.opts.SegmentRecords)), seg.first
		if err := o.saveState(); err != nil {
			return err
		}
	}
	var buf []byte
	for i := uint64(0); i < n; i++ {
		payload, err := json.Marshal(&rest[i])
		if err != nil {
			return fmt.Errorf("outbox: encode reading of %s: %w", rest[i].Meter, err)
		}
		buf = appendFrame(buf, o.next+i, payload)
	}
	if _, err := o.w.Write(buf); err != nil {
		// Leave the file as it was so a later Append starts clean.
		_ = o.w.Truncate(o.wSize)
		return fmt.Errorf("outbox: write %s: %w", seg.path, err)
	}
	if err := o.w.Sync(); err != nil {
		_ = o.w.Truncate(o.wSize)
		return fmt.Errorf("outbox: sync %s: %w", seg.path, err)
	}
	o.wSize += int64(len(buf))
	seg.count += n
	o.next += n
	*stored += int(n)
	return nil
}

// bound drops the oldest readings when more than Max wait for the slowest
// consumer; readings every consumer has handled do not count.
func (o *Outbox) bound() {
	low := o.low()
	if o.next-low-o.jumped(low, o.next) <= uint64(o.opts.Max) {
		return
	}
	o.dropTo(o.next-uint64(o.opts.Max), low)
}

// low is the oldest reading some consumer still waits for (head when there
// is no consumer).
func (o *Outbox) low() uint64 {
	if len(o.consumers) == 0 {
		return o.head
	}
	low := o.next
	for c := range o.consumers {
		low = min(low, o.from(c))
	}
	return low
}

// rotate starts a new segment file.
func (o *Outbox) rotate() error {
	if o.w != nil {
		if err := o.w.Close(); err != nil {
			return fmt.Errorf("outbox: close segment: %w", err)
		}
		o.w = nil
	}
	if len(o.segs) > 0 {
		// The previous segment ends here (it may have been cut short).
		last := &o.segs[len(o.segs)-1]
		last.count = min(last.count, o.next-last.first)
	}
	path := filepath.Join(o.dir, fmt.Sprintf("%016x%s", o.next, segExt))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("outbox: create segment: %w", err)
	}
	if err := syncDir(o.dir); err != nil {
		f.Close()
		return err
	}
	o.w, o.wSize = f, 0
	o.segs = append(o.segs, segment{first: o.next, path: path})
	// Save the cursors' copy and a reservation for the new segment.
	o.pruneJumps(o.head)
	o.st.Reserved, o.st.ReservedSeg = max(o.st.Reserved, o.next+uint64(o.opts.SegmentRecords)), o.next
	if err := o.saveState(); err != nil {
		o.log.Error("outbox: cannot save the state file", "err", err)
	}
	return nil
}

// dropTo drops every record before seq (the bound was hit); the ones from
// low on had not been handled by every consumer and count as dropped.
func (o *Outbox) dropTo(seq, low uint64) {
	n := seq - low - o.jumped(low, seq)
	o.dropped += n
	o.log.Warn("outbox full: dropped the oldest readings", "dropped", n, "dropped_total", o.dropped, "max", o.opts.Max)
	o.head, o.droppedBelow = seq, seq
	if err := writeUintAtomic(o.dir, "head", seq); err != nil {
		o.log.Error("outbox: cannot persist the head", "err", err)
	}
	o.removeBelow(seq, false)
}

// removeBelow deletes segments whose records all lie before seq. With
// keepTail the two newest segments stay (the newest readings serve
// LastTimes after a restart).
func (o *Outbox) removeBelow(seq uint64, keepTail bool) {
	limit := len(o.segs) - 1 // never the open one
	if keepTail {
		limit = len(o.segs) - 2
	}
	i := 0
	for ; i < limit; i++ {
		s := o.segs[i]
		if s.first+s.count > seq {
			break
		}
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			o.log.Error("outbox: cannot remove a sent segment", "file", s.path, "err", err)
			break
		}
	}
	if i > 0 {
		o.segs = append(o.segs[:0], o.segs[i:]...)
	}
	if len(o.segs) > 0 {
		o.head = max(o.head, o.segs[0].first)
	}
}

// Consumer registers name (an uplink) as a reader. A new consumer starts
// at the oldest waiting reading; a known one where it stopped.
func (o *Outbox) Consumer(name string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.consumers[name] = true
	// A known consumer behind the oldest segment (above what the bound
	// dropped) lost the readings of deleted segment files.
	// (A position restored from the state's copy may be behind segments
	// removed after it had passed them: no loss.)
	if c, ok := o.cursors[name]; ok && !o.restored[name] && c < o.head && o.head > o.droppedBelow {
		o.skip(name, max(c, o.droppedBelow), o.head, "the oldest segment files are missing (deleted?)")
	}
	// A consumer behind records cut or deleted at the end of the log.
	if from, a, b := o.from(name), o.cut[0], o.cut[1]; from < b {
		a = max(a, from, o.noted[name])
		if b > a {
			o.noted[name] = b
			o.lost += b - a
			o.log.Error("outbox: readings lost: the end of the log was cut or deleted before they were sent", "consumer", name, "from", a, "to", b-1, "lost", b-a, "lost_total", o.lost)
		}
	}
}

// from is where consumer name reads next: its cursor, never below the head
// nor above the newest record.
func (o *Outbox) from(name string) uint64 {
	return min(max(o.cursors[name], o.head), o.next)
}

// Backlog is how many readings wait for consumer name.
func (o *Outbox) Backlog(name string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	from := o.from(name)
	return int(o.next - from - o.jumped(from, o.next))
}

// Len is how many readings are kept.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return int(o.next - o.head - o.jumped(o.head, o.next))
}

// Dropped counts the readings dropped because the bound was hit since Open.
func (o *Outbox) Dropped() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped
}

// Lost counts, since Open, the readings a consumer could not be given
// because their records were damaged or their files deleted or cut (once
// per consumer that met them; a range found missing by Open, once).
func (o *Outbox) Lost() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lost
}

// Repairs counts the repairs since Open: a numbering continued after
// deleted or cut files, a missing cursor file restored from the state, an
// open segment file restored after it was deleted.
func (o *Outbox) Repairs() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.repairs
}

// Notify returns a channel closed at the next Append.
func (o *Outbox) Notify() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.notify
}

// Pending returns up to max readings waiting for consumer name, oldest
// first. Damaged or deleted records are passed over, logged and counted.
func (o *Outbox) Pending(name string, max int) ([]Item, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil, errors.New("outbox: closed")
	}
	from := o.from(name)
	if from >= o.next || max <= 0 {
		return nil, nil
	}
	pos := from
	var out []Item
	h, hasHint := o.hints[name]
	for len(out) < max && pos < o.next {
		idx := sort.Search(len(o.segs), func(i int) bool { return o.segs[i].first+o.segs[i].count > pos })
		if idx == len(o.segs) {
			o.skip(name, pos, o.next, "no segment file holds them (deleted?)")
			pos = o.next
			break
		}
		s := o.segs[idx]
		if s.first > pos {
			o.skip(name, pos, s.first, "their segment file is missing")
			pos = s.first
		}
		var off int64
		if hasHint && h.first == s.first && h.seq == pos {
			off = h.offset
		}
		end, after, err := o.readSegment(s, pos, off, max-len(out), &out, func(a, b uint64, why string) { o.skip(name, a, b, why) })
		if errors.Is(err, fs.ErrNotExist) {
			o.skip(name, pos, s.first+s.count, "their segment file was deleted")
			o.segs = append(o.segs[:idx], o.segs[idx+1:]...)
			pos = s.first + s.count
			hasHint = false
			continue
		}
		if err != nil {
			return out, err
		}
		pos = after
		h, hasHint = readHint{seq: pos, first: s.first, offset: end}, true
	}
	o.hints[name] = h
	if len(out) == 0 && pos > from {
		// Everything up to pos was damaged or missing: move past it.
		o.cursors[name] = pos
		if err := writeUintAtomic(o.dir, cursorFile(name), pos); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// skip reports numbers a..b-1 that consumer name has to pass without
// records (recorded jumps excepted), once.
func (o *Outbox) skip(name string, a, b uint64, why string) {
	a = max(a, o.noted[name])
	if b <= a {
		return
	}
	o.noted[name] = b
	n := b - a - o.jumped(a, b)
	if n == 0 {
		return
	}
	o.lost += n
	o.log.Error("outbox: readings lost: "+why, "consumer", name, "from", a, "to", b-1, "lost", n, "lost_total", o.lost)
}

// readSegment appends records seq.. (up to n) of s, starting the scan at
// offset off (0 or a position known to hold seq). It returns the offset
// after the last record read and the number to read next; numbers without
// a good record go to lost. Called with mu held.
func (o *Outbox) readSegment(s segment, seq uint64, off int64, n int, out *[]Item, lost func(a, b uint64, why string)) (int64, uint64, error) {
	var f io.ReaderAt
	var size int64
	if o.w != nil && len(o.segs) > 0 && s.path == o.segs[len(o.segs)-1].path {
		f, size = o.w, o.wSize
	} else {
		file, err := os.Open(s.path)
		if err != nil {
			return 0, seq, fmt.Errorf("outbox: open %s: %w", s.path, err)
		}
		defer file.Close()
		fi, err := file.Stat()
		if err != nil {
			return 0, seq, fmt.Errorf("outbox: %w", err)
		}
		f, size = file, fi.Size()
	}
	r := &o.rd
	r.f, r.size, r.off, r.legacy, r.win, r.skipped = f, size, off, s.legacy, nil, 0
	defer func() { r.f, r.win = nil, nil }()
	end := s.first + s.count
	got := 0
	for got < n && seq < end {
		rs, payload, err := r.next()
		if errors.Is(err, io.EOF) || errors.Is(err, errTail) {
			lost(seq, end, "damaged, cut or missing records at the end of "+filepath.Base(s.path))
			return r.off, end, nil
		}
		if err != nil {
			return r.off, seq, fmt.Errorf("outbox: read %s at %d: %w", s.path, r.off, err)
		}
		if rs < seq {
			continue
		}
		if rs >= end {
			lost(seq, end, "damaged records in "+filepath.Base(s.path))
			return r.off, end, nil
		}
		if rs > seq {
			lost(seq, rs, "damaged records in "+filepath.Base(s.path))
		}
		var it Item
		if err := json.Unmarshal(payload, &it); err != nil {
			lost(rs, rs+1, "an undecodable record in "+filepath.Base(s.path))
			seq = rs + 1
			continue
		}
		it.Seq = rs
		*out = append(*out, it)
		got++
		seq = rs + 1
	}
	return r.off, seq, nil
}

// Ack records that consumer name has handled every reading up to and
// including seq. The cursor moves at once; it is persisted before Ack
// returns. When persisting fails the error is returned, but the cursor is
// not moved back: what was sent is not sent again in this run (after a
// restart it may be, from the last persisted position).
func (o *Outbox) Ack(name string, seq uint64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if seq+1 <= o.from(name) {
		return nil
	}
	if seq >= o.next {
		return fmt.Errorf("outbox: ack of %d beyond the newest record %d", seq, o.next)
	}
	o.cursors[name] = seq + 1
	if err := writeUintAtomic(o.dir, cursorFile(name), seq+1); err != nil {
		// Keep the segments: a restart starts from the persisted cursor.
		return err
	}
	// Segments every consumer has passed can go.
	o.removeBelow(o.low(), true)
	return nil
}

// LastTimes returns, per key meter+"\x00"+device, the newest reading time
// among the kept readings that are newer than since. It reads the newest
// segments only, as far back as needed.
func (o *Outbox) LastTimes(since time.Time) (map[string]time.Time, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]time.Time{}
	ignore := func(a, b uint64, why string) {}
	for i := len(o.segs) - 1; i >= 0; i-- {
		s := o.segs[i]
		var items []Item
		if _, _, err := o.readSegment(s, max(s.first, o.head), 0, int(s.count), &items, ignore); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return out, err
		}
		older := true
		for _, it := range items {
			t := it.Reading.Time
			if t.After(since) {
				older = false
				k := it.Meter + "\x00" + it.Reading.Device
				if t.After(out[k]) {
					out[k] = t
				}
			}
		}
		if older && len(items) > 0 {
			break
		}
	}
	return out, nil
}

// Close saves the state (a copy of the cursors) and closes the open
// segment.
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	defer o.unlock()
	if err := o.saveState(); err != nil {
		o.log.Warn("outbox: cannot save the state file", "err", err)
	}
	if o.w != nil {
		return o.w.Close()
	}
	return nil
}

func (o *Outbox) unlock() {
	if o.lock != nil {
		o.lock.Close()
		o.lock = nil
	}
}

func cursorFile(name string) string {
	return "cursor-" + base64.RawURLEncoding.EncodeToString([]byte(name))
}
