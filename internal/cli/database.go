//go:build !loggeronly

package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/sqlite"
)

func init() {
	Register(&Command{
		Name:    "backup",
		Summary: "write a consistent copy of the SQLite database, also while the server runs",
		Usage: `powermeter backup --to FILE [--config FILE]

Copies the [server] database into the new file FILE (an existing file is
refused). The copy is one consistent snapshot even while the server keeps
storing readings (SQLite VACUUM INTO: it reads one snapshot of the WAL
database and writes it compacted), so there is no need to stop anything.
The copy is checked (quick_check) before it is reported done.

PostgreSQL is backed up with its own tools, which this verb does not
replace: pg_dump -Fc -f powermeter.dump 'postgres://user@host/db' (and
pg_restore -d … to restore).`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "the configuration `file` naming the database (default ./powermeter.toml, then /etc/powermeter/powermeter.toml)")
			fs.String("to", "", "the new backup `file`")
		},
		Run: runBackup,
	})
	Register(&Command{
		Name:    "restore",
		Summary: "put an SQLite backup in place of the database (the server must be stopped)",
		Usage: `powermeter restore --from FILE [--config FILE]

Replaces the [server] database with the backup FILE. Refused while a
powermeter has the database open (stop the service first); the backup is
checked (quick_check) before anything is replaced, and the replaced
database is kept beside it as NAME.before-restore. PostgreSQL: use
pg_restore.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "the configuration `file` naming the database (default ./powermeter.toml, then /etc/powermeter/powermeter.toml)")
			fs.String("from", "", "the backup `file` to restore")
		},
		Run: runRestore,
	})
}

// sqlitePath returns the SQLite file of the config's [server] database, or
// an error that explains what to do for PostgreSQL.
func sqlitePath(cfg *config.Config, verb string) (string, error) {
	if cfg.Server == nil {
		return "", &config.Error{File: cfg.Path, Key: "server", Msg: verb + " needs a [server] section naming the database"}
	}
	db := cfg.Server.Database
	if !strings.HasPrefix(db, "sqlite://") {
		tool := "pg_dump -Fc -f powermeter.dump"
		if verb == "restore" {
			tool = "pg_restore --clean -d"
		}
		return "", fmt.Errorf("%s works on SQLite databases only; %s is PostgreSQL, which is backed up with its own tools: %s '%s' (see docs/install.md)",
			verb, store.Redact(db), tool, store.Redact(db))
	}
	return sqlite.PathFromURL(db)
}

func runBackup(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usagef("backup takes no arguments (got %q)", fs.Arg(0))
	}
	to := flagString(fs, "to")
	if to == "" {
		return Usagef("--to FILE is required")
	}
	cfg, err := LoadConfig(env, flagString(fs, "config"), false)
	if err != nil {
		return err
	}
	path, err := sqlitePath(cfg, "backup")
	if err != nil {
		return err
	}
	if err := sqlite.BackupFile(ctx, path, to); err != nil {
		return err
	}
	problems, err := sqlite.CheckFile(ctx, to, false)
	if err != nil {
		return fmt.Errorf("checking the backup: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("the backup %s fails quick_check: %s", to, strings.Join(problems, "; "))
	}
	fi, err := os.Stat(to)
	if err != nil {
		return err
	}
	abs, _ := filepath.Abs(to)
	fmt.Fprintf(env.Stdout, "backup of %s written to %s (%.1f MB, checked)\n", path, abs, float64(fi.Size())/1e6)
	return nil
}

func runRestore(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usagef("restore takes no arguments (got %q)", fs.Arg(0))
	}
	from := flagString(fs, "from")
	if from == "" {
		return Usagef("--from FILE is required")
	}
	cfg, err := LoadConfig(env, flagString(fs, "config"), false)
	if err != nil {
		return err
	}
	path, err := sqlitePath(cfg, "restore")
	if err != nil {
		return err
	}
	if err := sqlite.RestoreFile(ctx, from, path); err != nil {
		return err
	}
	// open it once as a store: migrations of an older backup run now, and
	// the file is back in WAL mode
	st, err := store.Open(ctx, cfg.Server.Database)
	if err != nil {
		return fmt.Errorf("opening the restored database: %w", err)
	}
	if err := st.Close(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "restored %s from %s (the previous database is kept as %s.before-restore)\n", path, from, path)
	return nil
}

// checkDatabase runs the database's consistency check.
func checkDatabase(ctx context.Context, env *Env, cfg *config.Config, full bool) error {
	db := cfg.Server.Database
	if !strings.HasPrefix(db, "sqlite://") {
		st, err := store.Open(ctx, db)
		if err != nil {
			return fmt.Errorf("database %s: %w", store.Redact(db), err)
		}
		defer st.Close()
		srcs, err := st.Sources(ctx)
		if err != nil {
			return fmt.Errorf("database %s: %w", store.Redact(db), err)
		}
		fmt.Fprintf(env.Stdout, "database %s: reachable, %d sources (PostgreSQL checks its own pages; see amcheck for a deeper check)\n", store.Redact(db), len(srcs))
		return nil
	}
	path, err := sqlite.PathFromURL(db)
	if err != nil {
		return err
	}
	problems, err := sqlite.CheckFile(ctx, path, full)
	if err != nil {
		return err
	}
	kind := "quick_check"
	if full {
		kind = "integrity_check"
	}
	if len(problems) > 0 {
		for i, p := range problems {
			if i == 20 {
				fmt.Fprintf(env.Stdout, "database %s: … and %d more\n", path, len(problems)-i)
				break
			}
			fmt.Fprintf(env.Stdout, "database %s: %s\n", path, p)
		}
		return fmt.Errorf("database %s fails %s (%d problems): restore a backup (powermeter restore --from FILE)", path, kind, len(problems))
	}
	fmt.Fprintf(env.Stdout, "database %s: %s ok\n", path, kind)
	return nil
}
