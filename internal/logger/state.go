package logger

import (
	"context"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// checkClock asks the NTP server and reports the offset.
func (l *Logger) checkClock(ctx context.Context) {
	prev := l.State()
	l.setState(ClockCheck)
	defer l.setState(l.restoreAfterClock(prev))
	ctx, cancel := context.WithTimeout(ctx, min(3*time.Second, l.interval/2))
	defer cancel()
	res, err := QueryNTP(ctx, l.cfg.Logger.NTPServer, l.clock.Now)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clk.NTPServer = l.cfg.Logger.NTPServer
	l.clk.CheckedAt = l.clock.Now()
	if err != nil {
		l.clk.Error = err.Error()
		l.log.Warn("clock check failed", "ntp_server", l.cfg.Logger.NTPServer, "err", err)
		return
	}
	first := l.clk.OffsetMS == nil
	l.clk.Error = ""
	off := float64(res.Offset) / float64(time.Millisecond)
	rtt := float64(res.RTT) / float64(time.Millisecond)
	l.clk.OffsetMS, l.clk.RTTMS = &off, &rtt
	if res.Offset > 2*time.Second || res.Offset < -2*time.Second {
		l.log.Warn("the system clock is off; readings carry its time (let the OS sync it: systemd-timesyncd, chrony)", "offset", res.Offset.Round(time.Millisecond), "ntp_server", l.cfg.Logger.NTPServer)
	} else if first {
		l.log.Info("clock checked", "offset", res.Offset.Round(time.Millisecond), "rtt", res.RTT.Round(time.Millisecond), "ntp_server", l.cfg.Logger.NTPServer)
	} else {
		l.log.Debug("clock checked", "offset", res.Offset.Round(time.Millisecond), "rtt", res.RTT.Round(time.Millisecond))
	}
}

func (l *Logger) restoreAfterClock(prev State) State {
	if prev == Starting {
		return Starting
	}
	return l.settled()
}

// resettle updates the state between rounds (idle or degraded) after an
// uplink changed; a round or clock check in progress sets it when done.
func (l *Logger) resettle() {
	switch l.State() {
	case Idle, Degraded:
		l.setState(l.settled())
	}
}

// State is the current state.
func (l *Logger) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.state
}

func (l *Logger) setState(s State) {
	l.mu.Lock()
	old := l.state
	if old != s {
		l.state = s
		l.since = l.clock.Now()
	}
	l.mu.Unlock()
	if old == s {
		return
	}
	// The reading state comes every round: log it at debug only.
	if s == Reading || (old == Reading && s == Idle) {
		l.log.Debug("state", "state", string(s), "was", string(old))
	} else {
		l.log.Info("state", "state", string(s), "was", string(old))
	}
	l.setLED(s)
}

func (l *Logger) setLED(s State) {
	if l.led == nil {
		return
	}
	if err := l.led.Blink(s.Blinks()); err != nil {
		l.mu.Lock()
		first := !l.ledErr
		l.ledErr = true
		l.mu.Unlock()
		if first {
			l.log.Warn("status LED cannot be set", "led", l.cfg.Logger.StatusLED, "err", err)
		}
	}
}

// Status returns a snapshot of the logger's state.
func (l *Logger) Status() Status {
	backlog := make([]int, len(l.senders))
	for i, s := range l.senders {
		backlog[i] = l.ob.Backlog(s.s.Name())
	}
	obLen, dropped, lost, repairs := l.ob.Len(), l.ob.Dropped(), l.ob.Lost(), l.ob.Repairs()
	l.mu.Lock()
	defer l.mu.Unlock()
	st := Status{
		State: l.state, Since: l.since, LastRound: l.lastSlot,
		Meters:   make([]MeterStatus, len(l.mstat)),
		Uplinks:  make([]UplinkStatus, len(l.ustat)),
		Clock:    l.clk,
		Counters: l.counters,
	}
	for i, m := range l.mstat {
		m.LastReadings = append([]reading.Reading(nil), m.LastReadings...)
		if m.ErrorsByKind != nil {
			byKind := make(map[string]uint64, len(m.ErrorsByKind))
			for k, v := range m.ErrorsByKind {
				byKind[k] = v
			}
			m.ErrorsByKind = byKind
		}
		st.Meters[i] = m
	}
	copy(st.Uplinks, l.ustat)
	for i := range st.Uplinks {
		st.Uplinks[i].Backlog = backlog[i]
	}
	st.Counters.OutboxLen = obLen
	st.Counters.OutboxDropped = dropped + l.memDropped
	st.Counters.OutboxLost = lost
	st.Counters.OutboxRepairs = repairs
	return st
}
