package logger

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// State is the logger's state, as the original showed it on its LED.
type State string

// The states. The LED blinks at the original's rates; degraded (something
// fails but the loop goes on) blinks like a configuration problem.
const (
	Starting    State = "starting"
	ConfigError State = "config error"
	Idle        State = "idle"
	Reading     State = "reading and sending"
	ClockCheck  State = "clock check"
	Degraded    State = "degraded"
)

// Blinks is the LED rate of a state in blinks per second.
func (s State) Blinks() int {
	switch s {
	case Starting:
		return 20
	case Idle:
		return 1
	case ConfigError, Degraded:
		return 2
	case Reading:
		return 5
	case ClockCheck:
		return 10
	}
	return 0
}

// MeterStatus is what /status shows of one meter.
type MeterStatus struct {
	Name         string            `json:"name"`
	Type         string            `json:"type"`
	LastReadings []reading.Reading `json:"last_readings,omitempty"`
	LastReadAt   time.Time         `json:"last_read_at,omitzero"`
	LastError    string            `json:"last_error,omitempty"`
	LastErrorAt  time.Time         `json:"last_error_at,omitzero"`
	Failures     int               `json:"failures_in_a_row"`
	Reads        uint64            `json:"reads"`
	Errors       uint64            `json:"errors"`
	// ErrorsByKind counts the errors by their kind (unreachable, auth,
	// bad answer, …).
	ErrorsByKind map[string]uint64 `json:"errors_by_kind,omitempty"`
	Recreated    uint64            `json:"recreated"`
	Backfilled   uint64            `json:"backfilled"`
	// AuthRefusedSince is set while the device refuses our login: the
	// logger then reads it no more until NextLoginAt.
	AuthRefusedSince time.Time `json:"auth_refused_since,omitzero"`
	NextLoginAt      time.Time `json:"next_login_at,omitzero"`
	AuthMessage      string    `json:"auth,omitempty"`
}

// UplinkStatus is what /status shows of one uplink.
type UplinkStatus struct {
	Name        string    `json:"name"`
	Backlog     int       `json:"backlog"`
	Sent        uint64    `json:"sent"`
	Rejected    uint64    `json:"rejected"`
	LastSentAt  time.Time `json:"last_sent_at,omitzero"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	Failing     bool      `json:"failing"`
	// AuthRefusedSince is set while the server answers 401/403: the
	// uplink waits until NextTryAt (the readings stay in the outbox).
	AuthRefusedSince time.Time `json:"auth_refused_since,omitzero"`
	NextTryAt        time.Time `json:"next_try_at,omitzero"`
	AuthMessage      string    `json:"auth,omitempty"`
}

// ClockStatus is what /status shows of the clock check.
type ClockStatus struct {
	NTPServer string    `json:"ntp_server,omitempty"`
	OffsetMS  *float64  `json:"offset_ms,omitempty"`
	RTTMS     *float64  `json:"rtt_ms,omitempty"`
	CheckedAt time.Time `json:"checked_at,omitzero"`
	Error     string    `json:"error,omitempty"`
	// Unset is true while the system clock reads before 2020 (readings are
	// held, not stamped).
	Unset bool `json:"unset"`
}

// Counters are totals since start.
type Counters struct {
	Rounds        uint64 `json:"rounds"`
	MissedRounds  uint64 `json:"missed_rounds"`
	HeldRounds    uint64 `json:"held_rounds"`
	Readings      uint64 `json:"readings"`
	OutboxLen     int    `json:"outbox_len"`
	OutboxDropped uint64 `json:"outbox_dropped"`
	OutboxErrors  uint64 `json:"outbox_errors"`
	// OutboxLost counts readings an uplink could not be given because
	// their outbox records were damaged or their files deleted.
	OutboxLost uint64 `json:"outbox_lost"`
	// OutboxRepairs counts repairs of the outbox: numbering continued
	// after deleted or cut files, a deleted cursor or open segment file
	// restored.
	OutboxRepairs uint64 `json:"outbox_repairs"`
	// LateMeters counts reads left out of their round because the meter
	// did not answer within 9/10 of the interval.
	LateMeters uint64 `json:"late_meters"`
	// ClockBack counts rounds skipped because the clock went back.
	ClockBack uint64 `json:"clock_back"`
}

// Status is the JSON document GET /status answers.
type Status struct {
	State     State          `json:"state"`
	Since     time.Time      `json:"since"`
	LastRound time.Time      `json:"last_round,omitzero"`
	Meters    []MeterStatus  `json:"meters"`
	Uplinks   []UplinkStatus `json:"uplinks"`
	Clock     ClockStatus    `json:"clock"`
	Counters  Counters       `json:"counters"`
}

// HandleStatus serves h at pattern on the status listener too (e.g.
// "GET /metrics"). Call it before Run.
func (l *Logger) HandleStatus(pattern string, h http.Handler) {
	l.extra = append(l.extra, route{pattern, h})
}

// ObserveRounds has f called with the duration of every round. Call it
// before Run.
func (l *Logger) ObserveRounds(f func(time.Duration)) { l.observeRound = f }

type route struct {
	pattern string
	h       http.Handler
}

func (l *Logger) statusHandler() http.Handler {
	mux := http.NewServeMux()
	for _, r := range l.extra {
		mux.Handle(r.pattern, r.h)
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(l.Status())
	})
	return mux
}
