package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"

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
	forEach(ms, func(i int, m meter.Meter) {
		rs, err := m.Read(ctx)
		res[i] = result{Meter: sel[i].Name, Type: sel[i].Type, Readings: rs, err: err}
		if err != nil {
			res[i].Readings = nil
			res[i].Error = err.Error()
			if k := meter.KindOf(err); k != 0 {
				res[i].Kind = k.String()
			}
		}
	})
	return res
}

// tempDecimals is how the original logger wrote temperatures.
func tempDecimals(typ string) int {
	if typ == "shelly" || typ == "tasmota" || typ == "epever" {
		return 2
	}
	return 1
}

func runRead(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	return withMeters(ctx, env, fs, func(cfg *config.Config, sel []config.Meter, ms []meter.Meter) error {
		res := readRound(ctx, sel, ms)
		if flagBool(fs, "json") {
			if err := writeJSON(env.Stdout, res); err != nil {
				return err
			}
		} else {
			printReadings(env, cfg, res)
		}
		return failures(env, "could not be read", res, func(r result) (string, error) { return r.Meter, r.err })
	})
}

// printReadings prints the readings as the original logger sent them, each
// line after the device's name when there are several.
func printReadings(env *Env, cfg *config.Config, res []result) {
	n := 0
	for _, r := range res {
		n += len(r.Readings)
	}
	for _, r := range res {
		for _, rd := range r.Readings {
			second := rd.Temperature
			if r.Type == "epever" {
				second = rd.Voltage // the PHP app's line: PanelP,BatteryV,BatteryI,PanelV,PanelI
			}
			line, err := legacy.Format(rd.Time, cfg.Timezone.Location, rd.Power, second, tempDecimals(r.Type), rd.Phases)
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
