package logger

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// runSender delivers the outbox to one uplink until ctx ends, retrying
// with exponential backoff and jitter.
func (l *Logger) runSender(ctx context.Context, i int, ss *senderSlot) {
	s := ss.s
	var wake <-chan struct{} = ss.wake
	var ok bool
	backoff := l.opts.BackoffMin
	for ctx.Err() == nil {
		notify := l.ob.Notify()
		items, err := l.ob.Pending(s.Name(), s.MaxBatch())
		if err == nil && len(items) == 0 {
			l.mu.Lock()
			ss.idleOn = notify
			l.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-notify:
			}
			l.mu.Lock()
			ss.idleOn = nil
			l.mu.Unlock()
			continue
		}
		n := 0
		if err == nil {
			// Every line a legacy uplink sends is acknowledged at once, so
			// a crash repeats none to a receiver that does not deduplicate.
			ack := func(k int) error {
				if err := l.ob.Ack(s.Name(), items[k-1].Seq); err != nil {
					return fmt.Errorf("outbox: saving the position of uplink %s: %w", s.Name(), err)
				}
				return nil
			}
			n, err = s.Send(ctx, items, l.newestRound, ack)
		}
		if n > 0 {
			if aerr := l.ob.Ack(s.Name(), items[n-1].Seq); aerr != nil {
				l.log.Error("outbox: cannot save the uplink's position", "uplink", s.Name(), "err", aerr)
				err = errors.Join(err, aerr)
			}
		}
		l.mu.Lock()
		st := &l.ustat[i]
		st.Sent += uint64(n)
		if n > 0 {
			st.LastSentAt = l.clock.Now()
		}
		wasFailing := st.Failing
		if err != nil {
			st.LastError, st.LastErrorAt, st.Failing = err.Error(), l.clock.Now(), true
		} else {
			st.Failing = false
		}
		l.mu.Unlock()
		if err == nil {
			if wasFailing {
				l.log.Info("uplink delivers again", "uplink", s.Name(), "waiting", l.ob.Backlog(s.Name()))
				l.resettle()
			}
			l.uplinkAuthOK(i, ss)
			backoff = l.opts.BackoffMin
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if d, refused := l.uplinkAuthFailed(i, ss, err); refused {
			// 401/403: the key is wrong; retrying every few seconds helps
			// nobody. Nothing leaves the outbox meanwhile.
			if !wasFailing {
				l.resettle()
			}
			if wake, ok = pause(ctx, d, wake); !ok { // a wake-up at shutdown: one last try
				return
			}
			continue
		}
		if !wasFailing {
			l.log.Warn("uplink failed; retrying with backoff", "uplink", s.Name(), "waiting", l.ob.Backlog(s.Name()), "err", err)
			l.resettle()
		} else {
			l.log.Debug("uplink still failing", "uplink", s.Name(), "retry_in", backoff, "err", err)
		}
		// Sleep between backoff/2 and backoff, so many loggers do not
		// return in step after a server outage.
		d := backoff/2 + rand.N(backoff/2+1)
		if wake, ok = pause(ctx, d, wake); !ok { // a wake-up: retry once at once, then back off again
			return
		}
		backoff = min(backoff*2, l.opts.BackoffMax)
	}
}

// pause waits d, or until wake fires (then wake is nil from here on, so
// it cuts short one wait only), or until ctx ends (ok false).
func pause(ctx context.Context, d time.Duration, wake <-chan struct{}) (_ <-chan struct{}, ok bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return wake, false
	case <-wake:
		return nil, true
	case <-t.C:
		return wake, true
	}
}
