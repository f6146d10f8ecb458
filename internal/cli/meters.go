package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
)

// withMeters is what the verbs that talk to the configured meters once
// (read, discover) share: it takes the NAME… arguments and --config, builds
// the named meters, runs fn with them and closes them afterwards. A late
// --help ends it quietly.
func withMeters(ctx context.Context, env *Env, fs *flag.FlagSet, fn func(cfg *config.Config, sel []config.Meter, ms []meter.Meter) error) error {
	names, err := positional(env, fs)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	if err != nil {
		return err
	}
	cfg, err := LoadConfig(env, flagString(fs, "config"), false)
	if err != nil {
		return err
	}
	sel, err := selectMeters(cfg, names)
	if err != nil {
		return err
	}
	ms, err := openMeters(ctx, env, cfg, sel)
	if err != nil {
		return err
	}
	defer closeMeters(ctx, env, sel, ms)
	return fn(cfg, sel, ms)
}

// selectMeters returns the [[meters]] entries named (all when none is), in
// the file's order; an unknown name is a usage error.
func selectMeters(cfg *config.Config, names []string) ([]config.Meter, error) {
	if len(cfg.Meters) == 0 {
		return nil, &config.Error{File: cfg.Path, Key: "meters", Msg: "no [[meters]] in the file"}
	}
	if len(names) == 0 {
		return cfg.Meters, nil
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []config.Meter
	for _, m := range cfg.Meters {
		if want[m.Name] {
			out = append(out, m)
			delete(want, m.Name)
		}
	}
	if len(want) > 0 {
		known := make([]string, len(cfg.Meters))
		for i, m := range cfg.Meters {
			known[i] = m.Name
		}
		var unknown []string
		for _, n := range names {
			if want[n] {
				unknown = append(unknown, n)
				delete(want, n)
			}
		}
		return nil, Usagef("no meter named %s in %s (known: %s)", strings.Join(unknown, ", "), cfg.Path, strings.Join(known, ", "))
	}
	return out, nil
}

// openMeters builds the meters; on error the ones built are closed.
func openMeters(ctx context.Context, env *Env, cfg *config.Config, sel []config.Meter) ([]meter.Meter, error) {
	deps := meter.Deps{Log: env.Log, Zone: cfg.Timezone.Location}
	ms := make([]meter.Meter, 0, len(sel))
	for _, mc := range sel {
		m, err := meter.New(mc, deps)
		if err != nil {
			closeMeters(ctx, env, sel, ms)
			var ce *config.Error
			if errors.As(err, &ce) && ce.File == "" {
				ce.File = cfg.Path
			}
			return nil, err
		}
		ms = append(ms, m)
	}
	return ms, nil
}

// closeMeters closes (logs out of) the meters, even after Ctrl-C, within 10 s.
func closeMeters(ctx context.Context, env *Env, sel []config.Meter, ms []meter.Meter) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for i, m := range ms {
		if err := m.Close(ctx); err != nil {
			env.Log.Warn("closing meter", "meter", sel[i].Name, "err", err)
		}
	}
}

// forEach runs f for every meter concurrently and waits for all.
func forEach(ms []meter.Meter, f func(i int, m meter.Meter)) {
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f(i, m)
		}()
	}
	wg.Wait()
}

// writeJSON prints v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing JSON: %w", err)
	}
	return nil
}

// failures prints the error of every meter that failed to stderr and
// returns one error naming them ("2 of 3 meter(s) <what>: a, b"), or nil.
// outcome gives a result's meter name and error.
func failures[T any](env *Env, what string, res []T, outcome func(T) (string, error)) error {
	var failed []string
	for _, r := range res {
		if name, err := outcome(r); err != nil {
			failed = append(failed, name)
			fmt.Fprintf(env.Stderr, "%s: %v\n", name, err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d meter(s) %s: %s", len(failed), len(res), what, strings.Join(failed, ", "))
	}
	return nil
}
