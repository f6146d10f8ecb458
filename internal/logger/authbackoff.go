package logger

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/uplink"
)

// authBackoff is the wait after refused logins: the first refusal waits
// AuthBackoffMin, each further one twice as long, up to AuthBackoffMax; a
// device's own block (FRITZ!Box BlockTime) is waited when it is longer.
// A wrong password retried every round would make a FRITZ!Box double its
// login block until its owner is locked out of its web UI.
type authBackoff struct {
	since time.Time // first refusal of this streak (zero: none)
	next  time.Time // no attempt before this
	step  int       // refusals so far (attempts that were refused)
}

func (a *authBackoff) waiting(now time.Time) bool {
	return !a.since.IsZero() && now.Before(a.next)
}

// refused records a refusal at now and returns the wait. attempted is
// false when no login was sent (the device still blocks): the schedule
// does not advance then, only the device's wait counts.
func (a *authBackoff) refused(now time.Time, attempted bool, deviceWait, lo, hi time.Duration) time.Duration {
	if a.since.IsZero() {
		a.since = now
	}
	d := lo << a.step
	if d > hi || d <= 0 {
		d = hi
	}
	if attempted {
		a.step++
	} else {
		d = 0
	}
	d = max(d, deviceWait)
	if d <= 0 {
		d = lo
	}
	a.next = now.Add(d)
	return d
}

// authMessage is what the log and /status say.
func authMessage(since, next time.Time) string {
	return fmt.Sprintf("authentication refused since %s; next try at %s", since.UTC().Format(time.RFC3339), next.UTC().Format(time.RFC3339))
}

// meterAuthFailed backs meter i off after a refused or blocked login.
func (l *Logger) meterAuthFailed(i int, now time.Time, err error) {
	ms := l.meters[i]
	attempted := meter.KindOf(err) == meter.Auth
	d := ms.auth.refused(now, attempted, meter.RetryAfterOf(err), l.opts.AuthBackoffMin, l.opts.AuthBackoffMax)
	msg := authMessage(ms.auth.since, ms.auth.next)
	l.mu.Lock()
	st := &l.mstat[i]
	st.AuthRefusedSince, st.NextLoginAt, st.AuthMessage = ms.auth.since, ms.auth.next, msg
	l.mu.Unlock()
	l.log.Warn("meter: "+msg, "meter", ms.cfg.Name, "kind", meter.KindOf(err).String(), "waiting", d, "refusals", ms.auth.step, "err", err)
}

// uplinkAuthFailed backs uplink i off when err is a 401 or 403; it
// returns the wait and whether it was one.
func (l *Logger) uplinkAuthFailed(i int, ss *senderSlot, err error) (time.Duration, bool) {
	var se *uplink.StatusError
	if !errors.As(err, &se) || (se.Code != http.StatusUnauthorized && se.Code != http.StatusForbidden) {
		return 0, false
	}
	now := l.clock.Now()
	d := ss.auth.refused(now, true, 0, l.opts.AuthBackoffMin, l.opts.AuthBackoffMax)
	msg := authMessage(ss.auth.since, ss.auth.next)
	l.mu.Lock()
	st := &l.ustat[i]
	st.AuthRefusedSince, st.NextTryAt, st.AuthMessage = ss.auth.since, ss.auth.next, msg
	l.mu.Unlock()
	l.log.Warn("uplink: "+msg+" (check the uplink's key; the readings wait in the outbox)", "uplink", ss.s.Name(), "status", se.Code, "waiting", d, "backlog", l.ob.Backlog(ss.s.Name()), "err", err)
	return d, true
}

// uplinkAuthOK ends uplink i's back-off after a delivery.
func (l *Logger) uplinkAuthOK(i int, ss *senderSlot) {
	if ss.auth.since.IsZero() {
		return
	}
	l.log.Info("uplink: key accepted again", "uplink", ss.s.Name(), "refused_since", ss.auth.since)
	ss.auth = authBackoff{}
	l.mu.Lock()
	st := &l.ustat[i]
	st.AuthRefusedSince, st.NextTryAt, st.AuthMessage = time.Time{}, time.Time{}, ""
	l.mu.Unlock()
}
