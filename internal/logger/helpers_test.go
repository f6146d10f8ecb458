package logger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

// fakeMeter is a meter whose answers the test controls.
type fakeMeter struct {
	name string
	fm   *fakeMeters
	gen  int // which creation of the meter this is
}

type fakeMeters struct {
	mu       sync.Mutex
	created  map[string]int
	closed   map[string]int
	reads    map[string]int
	failFor  map[string]int // fail the next n reads
	panicFor map[string]int // panic in the next n reads
	onRead   func(name string)
	history  func(name string, since time.Time) []reading.Reading
	power    func(name string, n int) float64
	newError error
	// hang makes the reads of a meter wait for their context to end.
	hang map[string]bool
	// stuck makes the reads of the first instance of a meter wait until the
	// channel is closed, ignoring their context.
	stuck map[string]chan struct{}
}

func newFakes() *fakeMeters {
	return &fakeMeters{created: map[string]int{}, closed: map[string]int{}, reads: map[string]int{}, failFor: map[string]int{}, panicFor: map[string]int{}}
}

func (f *fakeMeters) New(cfg config.Meter, deps meter.Deps) (meter.Meter, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.newError != nil {
		return nil, f.newError
	}
	f.created[cfg.Name]++
	m := &fakeMeter{name: cfg.Name, fm: f, gen: f.created[cfg.Name]}
	if cfg.Type == "fritzdect" {
		return &fakeHistorian{m}, nil
	}
	return m, nil
}

func (f *fakeMeters) count(m map[string]int, name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return m[name]
}

func (m *fakeMeter) Read(ctx context.Context) ([]reading.Reading, error) {
	f := m.fm
	if f.onRead != nil {
		f.onRead(m.name)
	}
	f.mu.Lock()
	if ch := f.stuck[m.name]; ch != nil && m.gen == 1 {
		f.mu.Unlock()
		<-ch
		return nil, errors.New("answered at last")
	}
	if f.hang[m.name] {
		f.mu.Unlock()
		<-ctx.Done()
		return nil, meter.Errorf(meter.Unreachable, ctx.Err(), "no answer from %s", m.name)
	}
	defer f.mu.Unlock()
	f.reads[m.name]++
	if f.panicFor[m.name] > 0 {
		f.panicFor[m.name]--
		f.mu.Unlock()
		defer f.mu.Lock()
		var nilMap map[string]int
		nilMap["boom"] = 1 // a family bug
	}
	if f.failFor[m.name] > 0 {
		f.failFor[m.name]--
		return nil, meter.Errorf(meter.Unreachable, errors.New("connection refused"), "cannot reach %s", m.name)
	}
	n := f.reads[m.name]
	p := float64(n)
	if f.power != nil {
		p = f.power(m.name, n)
	}
	dt := time.Date(2026, 1, 1, 0, 0, n, 0, time.UTC)
	return []reading.Reading{{Power: p, EnergyIn: reading.F(1000 + float64(n)), Temperature: reading.F(20.25), DeviceTime: &dt}}, nil
}

func (m *fakeMeter) Close(ctx context.Context) error {
	m.fm.mu.Lock()
	m.fm.closed[m.name]++
	m.fm.mu.Unlock()
	return nil
}

type fakeHistorian struct{ *fakeMeter }

func (h *fakeHistorian) History(ctx context.Context, since time.Time) ([]reading.Reading, error) {
	if h.fm.history == nil {
		return nil, errors.New("no history")
	}
	return h.fm.history(h.name, since), nil
}

// testConfig builds a config with the given meters (name:type) and extra
// TOML for [logger] and uplinks.
func testConfig(t *testing.T, loggerTOML, uplinksTOML string, meters ...string) *config.Config {
	t.Helper()
	var b strings.Builder
	interval := "interval = \"10s\"\n"
	if strings.Contains(loggerTOML, "interval") {
		interval = ""
	}
	fmt.Fprintf(&b, "timezone = \"Europe/Berlin\"\ndata_dir = %q\n\n[logger]\n%s%s\n", t.TempDir(), interval, loggerTOML)
	for _, m := range meters {
		name, typ, _ := strings.Cut(m, ":")
		fmt.Fprintf(&b, "\n[[meters]]\nname = %q\ntype = %q\nurl = \"http://127.0.0.1:9\"\nusername = \"u\"\n", name, typ)
	}
	b.WriteString(uplinksTOML)
	return parseConfig(t, b.String())
}

func parseConfig(t *testing.T, text string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.toml", []byte(text), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("config: %v\n%s", err, text)
	}
	return cfg
}

// syncBuffer is a concurrency-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLog(buf *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
