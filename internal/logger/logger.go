// Package logger is the poll loop: every interval, on the wall-clock grid,
// it reads every configured meter concurrently, stamps the readings with
// the round's instant, makes them durable in the outbox and lets one
// worker per uplink deliver them. It shows its state in the log, at
// GET /status and on a status LED, checks the clock against NTP and fills
// short gaps from FRITZ!DECT history.
package logger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/uplink"
)

// FailuresBeforeRecreate is how many failed rounds in a row make the logger
// drop a meter's session and connections and build it anew (the original
// rebooted).
const FailuresBeforeRecreate = 3

// Options are the logger's dependencies; the zero value uses the real ones.
type Options struct {
	Log   *slog.Logger
	Clock Clock
	// OutboxDir holds the outbox (default <data_dir>/outbox).
	OutboxDir string
	// Senders are extra targets (the local store when [server] runs in the
	// same process).
	Senders []uplink.Sender
	// NewMeter builds a meter (default meter.New).
	NewMeter func(config.Meter, meter.Deps) (meter.Meter, error)
	// BackoffMin and BackoffMax bound the retry delay of a failing uplink
	// (default 1 s and 5 min); each failure doubles it, with jitter.
	BackoffMin, BackoffMax time.Duration
	// AuthBackoffMin and AuthBackoffMax bound the wait after a refused
	// login (a meter's wrong password, an uplink's 401/403): default 1 min,
	// doubling to 1 h. A device's own block (BlockTime) is always waited.
	AuthBackoffMin, AuthBackoffMax time.Duration
	// FlushTimeout bounds the sending at shutdown (default 10 s).
	FlushTimeout time.Duration
	// Rounds stops the loop after so many rounds (0: until ctx is done).
	Rounds int
	// StatusListener serves /status instead of listening on status_listen.
	StatusListener net.Listener
	// OnRound is called after each round with its instant and the number
	// of readings taken.
	OnRound func(slot time.Time, n int)
	// Version is powermeter's version (shown to Home Assistant).
	Version string
}

type meterSlot struct {
	cfg  config.Meter
	m    meter.Meter
	auth authBackoff // after a refused login: when to try again
}

type senderSlot struct {
	s    uplink.Sender
	wake chan struct{} // closed at shutdown: retry now
	// idleOn is the outbox notification the sender waits for after finding
	// nothing to send (nil while it works); under Logger.mu.
	idleOn <-chan struct{}
	auth   authBackoff // after a 401/403
}

// Logger is the poll loop. Build it with New, start it with Run.
type Logger struct {
	cfg      *config.Config
	opts     Options
	log      *slog.Logger
	clock    Clock
	ob       *outbox.Outbox
	interval time.Duration
	zone     *time.Location
	meters   []*meterSlot
	senders  []*senderSlot
	led      *LED
	newest   atomic.Int64 // unix nanos of the newest round appended
	unsaved  []outbox.Item
	// extra routes on the status listener, and the round observer
	extra        []route
	observeRound func(time.Duration)

	mu       sync.Mutex
	state    State
	since    time.Time
	lastSlot time.Time
	mstat    []MeterStatus
	ustat    []UplinkStatus
	clk      ClockStatus
	counters Counters
	// memDropped counts readings dropped from the memory buffer (the
	// outbox could not be written); they count in outbox_dropped.
	memDropped uint64
	ledErr     bool
}

// New builds the logger for cfg: its meters, uplinks and outbox. A
// configuration problem is returned as a *config.Error (and shown on the
// LED when one is configured).
func New(cfg *config.Config, o Options) (*Logger, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.NewMeter == nil {
		o.NewMeter = meter.New
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = time.Second
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Minute
	}
	if o.FlushTimeout <= 0 {
		o.FlushTimeout = 10 * time.Second
	}
	if o.AuthBackoffMin <= 0 {
		o.AuthBackoffMin = time.Minute
	}
	if o.AuthBackoffMax <= 0 {
		o.AuthBackoffMax = time.Hour
	}
	if o.OutboxDir == "" {
		o.OutboxDir = filepath.Join(cfg.DataDir, "outbox")
	}
	l := &Logger{
		cfg: cfg, opts: o, log: o.Log, clock: o.Clock,
		interval: cfg.Logger.Interval.Duration,
		zone:     cfg.Timezone.Location,
		state:    Starting,
		since:    o.Clock.Now(),
	}
	if l.interval <= 0 {
		l.interval = 10 * time.Second
	}
	if l.zone == nil {
		l.zone = time.UTC
	}
	if cfg.Logger.StatusLED != "" {
		l.led = NewLED(cfg.Logger.StatusLED)
	}
	fail := func(err error) (*Logger, error) {
		if config.IsConfigError(err) {
			l.setState(ConfigError)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		l.closeMeters(ctx)
		l.closeSenders()
		return nil, err
	}
	l.setLED(Starting)
	types, roles, inverted := map[string]string{}, map[string]string{}, map[string]bool{}
	var order []string
	for _, mc := range cfg.Meters {
		m, err := o.NewMeter(mc, meter.Deps{Log: l.log.With("meter", mc.Name), Zone: l.zone, Now: l.clock.Now})
		if err != nil {
			return fail(fmt.Errorf("meter %s: %w", mc.Name, err))
		}
		l.meters = append(l.meters, &meterSlot{cfg: mc, m: m})
		l.mstat = append(l.mstat, MeterStatus{Name: mc.Name, Type: mc.Type})
		types[mc.Name] = mc.Type
		if mc.Type == "mqtt" {
			types[mc.Name] = "mqtt/" + mc.Format
		}
		roles[mc.Name], inverted[mc.Name] = mc.Role, mc.Invert
		order = append(order, mc.Name)
	}
	for i, uc := range cfg.Uplinks {
		s, err := uplink.New(uc, i, uplink.Options{
			Log: l.log, Zone: l.zone, MeterTypes: types, MeterOrder: order, File: cfg.Path,
			OnReject: l.rejected(len(l.ustat)),
			Source:   cfg.Logger.Source, Interval: l.interval, Version: o.Version,
			MeterRoles: roles, MeterInverted: inverted,
		})
		if err != nil {
			return fail(err)
		}
		l.senders = append(l.senders, &senderSlot{s: s, wake: make(chan struct{})})
		l.ustat = append(l.ustat, UplinkStatus{Name: uc.Name})
	}
	for _, s := range o.Senders {
		for i, u := range cfg.Uplinks {
			if u.Name == s.Name() {
				return fail(&config.Error{File: cfg.Path, Key: fmt.Sprintf("uplinks[%d].name", i), Msg: fmt.Sprintf("%q is the name of the local store's queue; choose another", u.Name)})
			}
		}
		l.senders = append(l.senders, &senderSlot{s: s, wake: make(chan struct{})})
		l.ustat = append(l.ustat, UplinkStatus{Name: s.Name()})
	}
	ob, err := outbox.Open(o.OutboxDir, outbox.Options{Max: cfg.Logger.OutboxMax, Log: l.log})
	if err != nil {
		return fail(err)
	}
	l.ob = ob
	for _, s := range l.senders {
		ob.Consumer(s.s.Name())
	}
	if len(l.meters) > 0 && len(l.senders) == 0 {
		l.log.Warn("logger: no [[uplinks]] and no [server]: readings are kept in the outbox only", "dir", o.OutboxDir)
	}
	return l, nil
}

// rejected counts readings an uplink refuses for good.
func (l *Logger) rejected(i int) func(uplink.Rejected) {
	return func(r uplink.Rejected) {
		l.log.Error("uplink refused a reading for good; skipped", "uplink", l.ustat[i].Name, "meter", r.Item.Meter, "time", r.Item.Reading.Time, "err", r.Err)
		l.mu.Lock()
		l.ustat[i].Rejected++
		l.mu.Unlock()
	}
}

// Rejected returns the callback for readings the sender named sender (one
// given in Options.Senders, or an uplink) refuses for good: each is logged
// and counted in that uplink's status.
func (l *Logger) Rejected(sender string) func(uplink.Rejected) {
	for i, u := range l.ustat {
		if u.Name == sender {
			return l.rejected(i)
		}
	}
	return func(r uplink.Rejected) {
		l.log.Error("a reading was refused for good; skipped", "sender", sender, "meter", r.Item.Meter, "time", r.Item.Reading.Time, "err", r.Err)
	}
}

// Outbox is the logger's outbox (for tests and tools).
func (l *Logger) Outbox() *outbox.Outbox { return l.ob }

// Run polls until ctx is done (or Options.Rounds rounds are taken), then
// finishes the round, sends what it can within the flush timeout, closes
// the meters (logging out of FRITZ!Boxes) and the outbox. Device and
// network errors never end it.
func (l *Logger) Run(ctx context.Context) error {
	defer l.ob.Close()
	if srv, err := l.serveStatus(); err != nil {
		l.closeMeters(context.Background())
		return err
	} else if srv != nil {
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
	}
	for _, u := range l.cfg.Uplinks {
		l.log.Info("uplink", "name", u.Name, "protocol", u.Protocol, "url", u.URL, "meters", u.Meters)
	}
	l.log.Info("logger starting", "meters", len(l.meters), "uplinks", len(l.senders), "interval", l.interval, "outbox", l.ob.Len())

	// Rounds and deliveries outlive ctx: a round in progress is finished
	// and the outbox flushed when ctx ends.
	wctx, stopWorkers := context.WithCancel(context.WithoutCancel(ctx))
	var workers sync.WaitGroup
	for i, s := range l.senders {
		workers.Go(func() { l.runSender(wctx, i, s) })
	}
	l.backfill(context.WithoutCancel(ctx))

	rounds := 0
	clockWasUnset, clockWentBack := false, false
	for ctx.Err() == nil && (l.opts.Rounds == 0 || rounds < l.opts.Rounds) {
		if l.cfg.Logger.NTPServer != "" && rounds%10 == 0 {
			l.checkClock(context.WithoutCancel(ctx))
		}
		slot := nextSlot(l.clock.Now(), l.interval)
		if err := l.clock.SleepUntil(ctx, slot); err != nil {
			break
		}
		if slot.Year() < 2020 {
			if !clockWasUnset {
				l.log.Warn("the system clock is not set (it reads before 2020): holding readings until it is", "clock", slot)
			}
			clockWasUnset = true
			l.mu.Lock()
			l.clk.Unset = true
			l.counters.HeldRounds++
			l.mu.Unlock()
			l.setState(ClockCheck)
			rounds++
			continue
		}
		if clockWasUnset {
			l.log.Info("the system clock is set now; taking readings again", "clock", slot)
			clockWasUnset = false
			l.mu.Lock()
			l.clk.Unset = false
			l.mu.Unlock()
		}
		l.mu.Lock()
		last := l.lastSlot
		l.mu.Unlock()
		if !last.IsZero() && !slot.After(last) {
			// The clock went back: this round was taken already.
			if !clockWentBack {
				l.log.Warn("the clock went back: skipping rounds already taken", "round", slot, "last_round", last)
			}
			clockWentBack = true
			l.mu.Lock()
			l.counters.ClockBack++
			l.mu.Unlock()
			continue
		}
		if clockWentBack {
			l.log.Info("the clock has passed the last round again; taking readings", "round", slot)
			clockWentBack = false
		}
		n := l.round(context.WithoutCancel(ctx), slot)
		rounds++
		if l.opts.OnRound != nil {
			l.opts.OnRound(slot, n)
		}
		if next := nextSlot(l.clock.Now(), l.interval); next.Sub(slot) > l.interval {
			missed := uint64(next.Sub(slot)/l.interval) - 1
			l.log.Warn("a round took longer than the interval; rounds skipped", "round", slot, "skipped", missed)
			l.mu.Lock()
			l.counters.MissedRounds += missed
			l.mu.Unlock()
		}
	}
	l.log.Info("logger stopping: sending what is waiting", "timeout", l.opts.FlushTimeout)
	l.flush()
	stopWorkers()
	workers.Wait()
	l.closeSenders()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	l.closeMeters(cctx)
	cancel()
	waiting := 0
	for _, s := range l.senders {
		waiting = max(waiting, l.ob.Backlog(s.s.Name()))
	}
	l.log.Info("logger stopped", "waiting", waiting)
	return nil
}

// flush wakes every uplink and waits until nothing is waiting or the flush
// timeout has passed.
func (l *Logger) flush() {
	if len(l.unsaved) > 0 {
		l.saveItems(nil)
	}
	for _, s := range l.senders {
		close(s.wake)
	}
	began := l.clock.Now()
	deadline := time.Now().Add(l.opts.FlushTimeout)
	for time.Now().Before(deadline) {
		// Done when nothing waits, or every uplink that still has readings
		// has failed again since the flush began (no use waiting for it),
		// or found nothing to send since the last append.
		pending := false
		notify := l.ob.Notify()
		for i, s := range l.senders {
			if l.ob.Backlog(s.s.Name()) == 0 {
				continue
			}
			l.mu.Lock()
			u := l.ustat[i]
			idle := s.idleOn != nil && s.idleOn == notify
			l.mu.Unlock()
			if idle {
				continue
			}
			if !u.Failing || u.LastErrorAt.Before(began) {
				pending = true
			}
		}
		if !pending {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, s := range l.senders {
		if n := l.ob.Backlog(s.s.Name()); n > 0 {
			l.log.Warn("uplink still has readings waiting; they stay in the outbox for the next start", "uplink", s.s.Name(), "waiting", n)
		}
	}
}

// closeSenders closes the uplinks that hold a connection (MQTT: an
// "offline" availability, then disconnect).
func (l *Logger) closeSenders() {
	for _, s := range l.senders {
		if c, ok := s.s.(uplink.Closer); ok {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if err := c.Close(ctx); err != nil {
				l.log.Warn("closing uplink", "uplink", s.s.Name(), "err", err)
			}
			cancel()
		}
	}
}

func (l *Logger) closeMeters(ctx context.Context) {
	for _, ms := range l.meters {
		if ms.m == nil {
			continue
		}
		if err := ms.m.Close(ctx); err != nil {
			l.log.Warn("closing meter", "meter", ms.cfg.Name, "err", err)
		}
		ms.m = nil
	}
}

func (l *Logger) serveStatus() (*http.Server, error) {
	ln := l.opts.StatusListener
	if ln == nil {
		if l.cfg.Logger.StatusListen == "" {
			return nil, nil
		}
		var err error
		ln, err = net.Listen("tcp", l.cfg.Logger.StatusListen)
		if err != nil {
			return nil, fmt.Errorf("logger.status_listen %s: %w", l.cfg.Logger.StatusListen, err)
		}
	}
	srv := &http.Server{Handler: l.statusHandler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.log.Error("status server stopped", "err", err)
		}
	}()
	l.log.Info("status served", "url", "http://"+ln.Addr().String()+"/status")
	return srv, nil
}

// meterTimeout is the meter's timeout, kept below the interval so a slow
// meter never pushes the next round.
func (l *Logger) meterTimeout(mc config.Meter) time.Duration {
	limit := l.interval * 8 / 10
	if t := mc.Timeout.Duration; t > 0 && t < limit {
		return t
	}
	return limit
}
