package dashboard

import (
	"bufio"
	"context"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/csvsafe"
	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// parseBound reads from= / to=: a local day (YYYY-MM-DD; to= includes the
// whole day) or an RFC 3339 instant.
func parseBound(s string, zone *time.Location, end bool) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t.UTC(), nil
	}
	if !validDay(s) {
		return time.Time{}, errors.New("want YYYY-MM-DD or an RFC 3339 time")
	}
	t, _ := time.ParseInLocation("2006-01-02", s, zone)
	if end {
		y, m, d := t.Date()
		t = time.Date(y, m, d+1, 0, 0, 0, 0, zone)
	}
	return t.UTC(), nil
}

// export streams readings of a range as CSV: format=php writes the original
// app's lines (local wall-clock time, one line per instant: the sum of the
// devices, the temperature, then each device's power when there are
// several, or the phases of a single device); format=utc (default) one row
// per reading with a header, times in UTC.
func (d *Dashboard) export(w http.ResponseWriter, r *http.Request) {
	source, p, ok := d.sourceFromPath(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	from, to := q.Get("from"), q.Get("to")
	if from == "" {
		from = p.Today
	}
	if to == "" {
		to = from
		if _, err := time.Parse(time.RFC3339, from); err == nil {
			to = p.Today
		}
	}
	start, err1 := parseBound(from, p.Zone, false)
	end, err2 := parseBound(to, p.Zone, true)
	if err1 != nil || err2 != nil || !end.After(start) {
		http.Error(w, "from= and to= must be days (YYYY-MM-DD) or RFC 3339 times, from before to", http.StatusBadRequest)
		return
	}
	device := q.Get("device") // one device only ("" for all)
	format := q.Get("format")
	if format == "" {
		format = "utc"
	}
	if format != "utc" && format != "php" {
		http.Error(w, "format= must be php or utc", http.StatusBadRequest)
		return
	}
	// long ranges stream for a while; the request still ends
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Minute)
	defer cancel()
	if rc := http.NewResponseController(w); rc != nil {
		_ = rc.SetWriteDeadline(time.Now().Add(30 * time.Minute))
	}
	base := source
	if device != "" {
		base += "_" + device
	}
	name := strings.ReplaceAll(base+"_"+from+"_"+to+"_"+format+".csv", ":", "")
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", csvsafe.Filename(name))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")

	cw := &countWriter{w: w}
	bw := bufio.NewWriterSize(cw, 64*1024)
	var err error
	if format == "php" {
		err = d.exportPHP(ctx, bw, source, device, p.Zone, start, end)
	} else {
		err = d.exportUTC(ctx, bw, source, device, start, end)
	}
	if err == nil {
		err = bw.Flush()
	}
	switch {
	case err == nil:
	case r.Context().Err() != nil:
		// the client went away
	case cw.n == 0:
		// nothing sent yet: a clean error answer is still possible
		d.o.Log.Error("csv export failed", "source", source, "err", err)
		h.Del("Content-Disposition")
		http.Error(w, "storage unavailable: try again later", http.StatusServiceUnavailable)
	default:
		// Part of the file is out: end the connection without the final
		// chunk, so the download shows as broken, not as a short file.
		d.o.Log.Error("csv export failed midway; connection aborted", "source", source, "bytes", cw.n, "err", err)
		panic(http.ErrAbortHandler)
	}
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

// rangeOf is store.Range, of one device when device is set.
func rangeOf(ctx context.Context, st interface {
	Range(ctx context.Context, source string, from, to time.Time, fn func(reading.Reading) error) error
}, device, source string, from, to time.Time, fn func(reading.Reading) error) error {
	if device == "" {
		return st.Range(ctx, source, from, to, fn)
	}
	return st.Range(ctx, source, from, to, func(r reading.Reading) error {
		if r.Device != device {
			return nil
		}
		return fn(r)
	})
}

func ff(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func optF(v *float64) string {
	if v == nil {
		return ""
	}
	return ff(*v)
}

// reducedColumns are the columns format=utc adds for a range that reaches
// back before the source's reduced horizon (retention): a reduced
// minute's raw readings count, lowest and highest power, energy, its
// last raw reading's time and power, and the part of its energy that
// belongs to the minutes without readings before it (empty but after
// such minutes); empty on raw readings.
const reducedColumns = ",reduced_count,min_power_w,max_power_w,reduced_in_wh,reduced_out_wh,last_time,last_power_w,reduced_gap_in_wh,reduced_gap_out_wh"

func (d *Dashboard) exportUTC(ctx context.Context, w *bufio.Writer, source, device string, start, end time.Time) error {
	reduced, err := store.HoldsReduced(ctx, d.st, source, start)
	if err != nil {
		return err
	}
	head := "time,device,power_w,energy_in_wh,energy_out_wh,temperature_c,voltage_v,phases_w"
	if reduced {
		head += reducedColumns
	}
	if _, err := w.WriteString(head + "\n"); err != nil {
		return err
	}
	n := 0
	return rangeOf(ctx, d.st, device, source, start, end, func(r reading.Reading) error {
		w.WriteString(r.Time.UTC().Format(time.RFC3339))
		w.WriteByte(',')
		w.WriteString(csvsafe.Field(r.Device))
		w.WriteByte(',')
		w.WriteString(ff(r.Power))
		for _, v := range []*float64{r.EnergyIn, r.EnergyOut, r.Temperature, r.Voltage} {
			w.WriteByte(',')
			w.WriteString(optF(v))
		}
		w.WriteByte(',')
		for i, ph := range r.Phases {
			if i > 0 {
				w.WriteByte(' ')
			}
			w.WriteString(ff(ph))
		}
		if reduced {
			if rd := r.Reduced; rd != nil {
				w.WriteString("," + strconv.Itoa(rd.Count) + "," + ff(rd.MinPower) + "," + ff(rd.MaxPower) + "," + ff(rd.InWh) + "," + ff(rd.OutWh) +
					"," + rd.LastTime.UTC().Format(time.RFC3339Nano) + "," + ff(rd.LastPower))
				if rd.Gap {
					w.WriteString("," + ff(rd.GapInWh) + "," + ff(rd.GapOutWh))
				} else {
					w.WriteString(",,")
				}
			} else {
				w.WriteString(",,,,,,,,,")
			}
		}
		_, err := w.WriteString("\n")
		if n++; n%4096 == 0 {
			err = w.Flush()
		}
		return err
	})
}

func tempDecimals(t float64) int {
	if math.Abs(t*10-math.Round(t*10)) > 1e-6 {
		return 2
	}
	return 1
}

func (d *Dashboard) exportPHP(ctx context.Context, w *bufio.Writer, source, device string, zone *time.Location, start, end time.Time) error {
	var group []reading.Reading
	n := 0
	skipped := 0
	var firstSkip error
	flush := func() error {
		if len(group) == 0 {
			return nil
		}
		var sum float64
		var temp *float64
		for i := range group {
			sum += group[i].Power
			if temp == nil && group[i].Temperature != nil {
				temp = group[i].Temperature
			}
		}
		var extra []float64
		if len(group) > 1 {
			for i := range group {
				extra = append(extra, group[i].Power)
			}
		} else {
			extra = group[0].Phases
		}
		dec := 1
		if temp != nil {
			dec = tempDecimals(*temp)
		}
		line, err := legacy.Format(group[0].Time, zone, sum, temp, dec, extra)
		if err != nil && len(extra) > 0 {
			line, err = legacy.Format(group[0].Time, zone, sum, temp, dec, nil)
		}
		group = group[:0]
		if err != nil {
			// a value the old format cannot hold: leave the line out
			if skipped == 0 {
				firstSkip = err
			}
			skipped++
			return nil
		}
		w.WriteString(line)
		_, err = w.WriteString("\n")
		if n++; n%4096 == 0 {
			err = w.Flush()
		}
		return err
	}
	err := rangeOf(ctx, d.st, device, source, start, end, func(r reading.Reading) error {
		if len(group) > 0 && !r.Time.Equal(group[0].Time) {
			if err := flush(); err != nil {
				return err
			}
		}
		group = append(group, r)
		return nil
	})
	if err == nil {
		err = flush()
	}
	if skipped > 0 {
		// once per download, not per line: a long range may skip many
		d.o.Log.Warn("csv export: lines left out", "source", source, "lines", skipped, "first", firstSkip)
	}
	return err
}
