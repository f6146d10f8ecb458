package server

import (
	"errors"
	"log/slog"
	"strings"
	"sync"
	"syscall"
	"time"
)

// errLimiter logs repeated errors of one kind at most once per interval,
// with the number held back since, so a full disk or a dead database
// writes a line every few seconds instead of one per request.
type errLimiter struct {
	log   *slog.Logger
	now   func() time.Time
	every time.Duration

	mu    sync.Mutex
	kinds map[string]*errKind
}

type errKind struct {
	last       time.Time
	suppressed int
}

func newErrLimiter(log *slog.Logger, now func() time.Time) *errLimiter {
	return &errLimiter{log: log, now: now, every: 10 * time.Second, kinds: map[string]*errKind{}}
}

// storeErr logs a store failure while doing msg, named "disk full" when
// that is the cause, rate-limited per message.
func (s *Server) storeErr(msg string, err error, attrs ...any) {
	s.errs.error(msg, err, attrs...)
}

func (l *errLimiter) error(msg string, err error, attrs ...any) {
	kind := msg
	if DiskFull(err) {
		msg += ": disk full"
		kind = "disk full: " + msg
	}
	ok, n := l.allow(kind)
	if !ok {
		return
	}
	attrs = append(attrs, "err", err)
	if n > 0 {
		attrs = append(attrs, "repeated", n, "in", l.every.String())
	}
	l.log.Error(msg, attrs...)
}

// allow tells whether a line of kind may be logged now, and how many were
// held back since the last one.
func (l *errLimiter) allow(kind string) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := l.kinds[kind]
	if k == nil {
		if len(l.kinds) > 1000 {
			clear(l.kinds)
		}
		k = &errKind{}
		l.kinds[kind] = k
	}
	if !k.last.IsZero() && now.Sub(k.last) < l.every {
		k.suppressed++
		return false, 0
	}
	n := k.suppressed
	k.last, k.suppressed = now, 0
	return true, n
}

// DiskFull reports whether err says that the disk (or the database's
// space) is full: ENOSPC, SQLite's SQLITE_FULL, PostgreSQL's 53100.
func DiskFull(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, syscall.ENOSPC) {
		return true
	}
	m := strings.ToLower(err.Error())
	return strings.Contains(m, "no space left on device") || strings.Contains(m, "database or disk is full") ||
		strings.Contains(m, "sqlstate 53100") || strings.Contains(m, "disk full")
}
