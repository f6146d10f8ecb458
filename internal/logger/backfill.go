package logger

import (
	"context"
	"sort"
	"time"

	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/outbox"
)

// BackfillWindow is how far back the logger fills a gap from a device's
// history (a FRITZ!DECT keeps the last hour at 10 s).
const BackfillWindow = time.Hour

// backfill fills the rounds missed while the logger was down from the
// history of FRITZ!DECT meters, when their last reading in the outbox is
// less than an hour old. The history of all meters goes into the outbox in
// one append, ordered by time and then config order, so the meters of one
// round lie together (a legacy uplink combines them into one line).
func (l *Logger) backfill(ctx context.Context) {
	now := l.clock.Now()
	if now.Year() < 2020 {
		return
	}
	var all []outbox.Item
	order := map[string]int{}
	filled := make([]uint64, len(l.meters))
	var lasts map[string]time.Time
	for i, ms := range l.meters {
		h, ok := ms.m.(meter.Historian)
		if !ok || ms.cfg.Type != "fritzdect" {
			continue
		}
		if lasts == nil {
			var err error
			if lasts, err = l.ob.LastTimes(now.Add(-BackfillWindow)); err != nil {
				l.log.Warn("backfill: cannot read the outbox", "err", err)
				return
			}
		}
		name := ms.cfg.Name
		var since time.Time
		for k, t := range lasts {
			if len(k) > len(name) && k[:len(name)] == name && k[len(name)] == 0 && t.After(since) {
				since = t
			}
		}
		if since.IsZero() {
			continue // nothing in the last hour: too long a gap, or a first start
		}
		// The next round will be at nextSlot(now); fill the slots before it.
		end := nextSlot(now, l.interval)
		hctx, cancel := context.WithTimeout(ctx, l.meterTimeout(ms.cfg))
		rs, err := h.History(hctx, since)
		cancel()
		if err != nil {
			l.log.Warn("backfill: history not available", "meter", name, "err", err)
			continue
		}
		seen := map[string]bool{}
		var items []outbox.Item
		for _, r := range rs {
			slot := r.Time.Add(l.interval / 2).Truncate(l.interval).UTC()
			if r.Device == "" {
				r.Device = name
			}
			last := lasts[name+"\x00"+r.Device]
			if last.IsZero() {
				last = since
			}
			key := r.Device + slot.String()
			if !slot.After(last) || !slot.Before(end) || seen[key] {
				continue
			}
			seen[key] = true
			r.Time, r.Backfilled = slot, true
			items = append(items, outbox.Item{Meter: name, Reading: r})
		}
		if len(items) == 0 {
			continue
		}
		order[name] = i
		filled[i] = uint64(len(items))
		all = append(all, items...)
		l.log.Info("backfilling the gap from the device's history", "meter", name, "from", since, "readings", len(items))
	}
	if len(all) == 0 {
		return
	}
	sort.SliceStable(all, func(a, b int) bool {
		ta, tb := all[a].Reading.Time, all[b].Reading.Time
		if !ta.Equal(tb) {
			return ta.Before(tb)
		}
		return order[all[a].Meter] < order[all[b].Meter]
	})
	// What cannot be stored now waits in memory for the next round's append.
	l.saveItems(all)
	l.mu.Lock()
	for i, n := range filled {
		l.mstat[i].Backfilled += n
	}
	l.mu.Unlock()
}
