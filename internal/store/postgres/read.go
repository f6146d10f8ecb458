package postgres

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/powermeter/powermeter/internal/reading"
)

// chunkCols is the select list scanned into a chunk.
const chunkCols = `c.hour, c.device_id, c.offs, c.power, c.temperature, c.energy_in, c.energy_out, c.voltage, c.phases, c.device_ms, c.backfilled`

// chunk is one row of chunks: one device's readings of one UTC hour.
type chunk struct {
	hour     time.Time
	device   int32
	offs     []int16
	power    []int64
	temp     []pgtype.Int4
	eIn      []pgtype.Int8
	eOut     []pgtype.Int8
	volt     []pgtype.Int4
	phases   []pgtype.Text
	devMs    []pgtype.Int8
	backfill []pgtype.Bool
}

func (c *chunk) dest() []any {
	return []any{&c.hour, &c.device, &c.offs, &c.power, &c.temp, &c.eIn, &c.eOut, &c.volt, &c.phases, &c.devMs, &c.backfill}
}

// at is the i-th reading of the chunk.
func (c *chunk) at(i int) (scanned, error) {
	sc := scanned{t: c.hour.Add(time.Duration(c.offs[i]) * time.Second), device: c.device, power: c.power[i]}
	if i < len(c.temp) {
		sc.temp = c.temp[i]
	}
	if i < len(c.eIn) {
		sc.eIn = c.eIn[i]
	}
	if i < len(c.eOut) {
		sc.eOut = c.eOut[i]
	}
	if i < len(c.volt) {
		sc.volt = c.volt[i]
	}
	if i < len(c.phases) && c.phases[i].Valid {
		ps, err := parsePhases(c.phases[i].String)
		if err != nil {
			return sc, fmt.Errorf("chunk %s device %d: %w", c.hour.Format(time.RFC3339), c.device, err)
		}
		sc.phases = ps
	}
	if i < len(c.devMs) && c.devMs[i].Valid {
		sc.devTime = pgtype.Timestamptz{Time: sc.t.Add(time.Duration(c.devMs[i].Int64) * time.Millisecond), Valid: true}
	}
	if i < len(c.backfill) {
		sc.backfill = c.backfill[i].Valid && c.backfill[i].Bool
	}
	return sc, nil
}

// parsePhases reads an integer array literal "{1,-2,3}".
func parsePhases(s string) ([]int64, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	out := make([]int64, len(parts))
	for i, p := range parts {
		x, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("phases %q: %w", s, err)
		}
		out[i] = x
	}
	return out, nil
}

// Latest returns the newest reading of every device of the source, by
// device name: from recent where it is still there, else from its chunk,
// else from its reduced minute.
func (s *Store) Latest(ctx context.Context, source string) ([]reading.Reading, error) {
	sid, err := s.sourceID(ctx, source)
	if err != nil {
		return nil, fmt.Errorf("latest: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rows, err := s.rpool.Query(ctx, `
		SELECT d.id, d.name, d.last_t, r.t IS NOT NULL, `+readingCols+`
		FROM devices d LEFT JOIN recent r ON r.source_id = d.source_id AND r.t = d.last_t AND r.device_id = d.id
		WHERE d.source_id = $1 AND d.last_t IS NOT NULL ORDER BY d.name COLLATE "C"`, sid)
	if err != nil {
		return nil, fmt.Errorf("latest of %q: %w", source, err)
	}
	type latest struct {
		name  string
		last  time.Time
		found bool
		sc    scanned
	}
	var all []latest
	var l latest
	var id int32
	var rt pgtype.Timestamptz
	var dev pgtype.Int4
	var power pgtype.Int8
	var bf pgtype.Bool
	_, err = pgx.ForEachRow(rows, []any{&id, &l.name, &l.last, &l.found, &rt, &dev, &power, &l.sc.eIn, &l.sc.eOut, &l.sc.temp,
		&l.sc.volt, &l.sc.phases, &l.sc.devTime, &bf}, func() error {
		x := l
		x.sc.t, x.sc.device, x.sc.power, x.sc.backfill = l.last, id, power.Int64, bf.Bool
		all = append(all, x)
		l.sc.phases = nil
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("latest of %q: %w", source, err)
	}
	// The rest are in chunks.
	var hours []time.Time
	var devs []int32
	for _, x := range all {
		if !x.found {
			hours = append(hours, x.last.UTC().Truncate(time.Hour))
			devs = append(devs, x.sc.device)
		}
	}
	if len(hours) > 0 {
		rows, err := s.rpool.Query(ctx, `SELECT `+chunkCols+` FROM chunks c
			JOIN unnest($2::timestamptz[], $3::int4[]) AS k(h, d) ON c.hour = k.h AND c.device_id = k.d
			WHERE c.source_id = $1`, sid, hours, devs)
		if err != nil {
			return nil, fmt.Errorf("latest of %q: %w", source, err)
		}
		var c chunk
		_, err = pgx.ForEachRow(rows, c.dest(), func() error {
			for j := range all {
				x := &all[j]
				if x.found || x.sc.device != c.device || !x.last.UTC().Truncate(time.Hour).Equal(c.hour) {
					continue
				}
				off := int16(x.last.Sub(c.hour) / time.Second)
				if i := slices.Index(c.offs, off); i >= 0 {
					sc, err := c.at(i)
					if err != nil {
						return err
					}
					x.sc, x.found = sc, true
				}
			}
			c = chunk{}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("latest of %q: %w", source, err)
		}
	}
	// A device whose newest reading is a reduced minute (it sent nothing
	// since the retention period began).
	hours, devs = hours[:0], devs[:0]
	for _, x := range all {
		if !x.found {
			hours = append(hours, x.last.UTC().Truncate(time.Hour))
			devs = append(devs, x.sc.device)
		}
	}
	if len(hours) > 0 {
		rows, err := s.rpool.Query(ctx, `SELECT `+minuteCols+` FROM minutes m
			JOIN unnest($2::timestamptz[], $3::int4[]) AS k(h, d) ON m.hour = k.h AND m.device_id = k.d
			WHERE m.source_id = $1`, sid, hours, devs)
		if err != nil {
			return nil, fmt.Errorf("latest of %q: %w", source, err)
		}
		var m minuteRow
		_, err = pgx.ForEachRow(rows, m.dest(), func() error {
			m.expand()
			for j := range all {
				x := &all[j]
				if x.found || x.sc.device != m.device || !x.last.UTC().Truncate(time.Hour).Equal(m.hour) {
					continue
				}
				off := int16(x.last.Sub(m.hour) / time.Second)
				if i := slices.Index(m.offs, off); i >= 0 {
					e := m.at(i)
					sc, err := e.scanned(m.hour, m.device)
					if err != nil {
						return err
					}
					x.sc, x.found = sc, true
				}
			}
			m = minuteRow{}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("latest of %q: %w", source, err)
		}
	}
	out := []reading.Reading{}
	for _, x := range all {
		if x.found {
			out = append(out, x.sc.decode(x.name))
		}
	}
	return out, nil
}

// ceilSecond rounds t up to a whole second: stored times are whole seconds.
func ceilSecond(t time.Time) time.Time {
	if tt := t.Truncate(time.Second); !tt.Equal(t) {
		return tt.Add(time.Second)
	}
	return t
}

// Range pages: a page covers a time window that adapts to the data, so a
// page holds about pageTarget readings (a day of one 10-s device fits one
// page).
const (
	pageTarget = 10000
	minWindow  = time.Hour
	maxWindow  = 64 * 24 * time.Hour
)

// named is a reading of a page with its device's name, for sorting.
type named struct {
	sc   scanned
	name string
}

// pages recycles Range's page buffers.
var pages = sync.Pool{New: func() any { return new([]named) }}

// Range streams the readings from <= Time < to in (Time, Device) order,
// one time window at a time: the window's chunks and recent rows are read
// in one round trip, the connection is given back, and only then is the
// page sorted and handed to fn. A slow consumer (a stalled download) holds
// one page of memory, never a connection. Readings inserted during a long
// Range may or may not be seen; order and bounds hold.
func (s *Store) Range(ctx context.Context, source string, from, to time.Time, fn func(reading.Reading) error) error {
	sid, err := s.sourceID(ctx, source)
	if err != nil {
		return fmt.Errorf("range: %w", err)
	}
	lo, hi := ceilSecond(from).UTC(), ceilSecond(to).UTC()
	if !lo.Before(hi) {
		return nil
	}
	buf := pages.Get().(*[]named)
	page := *buf
	defer func() {
		clear(page[:cap(page)])
		*buf = page[:0]
		pages.Put(buf)
	}()
	window := 24 * time.Hour
	for cur := lo; cur.Before(hi); {
		end := cur.Add(window)
		if end.After(hi) {
			end = hi
		}
		page, err = s.readWindow(ctx, sid, cur, end, page[:0])
		if err != nil {
			return fmt.Errorf("range of %q: %w", source, err)
		}
		if len(page) == 0 {
			// Skip to the next stored reading.
			next, ok, err := s.nextTime(ctx, sid, end, hi)
			if err != nil {
				return fmt.Errorf("range of %q: %w", source, err)
			}
			if !ok {
				return nil
			}
			cur = next
			continue
		}
		slices.SortFunc(page, func(a, b named) int {
			if c := a.sc.t.Compare(b.sc.t); c != 0 {
				return c
			}
			return cmp.Compare(a.name, b.name)
		})
		for i := range page {
			if i%64 == 63 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("range of %q: %w", source, err)
				}
			}
			if err := fn(page[i].sc.decode(page[i].name)); err != nil {
				return err
			}
		}
		switch {
		case len(page) > 2*pageTarget && window > minWindow:
			window /= 2
		case len(page) < pageTarget/2 && window < maxWindow:
			window *= 2
		}
		cur = end
	}
	return nil
}

// readWindow appends the readings of from <= t < to (whole seconds) to page,
// unsorted.
func (s *Store) readWindow(ctx context.Context, sid int32, from, to time.Time, page []named) ([]named, error) {
	var b pgx.Batch
	b.Queue(`SELECT `+chunkCols+` FROM chunks c WHERE c.source_id = $1 AND c.hour >= $2 AND c.hour < $3`,
		sid, from.Truncate(time.Hour), to)
	b.Queue(`SELECT `+readingCols+` FROM recent r WHERE r.source_id = $1 AND r.t >= $2 AND r.t < $3`, sid, from, to)
	b.Queue(`SELECT `+minuteCols+` FROM minutes m WHERE m.source_id = $1 AND m.hour >= $2 AND m.hour < $3`,
		sid, from.Truncate(time.Hour), to)
	br := s.rpool.SendBatch(ctx, &b)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return page, err
	}
	var c chunk
	_, err = pgx.ForEachRow(rows, c.dest(), func() error {
		name, err := s.deviceName(ctx, sid, c.device)
		if err != nil {
			return err
		}
		for i := range c.offs {
			t := c.hour.Add(time.Duration(c.offs[i]) * time.Second)
			if t.Before(from) || !t.Before(to) {
				continue
			}
			sc, err := c.at(i)
			if err != nil {
				return err
			}
			page = append(page, named{sc, name})
		}
		c = chunk{}
		return nil
	})
	if err != nil {
		return page, err
	}
	rows, err = br.Query()
	if err != nil {
		return page, err
	}
	var sc scanned
	_, err = pgx.ForEachRow(rows, sc.dest(), func() error {
		name, err := s.deviceName(ctx, sid, sc.device)
		if err != nil {
			return err
		}
		page = append(page, named{sc, name})
		sc.phases = nil
		return nil
	})
	if err != nil {
		return page, err
	}
	rows, err = br.Query()
	if err != nil {
		return page, err
	}
	var m minuteRow
	_, err = pgx.ForEachRow(rows, m.dest(), func() error {
		name, err := s.deviceName(ctx, sid, m.device)
		if err != nil {
			return err
		}
		m.expand()
		for i := range m.offs {
			t := m.hour.Add(time.Duration(m.offs[i]) * time.Second)
			if t.Before(from) || !t.Before(to) {
				continue
			}
			e := m.at(i)
			sc, err := e.scanned(m.hour, m.device)
			if err != nil {
				return err
			}
			page = append(page, named{sc, name})
		}
		m = minuteRow{}
		return nil
	})
	if err != nil {
		return page, err
	}
	return page, br.Close()
}

// nextTime is the time of the source's first reading at or after from
// (before to), at hour precision for chunks and minutes.
func (s *Store) nextTime(ctx context.Context, sid int32, from, to time.Time) (time.Time, bool, error) {
	var next *time.Time
	err := s.rpool.QueryRow(ctx, `SELECT least(
			(SELECT min(hour) FROM chunks WHERE source_id = $1 AND hour >= $2 AND hour < $3),
			(SELECT min(hour) FROM minutes WHERE source_id = $1 AND hour >= $2 AND hour < $3),
			(SELECT min(t) FROM recent WHERE source_id = $1 AND t >= $2 AND t < $3))`,
		sid, from.Truncate(time.Hour), to).Scan(&next)
	if err != nil || next == nil {
		return time.Time{}, false, err
	}
	n := next.UTC()
	if n.Before(from) {
		n = from // a chunk that began before from
	}
	return n, true, nil
}
