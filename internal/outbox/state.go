package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// state is what the outbox keeps besides segments and cursor files, in the
// file "state" (written atomically):
//
//   - Next: every number below it was handed out (the next number at the
//     last new segment or Close); a log ending below it was cut.
//   - Reserved: sequence numbers below it may have been handed out. It is
//     raised before a record gets a number at or above it, in steps of a
//     segment, so numbers never go backwards even when every segment file
//     is deleted. It applies when the segment it was taken for (ReservedSeg)
//     is gone.
//   - Jumps: ranges of numbers that no record has (the numbering continued
//     after a repair); reading passes them silently and the backlog does
//     not count them.
//   - Cursors: a copy of every consumer's position, saved at each new
//     segment and at Close: when a cursor file is deleted, its consumer
//     resumes there instead of at the oldest reading.
type state struct {
	// Next is a number all below which were handed out (saved at each new
	// segment and at Close).
	Next        uint64            `json:"next"`
	Reserved    uint64            `json:"reserved"`
	ReservedSeg uint64            `json:"reserved_seg"`
	Jumps       [][2]uint64       `json:"jumps,omitempty"`
	Cursors     map[string]uint64 `json:"cursors,omitempty"`
}

const stateFile = "state"

func readState(dir string) (state, error) {
	var st state
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return state{}, fmt.Errorf("outbox: %s: %w", stateFile, err)
	}
	return st, nil
}

// saveState writes the state with the current cursors. Called with mu held.
func (o *Outbox) saveState() error {
	o.saved = true
	o.st.Next = max(o.st.Next, o.next)
	o.st.Cursors = make(map[string]uint64, len(o.cursors))
	for k, v := range o.cursors {
		o.st.Cursors[k] = v
	}
	b, err := json.Marshal(&o.st)
	if err != nil {
		return fmt.Errorf("outbox: encode state: %w", err)
	}
	return writeFileAtomic(o.dir, stateFile, append(b, '\n'))
}

// jumped is how many numbers in [a, b) lie in recorded jumps.
func (o *Outbox) jumped(a, b uint64) uint64 {
	var n uint64
	for _, j := range o.st.Jumps {
		lo, hi := max(a, j[0]), min(b, j[1])
		if hi > lo {
			n += hi - lo
		}
	}
	return n
}

// pruneJumps forgets jumps below seq (nothing before seq is kept).
func (o *Outbox) pruneJumps(seq uint64) {
	k := 0
	for _, j := range o.st.Jumps {
		if j[1] > seq {
			o.st.Jumps[k] = j
			k++
		}
	}
	o.st.Jumps = o.st.Jumps[:k]
}

func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
}

func writeUintAtomic(dir, name string, v uint64) error {
	return writeFileAtomic(dir, name, []byte(strconv.FormatUint(v, 10)+"\n"))
}

// writeFileAtomic writes data to dir/name via a synced temporary file and a
// rename, so a crash leaves the old or the new content, never a torn one.
// A temporary file deleted before its rename (`rm outbox/cursor-*` at the
// wrong moment) is written again, once.
func writeFileAtomic(dir, name string, data []byte) error {
	err := writeFileAtomicOnce(dir, name, data)
	if errors.Is(err, os.ErrNotExist) {
		err = writeFileAtomicOnce(dir, name, data)
	}
	return err
}

func writeFileAtomicOnce(dir, name string, data []byte) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("outbox: write %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
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
