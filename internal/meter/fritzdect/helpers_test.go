package fritzdect

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/meter/metertest"
)

// start is a summer noon: the balcony plant produces, the fridge runs.
var start = time.Date(2026, 6, 21, 12, 0, 3, 0, time.UTC)

// newClock is a clock tests move by hand, standing at start.
func newClock() *metertest.Clock { return metertest.NewClock(start) }

const (
	testUser = "fritz3456"
	testPass = "s3cret€uro"
)

// newEmu starts an emulated box on 127.0.0.1 with fast PBKDF2.
func newEmu(t testing.TB, o EmulatorOptions, clk *metertest.Clock) (*Emulator, *httptest.Server) {
	t.Helper()
	if o.Username == "" && o.Password == "" {
		o.Username, o.Password = testUser, testPass
	}
	if o.Iter1 == 0 {
		o.Iter1, o.Iter2 = 50, 5
	}
	if clk != nil {
		o.Now = clk.Now
	}
	e := NewEmulator(o)
	e.Faults().Delay = 2 * time.Second // set before the server goroutines start
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return e, srv
}

func meterCfg(url, name string) config.Meter {
	return config.Meter{
		Name: name, Type: "fritzdect", URL: url,
		Username: testUser, Password: testPass,
		Timeout: config.Duration{Duration: 5 * time.Second},
	}
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// newMeter builds a meter, points its box at clk and closes it at the end.
func newMeter(t testing.TB, cfg config.Meter, clk *metertest.Clock) *Meter {
	t.Helper()
	m, err := New(cfg, meter.Deps{Log: quiet})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if clk != nil {
		m.box.mu.Lock()
		m.box.now = clk.Now
		m.box.mu.Unlock()
	}
	t.Cleanup(func() { m.Close(context.Background()) })
	return m
}

func wantKind(t *testing.T, err error, k meter.Kind) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want kind %v", k)
	}
	if got := meter.KindOf(err); got != k {
		t.Fatalf("error kind %v, want %v: %v", got, k, err)
	}
}
