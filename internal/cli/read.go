package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/meter"
	_ "github.com/powermeter/powermeter/internal/meter/all" // every meter family
	"github.com/powermeter/powermeter/internal/reading"
)

func init() {
	Register(&Command{
		Name:    "read",
		Summary: "read the configured meters once and print their readings",
		Usage: `powermeter read --config FILE [--json] [NAME…]

Reads the named meters (default: all in the file) once, concurrently, and
prints each reading as the original logger sent it:
  DD.MM.YYYY,HH:MM:SS,POWER[,TEMPERATURE[,EXTRA…]]
in the configured time zone (with several readings, each line starts with
the device's name and a tab). --json prints the readings as JSON.
Exits 1 when a meter could not be read, naming it and the reason.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "the configuration `file`")
			fs.Bool("json", false, "print the readings as JSON")
		},
		Run: runRead,
	})
}

// errHelpShown ends a verb after positional printed its usage for a late
// --help ("emulate tasmota --help").
var errHelpShown = errors.New("help shown")

// positional parses fs's remaining arguments, allowing flags after the
// positional ones ("read NAME --json"). A late --help prints the verb's
// usage and returns errHelpShown: the verb then returns nil.
func positional(env *Env, fs *flag.FlagSet) ([]string, error) {
	var pos []string
	args := fs.Args()
	for len(args) > 0 {
		a := args[0]
		switch {
		case a == "--":
			return append(pos, args[1:]...), nil
		case strings.HasPrefix(a, "-") && a != "-":
			if err := fs.Parse(args); err != nil {
				if errors.Is(err, flag.ErrHelp) {
					if c, ok := commands[strings.TrimPrefix(fs.Name(), "powermeter ")]; ok {
						printUsage(env.Stdout, c)
					}
					return nil, errHelpShown
				}
				return nil, Usagef("%v", err)
			}
			args = fs.Args()
		default:
			pos = append(pos, a)
			args = args[1:]
		}
	}
	return pos, nil
}

func flagString(fs *flag.FlagSet, name string) string {
	if f := fs.Lookup(name); f != nil {
		return f.Value.String()
	}
	return ""
}

func flagBool(fs *flag.FlagSet, name string) bool {
	if f := fs.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			b, _ := g.Get().(bool)
			return b
		}
	}
	return false
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

// result is one meter's outcome of a round.
type result struct {
	Meter    string            `json:"meter"`
	Type     string            `json:"type"`
	Readings []reading.Reading `json:"readings,omitempty"`
	Error    string            `json:"error,omitempty"`
	Kind     string            `json:"error_kind,omitempty"`
	err      error
}

// readRound reads every meter once, concurrently.
func readRound(ctx context.Context, sel []config.Meter, ms []meter.Meter) []result {
	res := make([]result, len(ms))
	var wg sync.WaitGroup
	for i, m := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rs, err := m.Read(ctx)
			res[i] = result{Meter: sel[i].Name, Type: sel[i].Type, Readings: rs, err: err}
			if err != nil {
				res[i].Readings = nil
				res[i].Error = err.Error()
				if k := meter.KindOf(err); k != 0 {
					res[i].Kind = k.String()
				}
			}
		}()
	}
	wg.Wait()
	return res
}

// tempDecimals is how the original logger wrote temperatures.
func tempDecimals(typ string) int {
	if typ == "shelly" || typ == "tasmota" {
		return 2
	}
	return 1
}

func runRead(ctx context.Context, env *Env, fs *flag.FlagSet) error {
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
	res := readRound(ctx, sel, ms)

	if flagBool(fs, "json") {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(res); err != nil {
			return fmt.Errorf("writing JSON: %w", err)
		}
	} else {
		n := 0
		for _, r := range res {
			n += len(r.Readings)
		}
		for _, r := range res {
			for _, rd := range r.Readings {
				line, err := legacy.Format(rd.Time, cfg.Timezone.Location, rd.Power, rd.Temperature, tempDecimals(r.Type), rd.Phases)
				if err != nil {
					line = fmt.Sprintf("(%v)", err)
				}
				if n > 1 {
					line = rd.Device + "\t" + line
				}
				fmt.Fprintln(env.Stdout, line)
			}
		}
	}
	var failed []string
	for _, r := range res {
		if r.err != nil {
			failed = append(failed, r.Meter)
			fmt.Fprintf(env.Stderr, "%s: %v\n", r.Meter, r.err)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d meter(s) could not be read: %s", len(failed), len(res), strings.Join(failed, ", "))
	}
	return nil
}
