package logger

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
)

// readResult is what one meter's read gave.
type readResult struct {
	m       meter.Meter // the meter read (a new one when it was re-created)
	rs      []reading.Reading
	err     error
	skipped bool // not read: the meter backs off after a refused login
}

// round reads every meter at slot and stores the readings in the outbox. A
// meter that does not answer by 9/10 of the interval (its code ignores the
// timeout) is left out of the round and built anew for the next one; the
// old one is closed once its read returns.
func (l *Logger) round(ctx context.Context, slot time.Time) int {
	if l.observeRound != nil {
		began := time.Now()
		defer func() { l.observeRound(time.Since(began)) }()
	}
	l.setState(Reading)
	chs := make([]chan readResult, len(l.meters))
	now := l.clock.Now()
	for i, ms := range l.meters {
		chs[i] = make(chan readResult, 1)
		m := ms.m
		if ms.auth.waiting(now) {
			// a refused login: no read (and no login) before the back-off ends
			chs[i] <- readResult{m: m, skipped: true}
			continue
		}
		go func() { chs[i] <- l.read(ctx, ms.cfg, m) }()
	}
	wait, cancel := context.WithTimeout(context.Background(), l.interval*9/10)
	defer cancel()
	var items []outbox.Item
	for i, ms := range l.meters {
		select {
		case r := <-chs[i]:
			ms.m = r.m
			if r.skipped {
				continue
			}
			items = append(items, l.readDone(ctx, i, slot, r.rs, r.err)...)
		case <-wait.Done():
			l.straggler(ctx, i, chs[i])
		}
	}
	// newest first: an uplink woken by the append must see this round as
	// the current one.
	l.newest.Store(slot.UnixNano())
	l.saveItems(items)
	l.mu.Lock()
	l.counters.Rounds++
	l.counters.Readings += uint64(len(items))
	l.lastSlot = slot
	l.mu.Unlock()
	l.setState(l.settled())
	return len(items)
}

// straggler leaves meter i out of the round: its read is still running
// past its timeout. The meter is built anew next round; the old one is
// closed when its read returns.
func (l *Logger) straggler(ctx context.Context, i int, ch <-chan readResult) {
	ms := l.meters[i]
	l.log.Warn("meter did not answer within its timeout (its code ignores it); left out of the round, built anew for the next", "meter", ms.cfg.Name, "waited", l.interval*9/10)
	l.mu.Lock()
	l.counters.LateMeters++
	l.mu.Unlock()
	ms.m = nil
	l.meterFailed(ctx, i, l.clock.Now(), meter.Errorf(meter.Unreachable, context.DeadlineExceeded, "%s did not answer within %v", ms.cfg.Name, l.interval*9/10))
	log := l.log
	go func() {
		r := <-ch
		if r.m == nil {
			return
		}
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
		defer cancel()
		if err := r.m.Close(cctx); err != nil {
			log.Debug("closing the late meter", "meter", ms.cfg.Name, "err", err)
		}
	}()
}

// maxUnsaved bounds the readings kept in memory while the outbox cannot be
// written (a full or failing disk).
const maxUnsaved = 8640

// saveItems appends items (after any that could not be saved before).
// What the outbox stored before an error is not appended again.
func (l *Logger) saveItems(items []outbox.Item) {
	all := append(l.unsaved, items...)
	if len(all) == 0 {
		return
	}
	n, err := l.ob.Append(all)
	if err == nil {
		l.unsaved = nil
		return
	}
	all = all[n:]
	l.log.Error("outbox: cannot store readings; keeping them in memory and retrying next round", "readings", len(all), "stored", n, "err", err)
	var lost int
	if len(all) > maxUnsaved {
		lost = len(all) - maxUnsaved
		l.log.Error("outbox: memory buffer full; dropping the oldest readings", "dropped", lost)
		all = all[lost:]
	}
	l.unsaved = append([]outbox.Item(nil), all...)
	l.mu.Lock()
	l.counters.OutboxErrors++
	l.memDropped += uint64(lost)
	l.mu.Unlock()
}

// settled is the state between rounds: idle, or degraded when a meter or
// an uplink fails.
func (l *Logger) settled() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.clk.Unset {
		return ClockCheck
	}
	for _, m := range l.mstat {
		if m.Failures > 0 {
			return Degraded
		}
	}
	for _, u := range l.ustat {
		if u.Failing {
			return Degraded
		}
	}
	return Idle
}

// read reads meter m (building it first when it is nil) under the
// meter's timeout. It touches no shared state.
func (l *Logger) read(ctx context.Context, mc config.Meter, m meter.Meter) readResult {
	ctx, cancel := context.WithTimeout(ctx, l.meterTimeout(mc))
	defer cancel()
	if m == nil {
		var err error
		m, err = l.opts.NewMeter(mc, meter.Deps{Log: l.log.With("meter", mc.Name), Zone: l.zone, Now: l.clock.Now})
		if err != nil {
			return readResult{err: fmt.Errorf("re-creating the meter: %w", err)}
		}
	}
	rs, err := l.safeRead(ctx, mc, m)
	return readResult{m: m, rs: rs, err: err}
}

// readDone stamps the readings of meter i with the round's instant,
// checks them and updates the meter's status.
func (l *Logger) readDone(ctx context.Context, i int, slot time.Time, rs []reading.Reading, err error) []outbox.Item {
	ms := l.meters[i]
	name := ms.cfg.Name
	if err == nil {
		// The round's instant on the grid; the device's clock stays in
		// DeviceTime.
		for j := range rs {
			rs[j].Time = slot.UTC()
			if rs[j].Device == "" {
				rs[j].Device = name
			}
			if verr := rs[j].Validate(); verr != nil {
				err = meter.Errorf(meter.BadAnswer, verr, "the meter returned an unusable reading")
				break
			}
		}
		if err == nil && len(rs) == 0 {
			err = meter.Errorf(meter.BadAnswer, nil, "the meter returned no reading")
		}
	}
	now := l.clock.Now()
	if err != nil {
		l.meterFailed(ctx, i, now, err)
		return nil
	}
	items := make([]outbox.Item, len(rs))
	for j, r := range rs {
		items[j] = outbox.Item{Meter: name, Reading: r}
	}
	l.mu.Lock()
	st := &l.mstat[i]
	if st.Failures > 0 {
		l.log.Info("meter reads again", "meter", name, "after_failures", st.Failures)
	}
	st.Failures = 0
	st.Reads++
	st.LastReadAt = now
	if !ms.auth.since.IsZero() {
		l.log.Info("meter: login accepted again", "meter", name, "refused_since", ms.auth.since)
		ms.auth = authBackoff{}
		st.AuthRefusedSince, st.NextLoginAt = time.Time{}, time.Time{}
	}
	st.LastReadings = append(st.LastReadings[:0], rs...)
	l.mu.Unlock()
	return items
}

// safeRead reads m and turns a panic in a device family's code into an
// error: one misbehaving plug-in must not end the loop.
func (l *Logger) safeRead(ctx context.Context, mc config.Meter, m meter.Meter) (rs []reading.Reading, err error) {
	defer func() {
		if p := recover(); p != nil {
			l.log.Error("meter code panicked (a bug: please report it)", "meter", mc.Name, "type", mc.Type, "panic", p, "stack", string(debug.Stack()))
			err = meter.Errorf(meter.BadAnswer, nil, "the meter's code panicked: %v", p)
		}
	}()
	return m.Read(ctx)
}

func (l *Logger) meterFailed(ctx context.Context, i int, now time.Time, err error) {
	ms := l.meters[i]
	l.mu.Lock()
	st := &l.mstat[i]
	st.Failures++
	st.Errors++
	if st.ErrorsByKind == nil {
		st.ErrorsByKind = map[string]uint64{}
	}
	st.ErrorsByKind[kindName(err)]++
	changed := st.LastError != err.Error()
	st.LastError = err.Error()
	st.LastErrorAt = now
	failures := st.Failures
	l.mu.Unlock()
	if meter.IsAuth(err) {
		l.meterAuthFailed(i, now, err)
		return // a new session would not help: back off instead
	}
	if failures == 1 || changed {
		l.log.Warn("meter read failed", "meter", ms.cfg.Name, "kind", meter.KindOf(err).String(), "failures_in_a_row", failures, "err", err)
	}
	if failures%FailuresBeforeRecreate != 0 || ms.m == nil {
		return
	}
	l.log.Warn("meter failed rounds in a row: re-creating it (new session, new connections)", "meter", ms.cfg.Name, "failures_in_a_row", failures)
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	if cerr := ms.m.Close(cctx); cerr != nil {
		l.log.Debug("closing the failed meter", "meter", ms.cfg.Name, "err", cerr)
	}
	cancel()
	m, nerr := l.opts.NewMeter(ms.cfg, meter.Deps{Log: l.log.With("meter", ms.cfg.Name), Zone: l.zone, Now: l.clock.Now})
	if nerr != nil {
		l.log.Error("re-creating the meter failed; trying again next round", "meter", ms.cfg.Name, "err", nerr)
		ms.m = nil
	} else {
		ms.m = m
	}
	l.mu.Lock()
	l.mstat[i].Recreated++
	l.mu.Unlock()
}

// kindName names an error's kind for counts: "unreachable", "bad_answer", …
func kindName(err error) string {
	if k := meter.KindOf(err); k != 0 {
		return strings.ReplaceAll(k.String(), " ", "_")
	}
	return "other"
}

// newestRound is the instant of the newest round appended.
func (l *Logger) newestRound() time.Time { return time.Unix(0, l.newest.Load()).UTC() }
