package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/server/ingest"
	"github.com/powermeter/powermeter/internal/store"
)

// legacy is the log.php receiver: GET ?key=…&stats=… (the ESP8266 logger,
// raw HTTP/1.0, stats unescaped) or a POST form key, stats[, buffer=1].
//
// Unlike the PHP receiver, which answers 200 to everything, it answers
// 400 for a refused line (naming the field), 401/403 for a missing/wrong
// key, 429 for an address that keeps sending wrong keys, 405, 413, and 503
// when the store cannot take the reading. 200 means stored or already
// stored (a duplicate or a replay).
func (s *Server) legacy(w http.ResponseWriter, r *http.Request) {
	var key, stats string
	switch r.Method {
	case http.MethodGet:
		var err error
		key, stats, err = legacyQuery(r.URL.RawQuery)
		if err != nil {
			s.refuse(w, "legacy", "bad_request", http.StatusBadRequest, "query: "+err.Error())
			return
		}
	case http.MethodPost:
		// A form of key, stats and buffer is well under 1 KiB; the key is
		// checked only after the form is parsed, so an unauthenticated
		// request may cost no more than legacyMaxBody.
		limit := min(s.maxBody, legacyMaxBody)
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		if err := r.ParseForm(); err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				s.refuse(w, "legacy", "too_large", http.StatusRequestEntityTooLarge,
					fmt.Sprintf("body: larger than %d bytes", limit))
				return
			}
			s.refuse(w, "legacy", "bad_request", http.StatusBadRequest, "form: "+err.Error())
			return
		}
		key, stats = r.Form.Get("key"), r.Form.Get("stats")
	default:
		w.Header().Set("Allow", "GET, POST")
		s.refuse(w, "legacy", "method", http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: use GET or POST")
		return
	}
	source, ok := s.authKey(w, r, "legacy", key)
	if !ok {
		return
	}
	if stats == "" {
		s.refuse(w, "legacy", "stats", http.StatusBadRequest, "stats: missing")
		return
	}
	line, err := legacy.Parse(stats)
	if err != nil {
		reason := "stats"
		var le *legacy.Error
		if errors.As(err, &le) && le.Name != "" {
			reason = le.Name
			if le.Field > 4 {
				reason = "value"
			}
		}
		s.refuse(w, "legacy", reason, http.StatusBadRequest, err.Error())
		return
	}
	if ie := s.legacyTooFarAhead(source, line); ie != nil {
		s.refuse(w, "legacy", "future", http.StatusBadRequest, "stats: time "+ie.Error)
		return
	}
	// buffer=1 marks a line replayed from the sender's buffer. The PHP app
	// then leaves its "current value" alone; here "latest" is the newest
	// reading at or before now, so a replay is stored like any line, but it
	// is the one kind of line matched against what is stored in the
	// repeated autumn hour.
	// Once the line is accepted it is stored even if the client hangs up or
	// shutdown begins: the write is all or nothing, and a logger that
	// retries then finds the line present.
	replay := r.Method == http.MethodPost && r.Form.Get("buffer") == "1"
	res, conflict, err := s.storeLine(context.WithoutCancel(r.Context()), source, line, replay)
	if err != nil {
		s.storeErr("legacy: storing a reading", err, "source", source)
		s.refuse(w, "legacy", "store", http.StatusServiceUnavailable, "storage unavailable: try again later")
		return
	}
	w.Header()["Content-Type"] = textPlain
	switch {
	case conflict:
		s.countInsert(source, "legacy", res, 1)
		w.WriteHeader(http.StatusConflict)
		io.WriteString(w, conflictMsg+"\n")
	case res.Inserted == 0:
		s.countInsert(source, "legacy", res, 0)
		io.WriteString(w, "already stored\n")
	default:
		s.countInsert(source, "legacy", res, 0)
		io.WriteString(w, "stored\n")
	}
}

// legacyTooFarAhead refuses a line whose time lies more than maxFuture
// ahead of the server's clock.
func (s *Server) legacyTooFarAhead(source string, line legacy.Line) *itemError {
	if s.maxFuture <= 0 {
		return nil
	}
	cands := legacy.Instants(line.Wall(), s.zones[source])
	if len(cands) == 0 {
		return nil
	}
	return tooFarAhead(cands[0], s.now(), s.maxFuture)
}

// legacyMaxBody bounds a legacy POST body (a stats line has at most 16
// fields of a few characters).
const legacyMaxBody = 16 << 10

// textPlain is the Content-Type of the answers (shared, never modified).
var textPlain = []string{"text/plain; charset=utf-8"}

// legacyQuery returns the first key and stats of a GET query. It accepts
// and refuses exactly what url.ParseQuery does, without building the map:
// the common query of a few parameters without ';' is scanned here,
// anything else goes through url.ParseQuery.
func legacyQuery(raw string) (key, stats string, err error) {
	if strings.Count(raw, "&") >= 8 || strings.IndexByte(raw, ';') >= 0 {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return "", "", err
		}
		return q.Get("key"), q.Get("stats"), nil
	}
	var hasKey, hasStats bool
	for raw != "" {
		var part string
		part, raw, _ = strings.Cut(raw, "&")
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(k)
		if err1 == nil {
			v, err1 = url.QueryUnescape(v)
		}
		if err1 != nil {
			if err == nil {
				err = err1
			}
			continue
		}
		switch {
		case k == "key" && !hasKey:
			key, hasKey = v, true
		case k == "stats" && !hasStats:
			stats, hasStats = v, true
		}
	}
	if err != nil {
		return "", "", err
	}
	return key, stats, nil
}

// storeLine resolves the line's time and stores it; conflict tells that a
// reading with other values was stored at that instant already (and kept).
func (s *Server) storeLine(ctx context.Context, source string, line legacy.Line, replay bool) (store.InsertResult, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, insertTimeout)
	defer cancel()
	t, ticket, err := s.res.ResolveLine(ctx, source, s.zones[source], line, !replay)
	if err != nil {
		return store.InsertResult{}, false, err
	}
	defer ticket.Done()
	r := ingest.Reading(line, t)
	if f, ok := s.fields[source]; ok {
		f.Place(&r) // value 2 where the source's field map puts it
	}
	rs := []reading.Reading{r}
	res, err := s.st.Insert(ctx, source, rs)
	if err != nil {
		return res, false, err
	}
	return res, len(s.conflicts(ctx, source, rs, res)) > 0, nil
}

// authKey finds the source of an ingest key, slowing down and blocking
// addresses that send wrong keys. It answers the request itself when the
// key is refused.
func (s *Server) authKey(w http.ResponseWriter, r *http.Request, protocol, key string) (string, bool) {
	fail := func(code int, reason, msg string) {
		if protocol == "native" {
			if code == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="powermeter"`)
			}
			s.refuseJSON(w, protocol, reason, code, msg, nil)
			return
		}
		s.refuse(w, protocol, reason, code, msg)
	}
	addr := s.clientAddr(r)
	cred := ""
	if key != "" {
		cred = "key\x00" + key
	}
	if d, blocked := s.blockedFor(addr, "", cred); blocked {
		w.Header().Set("Retry-After", retryAfter(d))
		fail(http.StatusTooManyRequests, "blocked", "too many wrong keys from this address: try again later")
		return "", false
	}
	if key == "" {
		name := "key"
		if protocol == "native" {
			name = "Authorization: Bearer <key>"
		}
		fail(http.StatusUnauthorized, "no_key", name+": missing")
		return "", false
	}
	source, ok := s.keys.lookup(key)
	if !ok {
		s.met.wrongKeys.Inc()
		wait, block := s.failed(addr, "")
		if block > 0 {
			s.log.Warn("blocking an address after repeated wrong keys", "remote", addr, "for", block)
			w.Header().Set("Retry-After", retryAfter(block))
			fail(http.StatusTooManyRequests, "blocked", "too many wrong keys from this address: try again in "+strconv.Itoa(int(block/time.Second))+" s")
			return "", false
		}
		sleepCtx(r.Context(), wait)
		fail(http.StatusForbidden, "wrong_key", "key: wrong")
		return "", false
	}
	s.good.add(addr, cred)
	return source, true
}

// refuse answers a refused request with a one-line reason and counts it.
func (s *Server) refuse(w http.ResponseWriter, protocol, reason string, code int, msg string) {
	s.met.refused.WithLabelValues(protocol, reason).Inc()
	textError(w, code, msg)
}
