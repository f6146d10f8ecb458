package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"syscall"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/logger"
	_ "github.com/powermeter/powermeter/internal/meter/all" // every meter family
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/uplink"
)

func init() {
	Register(&Command{
		Name:    "run",
		Summary: "poll the meters, forward their readings and serve, as the config says",
		Usage: `powermeter run --config FILE

Runs what the config file has, in one process: the logger when it lists
[[meters]] (every interval it reads them, keeps the readings in an outbox
under data_dir and forwards them to each [[uplinks]] entry), and the server
when it has a [server] section. With both, the logger also writes straight
into the server's store, as the source named by [logger] source.
Ctrl-C or SIGTERM: finishes the round, sends what is waiting, logs out.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "the configuration `file` (TOML; default ./powermeter.toml, then /etc/powermeter/powermeter.toml)")
		},
		LongRunning: true,
		Run: func(ctx context.Context, env *Env, fs *flag.FlagSet) error {
			if fs.NArg() > 0 {
				return Usagef("run takes no arguments (got %q)", fs.Arg(0))
			}
			cfg, err := LoadConfig(env, fs.Lookup("config").Value.String(), false)
			if err != nil {
				return err
			}
			return runConfig(ctx, env.Log, cfg, runParts{})
		},
	})
}

// runParts lets demo and tests put their own pieces in.
type runParts struct {
	// serverListener replaces listening on [server] listen.
	serverListener net.Listener
	// logger options (clock, outbox folder, backoff) for tests.
	loggerOpts logger.Options
	// ready is called once everything is started.
	ready func()
}

// runConfig runs the logger and the server the config has until ctx ends.
func runConfig(ctx context.Context, log *slog.Logger, cfg *config.Config, p runParts) error {
	if len(cfg.Meters) == 0 && cfg.Server == nil {
		return &config.Error{File: cfg.Path, Msg: "nothing to run: the file has no [[meters]] and no [server] section"}
	}
	if len(cfg.Uplinks) > 0 && len(cfg.Meters) == 0 {
		return &config.Error{File: cfg.Path, Key: "uplinks", Msg: "there are uplinks but no [[meters]] to read"}
	}
	if cfg.Server == nil {
		logger.TuneForSmallDevice()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var st store.Store
	var serve func(context.Context, net.Listener) error
	var lg *logger.Logger
	lopts := p.loggerOpts
	if lopts.Log == nil {
		lopts.Log = log.With("part", "logger")
	}
	if cfg.Server != nil {
		var err error
		st, serve, err = openServer(ctx, cfg, log.With("part", "server"))
		if err != nil {
			return err
		}
		defer st.Close()
		if len(cfg.Meters) > 0 {
			src := cfg.Logger.Source
			zone := cfg.Timezone.Location
			if s, ok := cfg.Server.Source(src); ok && s.Timezone.Location != nil {
				zone = s.Timezone.Location
			}
			if err := st.EnsureSource(ctx, src, zone.String()); err != nil {
				return fmt.Errorf("registering the logger's source %s: %w", src, err)
			}
			// Readings the store refuses for good are logged and counted
			// by the logger, like an uplink's.
			reject := func(r uplink.Rejected) {
				if lg != nil {
					lg.Rejected(uplink.LocalName)(r)
				}
			}
			lopts.Senders = append(lopts.Senders, uplink.NewLocal(st, src, reject))
			log.Info("the logger writes into the local store", "source", src)
		}
	}
	// Listen before the logger opens its outbox and meters: a failed
	// listen then leaves nothing behind.
	var ln net.Listener
	if serve != nil {
		ln = p.serverListener
		if ln == nil {
			var lc net.ListenConfig
			var err error
			if ln, err = lc.Listen(ctx, "tcp", cfg.Server.Listen); err != nil {
				return busyPortHint(fmt.Errorf("server.listen %s: %w", cfg.Server.Listen, err), cfg.Server.Listen)
			}
		}
	}
	if len(cfg.Meters) > 0 {
		var err error
		lg, err = logger.New(cfg, lopts)
		if err != nil {
			if ln != nil {
				ln.Close()
			}
			return err
		}
		// Prometheus metrics on the status listener
		observe, metrics := loggerMetrics(lg, cfg.Logger.Source)
		lg.ObserveRounds(observe)
		lg.HandleStatus("GET /metrics", metrics)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
		cancel()
	}
	// The server outlives the logger: at shutdown the logger may still be
	// flushing to it (an uplink pointing at this very server).
	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	defer stopServer()
	if lg == nil {
		go func() {
			<-ctx.Done()
			stopServer()
		}()
	}
	if serve != nil {
		wg.Go(func() {
			if err := serve(srvCtx, ln); err != nil && !errors.Is(err, context.Canceled) {
				fail(err)
			}
		})
	}
	if lg != nil {
		// The logger stops when ctx ends; its shutdown (flush, logout)
		// needs the store still open, which the deferred Close keeps.
		wg.Go(func() {
			defer stopServer()
			if err := lg.Run(ctx); err != nil {
				fail(err)
			}
		})
	}
	if p.ready != nil {
		p.ready()
	}
	wg.Wait()
	return firstErr
}

// busyPortHint explains a listen address that is taken.
func busyPortHint(err error, addr string) error {
	if err != nil && errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%w\n%s is already in use (another powermeter, or another program): choose another address with --listen HOST:PORT or [server] listen", err, addr)
	}
	return err
}
