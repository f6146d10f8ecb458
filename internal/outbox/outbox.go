// Package outbox is the logger's durable queue of readings awaiting upload.
//
// Readings are appended to segment files in a directory, each record framed
// as
//
//	length uint32 | crc32c uint32 | seq uint64 | payload (JSON)
//
// (little endian; the CRC covers seq and payload). Append returns after
// fsync, so a reading survives SIGKILL and power loss. On Open a torn or
// corrupt tail of the newest segment (a write cut by a power loss) is cut
// off. Each consumer (an uplink) has its own cursor, persisted atomically in
// its own file, so a dead target never holds back a live one. The outbox is
// bounded: only when more than Max readings are waiting are the oldest
// dropped, with a warning, and counted.
//
// Memory use does not grow with the backlog: only the segment list and the
// cursors are kept in memory.
package outbox

import (
	"bufio"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
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

const (
	headerSize = 16
	// maxPayload bounds one record; a larger length is a corrupt frame.
	maxPayload = 1 << 20
	segExt     = ".seg"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

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
	first uint64 // seq of the first record
	count uint64 // records in the file (known for all but the open one too)
	path  string
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

	mu        sync.Mutex
	segs      []segment
	w         *os.File // the newest segment, open for appending
	wSize     int64
	next      uint64 // seq the next record gets
	head      uint64 // oldest seq still kept (earlier ones were dropped)
	cursors   map[string]uint64
	consumers map[string]bool
	hints     map[string]readHint
	dropped   uint64
	notify    chan struct{}
	closed    bool
	// rd and payload are reused by reads (under mu) to keep garbage low.
	rd      *bufio.Reader
	payload []byte
	lock    *os.File
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
		notify:    make(chan struct{}),
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	o.lock = lock
	if err := o.load(); err != nil {
		o.unlock()
		return nil, err
	}
	return o, nil
}

func (o *Outbox) load() error {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return fmt.Errorf("outbox: read %s: %w", o.dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasSuffix(name, segExt):
			first, err := strconv.ParseUint(strings.TrimSuffix(name, segExt), 16, 64)
			if err != nil {
				o.log.Warn("outbox: ignoring a file with a foreign name", "file", name)
				continue
			}
			o.segs = append(o.segs, segment{first: first, path: filepath.Join(o.dir, name)})
		case strings.HasPrefix(name, "cursor-") && !strings.HasSuffix(name, ".tmp"):
			raw, err := base64.RawURLEncoding.DecodeString(strings.TrimPrefix(name, "cursor-"))
			if err != nil {
				continue
			}
			v, err := readUint(filepath.Join(o.dir, name))
			if err != nil {
				o.log.Warn("outbox: unreadable cursor, starting it from the oldest reading", "consumer", string(raw), "err", err)
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
		}
	}
	sort.Slice(o.segs, func(i, j int) bool { return o.segs[i].first < o.segs[j].first })
	for i := 0; i+1 < len(o.segs); i++ {
		o.segs[i].count = o.segs[i+1].first - o.segs[i].first
	}
	if len(o.segs) == 0 {
		o.next = o.head
		return nil
	}
	// The newest segment: count its good records and cut a torn tail.
	last := &o.segs[len(o.segs)-1]
	n, good, err := scanValid(last.path, last.first)
	if err != nil {
		return err
	}
	fi, err := os.Stat(last.path)
	if err != nil {
		return fmt.Errorf("outbox: %w", err)
	}
	if fi.Size() > good {
		o.log.Warn("outbox: cutting a torn or corrupt tail (a write was interrupted)", "file", filepath.Base(last.path), "bytes", fi.Size()-good)
		if err := os.Truncate(last.path, good); err != nil {
			return fmt.Errorf("outbox: cut torn tail of %s: %w", last.path, err)
		}
	}
	last.count = n
	o.next = last.first + n
	if o.head > o.next {
		o.head = o.next
	}
	if o.head < o.segs[0].first {
		o.head = o.segs[0].first
	}
	f, err := os.OpenFile(last.path, os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("outbox: open %s: %w", last.path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("outbox: sync %s: %w", last.path, err)
	}
	o.w, o.wSize = f, good
	return nil
}

// scanValid counts the valid records of a segment and returns the offset
// after the last one.
func scanValid(path string, first uint64) (n uint64, end int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var buf []byte
	for {
		seq, payload, size, err := readFrame(r, buf)
		if err != nil {
			return n, end, nil
		}
		if seq != first+n {
			return n, end, nil
		}
		buf = payload[:0]
		n++
		end += size
	}
}

var errCorrupt = errors.New("corrupt record")

// damaged reports whether err means the file's content is bad (as opposed
// to the file not being readable right now).
func damaged(err error) bool {
	return errors.Is(err, errCorrupt) || errors.Is(err, io.ErrUnexpectedEOF)
}

// readFrame reads one record; buf is reused for the payload.
func readFrame(r *bufio.Reader, buf []byte) (seq uint64, payload []byte, size int64, err error) {
	var h [headerSize]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, 0, err
	}
	length := binary.LittleEndian.Uint32(h[0:4])
	sum := binary.LittleEndian.Uint32(h[4:8])
	seq = binary.LittleEndian.Uint64(h[8:16])
	if length > maxPayload {
		return 0, nil, 0, errCorrupt
	}
	if cap(buf) < int(length) {
		buf = make([]byte, length)
	}
	payload = buf[:length]
	if _, err := io.ReadFull(r, payload); err != nil {
		return 0, nil, 0, err
	}
	c := crc32.Update(0, castagnoli, h[8:16])
	c = crc32.Update(c, castagnoli, payload)
	if c != sum {
		return 0, nil, 0, errCorrupt
	}
	return seq, payload, headerSize + int64(length), nil
}

func appendFrame(dst []byte, seq uint64, payload []byte) []byte {
	var h [headerSize]byte
	binary.LittleEndian.PutUint32(h[0:4], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[8:16], seq)
	c := crc32.Update(0, castagnoli, h[8:16])
	c = crc32.Update(c, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[4:8], c)
	dst = append(dst, h[:]...)
	return append(dst, payload...)
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

// appendChunk writes as many of rest as fit into the open segment (starting
// a new one when it is full) and adds how many it stored to *stored.
func (o *Outbox) appendChunk(rest []Item, stored *int) error {
	if o.w == nil || o.segs[len(o.segs)-1].count >= uint64(o.opts.SegmentRecords) {
		if err := o.rotate(); err != nil {
			return err
		}
	}
	seg := &o.segs[len(o.segs)-1]
	room := uint64(o.opts.SegmentRecords) - seg.count
	n := min(uint64(len(rest)), room)
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
	if o.next-low <= uint64(o.opts.Max) {
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
	path := filepath.Join(o.dir, fmt.Sprintf("%016x%s", o.next, segExt))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("outbox: create segment: %w", err)
	}
	if err := syncDir(o.dir); err != nil {
		f.Close()
		return err
	}
	o.w, o.wSize = f, 0
	o.segs = append(o.segs, segment{first: o.next, path: path})
	return nil
}

// dropTo drops every record before seq (the bound was hit); the ones from
// low on had not been handled by every consumer and count as dropped.
func (o *Outbox) dropTo(seq, low uint64) {
	n := seq - low
	o.dropped += n
	o.log.Warn("outbox full: dropped the oldest readings", "dropped", n, "dropped_total", o.dropped, "max", o.opts.Max)
	o.head = seq
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
}

func (o *Outbox) from(name string) uint64 {
	c := o.cursors[name]
	if c < o.head {
		c = o.head
	}
	return c
}

// Backlog is how many readings wait for consumer name.
func (o *Outbox) Backlog(name string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return int(o.next - o.from(name))
}

// Len is how many readings are kept.
func (o *Outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return int(o.next - o.head)
}

// Dropped counts the readings dropped because the bound was hit since Open.
func (o *Outbox) Dropped() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dropped
}

// Notify returns a channel closed at the next Append.
func (o *Outbox) Notify() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.notify
}

// Pending returns up to max readings waiting for consumer name, oldest
// first.
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
	want := min(uint64(max), o.next-from)
	out := make([]Item, 0, want)
	h, hasHint := o.hints[name]
	for len(out) < int(want) {
		seq := from + uint64(len(out))
		idx := sort.Search(len(o.segs), func(i int) bool { return o.segs[i].first+o.segs[i].count > seq })
		if idx == len(o.segs) {
			break
		}
		s := o.segs[idx]
		var off int64
		if hasHint && h.first == s.first && h.seq == seq {
			off = h.offset
		}
		got, end, err := o.readSegment(s, seq, off, int(want)-len(out), &out)
		if err == nil && got == 0 {
			err = fmt.Errorf("outbox: record %d: %w (missing)", seq, errCorrupt)
		}
		if err != nil {
			if !damaged(err) {
				return out, err
			}
			if len(out) > 0 {
				break // hand out what is good; the next call meets the damage
			}
			// A damaged file (bit rot, a disk fault): skip the rest of the
			// segment rather than block this consumer forever.
			next := s.first + s.count
			o.log.Error("outbox: damaged segment; skipping its unread records", "file", filepath.Base(s.path), "consumer", name, "lost", next-seq, "err", err)
			o.cursors[name] = next
			if werr := writeUintAtomic(o.dir, cursorFile(name), next); werr != nil {
				return nil, werr
			}
			from = next
			if from >= o.next {
				return nil, nil
			}
			want = min(uint64(max), o.next-from)
			hasHint = false
			continue
		}
		h, hasHint = readHint{seq: seq + uint64(got), first: s.first, offset: end}, true
	}
	o.hints[name] = h
	return out, nil
}

// readSegment appends records seq.. (up to n) of s, starting the scan at
// offset off (0 or a position known to hold seq). Called with mu held.
func (o *Outbox) readSegment(s segment, seq uint64, off int64, n int, out *[]Item) (int, int64, error) {
	f, err := os.Open(s.path)
	if err != nil {
		return 0, 0, fmt.Errorf("outbox: open %s: %w", s.path, err)
	}
	defer f.Close()
	if off > 0 {
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			return 0, 0, fmt.Errorf("outbox: seek %s: %w", s.path, err)
		}
	}
	if o.rd == nil {
		o.rd = bufio.NewReaderSize(f, 16<<10)
	} else {
		o.rd.Reset(f)
	}
	defer o.rd.Reset(nil)
	r := o.rd
	got := 0
	for got < n {
		rs, payload, size, err := readFrame(r, o.payload)
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return got, off, fmt.Errorf("outbox: read %s at %d: %w", s.path, off, err)
		}
		o.payload = payload[:0]
		off += size
		if rs < seq {
			continue
		}
		var it Item
		if err := json.Unmarshal(payload, &it); err != nil {
			return got, off, fmt.Errorf("outbox: decode record %d: %w (%v)", rs, errCorrupt, err)
		}
		it.Seq = rs
		*out = append(*out, it)
		got++
		seq = rs + 1
	}
	return got, off, nil
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
	for i := len(o.segs) - 1; i >= 0; i-- {
		s := o.segs[i]
		var items []Item
		if _, _, err := o.readSegment(s, max(s.first, o.head), 0, int(s.count), &items); err != nil {
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

// Close closes the open segment.
func (o *Outbox) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return nil
	}
	o.closed = true
	defer o.unlock()
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

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

// writeUintAtomic writes v to dir/name via a synced temporary file and a
// rename, so a crash leaves the old or the new value, never a torn one.
func writeUintAtomic(dir, name string, v uint64) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("outbox: write %s: %w", name, err)
	}
	if _, err := f.WriteString(strconv.FormatUint(v, 10) + "\n"); err != nil {
		f.Close()
		return fmt.Errorf("outbox: write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("outbox: sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("outbox: close %s: %w", name, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("outbox: rename %s: %w", name, err)
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("outbox: open dir: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("outbox: sync dir %s: %w", dir, err)
	}
	return nil
}
