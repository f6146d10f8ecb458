package meter

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies why a device could not be read.
type Kind int

const (
	// Unreachable: no connection, timeout, DNS.
	Unreachable Kind = iota + 1
	// Auth: wrong user or password, missing rights.
	Auth
	// Blocked: the device refuses logins for a while (FRITZ!Box BlockTime).
	Blocked
	// BadAnswer: the device answered something we cannot use (HTML, garbage,
	// truncated JSON, an unexpected status).
	BadAnswer
	// NotPresent: the device is known but offline (unplugged DECT socket,
	// inverter asleep, stale data).
	NotPresent
	// Busy: the device asks us to back off (429).
	Busy
	// Config: the configuration names something the device does not have.
	Config
)

func (k Kind) String() string {
	switch k {
	case Unreachable:
		return "unreachable"
	case Auth:
		return "auth"
	case Blocked:
		return "blocked"
	case BadAnswer:
		return "bad answer"
	case NotPresent:
		return "not present"
	case Busy:
		return "busy"
	case Config:
		return "config"
	}
	return "error"
}

// Error is the typed error every family returns: Msg is a sentence a user can
// act on ("FRITZ!Box refused the login for user fritz3456: wrong password;
// it blocks new logins for 32 s").
type Error struct {
	Kind Kind
	Msg  string
	Err  error
	// RetryAfter is how long the device itself asks not to be tried again
	// (a FRITZ!Box's BlockTime after a refused login); 0 when it says
	// nothing.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error.
func Errorf(kind Kind, err error, format string, args ...any) error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns the Kind of err, or 0 when it is not a meter error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// RetryAfterOf returns the RetryAfter of err (0 when it is not a meter
// error or names no wait).
func RetryAfterOf(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// IsAuth reports whether err is a refused login or a login the device
// blocks: the logger backs off instead of retrying every round.
func IsAuth(err error) bool {
	k := KindOf(err)
	return k == Auth || k == Blocked
}
