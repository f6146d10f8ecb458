// Package migrate copies every source and reading from one store to another
// (any two backends): resumable, since inserts are idempotent, and checked
// by counts per source at the end.
package migrate

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// Options tune Copy. Zero values take the defaults.
type Options struct {
	// Chunk is the number of readings per Insert into the target (default
	// 5000): each chunk is stored all or nothing.
	Chunk int
	// Window is the time span one Range over the source covers, so no read
	// of the source stays open long. Default: a span holding about 50 000
	// of the source's readings on average (at least an hour, at most a
	// year), so sparse sources do not cost one query per empty day.
	Window time.Duration
	// Full copies every source from its first reading instead of resuming
	// where the target ends (the already stored ones count as present).
	Full bool
	// Progress, when set, is called after each chunk and at the end of each
	// source with the readings handled so far out of total.
	Progress func(done, total int64, source string)
}

// SourceReport is what Copy did for one source.
type SourceReport struct {
	Name     string
	From     time.Time // where the copy started (zero: nothing to copy)
	Resumed  bool      // From is the target's last reading, not the source's first
	Read     int64     // readings read from the source
	Inserted int64     // new in the target
	Present  int64     // already in the target
	Source   int64     // count in the source at the end
	Target   int64     // count in the target at the end
	Extra    int64     // target readings outside the source's time span
	// Skipped counts readings the target cannot hold (reading.Validate
	// refuses them: a control character in a device name, …); Invalid
	// names up to 10 of them.
	Skipped int64
	Invalid []string
	// Unfit counts every such reading in the source at the end (including
	// ones skipped by an earlier run), when the counts differed.
	Unfit int64
	// Days counts the day summaries without readings (imported from a PHP
	// app's chart_stats.csv) copied to the target.
	Days int64
}

// Report is what Copy did.
type Report struct {
	Sources []SourceReport
}

// Totals sums the per-source counts.
func (r *Report) Totals() (read, inserted, present int64) {
	for _, s := range r.Sources {
		read += s.Read
		inserted += s.Inserted
		present += s.Present
	}
	return
}

// MismatchError lists the sources whose counts differ after the copy.
type MismatchError struct {
	Sources []SourceReport
}

func (e *MismatchError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "verification failed for %d source(s):", len(e.Sources))
	for _, s := range e.Sources {
		fmt.Fprintf(&b, " %q has %d readings in the source but %d in the target;", s.Name, s.Source, s.Target-s.Extra)
	}
	b.WriteString(" run again (with --full to re-check every reading)")
	return b.String()
}

// Copy copies the sources of from into to, then their readings source by
// source in time order. Unless opt.Full, a source the target already holds
// from the same first reading resumes at the target's last reading. At the
// end the counts per source are compared; a difference is a
// *MismatchError. Readings the target cannot hold (reading.Validate
// refuses them; an older SQLite file may hold a device name with a NUL)
// are skipped, counted and named in the report, not copied.
func Copy(ctx context.Context, from, to store.Store, opt Options) (*Report, error) {
	if opt.Chunk <= 0 {
		opt.Chunk = 5000
	}
	srcs, err := from.Sources(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the sources to copy: %w", err)
	}
	for _, s := range srcs {
		if err := to.EnsureSource(ctx, s.Name, s.Timezone); err != nil {
			return nil, fmt.Errorf("creating source %q in the target: %w", s.Name, err)
		}
	}
	have, err := sourceMap(ctx, to)
	if err != nil {
		return nil, fmt.Errorf("reading the target's sources: %w", err)
	}
	var total, done int64
	for _, s := range srcs {
		total += s.Count
	}
	rep := &Report{}
	for _, s := range srcs {
		sr := SourceReport{Name: s.Name}
		if s.Count > 0 {
			sr.From = s.First
			if t, ok := have[s.Name]; ok && !opt.Full && t.Count > 0 && !t.First.After(s.First) && t.Last.After(s.First) {
				sr.From, sr.Resumed = t.Last, true
			}
			if err := copySource(ctx, from, to, s, &sr, opt, func() {
				if opt.Progress != nil {
					opt.Progress(done+sr.Read, total, s.Name)
				}
			}); err != nil {
				return rep, err
			}
		}
		n, err := copyImportedDays(ctx, from, to, s.Name)
		if err != nil {
			return rep, err
		}
		sr.Days = int64(n)
		done += s.Count
		if opt.Progress != nil {
			opt.Progress(done, total, s.Name)
		}
		rep.Sources = append(rep.Sources, sr)
	}
	return rep, verify(ctx, from, to, rep)
}

// copyImportedDays copies a source's day summaries without readings when
// both stores keep them; copying them again replaces them with the same.
func copyImportedDays(ctx context.Context, from, to store.Store, source string) (int, error) {
	src, ok := from.(store.DayImporter)
	if !ok {
		return 0, nil
	}
	days, err := src.ImportedDays(ctx, source, "0001-01-01", "9999-12-31")
	if err != nil {
		return 0, fmt.Errorf("reading the day summaries of %q: %w", source, err)
	}
	if len(days) == 0 {
		return 0, nil
	}
	dst, ok := to.(store.DayImporter)
	if !ok {
		return 0, fmt.Errorf("copying %d day summaries of %q: the target does not keep day summaries", len(days), source)
	}
	if _, err := dst.PutImportedDays(ctx, source, days); err != nil {
		return 0, fmt.Errorf("copying the day summaries of %q: %w", source, err)
	}
	return len(days), nil
}

func sourceMap(ctx context.Context, st store.Store) (map[string]store.SourceInfo, error) {
	list, err := st.Sources(ctx)
	if err != nil {
		return nil, err
	}
	m := make(map[string]store.SourceInfo, len(list))
	for _, s := range list {
		m[s.Name] = s
	}
	return m, nil
}

// copySource streams one source window by window into chunks.
func copySource(ctx context.Context, from, to store.Store, s store.SourceInfo, sr *SourceReport, opt Options, progress func()) error {
	chunk := make([]reading.Reading, 0, opt.Chunk)
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		res, err := to.Insert(ctx, s.Name, chunk)
		if err != nil {
			return fmt.Errorf("copying %q: storing %d readings from %s: %w", s.Name, len(chunk), chunk[0].Time.Format(time.RFC3339), err)
		}
		sr.Inserted += int64(res.Inserted)
		sr.Present += int64(res.Present)
		chunk = chunk[:0]
		progress()
		return nil
	}
	end := s.Last.Add(time.Second) // Last is a whole second and inclusive
	window := opt.Window
	if window <= 0 {
		window = 365 * 24 * time.Hour
		if span := end.Sub(s.First); s.Count > 0 && span > 0 {
			window = min(max(time.Duration(float64(span)*50000/float64(s.Count)), time.Hour), window)
		}
	}
	for w := sr.From; w.Before(end); w = w.Add(window) {
		wend := w.Add(window)
		if wend.After(end) {
			wend = end
		}
		err := from.Range(ctx, s.Name, w, wend, func(r reading.Reading) error {
			sr.Read++
			if err := r.Validate(); err != nil {
				sr.Skipped++
				if len(sr.Invalid) < 10 {
					sr.Invalid = append(sr.Invalid, fmt.Sprintf("%s at %s: %v", strconv.QuoteToASCII(r.Device), r.Time.Format(time.RFC3339), err))
				}
				return nil
			}
			chunk = append(chunk, r)
			if len(chunk) == opt.Chunk {
				return flush()
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("copying %q from %s: %w", s.Name, w.Format(time.RFC3339), err)
		}
	}
	return flush()
}

// verify compares the counts per source. Readings the target has outside
// the source's span (a server already writing to the target) are counted
// apart and do not fail the check.
func verify(ctx context.Context, from, to store.Store, rep *Report) error {
	src, err := sourceMap(ctx, from)
	if err != nil {
		return fmt.Errorf("verifying: %w", err)
	}
	dst, err := sourceMap(ctx, to)
	if err != nil {
		return fmt.Errorf("verifying: %w", err)
	}
	var bad []SourceReport
	for i := range rep.Sources {
		sr := &rep.Sources[i]
		s, t := src[sr.Name], dst[sr.Name]
		sr.Source, sr.Target = s.Count, t.Count
		if sr.Target != sr.Source && s.Count > 0 {
			var inside int64
			err := to.Range(ctx, sr.Name, s.First, s.Last.Add(time.Second), func(reading.Reading) error {
				inside++
				return nil
			})
			if err != nil {
				return fmt.Errorf("verifying %q: %w", sr.Name, err)
			}
			sr.Extra = sr.Target - inside
			// readings the target cannot hold are not expected there
			err = from.Range(ctx, sr.Name, s.First, s.Last.Add(time.Second), func(r reading.Reading) error {
				if r.Validate() != nil {
					sr.Unfit++
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("verifying %q: %w", sr.Name, err)
			}
		}
		if sr.Target-sr.Extra != sr.Source-sr.Unfit {
			bad = append(bad, *sr)
		}
	}
	if len(bad) > 0 {
		return &MismatchError{Sources: bad}
	}
	return nil
}

// IsMismatch reports whether err is a failed verification.
func IsMismatch(err error) bool {
	var m *MismatchError
	return errors.As(err, &m)
}
