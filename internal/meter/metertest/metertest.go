// Package metertest holds the helpers the meter families' tests share: a
// clock moved by hand, and checks of a Read's outcome.
package metertest

import (
	"context"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

// MustZone loads a time zone, for package-level test variables.
func MustZone(name string) *time.Location {
	z, err := time.LoadLocation(name)
	if err != nil {
		panic(err)
	}
	return z
}

// Clock is a clock tests move by hand; safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a clock standing at t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now is the clock's time (a func() time.Time for the code under test).
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ReadOne reads m once and wants exactly one valid reading.
func ReadOne(t testing.TB, m meter.Meter) reading.Reading {
	t.Helper()
	rs, err := m.Read(context.Background())
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(rs) != 1 {
		t.Fatalf("Read returned %d readings, want 1", len(rs))
	}
	if err := rs[0].Validate(); err != nil {
		t.Fatalf("invalid reading: %v", err)
	}
	return rs[0]
}

// WantErr reads m once and wants no reading and an error of kind whose
// message contains substr; it returns the error.
func WantErr(t testing.TB, m meter.Meter, kind meter.Kind, substr string) error {
	t.Helper()
	rs, err := m.Read(context.Background())
	if err == nil {
		t.Fatalf("Read succeeded with %+v, want a %v error", rs, kind)
	}
	if rs != nil {
		t.Errorf("Read returned readings %+v together with error %v", rs, err)
	}
	if k := meter.KindOf(err); k != kind {
		t.Errorf("error kind %v (%v), want %v", k, err, kind)
	}
	if !strings.Contains(err.Error(), substr) {
		t.Errorf("error %q does not mention %q", err, substr)
	}
	return err
}

// Eq wants an optional value to be set and equal to want (within 1e-6).
func Eq(t testing.TB, name string, got *float64, want float64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: missing, want %v", name, want)
		return
	}
	if !(math.Abs(*got-want) <= 1e-6) { // NaN fails too
		t.Errorf("%s = %v, want %v", name, *got, want)
	}
}
