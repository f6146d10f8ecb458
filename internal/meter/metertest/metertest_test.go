package metertest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

// recorder is a testing.TB that notes failures instead of failing.
type recorder struct {
	testing.TB
	failed bool
	msgs   []string
}

func (r *recorder) Helper() {}
func (r *recorder) Errorf(f string, a ...any) {
	r.failed = true
	r.msgs = append(r.msgs, fmt.Sprintf(f, a...))
}
func (r *recorder) Fatalf(f string, a ...any) {
	r.Errorf(f, a...)
	runtime.Goexit()
}

// run calls f with a recorder in its own goroutine (Fatalf ends it) and
// says whether it failed.
func run(t *testing.T, f func(tb testing.TB)) bool {
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(r)
	}()
	<-done
	return r.failed
}

type fake struct {
	rs  []reading.Reading
	err error
}

func (f fake) Read(context.Context) ([]reading.Reading, error) { return f.rs, f.err }
func (f fake) Close(context.Context) error                     { return nil }

func TestReadOne(t *testing.T) {
	good := reading.Reading{Device: "d", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Power: 1}
	for name, c := range map[string]struct {
		m    fake
		fail bool
	}{
		"one":     {fake{rs: []reading.Reading{good}}, false},
		"error":   {fake{err: errors.New("x")}, true},
		"two":     {fake{rs: []reading.Reading{good, good}}, true},
		"invalid": {fake{rs: []reading.Reading{{Device: "d"}}}, true},
	} {
		if got := run(t, func(tb testing.TB) { ReadOne(tb, c.m) }); got != c.fail {
			t.Errorf("%s: failed = %v, want %v", name, got, c.fail)
		}
	}
}

func TestWantErr(t *testing.T) {
	busy := meter.Errorf(meter.Busy, nil, "device asks to back off")
	for name, c := range map[string]struct {
		m    fake
		fail bool
	}{
		"match":      {fake{err: busy}, false},
		"no error":   {fake{}, true},
		"other kind": {fake{err: meter.Errorf(meter.Auth, nil, "device asks to back off")}, true},
		"other text": {fake{err: meter.Errorf(meter.Busy, nil, "later")}, true},
		"readings":   {fake{err: busy, rs: []reading.Reading{{}}}, true},
	} {
		if got := run(t, func(tb testing.TB) { WantErr(tb, c.m, meter.Busy, "back off") }); got != c.fail {
			t.Errorf("%s: failed = %v, want %v", name, got, c.fail)
		}
	}
}

func TestEq(t *testing.T) {
	for _, c := range []struct {
		got  *float64
		fail bool
	}{
		{reading.F(2), false},
		{reading.F(2 + 1e-9), false},
		{reading.F(2.1), true},
		{reading.F(math.NaN()), true},
		{nil, true},
	} {
		if got := run(t, func(tb testing.TB) { Eq(tb, "v", c.got, 2) }); got != c.fail {
			t.Errorf("Eq(%v): failed = %v, want %v", c.got, got, c.fail)
		}
	}
}

func TestClock(t *testing.T) {
	t0 := time.Date(2026, 6, 21, 12, 0, 0, 0, time.UTC)
	c := NewClock(t0)
	c.Add(time.Minute)
	if got := c.Now(); !got.Equal(t0.Add(time.Minute)) {
		t.Errorf("Now = %v", got)
	}
	if MustZone("Europe/Berlin").String() != "Europe/Berlin" {
		t.Error("MustZone")
	}
}
