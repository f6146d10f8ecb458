package logger

import (
	"context"
	"sync"
	"time"
)

// Clock is the logger's view of time; tests replace it.
type Clock interface {
	Now() time.Time
	// SleepUntil returns when the clock reaches t, or ctx's error.
	SleepUntil(ctx context.Context, t time.Time) error
}

// SystemClock is the operating system's clock.
type SystemClock struct{}

// Now implements Clock.
func (SystemClock) Now() time.Time { return time.Now() }

// SleepUntil implements Clock. It wakes at t of the wall clock even when
// the clock was set in between (it re-checks at least once a minute).
func (SystemClock) SleepUntil(ctx context.Context, t time.Time) error {
	for {
		d := time.Until(t)
		if d <= 0 {
			return nil
		}
		d = min(d, time.Minute)
		timer := time.NewTimer(d)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// FakeClock is a Clock for tests and benchmarks. With Auto set, SleepUntil
// jumps the clock forward at once; otherwise it waits until Advance or Set
// reach the time.
type FakeClock struct {
	mu      sync.Mutex
	now     time.Time
	auto    bool
	changed chan struct{}
	waiting int
}

// NewFakeClock starts a fake clock at t.
func NewFakeClock(t time.Time, auto bool) *FakeClock {
	return &FakeClock{now: t, auto: auto, changed: make(chan struct{})}
}

// Now implements Clock.
func (c *FakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t (also backwards).
func (c *FakeClock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Advance moves the clock forward by d.
func (c *FakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

// Sleepers is how many goroutines wait in SleepUntil.
func (c *FakeClock) Sleepers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waiting
}

// SleepUntil implements Clock.
func (c *FakeClock) SleepUntil(ctx context.Context, t time.Time) error {
	c.mu.Lock()
	if c.auto {
		if t.After(c.now) {
			c.now = t
		}
		c.mu.Unlock()
		return ctx.Err()
	}
	c.waiting++
	defer func() {
		c.mu.Lock()
		c.waiting--
		c.mu.Unlock()
	}()
	for {
		if !c.now.Before(t) {
			c.mu.Unlock()
			return nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
		c.mu.Lock()
	}
}

// nextSlot is the first instant on the interval grid after now. The grid is
// absolute (multiples of the interval since the zero time), so rounds stay
// at :00, :10, … however long each one took.
func nextSlot(now time.Time, interval time.Duration) time.Time {
	return now.Truncate(interval).Add(interval)
}
