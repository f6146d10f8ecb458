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
// less than an hour old.
func (l *Logger) backfill(ctx context.Context) {
	now := l.clock.Now()
	if now.Year() < 2020 {
		return
	}
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
		sort.SliceStable(items, func(a, b int) bool { return items[a].Reading.Time.Before(items[b].Reading.Time) })
		if len(items) == 0 {
			continue
		}
		if err := l.ob.Append(items); err != nil {
			l.log.Error("backfill: cannot store the history", "meter", name, "err", err)
			continue
		}
		l.log.Info("backfilled the gap from the device's history", "meter", name, "from", since, "readings", len(items))
		l.mu.Lock()
		l.mstat[i].Backfilled += uint64(len(items))
		l.mu.Unlock()
	}
}
