//go:build !loggeronly

package cli

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
	"github.com/powermeter/powermeter/internal/meter/fritzdect"
	"github.com/powermeter/powermeter/internal/store"
)

func init() {
	Register(&Command{
		Name:    "demo",
		Summary: "try powermeter without devices: emulated meters, a logger and the dashboard",
		Usage: `powermeter demo [--listen 127.0.0.1:8080] [--dir DIR]

Starts emulated devices on 127.0.0.1 (a FRITZ!DECT 210 on a balcony solar
plant, a Shelly Plug S on a fridge, a Shelly Pro 3EM at the grid with one
phase feeding in), a logger reading them every 10 s and a server with an
SQLite database, then prints the dashboard's address. The data lives in a
temporary folder that is removed at the end, unless --dir names one.
Stop it with Ctrl-C.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("listen", "127.0.0.1:8080", "address of the dashboard and API")
			fs.String("dir", "", "keep the data in this folder (default: a temporary folder, removed at exit)")
		},
		Run:         runDemo,
		LongRunning: true,
	})
}

// demoDevice is one emulated device of the demo and the meter reading it.
type demoDevice struct {
	kind, profile, meter, typ string
	user, password, ain       string
	role, label, temperature  string
}

var demoDevices = []demoDevice{
	{kind: "fritzbox", meter: "balcony", typ: "fritzdect", user: "demo", password: "demo-fritz", ain: fritzdect.EmuAINSolar,
		role: "pv", label: "Balkonkraftwerk", temperature: "device"},
	{kind: "shelly-gen1", profile: "fridge", meter: "fridge", typ: "shelly", role: "consumer", label: "Kühlschrank"},
	{kind: "shelly-pro3em", profile: "house3", meter: "grid", typ: "shelly", role: "grid", label: "Netz"},
}

func runDemo(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usagef("demo takes no arguments (got %q)", fs.Arg(0))
	}
	listen := fs.Lookup("listen").Value.String()
	if _, _, err := net.SplitHostPort(listen); err != nil {
		return Usagef("--listen %q: want host:port, e.g. 127.0.0.1:8080", listen)
	}
	dir := fs.Lookup("dir").Value.String()
	if dir == "" {
		tmp, err := os.MkdirTemp("", "powermeter-demo-")
		if err != nil {
			return fmt.Errorf("creating a temporary folder: %w", err)
		}
		defer func() {
			if err := os.RemoveAll(tmp); err != nil {
				env.Log.Warn("removing the demo folder", "dir", tmp, "err", err)
			}
		}()
		dir = tmp
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return busyPortHint(fmt.Errorf("listening on %s: %w", listen, err), listen)
	}
	defer ln.Close()

	// The emulators outlive the logger, which logs out of the FRITZ!Box
	// when it stops.
	ectx, stopEmus := context.WithCancel(context.WithoutCancel(ctx))
	defer stopEmus()
	zone, err := time.LoadLocation(config.DefaultZone)
	if err != nil {
		return fmt.Errorf("loading the zone %s: %w", config.DefaultZone, err)
	}

	// The emulators.
	var emus sync.WaitGroup
	defer emus.Wait()
	defer stopEmus()
	var meters strings.Builder
	started := 0
	for _, d := range demoDevices {
		em, err := emulate.New(d.kind, emulate.Options{Username: d.user, Password: d.password, Profile: d.profile, Zone: zone})
		if err != nil {
			env.Log.Warn("demo: emulator not available; leaving it out", "kind", d.kind, "err", err)
			continue
		}
		eln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return fmt.Errorf("starting the %s emulator: %w", d.kind, err)
		}
		srv := &http.Server{Handler: em, ReadHeaderTimeout: 10 * time.Second}
		emus.Go(func() { _ = srv.Serve(eln) })
		emus.Go(func() {
			<-ectx.Done()
			sctx, c := context.WithTimeout(context.Background(), 2*time.Second)
			defer c()
			_ = srv.Shutdown(sctx)
		})
		fmt.Fprintf(&meters, "\n[[meters]]\nname = %q\ntype = %q\nurl = %q\n", d.meter, d.typ, "http://"+eln.Addr().String())
		if d.user != "" {
			fmt.Fprintf(&meters, "username = %q\npassword = %q\n", d.user, d.password)
		}
		if d.ain != "" {
			fmt.Fprintf(&meters, "ain = %q\n", d.ain)
		}
		fmt.Fprintf(&meters, "role = %q\nlabel = %q\n", d.role, d.label)
		if d.temperature != "" {
			fmt.Fprintf(&meters, "temperature = %q\n", d.temperature)
		}
		fmt.Fprintf(env.Stdout, "  emulated %-14s (meter %q) at http://%s\n", d.kind, d.meter, eln.Addr())
		started++
	}
	if started == 0 {
		return fmt.Errorf("no emulator is available (known kinds: %v)", emulate.Kinds())
	}

	dbURL := "sqlite://" + filepath.Join(dir, "powermeter.db")
	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("making a key: %w", err)
	}
	toml := fmt.Sprintf(`timezone = %q
data_dir = %q

[server]
listen = %q
database = %q

[[server.sources]]
name = "demo"
key = %q
[server.sources.tariff]               # an example tariff
currency = "EUR"
base_fee = 12.50
investment = 499.00                   # the balcony plant
invested_on = %q
[[server.sources.tariff.import]]
price = 0.32
[[server.sources.tariff.import.windows]]
from = 22                             # cheaper at night
to = 6
price = 0.27
[[server.sources.tariff.feed_in]]
price = 0.0

[logger]
interval = "10s"
source = "demo"
status_listen = "127.0.0.1:0"
%s`, config.DefaultZone, dir, ln.Addr().String(), dbURL, hex.EncodeToString(key),
		time.Now().In(zone).AddDate(0, 0, -demoHistoryDays).Format("2006-01-02"), meters.String())
	cfg, err := config.Parse("(demo)", []byte(toml), func(string) (string, bool) { return "", false })
	if err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	if err := fillDemo(ctx, env, dbURL, zone); err != nil {
		return err
	}
	url := "http://" + ln.Addr().String() + "/"
	return runConfig(ctx, env.Log, cfg, runParts{
		serverListener: ln,
		ready: func() {
			fmt.Fprintf(env.Stdout, "\npowermeter demo: dashboard at %s\n  data in %s\n  readings every 10 s; stop with Ctrl-C\n", url, dir)
		},
	})
}

// fillDemo writes the demo's history into an empty database.
func fillDemo(ctx context.Context, env *Env, dbURL string, zone *time.Location) error {
	st, err := store.Open(ctx, dbURL)
	if err != nil {
		return fmt.Errorf("opening the demo database: %w", err)
	}
	defer st.Close()
	start := time.Now()
	n, err := writeDemoHistory(ctx, st, "demo", zone, time.Now())
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(env.Stdout, "  wrote %d days of history (%d readings) in %.1f s\n", demoHistoryDays, n, time.Since(start).Seconds())
	}
	return nil
}
