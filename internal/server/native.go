package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	var batch struct {
		Readings []json.RawMessage `json:"readings"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	err := dec.Decode(&batch)
	if err == nil {
		if _, e := dec.Token(); !errors.Is(e, io.EOF) {
			err = errors.New("data after the JSON object")
		}
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.refuseJSON(w, "native", "too_large", http.StatusRequestEntityTooLarge,
				fmt.Sprintf("body: larger than %d bytes", s.maxBody), nil)
			return
		}
		s.refuseJSON(w, "native", "bad_request", http.StatusBadRequest, "body: "+jsonMsg(err), nil)
		return
	}
	if len(batch.Readings) == 0 {
		s.refuseJSON(w, "native", "bad_request", http.StatusBadRequest, `readings: missing or empty (want {"readings":[…]})`, nil)
		return
	}
	if len(batch.Readings) > s.maxBatch {
		s.refuseJSON(w, "native", "too_large", http.StatusRequestEntityTooLarge,
			fmt.Sprintf("readings: %d in one batch, at most %d", len(batch.Readings), s.maxBatch), nil)
		return
	}
	rs := make([]reading.Reading, len(batch.Readings))
	var bad []itemError
	for i, raw := range batch.Readings {
		if ie := decodeReading(raw, &rs[i]); ie != nil {
			ie.Index = i
			bad = append(bad, *ie)
		}
	}
	if len(bad) > 0 {
		s.refuseJSON(w, "native", "invalid", http.StatusBadRequest,
			fmt.Sprintf("%d of %d readings are invalid; nothing was stored", len(bad), len(rs)), bad)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), insertTimeout)
	defer cancel()
	res, err := s.st.Insert(ctx, source, rs)
	if err != nil {
		s.log.Error("native: storing readings", "source", source, "n", len(rs), "err", err)
		s.refuseJSON(w, "native", "store", http.StatusServiceUnavailable, "storage unavailable: try again later", nil)
		return
	}
	c := s.met.ingest(source, "native")
	c.stored.Add(float64(res.Inserted))
	c.present.Add(float64(res.Present))
	writeJSON(w, http.StatusOK, map[string]int{"inserted": res.Inserted, "present": res.Present})
}

// decodeReading decodes and checks one item strictly: unknown fields, a
// time without Z or offset and anything reading.Validate refuses are errors.
func decodeReading(raw json.RawMessage, rd *reading.Reading) *itemError {
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
