//go:build !loggeronly

package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/powermeter/powermeter/internal/server"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/sqlite"
)

func init() {
	Register(&Command{
		Name:    "retention",
		Summary: "reduce raw readings older than [server.retention] raw now (what the server does every hour)",
		Usage: `powermeter retention [--config FILE] [--dry-run] [--vacuum]

Runs one pass of the [server.retention] job at once: for every source with
a retention, the raw readings older than it are replaced by one reading per
device and UTC minute (min/max/mean power, last counters, the minute's
energy), in slices of batch readings. The server does the same in the
background (every [server.retention] every), so this is for a first run
after setting a retention, or to see what it would do: --dry-run only
counts the raw readings that would be reduced. It may run while the server
runs (SQLite serializes the writes; the server sees the change at once).
--vacuum (SQLite) then rewrites the file without the freed pages, so it
shrinks; inserts wait meanwhile (seconds per 100 MB).`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "the configuration `file` (default ./powermeter.toml, then /etc/powermeter/powermeter.toml)")
			fs.Bool("dry-run", false, "only count what would be reduced")
			fs.Bool("vacuum", false, "afterwards shrink the SQLite file (VACUUM)")
		},
		Run: runRetention,
	})
}

func runRetention(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usagef("retention takes no arguments (got %q)", fs.Arg(0))
	}
	cfg, err := LoadConfig(env, flagString(fs, "config"), false)
	if err != nil {
		return err
	}
	if cfg.Server == nil {
		return Usagef("retention needs a [server] section with [server.retention] raw = \"…\" (e.g. \"365d\")")
	}
	dry, vacuum := flagString(fs, "dry-run") == "true", flagString(fs, "vacuum") == "true"
	st, err := store.Open(ctx, cfg.Server.Database)
	if err != nil {
		return fmt.Errorf("opening the store: %w", err)
	}
	defer st.Close()
	job := server.NewRetention(cfg, st, env.Log)
	if job == nil {
		if _, ok := st.(store.Reducer); !ok {
			return fmt.Errorf("the database %s cannot reduce readings", store.Redact(cfg.Server.Database))
		}
		fmt.Fprintln(env.Stdout, "nothing to do: no source has a retention ([server.retention] raw, or retention in [[server.sources]])")
		return nil
	}
	if dry {
		pending, err := job.Pending(ctx)
		for _, p := range pending {
			fmt.Fprintf(env.Stdout, "%s: %d raw readings before %s would be reduced to 1-minute rows\n", p.Source, p.Raw, p.Until.UTC().Format(time.RFC3339))
		}
		return err
	}
	results, err := job.Pass(ctx)
	for _, r := range results {
		fmt.Fprintf(env.Stdout, "%s: %d raw readings reduced to %d rows, up to %s, in %s\n",
			r.Source, r.Raw, r.Reduced, r.Until.UTC().Format(time.RFC3339), r.Took.Round(time.Millisecond))
	}
	if len(results) == 0 && err == nil {
		fmt.Fprintln(env.Stdout, "nothing to reduce: every source's raw readings are within its retention")
	}
	if err != nil {
		return err
	}
	if vacuum {
		sq, ok := st.(*sqlite.Store)
		if !ok {
			fmt.Fprintln(env.Stdout, "--vacuum: only for SQLite (PostgreSQL reclaims space with its own (auto)vacuum)")
			return nil
		}
		start := time.Now()
		if err := sq.Vacuum(ctx); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "vacuumed %s in %s\n", sq.Path(), time.Since(start).Round(time.Millisecond))
	}
	return nil
}
