package server

import (
	"bufio"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/csvsafe"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/server/ingest"
	"github.com/powermeter/powermeter/internal/store"
)

// readGrant checks read access; it answers the request itself when refused.
func (s *Server) readGrant(w http.ResponseWriter, r *http.Request) (grant, bool) {
	if s.read.open {
		g, _, _ := s.read.check(r)
		return g, true
	}
	addr := s.clientAddr(r)
	user, cred := basicUser(r), credential(r)
	if d, blocked := s.blockedFor(addr, user, cred); blocked {
		w.Header().Set("Retry-After", retryAfter(d))
		writeJSON(w, http.StatusTooManyRequests, errorBody{Error: "too many wrong credentials from this address or for this user: try again later"})
		return grant{}, false
	}
	g, ok, presented := s.read.check(r)
	switch {
	case ok:
		s.good.add(addr, cred)
		return g, true
	case !presented:
		w.Header().Set("WWW-Authenticate", `Bearer realm="powermeter", Basic realm="powermeter"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: "credentials needed: a read token or source key (Bearer) or a dashboard user (Basic)"})
		return grant{}, false
	}
	s.met.wrongKeys.Inc()
	wait, block := s.failed(addr, user)
	if block > 0 {
		w.Header().Set("Retry-After", retryAfter(block))
		writeJSON(w, http.StatusTooManyRequests, errorBody{Error: "too many wrong credentials from this address or for this user: try again later"})
		return grant{}, false
	}
	sleepCtx(r.Context(), wait)
	writeJSON(w, http.StatusForbidden, errorBody{Error: "wrong credentials"})
	return grant{}, false
}

// metricsGrant checks access to /metrics: the metrics token, the read
// token or a dashboard user — never a source's ingest key, since the
// metrics name every source. Open when read access is open and no metrics
// token is set.
func (s *Server) metricsGrant(w http.ResponseWriter, r *http.Request) bool {
	if s.metricsToken != nil {
		tok, isBearer := bearer(r)
		if !isBearer {
			tok = r.URL.Query().Get("token")
		}
		if tok != "" {
			d := sha256.Sum256([]byte(tok))
			if subtle.ConstantTimeCompare(d[:], s.metricsToken) == 1 {
				return true
			}
		}
	} else if s.read.open {
		return true
	}
	if tok, ok := bearer(r); ok {
		if _, isKey := s.keys.lookup(tok); isKey {
			writeJSON(w, http.StatusForbidden, errorBody{Error: "a source key may not read the metrics: use the metrics token, the read token or a dashboard user"})
			return false
		}
	}
	g, ok := s.readGrant(w, r)
	if !ok {
		return false
	}
	if !g.all {
		writeJSON(w, http.StatusForbidden, errorBody{Error: "a source key may not read the metrics"})
		return false
	}
	return true
}

// apiSources is GET /api/v1/sources: the sources the caller may read.
func (s *Server) apiSources(w http.ResponseWriter, r *http.Request) {
	g, ok := s.readGrant(w, r)
	if !ok {
		return
	}
	infos, err := s.st.Sources(r.Context())
	if err != nil {
		s.storeFailed(w, "listing sources", err)
		return
	}
	out := make([]store.SourceInfo, 0, len(infos))
	for _, in := range infos {
		if g.may(in.Name) {
			if in.Devices == nil {
				in.Devices = []string{}
			}
			out = append(out, in)
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// apiLatest is GET /api/v1/sources/{name}/latest: the newest reading of
// every device of the source.
func (s *Server) apiLatest(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !s.mayRead(w, r, name) {
		return
	}
	rs, err := store.LatestAt(r.Context(), s.st, name, s.now())
	if errors.Is(err, store.ErrUnknownSource) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "unknown source " + strconv.Quote(name)})
		return
	}
	if err != nil {
		s.storeFailed(w, "reading the latest readings", err)
		return
	}
	if rs == nil {
		rs = []reading.Reading{}
	}
	writeJSON(w, http.StatusOK, struct {
		Source   string            `json:"source"`
		Readings []reading.Reading `json:"readings"`
	}{name, rs})
}

func (s *Server) mayRead(w http.ResponseWriter, r *http.Request, source string) bool {
	g, ok := s.readGrant(w, r)
	if !ok {
		return false
	}
	if !g.may(source) {
		writeJSON(w, http.StatusForbidden, errorBody{Error: "this key may read its own source only"})
		return false
	}
	return true
}

// readableSource is the {name} of the request's path when the client may
// read it, with the source's zone; otherwise it has answered (401/403, 404
// for an unknown source, 503 when the store fails) and ok is false.
func (s *Server) readableSource(w http.ResponseWriter, r *http.Request) (name string, zone *time.Location, ok bool) {
	name = r.PathValue("name")
	if !s.mayRead(w, r, name) {
		return name, nil, false
	}
	zone, err := s.zone(r.Context(), name)
	if errors.Is(err, store.ErrUnknownSource) {
		writeJSON(w, http.StatusNotFound, errorBody{Error: "unknown source " + strconv.Quote(name)})
		return name, nil, false
	}
	if err != nil {
		s.storeFailed(w, "looking up the source", err)
		return name, nil, false
	}
	return name, zone, true
}

// csvHeader is the first line of a CSV answer; phases_w holds the per-phase
// values separated by spaces.
var csvHeader = []string{"time", "device", "power_w", "energy_in_wh", "energy_out_wh", "temperature_c", "voltage_v", "phases_w", "backfilled"}

// csvReduced are the columns a CSV answer adds when its range reaches back
// before the source's reduced horizon (retention): a reduced minute's raw
// readings count, lowest and highest power, energy within the minute, its
// last raw reading's time and power, and the part of its energy that
// belongs to the minutes without readings before it (empty but after such
// minutes); empty on raw readings. (Also in the dashboard's
// export.csv?format=utc.)
var csvReduced = []string{"reduced_count", "min_power_w", "max_power_w", "reduced_in_wh", "reduced_out_wh", "last_time", "last_power_w",
	"reduced_gap_in_wh", "reduced_gap_out_wh"}

// apiReadings is GET /api/v1/sources/{name}/readings?from=&to=&device=&format=json|csv.
// from/to are RFC 3339 or YYYY-MM-DD in the source's zone (a day as "to" is
// inclusive); from defaults to today's local midnight, to to "no limit".
// The answer is streamed from store.Range: a JSON array written reading by
// reading, or CSV with a header.
func (s *Server) apiReadings(w http.ResponseWriter, r *http.Request) {
	name, zone, ok := s.readableSource(w, r)
	if !ok {
		return
	}
	var err error
	q := r.URL.Query()
	now := time.Now().In(zone)
	from := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, zone).UTC()
	to := time.Date(2201, 1, 1, 0, 0, 0, 0, time.UTC)
	if v := q.Get("from"); v != "" {
		if from, err = ingest.ParseBound(v, zone, false); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "from: " + err.Error()})
			return
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = ingest.ParseBound(v, zone, true); err != nil {
			writeJSON(w, http.StatusBadRequest, errorBody{Error: "to: " + err.Error()})
			return
		}
	}
	if !to.After(from) {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "to: must lie after from"})
		return
	}
	device := q.Get("device")
	format := q.Get("format")
	if format == "" {
		format = "json"
	}
	if format != "json" && format != "csv" {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "format: " + strconv.Quote(format) + ": want json or csv"})
		return
	}
	// A long range takes long: lift the server's write timeout for it.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(streamTimeout))

	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 32<<10)
	var fn func(reading.Reading) error
	var finish func() error
	n := 0
	if format == "csv" {
		reduced, err := store.HoldsReduced(r.Context(), s.st, name, from)
		if err != nil {
			s.storeFailed(w, "reading the reduced horizon", err)
			return
		}
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", csvsafe.Filename(name+".csv"))
		c := csv.NewWriter(bw)
		head := csvHeader
		if reduced {
			head = append(slices.Clip(csvHeader), csvReduced...)
		}
		_ = c.Write(head)
		rec := make([]string, len(head))
		fn = func(rd reading.Reading) error {
			csvRecord(rec, rd)
			if reduced {
				csvReducedRecord(rec[len(csvHeader):], rd.Reduced)
			}
			return c.Write(rec)
		}
		finish = func() error { c.Flush(); return c.Error() }
	} else {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(bw)
		enc.SetEscapeHTML(false)
		bw.WriteString("[")
		fn = func(rd reading.Reading) error {
			if n > 0 {
				bw.WriteString(",")
			}
			return enc.Encode(rd)
		}
		finish = func() error { _, err := bw.WriteString("]\n"); return err }
	}
	err = s.st.Range(r.Context(), name, from, to, func(rd reading.Reading) error {
		if device != "" && rd.Device != device {
			return nil
		}
		if err := fn(rd); err != nil {
			return err
		}
		n++
		return nil
	})
	if err == nil {
		err = finish()
	}
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		if r.Context().Err() != nil {
			s.log.Debug("read API: the client went away", "source", name, "readings", n)
			return
		}
		if cw.n == 0 {
			// nothing sent yet: a clean error answer is still possible
			w.Header().Del("Content-Disposition")
			s.storeFailed(w, "reading the range", err)
			return
		}
		// Part of the answer is out: end the connection without the final
		// chunk, so the client sees a broken download, not a short one.
		s.storeErr("read API: the stream failed midway; connection aborted", err, "source", name, "readings", n, "bytes", cw.n)
		panic(http.ErrAbortHandler)
	}
}

// csvRecord fills rec with one reading.
func csvRecord(rec []string, rd reading.Reading) {
	rec[0] = rd.Time.UTC().Format(time.RFC3339Nano)
	rec[1] = csvsafe.Text(rd.Device)
	rec[2] = num(rd.Power)
	rec[3] = opt(rd.EnergyIn)
	rec[4] = opt(rd.EnergyOut)
	rec[5] = opt(rd.Temperature)
	rec[6] = opt(rd.Voltage)
	if len(rd.Phases) == 0 {
		rec[7] = ""
	} else {
		ps := make([]string, len(rd.Phases))
		for i, p := range rd.Phases {
			ps[i] = num(p)
		}
		rec[7] = strings.Join(ps, " ")
	}
	rec[8] = ""
	if rd.Backfilled {
		rec[8] = "1"
	}
}

// csvReducedRecord fills rec with the reduced columns of one reading
// (empty for a raw one).
func csvReducedRecord(rec []string, rd *reading.Reduced) {
	if rd == nil {
		clear(rec)
		return
	}
	rec[0] = strconv.Itoa(rd.Count)
	rec[1] = num(rd.MinPower)
	rec[2] = num(rd.MaxPower)
	rec[3] = num(rd.InWh)
	rec[4] = num(rd.OutWh)
	rec[5] = rd.LastTime.UTC().Format(time.RFC3339Nano)
	rec[6] = num(rd.LastPower)
	rec[7], rec[8] = "", ""
	if rd.Gap {
		rec[7], rec[8] = num(rd.GapInWh), num(rd.GapOutWh)
	}
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func opt(p *float64) string {
	if p == nil {
		return ""
	}
	return num(*p)
}

// countWriter counts what reached the client.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

func (s *Server) storeFailed(w http.ResponseWriter, doing string, err error) {
	s.storeErr("read API: storage failed while "+doing, err)
	writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "storage unavailable: " + doing})
}
