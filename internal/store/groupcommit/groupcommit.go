// Package groupcommit lets many concurrent writers share one database
// transaction: each caller hands its batch to a single committer goroutine,
// which takes every pending batch, writes them all in one transaction,
// commits once (one fsync) and then answers every caller.
//
// A batch is all or nothing. When one batch fails inside the shared
// transaction, the transaction is rolled back and the batches are retried
// one transaction each, so one bad batch does not fail the others.
//
// The package knows nothing about SQL: a backend supplies a Begin function
// returning a Tx that can apply one batch, commit and roll back.
package groupcommit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrClosed is returned by Do after Close.
var ErrClosed = errors.New("groupcommit: closed")

// Tx is one transaction of the backend.
type Tx[B, R any] interface {
	// Apply writes one batch into the transaction. Any error other than a
	// Rejected one makes the committer roll the transaction back and retry
	// the batches one by one.
	Apply(ctx context.Context, b B) (R, error)
	// Commit makes everything applied durable.
	Commit(ctx context.Context) error
	// Rollback abandons the transaction.
	Rollback() error
}

// Preparer is a Tx whose writing and whose durability are two steps:
// Prepare writes everything applied (after it nothing is left to fail but
// the commit itself), Commit then waits for the write to become durable.
// With Options.InFlight above one, the committer begins the next
// transaction as soon as Prepare returns, on another connection, while
// this one's Commit waits for its flush: the database's CPU works on one
// group while the disk flushes the one before, and the readings that
// arrive meanwhile form the next group.
type Preparer interface {
	Prepare(ctx context.Context) error
}

// Begin starts a transaction.
type Begin[B, R any] func(ctx context.Context) (Tx[B, R], error)

// Rejected wraps the error of a batch that Apply refused without writing
// anything and without harming the transaction (an unknown source, say):
// its caller gets the error, the other batches go on in the same
// transaction.
func Rejected(err error) error { return &rejected{err} }

type rejected struct{ err error }

func (r *rejected) Error() string { return r.err.Error() }
func (r *rejected) Unwrap() error { return r.err }

// Options tune a Committer. Zero values take the defaults.
type Options struct {
	// MaxItems caps the summed sizes of the batches in one transaction
	// (default 100 000); the rest waits for the next one. A single batch
	// larger than this still goes alone.
	MaxItems int
	// TxTimeout bounds one transaction, begin to commit (default 2 min).
	TxTimeout time.Duration
	// Log receives retry notices (default slog.Default()).
	Log *slog.Logger
	// InFlight caps the transactions in flight at once (default 1): more
	// than one only helps a backend whose Tx is a Preparer, where a
	// prepared transaction waits for its commit while the next one is
	// written. Every transaction in flight holds one connection.
	InFlight int
}

// Stats counts what the committer did.
type Stats struct {
	Transactions int64 // committed transactions, shared and single
	Batches      int64 // batches answered with success
	Failed       int64 // batches answered with an error (not counting cancels)
	Retries      int64 // shared transactions rolled back and retried one by one
}

type request[B, R any] struct {
	ctx  context.Context
	b    B
	size int
	done chan result[R] // buffered: the committer never blocks on it
}

type result[R any] struct {
	r   R
	err error
}

// Committer runs the single committer goroutine.
type Committer[B, R any] struct {
	begin Begin[B, R]
	opt   Options

	mu      sync.Mutex
	queue   []*request[B, R]
	closed  bool
	wake    chan struct{} // capacity 1
	slots   chan struct{} // capacity InFlight: one token per transaction in flight
	stopped chan struct{}

	txs, batches, failed, retries atomic.Int64
	last                          atomic.Int64 // items the last transaction took
	retrying                      atomic.Int32 // failed groups being retried batch by batch
}

// New starts a committer.
func New[B, R any](begin Begin[B, R], opt Options) *Committer[B, R] {
	if opt.MaxItems <= 0 {
		opt.MaxItems = 100_000
	}
	if opt.TxTimeout <= 0 {
		opt.TxTimeout = 2 * time.Minute
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	opt.InFlight = max(1, opt.InFlight)
	c := &Committer[B, R]{
		begin:   begin,
		opt:     opt,
		wake:    make(chan struct{}, 1),
		slots:   make(chan struct{}, opt.InFlight),
		stopped: make(chan struct{}),
	}
	go c.run()
	return c
}

// Do hands b (of size items, for MaxItems) to the committer and waits until
// it is committed or failed. If ctx ends before the committer took the
// batch, the batch is never written and Do returns ctx.Err(). If ctx ends
// while its transaction is in flight, Do returns ctx.Err() at once and the
// batch may or may not be stored (backends are idempotent, so a retry is
// safe).
func (c *Committer[B, R]) Do(ctx context.Context, b B, size int) (R, error) {
	var zero R
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	req := &request[B, R]{ctx: ctx, b: b, size: size, done: make(chan result[R], 1)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return zero, ErrClosed
	}
	c.queue = append(c.queue, req)
	c.mu.Unlock()
	c.poke()
	select {
	case res := <-req.done:
		return res.r, res.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Close lets the committer finish every pending batch, then stops it.
// Do calls after Close fail with ErrClosed. Close is safe to call twice.
func (c *Committer[B, R]) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.poke()
	<-c.stopped
}

// Stats reports counters since New.
func (c *Committer[B, R]) Stats() Stats {
	return Stats{
		Transactions: c.txs.Load(),
		Batches:      c.batches.Load(),
		Failed:       c.failed.Load(),
		Retries:      c.retries.Load(),
	}
}

func (c *Committer[B, R]) run() {
	var finishing sync.WaitGroup
	defer close(c.stopped)
	defer finishing.Wait()
	for {
		// A free slot first, then the requests: those that arrive while
		// every slot is taken join the next transaction.
		c.slots <- struct{}{}
		var reqs []*request[B, R]
		var closed bool
		for {
			if reqs, closed = c.take(c.enough()); len(reqs) > 0 || closed {
				break
			}
			<-c.wake
		}
		if len(reqs) == 0 {
			<-c.slots
			return
		}
		if finish := c.commit(reqs); finish != nil {
			finishing.Go(func() {
				finish()
				<-c.slots
				c.poke() // a waiting group may start now
			})
		} else {
			<-c.slots
		}
		c.gather()
	}
}

// enough is the number of pending items worth a transaction now: any
// when no other transaction is in flight, else as many as the last one
// took. So another connection joins only when more arrive than one
// connection keeps up with; below that, the groups stay whole instead of
// splitting into halves that each cost a statement and a flush (measured:
// a third more database CPU per reading with 64 loggers).
func (c *Committer[B, R]) enough() int {
	if len(c.slots) <= 1 || c.retrying.Load() > 0 {
		// nothing else in flight, or a failed group being retried batch
		// by batch (which may take long): new work goes at once
		return 1
	}
	return max(1, int(c.last.Load()))
}

// poke wakes the committer without blocking.
func (c *Committer[B, R]) poke() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// gather lets the callers just answered, and other runnable goroutines,
// run before the next transaction, for as long as that brings new
// requests (a few rounds, 250 µs at most): requests on their way join the
// next transaction instead of each paying for one of their own. This only
// costs time while the CPUs have other work; on an idle machine the
// yield returns at once and brings nothing.
func (c *Committer[B, R]) gather() {
	n := c.pending()
	end := time.Now().Add(maxGatherWait)
	for range maxGather {
		runtime.Gosched()
		m := c.pending()
		if m <= n || m >= c.opt.MaxItems || time.Now().After(end) {
			return
		}
		n = m
	}
}

// maxGather and maxGatherWait bound the yields of gather (a yield can take
// long on a machine whose CPUs are taken by other processes).
const (
	maxGather     = 8
	maxGatherWait = 250 * time.Microsecond
)

func (c *Committer[B, R]) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.queue)
}

// take removes the pending requests up to MaxItems from the queue, if
// they hold at least min items (or the committer is closing).
func (c *Committer[B, R]) take(min int) ([]*request[B, R], bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n, items := 0, 0
	for n < len(c.queue) {
		if n > 0 && items+c.queue[n].size > c.opt.MaxItems {
			break
		}
		items += c.queue[n].size
		n++
	}
	if items < min && !c.closed {
		return nil, false
	}
	c.last.Store(int64(items))
	reqs := make([]*request[B, R], n)
	copy(reqs, c.queue[:n])
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return reqs, c.closed
}

// live drops (and answers) the requests whose caller has given up.
func live[B, R any](reqs []*request[B, R]) []*request[B, R] {
	out := reqs[:0]
	for _, r := range reqs {
		if err := r.ctx.Err(); err != nil {
			r.done <- result[R]{err: err}
			continue
		}
		out = append(out, r)
	}
	return out
}

// commit writes reqs in one shared transaction and answers them. When the
// transaction is prepared and waits only for its commit, it returns a
// function that commits and answers, for the caller to run meanwhile
// starting the next transaction; otherwise it returns nil, all done.
func (c *Committer[B, R]) commit(reqs []*request[B, R]) (finish func()) {
	reqs = live(reqs)
	if len(reqs) == 0 {
		return nil
	}
	p, err := c.prepare(reqs)
	if err == nil && p.tx != nil {
		if c.opt.InFlight > 1 {
			return func() { c.settle(reqs, p.results, p.finish()) }
		}
		err = p.finish()
	}
	c.settle(reqs, p.results, err)
	return nil
}

// settle answers reqs after their shared transaction ended with err; when
// it failed, every batch is retried alone.
func (c *Committer[B, R]) settle(reqs []*request[B, R], results []result[R], err error) {
	if err == nil {
		for i, r := range reqs {
			c.answer(r, results[i])
		}
		return
	}
	if len(reqs) == 1 {
		c.answer(reqs[0], result[R]{err: err})
		return
	}
	c.retries.Add(1)
	c.opt.Log.Warn("group commit failed, retrying batches one by one", "batches", len(reqs), "err", err)
	c.retrying.Add(1)
	defer c.retrying.Add(-1)
	c.poke() // a group waiting for enough items may start now
	for _, r := range live(reqs) {
		res, err := c.shared([]*request[B, R]{r})
		if err != nil {
			res[0] = result[R]{err: err}
		}
		c.answer(r, res[0])
	}
}

func (c *Committer[B, R]) answer(r *request[B, R], res result[R]) {
	if res.err != nil {
		c.failed.Add(1)
	} else {
		c.batches.Add(1)
	}
	r.done <- res
}

// shared writes reqs in one transaction, start to commit. It returns
// per-request results (rejected batches carry their error) or the error
// that failed the whole transaction, which is then rolled back.
func (c *Committer[B, R]) shared(reqs []*request[B, R]) ([]result[R], error) {
	p, err := c.prepare(reqs)
	if err == nil && p.tx != nil {
		err = p.finish()
	}
	return p.results, err
}

// prepared is a transaction written up to its commit.
type prepared[B, R any] struct {
	c       *Committer[B, R]
	tx      Tx[B, R] // nil when nothing is left to commit
	ctx     context.Context
	cancel  context.CancelFunc
	results []result[R]
}

// finish commits the prepared transaction.
func (p *prepared[B, R]) finish() (err error) {
	defer p.cancel()
	defer func() {
		if r := recover(); r != nil {
			_ = p.tx.Rollback()
			err = fmt.Errorf("groupcommit: panic in commit: %v", r)
		}
	}()
	if err := p.tx.Commit(p.ctx); err != nil {
		_ = p.tx.Rollback()
		return fmt.Errorf("commit: %w", err)
	}
	p.c.txs.Add(1)
	return nil
}

// prepare begins a transaction and applies reqs (and prepares it where
// the Tx can). On success p.tx is the transaction left to commit, or nil
// when every batch was rejected; on error it is rolled back.
func (c *Committer[B, R]) prepare(reqs []*request[B, R]) (p prepared[B, R], err error) {
	p.c = c
	p.ctx, p.cancel = context.WithTimeout(context.Background(), c.opt.TxTimeout)
	p.results = make([]result[R], len(reqs))
	defer func() { // runs last: err is final here, panics included
		if err != nil || p.tx == nil {
			p.cancel()
		}
	}()
	tx, err := c.begin(p.ctx)
	if err != nil {
		return p, fmt.Errorf("begin transaction: %w", err)
	}
	defer func() {
		if r := recover(); r != nil {
			_ = tx.Rollback()
			err = fmt.Errorf("groupcommit: panic in transaction: %v", r)
		}
	}()
	applied := 0
	for i, r := range reqs {
		res, err := tx.Apply(p.ctx, r.b)
		if err != nil {
			var rej *rejected
			if errors.As(err, &rej) {
				p.results[i] = result[R]{err: rej.err}
				continue
			}
			_ = tx.Rollback()
			return p, err
		}
		p.results[i] = result[R]{r: res}
		applied++
	}
	if applied == 0 {
		// Nothing to make durable: every batch was rejected.
		if err := tx.Rollback(); err != nil {
			return p, fmt.Errorf("roll back: %w", err)
		}
		return p, nil
	}
	if pr, can := tx.(Preparer); can {
		if err := pr.Prepare(p.ctx); err != nil {
			_ = tx.Rollback()
			return p, fmt.Errorf("prepare: %w", err)
		}
	}
	p.tx = tx
	return p, nil
}
