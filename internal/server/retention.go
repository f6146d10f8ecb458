package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/energy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// Retention is the [server.retention] job: it reduces the raw readings of
// every configured source older than its retention to one reading per
// device and UTC minute (store.Reducer, with energy.Reducer so that every
// day's energy stays what it was), in slices of [server.retention] batch
// raw readings, so ingest goes on between them.
type Retention struct {
	store   store.Store
	st      store.Reducer
	sources []retained
	every   time.Duration
	batch   int64
	fn      store.ReduceFunc
	log     *slog.Logger
	now     func() time.Time

	counts *sourceCounts // raw readings replaced, rows written, by source; nil without metrics
}

// retained is a source with a retention.
type retained struct {
	name string
	keep time.Duration
}

// RetentionResult is what one pass did for one source.
type RetentionResult struct {
	Source string
	store.ReduceResult
	Took time.Duration
}

// NewRetention returns the job for the sources of cfg that keep raw
// readings for a limited time, or nil when there is nothing to do: no
// source has a retention, or st cannot reduce (then it logs a warning).
func NewRetention(cfg *config.Config, st store.Store, log *slog.Logger) *Retention {
	if cfg.Server == nil {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var srcs []retained
	for _, src := range cfg.Server.Sources {
		if d := cfg.Server.RetentionOf(src.Name); d > 0 {
			srcs = append(srcs, retained{src.Name, d})
		}
	}
	if len(srcs) == 0 {
		return nil
	}
	red, ok := st.(store.Reducer)
	if !ok {
		log.Warn("retention: this database cannot reduce readings; raw readings are kept", "retention", cfg.Server.Retention.Raw.Duration)
		return nil
	}
	r := cfg.Server.Retention
	return &Retention{
		store:   st,
		st:      red,
		sources: srcs,
		every:   r.Every.Duration,
		batch:   int64(r.Batch),
		fn:      energy.Reducer(cfg.Logger.Interval.Duration),
		log:     log,
		now:     time.Now,
	}
}

// register adds the job's counters to reg: raw readings replaced and rows
// written per retained source (kept flat, like the ingest counters: a
// server for many homes retains them all).
func (r *Retention) register(reg *prometheus.Registry) {
	raw := prometheus.NewDesc("powermeter_retention_raw_readings_total",
		"Raw readings replaced by 1-minute rows ([server.retention]), by source.", []string{"source"}, nil)
	rows := prometheus.NewDesc("powermeter_retention_rows_written_total",
		"Reduced 1-minute rows written by [server.retention], by source.", []string{"source"}, nil)
	r.counts = newSourceCounts(countColumn{desc: raw}, countColumn{desc: rows})
	names := make([]string, len(r.sources))
	for i, src := range r.sources {
		names[i] = src.name
	}
	r.counts.prepare(names)
	reg.MustRegister(r.counts)
}

// Run makes a pass at once and then every [server.retention] every, until
// ctx ends. A failing pass is logged and tried again next time.
func (r *Retention) Run(ctx context.Context) {
	for _, src := range r.sources {
		r.log.Info("retention: raw readings are reduced to 1-minute rows after their retention", "source", src.name,
			"retention", days(src.keep), "every", r.every, "batch", r.batch)
	}
	for {
		if _, err := r.Pass(ctx); err != nil && ctx.Err() == nil {
			r.log.Error("retention: pass failed; trying again later", "err", err, "every", r.every)
		}
		t := time.NewTimer(r.every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Pass reduces, for every source, what is older than its retention, in
// slices, and returns what it did per source. It logs each source that had
// something to reduce. An error of one source does not stop the others.
func (r *Retention) Pass(ctx context.Context) ([]RetentionResult, error) {
	var out []RetentionResult
	var errs []error
	for _, src := range r.sources {
		res, err := r.source(ctx, src)
		if res.Raw > 0 || err != nil {
			out = append(out, res)
		}
		if err != nil {
			if ctx.Err() != nil {
				return out, ctx.Err()
			}
			errs = append(errs, err)
		}
	}
	return out, errors.Join(errs...)
}

// progressEvery is how often a long reduction (the first after a
// retention is set on years of readings) logs how far it got.
const progressEvery = time.Minute

// source reduces one source up to now minus its retention, batch raw
// readings per Reduce call.
func (r *Retention) source(ctx context.Context, src retained) (RetentionResult, error) {
	before := r.now().Add(-src.keep)
	out := RetentionResult{Source: src.name}
	start := time.Now()
	lastLog := start
	var prevUntil time.Time
	for {
		res, err := r.st.Reduce(ctx, src.name, before, r.batch, r.fn)
		out.Raw += res.Raw
		out.Reduced += res.Reduced
		out.Until, out.Done = res.Until, res.Done
		if r.counts != nil {
			r.counts.add(src.name, 0, uint64(res.Raw))
			r.counts.add(src.name, 1, uint64(res.Reduced))
		}
		if errors.Is(err, store.ErrUnknownSource) {
			return out, nil // nothing stored yet
		}
		if err != nil {
			out.Took = time.Since(start)
			return out, fmt.Errorf("retention of %s: %w", src.name, err)
		}
		if res.Done {
			break
		}
		if res.Raw == 0 && !res.Until.After(prevUntil) {
			out.Took = time.Since(start)
			return out, fmt.Errorf("retention of %s: the store made no progress at %s", src.name, res.Until.Format(time.RFC3339))
		}
		prevUntil = res.Until
		if time.Since(lastLog) >= progressEvery {
			lastLog = time.Now()
			r.log.Info("retention: reducing", "source", src.name, "raw", out.Raw, "rows", out.Reduced,
				"until", out.Until.Format(time.RFC3339), "before", before.Format(time.RFC3339))
		}
	}
	out.Took = time.Since(start)
	if out.Raw > 0 {
		r.log.Info("retention: raw readings reduced to 1-minute rows", "source", src.name, "raw", out.Raw, "rows", out.Reduced,
			"until", out.Until.Format(time.RFC3339), "took", out.Took.Round(time.Millisecond))
	}
	return out, nil
}

// Pending is what a pass would do now, without doing it: per source, the
// raw readings (Raw) between its horizon and now minus its retention
// (Until).
func (r *Retention) Pending(ctx context.Context) ([]RetentionResult, error) {
	var out []RetentionResult
	for _, src := range r.sources {
		before := r.now().Add(-src.keep).Truncate(time.Minute)
		res := RetentionResult{Source: src.name}
		res.Until = before
		from, err := r.st.Horizon(ctx, src.name)
		if errors.Is(err, store.ErrUnknownSource) {
			continue
		}
		if err != nil {
			return out, err
		}
		if from.Before(before) {
			err = r.store.Range(ctx, src.name, from, before, func(rd reading.Reading) error {
				if rd.Reduced == nil {
					res.Raw++
				}
				return nil
			})
			if err != nil {
				return out, fmt.Errorf("counting the raw readings of %s: %w", src.name, err)
			}
		}
		res.Done = res.Raw == 0
		out = append(out, res)
	}
	return out, nil
}

// days writes a retention as config does ("365d"), else as a duration.
func days(d time.Duration) string {
	if day := 24 * time.Hour; d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}
