package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// itemError names one bad reading of a native batch.
type itemError struct {
	Index int    `json:"index"`
	Field string `json:"field,omitempty"`
	Error string `json:"error"`
}

type errorBody struct {
	Error string      `json:"error"`
	Items []itemError `json:"items,omitempty"`
}

// native is POST /api/v1/readings: a JSON batch {"readings":[…]} of
// reading.Reading, authorised by the source's key as Bearer token. The batch
// is stored all or nothing; every bad item is named in the 400 answer.
// Replays are harmless: the answer counts inserted and already present.
func (s *Server) native(w http.ResponseWriter, r *http.Request) {
	key, _ := bearer(r)
	source, ok := s.authKey(w, r, "native", key)
	if !ok {
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, s.maxBody)
	rs, bad, err := decodeBatch(r.Body, s.maxBatch, s.now(), s.maxFuture)
	if err != nil {
		var mbe *http.MaxBytesError
		var tm errTooMany
		switch {
		case errors.As(err, &mbe):
			s.refuseJSON(w, "native", "too_large", http.StatusRequestEntityTooLarge,
				fmt.Sprintf("body: larger than %d bytes", s.maxBody), nil)
		case errors.As(err, &tm):
			s.refuseJSON(w, "native", "too_large", http.StatusRequestEntityTooLarge,
				fmt.Sprintf("readings: more than %d in one batch", int(tm)), nil)
		default:
			s.refuseJSON(w, "native", "bad_request", http.StatusBadRequest, err.Error(), nil)
		}
		return
	}
	if bad.n > 0 {
		s.refuseJSON(w, "native", "invalid", http.StatusBadRequest,
			fmt.Sprintf("%d of %d readings are invalid; nothing was stored", bad.n, bad.of), bad.items)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), insertTimeout)
	defer cancel()
	res, err := s.st.Insert(ctx, source, rs)
	if err != nil {
		s.storeErr("native: storing readings", err, "source", source, "n", len(rs))
		s.refuseJSON(w, "native", "store", http.StatusServiceUnavailable, "storage unavailable: try again later", nil)
		return
	}
	conflicts := s.conflicts(ctx, source, rs, res)
	s.countInsert(source, "native", res, len(conflicts))
	writeJSON(w, http.StatusOK, newNativeAnswer(res, conflicts))
}

// maxItemErrors bounds the bad items listed in one answer.
const maxItemErrors = 100

// errTooMany is a batch with more readings than the limit it holds.
type errTooMany int

func (e errTooMany) Error() string { return fmt.Sprintf("more than %d readings", int(e)) }

// badItems are the bad items of a batch: how many of how many, and the
// first maxItemErrors of them.
type badItems struct {
	n, of int
	items []itemError
}

func (b *badItems) add(ie itemError) {
	b.n++
	if len(b.items) < maxItemErrors {
		b.items = append(b.items, ie)
	}
}

// decodeBatch reads {"readings":[…]} from r strictly and as a stream: the
// array is decoded item by item and the decoding stops as soon as the
// batch holds more than max items. Once an item is bad the batch cannot
// be stored, so the readings decoded are dropped and the rest are only
// checked: a large body of tiny or bad items costs no more memory than
// max readings. Items too far ahead of now (maxFuture) are bad items. The
// error is for the body as a whole; bad lists the items that are wrong.
func decodeBatch(r io.Reader, max int, now time.Time, maxFuture time.Duration) (rs []reading.Reading, bad badItems, err error) {
	dec := json.NewDecoder(r)
	body := func(err error) error { return bodyError{err} }
	tok, err := dec.Token()
	if err != nil {
		return nil, bad, body(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, bad, errors.New(`body: want a JSON object {"readings":[…]}`)
	}
	seen := false
	n := 0
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, bad, body(err)
		}
		k, _ := tok.(string)
		switch {
		case k != "readings":
			return nil, bad, fmt.Errorf("%s: unknown field (names are case-sensitive; want {\"readings\":[…]})", strconv.Quote(k))
		case seen:
			return nil, bad, errors.New("readings: given twice")
		}
		seen = true
		tok, err = dec.Token()
		if err != nil {
			return nil, bad, body(err)
		}
		if tok == nil {
			continue // null: as if missing
		}
		if d, ok := tok.(json.Delim); !ok || d != '[' {
			return nil, bad, errors.New("readings: want an array")
		}
		var raw json.RawMessage
		var rd reading.Reading
		for dec.More() {
			if n >= max {
				return nil, bad, errTooMany(max)
			}
			raw = raw[:0]
			if err := dec.Decode(&raw); err != nil {
				return nil, bad, body(err)
			}
			rd = reading.Reading{}
			ie := decodeReading(raw, &rd)
			if ie == nil && maxFuture > 0 {
				ie = tooFarAhead(rd.Time, now, maxFuture)
			}
			if ie != nil {
				ie.Index = n
				bad.add(*ie)
				rs = nil
			} else if bad.n == 0 {
				rs = append(rs, rd)
			}
			n++
		}
		if _, err := dec.Token(); err != nil { // ]
			return nil, bad, body(err)
		}
	}
	if _, err := dec.Token(); err != nil { // }
		return nil, bad, body(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, bad, errors.New("body: data after the JSON object")
	}
	if n == 0 {
		return nil, bad, errors.New(`readings: missing or empty (want {"readings":[…]})`)
	}
	bad.of = n
	return rs, bad, nil
}

// bodyError is a body that is not JSON (or too large: it wraps the
// *http.MaxBytesError).
type bodyError struct{ err error }

func (e bodyError) Error() string { return "body: " + jsonMsg(e.err) }
func (e bodyError) Unwrap() error { return e.err }

// tooFarAhead refuses a time more than maxFuture after now.
func tooFarAhead(t, now time.Time, maxFuture time.Duration) *itemError {
	if t.Sub(now) <= maxFuture {
		return nil
	}
	return &itemError{Field: "time", Error: fmt.Sprintf("%s is more than %s ahead of the server's clock (%s; server.max_future)",
		t.UTC().Format(time.RFC3339), maxFuture, now.UTC().Format(time.RFC3339))}
}

// readingFields are the JSON names of reading.Reading, case as written.
var readingFields = func() map[string]bool {
	m := map[string]bool{}
	rt := reflect.TypeFor[reading.Reading]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	return m
}()

// checkKeys refuses what encoding/json would let through: a key given twice
// (it keeps the last), a key in another case (it matches case-insensitively)
// and a missing or null power_w (it would read as 0 W).
func checkKeys(raw json.RawMessage) *itemError {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if d, ok := tok.(json.Delim); err != nil || !ok || d != '{' {
		return nil // not an object: the decoder names the problem
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		k, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil
		}
		switch {
		case !readingFields[k]:
			return &itemError{Field: k, Error: "unknown field (names are case-sensitive)"}
		case seen[k]:
			return &itemError{Field: k, Error: "given twice"}
		case k == "power_w" && string(v) == "null":
			return &itemError{Field: k, Error: "null: every reading needs its power"}
		}
		seen[k] = true
	}
	if !seen["power_w"] {
		return &itemError{Field: "power_w", Error: "missing: every reading needs its power"}
	}
	return nil
}

// decodeReading decodes and checks one item strictly: unknown fields, keys
// given twice or in another case, a missing power_w, a time without Z or
// offset and anything reading.Validate refuses are errors.
func decodeReading(raw json.RawMessage, rd *reading.Reading) *itemError {
	if ie := checkKeys(raw); ie != nil {
		return ie
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(rd); err != nil {
		ie := &itemError{Error: jsonMsg(err)}
		var te *json.UnmarshalTypeError
		var pe *time.ParseError
		switch {
		case errors.As(err, &pe):
			ie.Field = "time"
			ie.Error = fmt.Sprintf("%q: want RFC 3339 with Z or an offset, e.g. 2026-11-26T12:00:00Z", pe.Value)
		case errors.As(err, &te):
			ie.Field = te.Field
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			ie.Field = strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
			ie.Error = "unknown field"
		}
		return ie
	}
	rd.Time = rd.Time.UTC()
	if rd.DeviceTime != nil {
		dt := rd.DeviceTime.UTC()
		rd.DeviceTime = &dt
	}
	if err := rd.Validate(); err != nil {
		field, msg, ok := strings.Cut(err.Error(), ": ")
		if !ok {
			return &itemError{Error: err.Error()}
		}
		return &itemError{Field: field, Error: msg}
	}
	return nil
}

// jsonMsg makes a decoding error readable.
func jsonMsg(err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "incomplete JSON"
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func (s *Server) refuseJSON(w http.ResponseWriter, protocol, reason string, code int, msg string, items []itemError) {
	s.met.refused.WithLabelValues(protocol, reason).Inc()
	writeJSON(w, code, errorBody{Error: msg, Items: items})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		textError(w, http.StatusInternalServerError, "encoding the answer: "+err.Error())
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}
