package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/emulate"
	_ "github.com/powermeter/powermeter/internal/meter/all" // every family registers its emulator
)

func init() {
	Register(&Command{
		Name:    "emulate",
		Summary: "serve an emulated device (FRITZ!Box, Shelly, Tasmota, AhoyDTU, OpenDTU) on 127.0.0.1",
		Usage: `powermeter emulate KIND [--listen 127.0.0.1:PORT] [--user U --password P] [--profile P] [--timezone ZONE]

Serves the device's real protocol until Ctrl-C, for tests, demos and anyone
without the hardware. KIND is one of: ` + strings.Join(emulate.Kinds(), ", ") + `.
Faults are switched at runtime:
  curl -X POST 'http://ADDR/_emulator/fault?mode=offline'   (offline, slow, html,
  truncated, 401, 403, 500, inval, counter-reset, stale; mode= clears)`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("listen", "127.0.0.1:0", "`address` to listen on (port 0 picks a free one)")
			fs.String("user", "", "user `name` the device demands")
			fs.String("password", "", "`password` the device demands (empty: no auth)")
			fs.String("profile", "", "load `profile` and device options (see the family's docs)")
			fs.String("timezone", "Europe/Berlin", "the device's local time `zone`")
		},
		Run: runEmulate,
	})
}

func runEmulate(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	args, err := positional(env, fs)
	if errors.Is(err, errHelpShown) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return Usagef("want one emulator kind (one of: %s)", strings.Join(emulate.Kinds(), ", "))
	}
	zone, err := time.LoadLocation(flagString(fs, "timezone"))
	if err != nil {
		return Usagef("--timezone %q: not an IANA zone name", flagString(fs, "timezone"))
	}
	o := emulate.Options{
		Username: flagString(fs, "user"),
		Password: flagString(fs, "password"),
		Profile:  flagString(fs, "profile"),
		Zone:     zone,
	}
	return serveEmulator(ctx, env, args[0], flagString(fs, "listen"), o, nil)
}

// serveEmulator runs the emulator until ctx ends; ready (if set) gets its URL.
func serveEmulator(ctx context.Context, env *Env, kind, listen string, o emulate.Options, ready func(url string)) error {
	known := false
	for _, k := range emulate.Kinds() {
		known = known || k == kind
	}
	if !known {
		return Usagef("unknown emulator %q (known: %s)", kind, strings.Join(emulate.Kinds(), ", "))
	}
	em, err := emulate.New(kind, o)
	if err != nil {
		return Usagef("%v", err)
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", listen, err)
	}
	srv := &http.Server{Handler: em, ReadHeaderTimeout: 10 * time.Second}
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(env.Stdout, "%s emulator listening on %s\n", kind, url)
	env.Log.Info("emulator started", "kind", kind, "url", url, "auth", o.Password != "", "profile", o.Profile)
	if ready != nil {
		ready(url)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("emulator %s: %w", kind, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		// a request held by the slow fault: cut it off
		if cerr := srv.Close(); cerr != nil && !errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("stopping the emulator: %w", cerr)
		}
	}
	env.Log.Info("emulator stopped", "kind", kind)
	return nil
}
