// Package meter defines what a device family must provide (the Meter
// interface) and a registry from the config's type name to a constructor.
// Each family lives in its own package under internal/meter/ and registers
// itself in an init function; import internal/meter/all to get every family.
package meter

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/reading"
)

// Meter reads one configured [[meters]] entry. One entry may cover several
// devices (a FRITZ!Box with several DECT sockets): Read returns one Reading
// per device, each with its Device set. Read either returns complete
// readings or an error, never a half-filled Reading.
type Meter interface {
	Read(ctx context.Context) ([]reading.Reading, error)
	// Close releases sessions and connections (a FRITZ!Box logout).
	Close(ctx context.Context) error
}

// Historian is implemented by meters whose device keeps a history of recent
// values (FRITZ!DECT: the last hour at 10 s). History returns the readings
// after since, oldest first, marked Backfilled.
type Historian interface {
	History(ctx context.Context, since time.Time) ([]reading.Reading, error)
}

// Device is one device found by Discover.
type Device struct {
	ID    string `json:"id"` // AIN, channel, serial …
	Name  string `json:"name"`
	Model string `json:"model,omitempty"`
	Note  string `json:"note,omitempty"`
}

// Discoverer is implemented by meters that can list the devices behind them.
type Discoverer interface {
	Discover(ctx context.Context) ([]Device, error)
}

// Deps are what a constructor may use besides its config section.
type Deps struct {
	Log *slog.Logger
	// Zone is the configured time zone (for devices that report local time).
	Zone *time.Location
	// Now is the clock (default time.Now; the logger passes its own, so
	// device-side waits such as a login block follow the same time).
	Now func() time.Time
}

// OrDefaults fills what d leaves unset: slog.Default() and UTC.
func (d Deps) OrDefaults() Deps {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	if d.Zone == nil {
		d.Zone = time.UTC
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Factory builds a Meter from its config section. It validates the
// type-specific fields and returns a *config.Error naming the key when one
// is wrong.
type Factory func(cfg config.Meter, deps Deps) (Meter, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a family available under its config type name.
func Register(typ string, f Factory) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := factories[typ]; dup {
		panic("meter: type registered twice: " + typ)
	}
	factories[typ] = f
}

// Types lists the registered type names.
func Types() []string {
	mu.RLock()
	defer mu.RUnlock()
	out := make([]string, 0, len(factories))
	for t := range factories {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// New builds the meter for cfg with the registered factory.
func New(cfg config.Meter, deps Deps) (Meter, error) {
	mu.RLock()
	f, ok := factories[cfg.Type]
	mu.RUnlock()
	if !ok {
		return nil, &config.Error{Key: fmt.Sprintf("meters[%d].type", cfg.Index), Msg: fmt.Sprintf("%q is not a known meter type (known: %v)", cfg.Type, Types())}
	}
	return f(cfg, deps.OrDefaults())
}

// ConfigError builds the error a Factory returns for a bad field.
func ConfigError(cfg config.Meter, field, format string, args ...any) error {
	return &config.Error{Key: fmt.Sprintf("meters[%d].%s", cfg.Index, field), Msg: fmt.Sprintf(format, args...)}
}

// Apply applies the options every family shares: power below the threshold
// reads as 0, and invert flips the sign of power (and swaps the counters).
func Apply(cfg config.Meter, r *reading.Reading) {
	if cfg.Invert {
		r.Power = -r.Power
		for i := range r.Phases {
			r.Phases[i] = -r.Phases[i]
		}
		r.EnergyIn, r.EnergyOut = r.EnergyOut, r.EnergyIn
	}
	if cfg.PowerThreshold > 0 && r.Power < cfg.PowerThreshold && r.Power > -cfg.PowerThreshold {
		r.Power = 0
	}
	// no negative zero (an inverted 0 W, a device's "-0"): JSON would
	// print it as -0
	if r.Power == 0 {
		r.Power = 0
	}
	for i, v := range r.Phases {
		if v == 0 {
			r.Phases[i] = 0
		}
	}
}
