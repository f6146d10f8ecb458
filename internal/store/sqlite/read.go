package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// sourceID resolves a source name (cached: ids never change).
func (s *Store) sourceID(ctx context.Context, name string) (int64, error) {
	s.mu.Lock()
	id, ok := s.srcIDs[name]
	s.mu.Unlock()
	if ok {
		return id, nil
	}
	err := s.r.QueryRowContext(ctx, "SELECT id FROM sources WHERE name = ?", name).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("source %q: %w", name, store.ErrUnknownSource)
	}
	if err != nil {
		return 0, fmt.Errorf("look up source %q: %w", name, err)
	}
	s.mu.Lock()
	s.srcIDs[name] = id
	s.mu.Unlock()
	return id, nil
}

// rangePage is the most rows one query of Range reads. Range reads a page,
// gives its connection back, and only then hands the page to fn: a slow
// consumer (a stalled download) holds one page of memory, never a
// connection that every other read and the writer's device lookups need.
const rangePage = 10000

// rangeQuery selects the next page of readings of source id: those with
// key ts*65536+dev >= ?1 and ts < ?2 (keyset pagination along the primary
// key; the first page starts at key lo*65536). ts and dev come packed in
// one column too: every column costs two locked driver calls per row, a
// third of the scan.
func rangeQuery(id int64) string {
	return "SELECT ts * 65536 + dev, p, v FROM " + readings(id) +
		" WHERE ts >= ?1 >> 16 AND ts < ?2 AND ts * 65536 + dev >= ?1 ORDER BY ts, dev LIMIT " + strconv.Itoa(rangePage)
}

// ceilSec is the first whole second at or after t, in ts units.
func ceilSec(t time.Time) int64 {
	sec := t.Unix()
	if t.Nanosecond() > 0 {
		sec++
	}
	return sec - epoch
}

// pageRow is one reading of a Range page with its ts.
type pageRow struct {
	ts int64
	r  reading.Reading
}

// pages recycles Range's page buffers (a page is about 1.4 MB).
var pages = sync.Pool{New: func() any { return new([]pageRow) }}

// Range implements store.Store. It streams page by page (see rangePage);
// no connection is held while fn runs. Readings inserted during a long
// Range may or may not be seen; order and bounds hold either way.
func (s *Store) Range(ctx context.Context, source string, from, to time.Time, fn func(reading.Reading) error) error {
	id, err := s.sourceID(ctx, source)
	if err != nil {
		return err
	}
	lo, hi := ceilSec(from), ceilSec(to)
	if lo >= hi {
		return nil
	}
	// Rows come in (ts, device id) order; readings of one second are
	// buffered (one per device at most, across pages too) and handed out by
	// device name.
	var same []reading.Reading
	flush := func() error {
		if len(same) > 1 {
			sort.Slice(same, func(i, j int) bool { return same[i].Device < same[j].Device })
		}
		for _, r := range same {
			if err := fn(r); err != nil {
				return err
			}
		}
		same = same[:0]
		return nil
	}
	cur := int64(math.MinInt64)
	q := rangeQuery(id)
	buf := pages.Get().(*[]pageRow)
	page := *buf
	defer func() {
		clear(page[:cap(page)])
		*buf = page[:0]
		pages.Put(buf)
	}()
	next := lo * maxDevices // key of the first row of the next page
	for {
		page = page[:0]
		args := []driver.NamedValue{{Ordinal: 1, Value: next}, {Ordinal: 2, Value: hi}}
		err := s.withRaw(ctx, func(prep driver.ConnPrepareContext) error {
			s.mu.Lock()
			names, ok := s.devName[id]
			s.mu.Unlock()
			if !ok {
				var err error
				if names, err = s.rawDeviceNames(ctx, prep, id); err != nil {
					return err
				}
			}
			return rawQuery(ctx, prep, q, args, func(row []driver.Value) error {
				k, ok1 := row[0].(int64)
				p, ok2 := row[1].(int64)
				if !ok1 || !ok2 {
					return fmt.Errorf("corrupt row %v", row)
				}
				ts, dev := k>>16, k&(maxDevices-1)
				name, ok := names[dev]
				if !ok {
					var err error
					if names, err = s.rawDeviceNames(ctx, prep, id); err != nil {
						return err
					}
					if name, ok = names[dev]; !ok {
						return fmt.Errorf("reading of unknown device id %d", dev)
					}
				}
				r, err := decodeRow(name, ts, p, row[2])
				if err != nil {
					return err
				}
				page = append(page, pageRow{ts, r})
				next = k + 1
				return nil
			})
		})
		if err != nil {
			return fmt.Errorf("range %s: %w", source, err)
		}
		for i := range page {
			if i%64 == 63 {
				if err := ctx.Err(); err != nil {
					return fmt.Errorf("range %s: %w", source, err)
				}
			}
			if page[i].ts != cur {
				if err := flush(); err != nil {
					return err // fn's own error, as it is
				}
				cur = page[i].ts
			}
			same = append(same, page[i].r)
		}
		if len(page) < rangePage {
			return flush()
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("range %s: %w", source, err)
		}
	}
}

// withRaw runs fn on the driver connection of a reader: Range's hot loop
// goes around database/sql's per-row conversions.
func (s *Store) withRaw(ctx context.Context, fn func(driver.ConnPrepareContext) error) error {
	conn, err := s.r.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		prep, ok := dc.(driver.ConnPrepareContext)
		if !ok {
			return fmt.Errorf("sqlite driver: %T cannot prepare with a context", dc)
		}
		return fn(prep)
	})
}

// rawQuery runs query on a driver connection and calls each for every row
// (the row slice is reused). Another rawQuery may run on the same
// connection from inside each.
func rawQuery(ctx context.Context, prep driver.ConnPrepareContext, query string, args []driver.NamedValue, each func([]driver.Value) error) error {
	st, err := prep.PrepareContext(ctx, query)
	if err != nil {
		return err
	}
	defer st.Close()
	q, ok := st.(driver.StmtQueryContext)
	if !ok {
		return fmt.Errorf("sqlite driver: %T cannot query with a context", st)
	}
	rows, err := q.QueryContext(ctx, args)
	if err != nil {
		return err
	}
	defer rows.Close()
	row := make([]driver.Value, len(rows.Columns()))
	for n := 0; ; n++ {
		if n%64 == 63 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := rows.Next(row); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if err := each(row); err != nil {
			return err
		}
	}
}

// rawDeviceNames reads the device names of a source on a driver
// connection (a Range meeting a device newer than the cache) and updates
// the cache.
func (s *Store) rawDeviceNames(ctx context.Context, prep driver.ConnPrepareContext, src int64) (map[int64]string, error) {
	names := map[int64]string{}
	err := rawQuery(ctx, prep, "SELECT id, name FROM devices WHERE src = ?1", []driver.NamedValue{{Ordinal: 1, Value: src}},
		func(row []driver.Value) error {
			id, ok1 := row[0].(int64)
			name, ok2 := row[1].(string)
			if !ok1 || !ok2 {
				return fmt.Errorf("corrupt device row %v", row)
			}
			names[id] = name
			return nil
		})
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	s.mu.Lock()
	s.devName[src] = names
	s.mu.Unlock()
	return names, nil
}

// Latest implements store.Store: the newest reading of every device, in
// device name order.
func (s *Store) Latest(ctx context.Context, source string) ([]reading.Reading, error) {
	id, err := s.sourceID(ctx, source)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT d.name, r.ts, r.p, r.v FROM devices d
		JOIN `+readings(id)+` r ON r.ts = d.last_ts AND r.dev = d.id
		WHERE d.src = ? ORDER BY d.name`, id)
	if err != nil {
		return nil, fmt.Errorf("latest %s: %w", source, err)
	}
	defer rows.Close()
	out := []reading.Reading{}
	for rows.Next() {
		var (
			name  string
			ts, p int64
			v     any
		)
		if err := rows.Scan(&name, &ts, &p, &v); err != nil {
			return nil, fmt.Errorf("latest %s: %w", source, err)
		}
		r, err := decodeRow(name, ts, p, v)
		if err != nil {
			return nil, fmt.Errorf("latest %s: %w", source, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("latest %s: %w", source, err)
	}
	return out, nil
}

// Sources implements store.Store, in name order; devices in name order.
func (s *Store) Sources(ctx context.Context) ([]store.SourceInfo, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT s.name, s.timezone, d.name, d.n, d.first_ts, d.last_ts
		FROM sources s LEFT JOIN devices d ON d.src = s.id ORDER BY s.name, d.name`)
	if err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	defer rows.Close()
	out := []store.SourceInfo{}
	for rows.Next() {
		var (
			name, zone  string
			dev         sql.NullString
			n           sql.NullInt64
			first, last sql.NullInt64
		)
		if err := rows.Scan(&name, &zone, &dev, &n, &first, &last); err != nil {
			return nil, fmt.Errorf("list sources: %w", err)
		}
		if len(out) == 0 || out[len(out)-1].Name != name {
			out = append(out, store.SourceInfo{Name: name, Timezone: zone, Devices: []string{}})
		}
		si := &out[len(out)-1]
		if !dev.Valid {
			continue
		}
		si.Devices = append(si.Devices, dev.String)
		si.Count += n.Int64
		if first.Valid {
			if t := time.Unix(first.Int64+epoch, 0).UTC(); si.First.IsZero() || t.Before(si.First) {
				si.First = t
			}
		}
		if last.Valid {
			if t := time.Unix(last.Int64+epoch, 0).UTC(); t.After(si.Last) {
				si.Last = t
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sources: %w", err)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// LastTime implements store.Store.
func (s *Store) LastTime(ctx context.Context, source string) (time.Time, bool, error) {
	id, err := s.sourceID(ctx, source)
	if err != nil {
		return time.Time{}, false, err
	}
	var last sql.NullInt64
	if err := s.r.QueryRowContext(ctx, "SELECT max(ts) FROM "+readings(id)).Scan(&last); err != nil {
		return time.Time{}, false, fmt.Errorf("last time %s: %w", source, err)
	}
	if !last.Valid {
		return time.Time{}, false, nil
	}
	return time.Unix(last.Int64+epoch, 0).UTC(), true, nil
}

// Days implements store.Store.
func (s *Store) Days(ctx context.Context, source, from, to string) ([]store.Day, error) {
	return s.days(ctx, source, from, to, "summary, summary_version")
}

// DayVersions implements store.DayVersioner: the summaries stay unread,
// so a year's list does not copy a year of summary documents out of the
// file. Not even summary_version is read: it follows the summary in the
// row, and reaching it walks the summary's overflow pages.
func (s *Store) DayVersions(ctx context.Context, source, from, to string) ([]store.Day, error) {
	return s.days(ctx, source, from, to, "NULL, 0")
}

// days lists the days from..to with cols (the summary and its version, or
// NULL, 0) after their versions.
func (s *Store) days(ctx context.Context, source, from, to, cols string) ([]store.Day, error) {
	for _, d := range []string{from, to} {
		if _, err := time.Parse(time.DateOnly, d); err != nil {
			return nil, fmt.Errorf("days %s: %q: want YYYY-MM-DD", source, d)
		}
	}
	id, err := s.sourceID(ctx, source)
	if err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT day, version, `+cols+` FROM days
		WHERE src = ? AND day >= ? AND day <= ? ORDER BY day`, id, from, to)
	if err != nil {
		return nil, fmt.Errorf("days %s: %w", source, err)
	}
	defer rows.Close()
	out := []store.Day{}
	for rows.Next() {
		var d store.Day
		if err := rows.Scan(&d.Day, &d.Version, &d.Summary, &d.SummaryVersion); err != nil {
			return nil, fmt.Errorf("days %s: %w", source, err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("days %s: %w", source, err)
	}
	return out, nil
}
