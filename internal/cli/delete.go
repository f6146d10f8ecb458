//go:build !loggeronly

package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/server/ingest"
	"github.com/powermeter/powermeter/internal/store"
)

func init() {
	Register(&Command{
		Name:    "delete",
		Summary: "delete a device's readings in a time range (e.g. a clock glitch's)",
		Usage: `powermeter delete --config FILE --source NAME --device ID --from T --to T [--yes]

Deletes the readings of one device of a source with --from <= time < --to.
--from/--to take YYYY-MM-DD (in the source's zone; --to is inclusive) or
RFC 3339 instants. Without --yes it only counts what it would delete. The
day summaries of the days touched are recomputed, days left empty vanish,
and the live page and API show the device's newest remaining reading; a
running server sees the change at once.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "config file (TOML) naming the database")
			fs.String("source", "", "source of the readings")
			fs.String("device", "", `device whose readings go ("legacy" for log.php lines)`)
			fs.String("from", "", "first day (YYYY-MM-DD) or instant (RFC 3339)")
			fs.String("to", "", "last day, inclusive (YYYY-MM-DD), or end instant (RFC 3339), excluded")
			fs.Bool("yes", false, "delete (without it: only count)")
		},
		Run: runDelete,
	})
}

func runDelete(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usagef("delete takes no arguments (got %q)", fs.Arg(0))
	}
	source, device := ieFlag(fs, "source"), ieFlag(fs, "device")
	fromS, toS := ieFlag(fs, "from"), ieFlag(fs, "to")
	if source == "" || device == "" || fromS == "" || toS == "" {
		return Usagef("--source, --device, --from and --to are required")
	}
	cfg, err := LoadConfig(env, ieFlag(fs, "config"), false)
	if err != nil {
		return err
	}
	st, zone, _, err := openSource(ctx, cfg, source, false)
	if err != nil {
		return err
	}
	defer st.Close()
	from, err := ingest.ParseBound(fromS, zone, false)
	if err != nil {
		return Usagef("--from %v", err)
	}
	to, err := ingest.ParseBound(toS, zone, true)
	if err != nil {
		return Usagef("--to %v", err)
	}
	if !to.After(from) {
		return Usagef("--to must lie after --from")
	}
	d, ok := st.(store.Deleter)
	if !ok {
		return fmt.Errorf("this database cannot delete readings")
	}
	span := fmt.Sprintf("%s of %s from %s to %s", device, source, from.Format(time.RFC3339), to.Format(time.RFC3339))
	if fs.Lookup("yes").Value.String() != "true" {
		var n int64
		var first, last time.Time
		err := st.Range(ctx, source, from, to, func(r reading.Reading) error {
			if r.Device == device {
				if n == 0 {
					first = r.Time
				}
				last = r.Time
				n++
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("counting the readings of %s: %w", span, err)
		}
		if n == 0 {
			fmt.Fprintf(env.Stdout, "no readings of %s\n", span)
			return nil
		}
		fmt.Fprintf(env.Stdout, "would delete %d readings of %s (%s … %s); add --yes to delete them\n",
			n, span, first.Format(time.RFC3339), last.Format(time.RFC3339))
		return nil
	}
	n, err := d.Delete(ctx, source, device, from, to)
	if err != nil {
		return fmt.Errorf("deleting the readings of %s: %w", span, err)
	}
	fmt.Fprintf(env.Stdout, "deleted %d readings of %s\n", n, span)
	return nil
}
