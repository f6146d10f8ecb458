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
	"math/rand/v2"
	"net"
	"net/http"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
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
