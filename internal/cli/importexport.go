//go:build !loggeronly

package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/phpdir"
	"github.com/powermeter/powermeter/internal/server/ingest"
	"github.com/powermeter/powermeter/internal/store"
)

func init() {
	Register(&Command{
		Name:    "export",
		Summary: "write a source's readings as a PHP powermeter data folder",
		Usage: `powermeter export --config FILE --source NAME --dir DIR [--from DAY] [--to DAY] [--device ID]

Writes one YYYY-MM-DD.csv per local day (lines DD.MM.YYYY,HH:MM:SS,power[,temp[,…]]
in the source's zone, as the PHP receiver writes them) and stats.txt with the
newest line. --from/--to take YYYY-MM-DD (in the source's zone; --to is
inclusive) or RFC 3339 instants at a local midnight (a partial day would
replace a complete file). Existing day files of the same name are replaced.
Readings that do not fit a stats line (more than 6 digits, more than 12
extra values) are left out and counted.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "config file (TOML) naming the database")
			fs.String("source", "", "source to export")
			fs.String("dir", "", "folder to write (created if missing)")
			fs.String("from", "", "first day (YYYY-MM-DD) or instant (RFC 3339)")
			fs.String("to", "", "last day, inclusive (YYYY-MM-DD), or end instant (RFC 3339)")
			fs.String("device", "", `device to export (default: "legacy", or the source's only device)`)
		},
		Run: runExport,
	})
	Register(&Command{
		Name:    "import",
		Summary: "read a PHP powermeter data folder (.csv, .csv.gz) into the store",
		Usage: `powermeter import --config FILE --source NAME [--php-config config.inc.php] DIR

Reads every .csv and .csv.gz file of DIR in name order, each line as the
log.php receiver would take it (same checks, same time rules), and stores
the readings under the source. Running it again changes nothing. Prints
each refused line as file:line with a short escaped excerpt (at most 10 per
file, then a count) and the counts imported / already present / refused.
Only regular files are read: symbolic links, pipes and devices are skipped
and named. A file that cannot be read (a corrupt .gz) is reported and the
import goes on; the exit code is then 1. LF, CRLF and CR line ends and a
UTF-8 byte order mark are accepted. Ctrl-C or SIGTERM stops it after storing
what was read. The values of a line are stored as the source's field map
says ([[server.sources.fields]]); --php-config takes units, labels,
$power_threshold (power below it stored as 0) and the sign convention
($produce_consume naming production: the device is a plant) from the PHP
app's own config instead, and prints the config lines that keep showing
the data that way.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "config file (TOML) naming the database")
			fs.String("source", "", "source to import into")
			fs.Int("batch", 5000, "readings per store transaction")
			fs.String("php-config", "", "the PHP app's config.inc.php: units, labels, power threshold, production")
		},
		Run: runImport,
	})
}

func ieFlag(fs *flag.FlagSet, name string) string { return fs.Lookup(name).Value.String() }

// openSource opens the store of cfg and finds the zone of source: from the
// config, else as the store has it. create registers a configured source
// that the store does not know yet.
func openSource(ctx context.Context, cfg *config.Config, source string, create bool) (store.Store, *time.Location, store.SourceInfo, error) {
	var info store.SourceInfo
	if cfg.Server == nil {
		return nil, nil, info, &config.Error{File: cfg.Path, Key: "server", Msg: "missing: the [server] section names the database"}
	}
	st, err := store.Open(ctx, cfg.Server.Database)
	if err != nil {
		return nil, nil, info, fmt.Errorf("opening the store: %w", err)
	}
	fail := func(err error) (store.Store, *time.Location, store.SourceInfo, error) {
		st.Close()
		return nil, nil, info, err
	}
	var zone *time.Location
	if src, ok := cfg.Server.Source(source); ok {
		zone = src.Timezone.Location
		if create {
			if err := st.EnsureSource(ctx, source, zone.String()); err != nil {
				return fail(fmt.Errorf("registering source %s: %w", source, err))
			}
		}
	}
	infos, err := st.Sources(ctx)
	if err != nil {
		return fail(fmt.Errorf("listing sources: %w", err))
	}
	found := false
	for _, in := range infos {
		if in.Name == source {
			info, found = in, true
		}
	}
	if zone == nil && found {
		if z, err := time.LoadLocation(orDefault(info.Timezone, cfg.Timezone.String())); err == nil {
			zone = z
		}
	}
	if zone == nil || (!found && !create) {
		return fail(Usagef("unknown source %q: it is neither in the config's [[server.sources]] nor in the store", source))
	}
	return st, zone, info, nil
}

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

func runExport(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usagef("export takes no arguments (got %q)", fs.Arg(0))
	}
	source, dir := ieFlag(fs, "source"), ieFlag(fs, "dir")
	if source == "" || dir == "" {
		return Usagef("--source and --dir are required")
	}
	cfg, err := LoadConfig(env, ieFlag(fs, "config"), false)
	if err != nil {
		return err
	}
	st, zone, info, err := openSource(ctx, cfg, source, false)
	if err != nil {
		return err
	}
	defer st.Close()
	opt := phpdir.ExportOptions{Source: source, Zone: zone, Device: ieFlag(fs, "device")}
	if f := cfg.Fields(source); !f.IsDefault() {
		opt.Fields = f
	}
	if v := ieFlag(fs, "from"); v != "" {
		if opt.From, err = ingest.ParseBound(v, zone, false); err != nil {
			return Usagef("--from %v", err)
		}
	}
	if v := ieFlag(fs, "to"); v != "" {
		if opt.To, err = ingest.ParseBound(v, zone, true); err != nil {
			return Usagef("--to %v", err)
		}
	}
	if opt.Device == "" {
		switch {
		case slices.Contains(info.Devices, ingest.Device):
			opt.Device = ingest.Device
		case len(info.Devices) == 1:
			opt.Device = info.Devices[0]
		case len(info.Devices) == 0:
			return fmt.Errorf("source %s has no readings to export", source)
		default:
			return Usagef("source %s has several devices (%s): pick one with --device", source, strings.Join(info.Devices, ", "))
		}
	} else if !slices.Contains(info.Devices, opt.Device) {
		return Usagef("source %s has no device %q (it has: %s)", source, opt.Device, strings.Join(info.Devices, ", "))
	}
	res, err := phpdir.Export(ctx, st, dir, opt)
	if errors.Is(err, phpdir.ErrPartialDay) {
		return Usagef("%v", err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "exported %d lines of %s/%s into %d day files in %s", res.Lines, source, opt.Device, res.Files, dir)
	if res.Skipped > 0 {
		fmt.Fprintf(env.Stdout, "; %d readings left out (they do not fit a stats line)", res.Skipped)
	}
	fmt.Fprintln(env.Stdout)
	return nil
}

func runImport(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if fs.NArg() != 1 {
		return Usagef("import needs exactly one folder (got %d arguments)", fs.NArg())
	}
	dir := fs.Arg(0)
	source := ieFlag(fs, "source")
	if source == "" {
		return Usagef("--source is required")
	}
	batch := fs.Lookup("batch").Value.(flag.Getter).Get().(int)
	if batch < 1 {
		return Usagef("--batch must be at least 1")
	}
	cfg, err := LoadConfig(env, ieFlag(fs, "config"), false)
	if err != nil {
		return err
	}
	ents, err := phpdir.List(dir)
	if err != nil {
		return err
	}
	if len(ents) == 0 {
		return fmt.Errorf("no .csv or .csv.gz files in %s", dir)
	}
	var total int64
	for _, e := range ents {
		total += e.Size
	}
	st, zone, _, err := openSource(ctx, cfg, source, true)
	if err != nil {
		return err
	}
	defer st.Close()
	var bar *progressbar.ProgressBar
	if f, ok := env.Stderr.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
		bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(f),
			progressbar.OptionSetDescription("importing "+source),
			progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish())
	}
	clear := func() {
		if bar != nil {
			bar.Clear()
		}
	}
	refused := map[string]int{}
	var refusedFiles []string
	fields := cfg.Fields(source)
	var php phpdir.PHPConfig
	if p := ieFlag(fs, "php-config"); p != "" {
		if php, err = phpdir.ReadPHPConfig(p); err != nil {
			return err
		}
		fields = php.Fields
	}
	opt := phpdir.ImportOptions{
		Source:    source,
		Zone:      zone,
		BatchSize: batch,
		Fields:    fields,
		Threshold: php.Threshold,
		MaxFuture: cfg.Server.MaxFuture.Duration,
		OnRefuse: func(r phpdir.Refusal) {
			if refused[r.File] == 0 {
				refusedFiles = append(refusedFiles, r.File)
			}
			refused[r.File]++
			if refused[r.File] > maxRefusalsShown {
				return
			}
			clear()
			fmt.Fprintf(env.Stdout, "refused %s\n", r)
		},
		OnSkip: func(name, why string) {
			clear()
			fmt.Fprintf(env.Stdout, "skipped %s: %s\n", phpdir.SafeName(name), why)
		},
		OnFileError: func(name string, err error) {
			clear()
			fmt.Fprintf(env.Stdout, "failed %s: %v (going on with the next file)\n", phpdir.SafeName(name), err)
		},
	}
	if bar != nil {
		opt.Progress = func(n int64) { bar.Add64(n) }
	}
	res, err := phpdir.Import(ctx, st, dir, opt)
	if bar != nil {
		bar.Finish()
	}
	if err != nil && ctx.Err() == nil {
		return err
	}
	for _, f := range refusedFiles {
		if n := refused[f] - maxRefusalsShown; n > 0 {
			fmt.Fprintf(env.Stdout, "refused %d more lines of %s (not shown)\n", n, phpdir.SafeName(f))
		}
	}
	fmt.Fprintf(env.Stdout, "imported %d, already present %d, refused %d (%d lines in %d files)",
		res.Imported, res.Present, res.Refused, res.Lines, res.Files)
	if res.Conflicts > 0 {
		fmt.Fprintf(env.Stdout, "; %d conflicts (a different reading is stored for that second; the first was kept)", res.Conflicts)
	}
	if res.Summaries > 0 {
		fmt.Fprintf(env.Stdout, "; %d days only in chart_stats.csv kept as day summaries without raw readings (%d new or changed)", res.Summaries, res.SummariesNew)
	}
	if res.Skipped > 0 {
		fmt.Fprintf(env.Stdout, "; %d skipped (not regular files)", res.Skipped)
	}
	if res.Failed > 0 {
		fmt.Fprintf(env.Stdout, "; %d failed", res.Failed)
	}
	fmt.Fprintln(env.Stdout)
	if t := php.TOML(); t != "" {
		fmt.Fprintf(env.Stdout, "\nto show the data as the PHP app did, add to source %q in the config:\n%s", source, t)
	}
	if err != nil {
		return fmt.Errorf("interrupted; what was read is stored, run it again to go on: %w", err)
	}
	if res.Failed > 0 {
		return fmt.Errorf("%d of %d files could not be read (see above)", res.Failed, res.Failed+res.Files)
	}
	return nil
}

// maxRefusalsShown bounds the refused lines printed per file (a file that
// is not a data file at all would print every line).
const maxRefusalsShown = 10
