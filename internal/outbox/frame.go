package outbox

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
)

// Record framing.
//
// Segments written by this version (*.rec) frame each record as
//
//	magic "\xffPMr" | length uint32 | crc32c uint32 | seq uint64 | payload (JSON)
//
// (little endian; the CRC covers length, seq and payload). The payload is
// JSON, which is UTF-8 and so never holds the byte 0xff: after a damaged
// record the reader finds the next one by its magic and goes on, so one
// flipped byte costs one record, not the rest of the file.
//
// Segments of earlier versions (*.seg) have no magic,
//
//	length uint32 | crc32c uint32 | seq uint64 | payload
//
// with the CRC over seq and payload; they are still read (a damaged record
// there ends the segment, as it did), never appended to.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

var magic = [4]byte{0xff, 'P', 'M', 'r'}

const (
	headerSize       = 20
	legacyHeaderSize = 16
	// maxPayload bounds one record; a larger length is a damaged frame.
	maxPayload = 1 << 20
	segExt     = ".rec"
	legacyExt  = ".seg"
)

var (
	errCorrupt = errors.New("damaged record")
	// errTail means the bytes from the reader's offset to the end of the
	// file hold no good record (a torn write or damage at the end).
	errTail = errors.New("damaged or torn tail")
)

func appendFrame(dst []byte, seq uint64, payload []byte) []byte {
	var h [headerSize]byte
	copy(h[0:4], magic[:])
	binary.LittleEndian.PutUint32(h[4:8], uint32(len(payload)))
	binary.LittleEndian.PutUint64(h[12:20], seq)
	binary.LittleEndian.PutUint32(h[8:12], frameCRC(h[4:8], h[12:20], payload))
	dst = append(dst, h[:]...)
	return append(dst, payload...)
}

func frameCRC(length, seq, payload []byte) uint32 {
	c := crc32.Update(0, castagnoli, length)
	c = crc32.Update(c, castagnoli, seq)
	return crc32.Update(c, castagnoli, payload)
}

// segReader reads the records of one segment file through a window, so a
// scan costs few system calls and a resync can search for the magic.
type segReader struct {
	f      io.ReaderAt
	size   int64
	off    int64 // offset of the next frame
	legacy bool

	buf    []byte
	win    []byte
	winOff int64
	// skipped counts the bytes passed over by resyncs.
	skipped int64
}

// at returns up to n bytes at off (fewer only at the end of the file). The
// slice is valid until the next call.
func (r *segReader) at(off int64, n int) ([]byte, error) {
	if off >= r.winOff && off+int64(n) <= r.winOff+int64(len(r.win)) {
		return r.win[off-r.winOff : off-r.winOff+int64(n)], nil
	}
	size := int64(max(n, 32<<10))
	if rest := r.size - off; size > rest {
		size = max(rest, 0)
	}
	if int64(cap(r.buf)) < size {
		r.buf = make([]byte, size)
	}
	b := r.buf[:size]
	m, err := r.f.ReadAt(b, off)
	if err != nil && !errors.Is(err, io.EOF) {
		r.win = nil
		return nil, err
	}
	r.win, r.winOff = b[:m], off
	return r.win[:min(m, n)], nil
}

// frameAt reads the frame at off; ok is false when there is no good frame
// there (err is only for I/O errors).
func (r *segReader) frameAt(off int64) (seq uint64, payload []byte, size int64, ok bool, err error) {
	hs := headerSize
	if r.legacy {
		hs = legacyHeaderSize
	}
	b, err := r.at(off, hs)
	if err != nil || len(b) < hs {
		return 0, nil, 0, false, err
	}
	var h [headerSize]byte
	copy(h[:], b)
	var length uint32
	var sum uint32
	if r.legacy {
		length = binary.LittleEndian.Uint32(h[0:4])
		sum = binary.LittleEndian.Uint32(h[4:8])
		seq = binary.LittleEndian.Uint64(h[8:16])
	} else {
		if !bytes.Equal(h[0:4], magic[:]) {
			return 0, nil, 0, false, nil
		}
		length = binary.LittleEndian.Uint32(h[4:8])
		sum = binary.LittleEndian.Uint32(h[8:12])
		seq = binary.LittleEndian.Uint64(h[12:20])
	}
	if length > maxPayload || off+int64(hs)+int64(length) > r.size {
		return 0, nil, 0, false, nil
	}
	payload, err = r.at(off+int64(hs), int(length))
	if err != nil || len(payload) < int(length) {
		return 0, nil, 0, false, err
	}
	var c uint32
	if r.legacy {
		c = crc32.Update(crc32.Update(0, castagnoli, h[8:16]), castagnoli, payload)
	} else {
		c = frameCRC(h[4:8], h[12:20], payload)
	}
	if c != sum {
		return 0, nil, 0, false, nil
	}
	return seq, payload, int64(hs) + int64(length), true, nil
}

// next returns the next good record, passing over damaged bytes to the
// next magic. At the end of the file it returns io.EOF; when the rest of
// the file holds no good record, errTail (off is left at the start of the
// bad bytes). A legacy segment cannot resync: damage there is errTail too.
func (r *segReader) next() (seq uint64, payload []byte, err error) {
	for {
		if r.off >= r.size {
			return 0, nil, io.EOF
		}
		seq, payload, size, ok, err := r.frameAt(r.off)
		if err != nil {
			return 0, nil, err
		}
		if ok {
			r.off += size
			return seq, payload, nil
		}
		if r.legacy {
			return 0, nil, errTail
		}
		nxt, err := r.findMagic(r.off + 1)
		if err != nil {
			return 0, nil, err
		}
		if nxt < 0 {
			return 0, nil, errTail
		}
		r.skipped += nxt - r.off
		r.off = nxt
	}
}

// findMagic returns the offset of the next magic at or after off, or -1.
func (r *segReader) findMagic(off int64) (int64, error) {
	const chunk = 32 << 10
	for off < r.size {
		b, err := r.at(off, chunk)
		if err != nil {
			return -1, err
		}
		if i := bytes.Index(b, magic[:]); i >= 0 {
			return off + int64(i), nil
		}
		if len(b) < len(magic) {
			return -1, nil
		}
		off += int64(len(b) - len(magic) + 1)
	}
	return -1, nil
}
