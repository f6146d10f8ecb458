package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"golang.org/x/crypto/bcrypt"
)

func init() {
	Register(&Command{
		Name:    "check",
		Summary: "validate the config file (and with --database the database) without touching any device",
		Usage: `powermeter check [--config FILE] [--database [--full]]

Reads the config file and checks everything that can be checked without
talking to a meter or an uplink: every key and value (each error names its
key and line), the meters' own settings (built without a request: AINs,
channels, …; MQTT meters only when they start), ${VAR} secrets being set,
CA files being readable PEM, the dashboard's password hashes, the data
folder. Warnings (accepted but
doubtful settings, such as a source key shorter than 8 characters) are
printed too. Exit code 0: fine; 2: the errors are printed.

--database also checks the database the [server] section names: SQLite's
PRAGMA quick_check (--full: integrity_check, which also compares every
index with its table); the file is opened read-only, a running server may
go on. Exit code 1 when the database is damaged or cannot be read.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "the configuration `file` (default ./powermeter.toml, then /etc/powermeter/powermeter.toml)")
			fs.Bool("database", false, "also check the database's consistency")
			fs.Bool("full", false, "with --database: the thorough integrity_check instead of quick_check")
		},
		Run: runCheck,
	})
	Register(&Command{
		Name:    "healthcheck",
		Summary: "ask the running server (or logger) whether it is healthy: exit 0 or 1 (for containers and monitors)",
		Usage: `powermeter healthcheck [--config FILE] [--url URL]

GETs the /healthz of the server the config file describes ([server]
listen; 0.0.0.0 and :: are asked on the loopback address), or the logger's
/status when the file has no [server] but a [logger] status_listen. Exit 0
when it answers 200 within the timeout, else 1. The container image uses it
as its HEALTHCHECK.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "the configuration `file` (default ./powermeter.toml, then /etc/powermeter/powermeter.toml, else the defaults)")
			fs.String("url", "", "ask this `URL` instead (e.g. http://127.0.0.1:8080/healthz)")
			fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
		},
		Run: runHealthcheck,
	})
}

func runCheck(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usagef("check takes no arguments (got %q)", fs.Arg(0))
	}
	cfg, err := LoadConfig(env, flagString(fs, "config"), false)
	if err != nil {
		return err
	}
	errs := checkFiles(cfg)
	errs = append(errs, checkMeters(ctx, env, cfg)...)
	for _, w := range cfg.Warnings {
		fmt.Fprintf(env.Stdout, "warning: %v\n", w)
	}
	if len(errs) > 0 {
		return errs
	}
	fmt.Fprintf(env.Stdout, "%s: ok (%d meters, %d uplinks, %s)\n", cfg.Path, len(cfg.Meters), len(cfg.Uplinks), serverSummary(cfg))
	if fs.Lookup("database").Value.String() == "true" {
		if cfg.Server == nil {
			return &config.Error{File: cfg.Path, Key: "server", Msg: "--database: the file has no [server] section, so no database"}
		}
		return checkDatabase(ctx, env, cfg, fs.Lookup("full").Value.String() == "true")
	}
	return nil
}

func serverSummary(cfg *config.Config) string {
	if cfg.Server == nil {
		return "no server"
	}
	return fmt.Sprintf("server on %s with %d sources", cfg.Server.Listen, len(cfg.Server.Sources))
}

// checkFiles checks what the config names outside itself, without any
// network traffic: CA files, password hashes, the data folder.
func checkFiles(cfg *config.Config) config.Errors {
	var errs config.Errors
	add := func(key, format string, args ...any) {
		errs = append(errs, &config.Error{File: cfg.Path, Key: key, Msg: fmt.Sprintf(format, args...)})
	}
	checkCA := func(key, file string) {
		if file == "" {
			return
		}
		pem, err := os.ReadFile(file)
		if err != nil {
			add(key, "cannot read: %v", err)
			return
		}
		if !x509.NewCertPool().AppendCertsFromPEM(pem) {
			add(key, "%s holds no PEM certificate", file)
		}
	}
	for i, m := range cfg.Meters {
		checkCA(fmt.Sprintf("meters[%d].ca_file", i), m.CAFile)
	}
	for i, u := range cfg.Uplinks {
		checkCA(fmt.Sprintf("uplinks[%d].ca_file", i), u.CAFile)
	}
	if cfg.Server != nil {
		for i, u := range cfg.Server.Dashboard.Users {
			if _, hash, ok := strings.Cut(u, ":"); ok {
				if err := checkPasswordHash(hash); err != nil {
					add(fmt.Sprintf("server.dashboard.users[%d]", i), "%v (make one with: powermeter hash-password)", err)
				}
			}
		}
	}
	if len(cfg.Meters) > 0 || cfg.Server != nil {
		// the data folder: either there, or its parent is (it is created)
		if fi, err := os.Stat(cfg.DataDir); err == nil && !fi.IsDir() {
			add("data_dir", "%s is not a folder", cfg.DataDir)
		} else if err != nil {
			if _, perr := os.Stat(filepath.Dir(filepath.Clean(cfg.DataDir))); perr != nil {
				add("data_dir", "%s does not exist, nor does its parent folder", cfg.DataDir)
			}
		}
	}
	return errs
}

// offlineFamilies are the meter families whose constructor only checks
// its settings and builds an HTTP client: check builds them to run their
// own validation (AIN format, channel range, …). Others (MQTT connects
// when built) are checked when they start.
var offlineFamilies = map[string]bool{"fritzdect": true, "shelly": true, "tasmota": true, "ahoydtu": true, "opendtu": true, "epever": true}

// checkMeters builds (and at once closes, without a request) every meter
// of an offline family, so its type-specific settings are validated.
func checkMeters(ctx context.Context, env *Env, cfg *config.Config) config.Errors {
	var errs config.Errors
	data, _ := os.ReadFile(cfg.Path)
	for _, mc := range cfg.Meters {
		if !offlineFamilies[mc.Type] {
			continue
		}
		m, err := meter.New(mc, meter.Deps{Log: env.Log, Zone: cfg.Timezone.Location})
		if err != nil {
			var ce *config.Error
			if errors.As(err, &ce) {
				e := *ce
				e.File = cfg.Path
				if e.Line == 0 {
					e.Line = config.LineOf(data, e.Key)
				}
				errs = append(errs, &e)
			} else {
				errs = append(errs, &config.Error{File: cfg.Path, Line: config.LineOf(data, fmt.Sprintf("meters[%d]", mc.Index)), Key: fmt.Sprintf("meters[%d]", mc.Index), Msg: err.Error()})
			}
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		_ = m.Close(cctx) // never logged in: nothing is sent
		cancel()
	}
	return errs
}

func runHealthcheck(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if fs.NArg() > 0 {
		return Usagef("healthcheck takes no arguments (got %q)", fs.Arg(0))
	}
	url := flagString(fs, "url")
	if url == "" {
		cfg, err := LoadConfig(env, flagString(fs, "config"), true)
		if err != nil {
			return err
		}
		switch {
		case cfg.Server != nil:
			url = "http://" + loopback(cfg.Server.Listen) + "/healthz"
		case cfg.Logger.StatusListen != "":
			url = "http://" + loopback(cfg.Logger.StatusListen) + "/status"
		default:
			return &config.Error{File: cfg.Path, Msg: "nothing to ask: no [server] and no [logger] status_listen (or give --url)"}
		}
	}
	timeout, _ := time.ParseDuration(fs.Lookup("timeout").Value.String())
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Usagef("--url %q: %v", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("unhealthy: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("unhealthy: %s answered %s", url, resp.Status)
	}
	fmt.Fprintf(env.Stdout, "healthy: %s answered %s\n", url, resp.Status)
	return nil
}

// loopback turns a listen address on every interface into one a local
// client can dial.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::", "[::]":
		host = "::1"
	}
	return net.JoinHostPort(host, port)
}

// checkPasswordHash tells whether hash is a bcrypt hash bcrypt can use.
func checkPasswordHash(hash string) error {
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return fmt.Errorf("not a usable bcrypt hash: %w", err)
	}
	return nil
}
