//go:build !loggeronly

package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"

	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/migrate"
)

func init() {
	Register(&Command{
		Name:    "migrate",
		Summary: "copy all sources and readings from one database to another",
		Usage: `powermeter migrate --from DATABASE --to DATABASE [--chunk N] [--full] [--progress auto|bar|lines|none]

Copies every source, then its readings in time order, from one store to
another (any two backends, e.g. --from sqlite:///var/lib/powermeter/readings.db
--to postgres://powermeter@db/powermeter?sslmode=require). Safe to interrupt
and run again: each source resumes where the target ends, and readings the
target already has are skipped. At the end the counts per source are
compared; a difference exits with status 1.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("from", "", "database `URL` to copy from")
			fs.String("to", "", "database `URL` to copy into (created and migrated as needed)")
			fs.Int("chunk", 5000, "readings per insert transaction")
			fs.Bool("full", false, "re-check every reading instead of resuming at the target's last one")
			fs.String("progress", "auto", "progress display: auto (a bar on a terminal, else lines), bar, lines or none")
		},
		Run: runMigrate,
	})
}

func runMigrate(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	get := func(name string) string { return fs.Lookup(name).Value.String() }
	from, to := get("from"), get("to")
	chunk := fs.Lookup("chunk").Value.(flag.Getter).Get().(int)
	full := fs.Lookup("full").Value.(flag.Getter).Get().(bool)
	switch {
	case fs.NArg() > 0:
		return Usagef("unexpected argument %q", fs.Arg(0))
	case from == "" || to == "":
		return Usagef("both --from and --to are required")
	case from == to:
		return Usagef("--from and --to name the same database")
	case chunk < 1 || chunk > 100000:
		return Usagef("--chunk %d: want 1 to 100000", chunk)
	}
	mode := get("progress")
	if mode == "auto" {
		mode = "lines"
		if f, ok := env.Stderr.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
			mode = "bar"
		}
	}
	var progress func(done, total int64, source string)
	var finish func()
	switch mode {
	case "bar":
		progress, finish = barProgress(env.Stderr)
	case "lines":
		progress, finish = lineProgress(env.Stderr, 5*time.Second)
	case "none":
	default:
		return Usagef("--progress %q: want auto, bar, lines or none", mode)
	}

	src, err := store.Open(ctx, from)
	if err != nil {
		return fmt.Errorf("opening --from: %w", err)
	}
	defer src.Close()
	dst, err := store.Open(ctx, to)
	if err != nil {
		return fmt.Errorf("opening --to: %w", err)
	}
	defer dst.Close()

	start := time.Now()
	rep, err := migrate.Copy(ctx, src, dst, migrate.Options{Chunk: chunk, Full: full, Progress: progress})
	if finish != nil {
		finish()
	}
	if rep != nil {
		for _, s := range rep.Sources {
			how := "from its first reading"
			if s.Resumed {
				how = "resumed at " + s.From.Format(time.RFC3339)
			}
			extra := ""
			if s.Extra > 0 {
				extra = fmt.Sprintf(", %d more in the target outside the source's span", s.Extra)
			}
			fmt.Fprintf(env.Stdout, "%s: %d read (%s), %d new, %d already there; %d in the source, %d in the target%s\n",
				s.Name, s.Read, how, s.Inserted, s.Present, s.Source, s.Target, extra)
			if s.Days > 0 {
				fmt.Fprintf(env.Stdout, "%s: %d day summaries without readings (chart_stats.csv) copied\n", s.Name, s.Days)
			}
			if s.Skipped > 0 || s.Unfit > 0 {
				fmt.Fprintf(env.Stdout, "%s: %d readings skipped: the target cannot hold them (%d such in the source)\n", s.Name, s.Skipped, max(s.Skipped, s.Unfit))
				for _, m := range s.Invalid {
					fmt.Fprintf(env.Stdout, "  skipped %s\n", m)
				}
			}
		}
		read, ins, pres := rep.Totals()
		el := time.Since(start)
		fmt.Fprintf(env.Stdout, "%d sources, %d readings read, %d new, %d already there in %s (%.0f readings/s)\n",
			len(rep.Sources), read, ins, pres, el.Round(time.Millisecond), float64(read)/max(el.Seconds(), 1e-3))
	}
	if err != nil {
		return err
	}
	fmt.Fprintln(env.Stdout, "verified: the counts per source match")
	return nil
}

// barProgress draws a progress bar (readings) on a terminal.
func barProgress(w io.Writer) (func(done, total int64, source string), func()) {
	var bar *progressbar.ProgressBar
	return func(done, total int64, source string) {
			if bar == nil {
				bar = progressbar.NewOptions64(max(total, 1),
					progressbar.OptionSetWriter(w),
					progressbar.OptionSetDescription("migrate"),
					progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("readings"),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionSetPredictTime(true),
					progressbar.OptionFullWidth())
			}
			bar.Describe("migrate " + source)
			_ = bar.Set64(done)
		}, func() {
			if bar != nil {
				_ = bar.Finish()
				fmt.Fprintln(w)
			}
		}
}

// lineProgress writes a plain line at most every interval (logs, pipes).
func lineProgress(w io.Writer, every time.Duration) (func(done, total int64, source string), func()) {
	var last time.Time
	var lastDone, lastTotal int64
	line := func(done, total int64, source string) {
		pct := 100.0
		if total > 0 {
			pct = 100 * float64(done) / float64(total)
		}
		fmt.Fprintf(w, "migrate: %d of %d readings (%.1f%%), source %s\n", done, total, pct, source)
	}
	var lastSource string
	return func(done, total int64, source string) {
			lastDone, lastTotal, lastSource = done, total, source
			if time.Since(last) >= every {
				last = time.Now()
				line(done, total, source)
			}
		}, func() {
			if lastTotal > 0 || lastDone > 0 {
				line(lastDone, lastTotal, lastSource)
			}
		}
}
