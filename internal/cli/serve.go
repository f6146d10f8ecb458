//go:build !loggeronly

package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/server"
	"github.com/powermeter/powermeter/internal/store"
)

func init() {
	Register(&Command{
		Name:    "serve",
		Summary: "receive readings (log.php and native API), store them, serve the API",
		Usage: `powermeter serve [--config FILE] [--listen ADDR]

Receives readings from loggers (the legacy log.php protocol on any path
ending in /log.php, and POST /api/v1/readings), stores them, and serves the
read API. Without --config it listens on 127.0.0.1:8080 with an SQLite file
under ./powermeter-data/ and prints how to add a source. SIGTERM or Ctrl-C
stops it gracefully: requests in flight finish first.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "config `file` (TOML); default ./powermeter.toml, then /etc/powermeter/powermeter.toml; without any: 127.0.0.1:8080, SQLite under ./powermeter-data/")
			fs.String("listen", "", "`address` to listen on, overriding [server] listen (e.g. 0.0.0.0:8080)")
		},
		Run:         runServe,
		LongRunning: true,
	})
}

func runServe(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usagef("serve takes no arguments (got %q)", fs.Arg(0))
	}
	cfg, err := LoadConfig(env, fs.Lookup("config").Value.String(), true)
	if err != nil {
		return err
	}
	if cfg.Server == nil {
		return &config.Error{File: cfg.Path, Key: "server", Msg: "missing: serve needs a [server] section"}
	}
	if l := fs.Lookup("listen").Value.String(); l != "" {
		if _, _, err := net.SplitHostPort(l); err != nil {
			return Usagef("--listen %q is not host:port (e.g. 127.0.0.1:8080)", l)
		}
		cfg.Server.Listen = l
	}
	st, err := store.Open(ctx, cfg.Server.Database)
	if err != nil {
		return fmt.Errorf("opening the store: %w", err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			env.Log.Error("closing the store", "err", err)
		}
	}()
	srv, err := server.New(ctx, cfg, st, env.Log)
	if err != nil {
		return err
	}
	if len(cfg.Server.Sources) == 0 {
		printSourceHelp(env.Stdout, cfg)
	}
	return busyPortHint(srv.ListenAndServe(ctx), cfg.Server.Listen)
}

// printSourceHelp tells how to add a source when none is configured.
func printSourceHelp(w io.Writer, cfg *config.Config) {
	b := make([]byte, 16)
	key := "change-me-to-a-long-random-key"
	if _, err := rand.Read(b); err == nil {
		key = hex.EncodeToString(b)
	}
	fmt.Fprintf(w, `powermeter serve: no sources are configured, so every logger is refused (403).
To receive readings, write a config file, e.g. powermeter.toml:

  timezone = %q
  [server]
  listen   = %q
  database = %q
  [[server.sources]]
  name = "home"
  key  = %q    # or "${POWERMETER_HOME_KEY}" to read it from the environment

then run:  powermeter serve --config powermeter.toml
and set the logger's base URL to http://%s/ with that key.

`, cfg.Timezone.String(), cfg.Server.Listen, cfg.Server.Database, key, cfg.Server.Listen)
}
