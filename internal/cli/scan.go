package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/scan"
)

const defaultScanTimeout = 3 * time.Second

// newScanner is the scanner of the local network; tests replace it with
// one pointed at responders on 127.0.0.1.
var newScanner = scan.New

func runScan(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if _, err := positional(env, fs); err != nil {
		return err
	}
	s := newScanner()
	if d := flagDuration(fs, "timeout"); d > 0 {
		s.Timeout = d
	}
	if s.Timeout > time.Minute {
		return Usagef("--timeout %v: at most 1m", s.Timeout)
	}
	if env.Log != nil {
		s.Log = env.Log
	}
	start := time.Now()
	ds, err := s.Scan(ctx)
	if err != nil {
		return err
	}
	took := time.Since(start)
	switch {
	case flagBool(fs, "toml"):
		return writeTOML(env.Stdout, scanBlocks(ds))
	case flagBool(fs, "json"):
		return writeJSON(env.Stdout, ds)
	}
	if len(ds) == 0 {
		fmt.Fprintf(env.Stdout, "no devices found in %.1f s (mDNS, SSDP, fritz.box); devices on another subnet or VLAN are not seen\n", took.Seconds())
		return nil
	}
	fmt.Fprintf(env.Stdout, "found %d device(s) in %.1f s:\n", len(ds), took.Seconds())
	for _, d := range ds {
		pw := "no password"
		if d.Password {
			pw = "needs a password"
		}
		line := fmt.Sprintf("  %-9s %-28s %s, %s", d.Kind, d.URL, d.Model, pw)
		if d.Name != "" {
			line += ", announced as " + d.Name
		}
		if d.Note != "" {
			line += " (" + d.Note + ")"
		}
		fmt.Fprintln(env.Stdout, line+" [via "+d.Via+"]")
	}
	return nil
}

func flagDuration(fs *flag.FlagSet, name string) time.Duration {
	if f := fs.Lookup(name); f != nil {
		if g, ok := f.Value.(flag.Getter); ok {
			d, _ := g.Get().(time.Duration)
			return d
		}
	}
	return 0
}

// scanBlocks makes [[meters]] entries of what a scan found.
func scanBlocks(ds []scan.Device) []tomlBlock {
	used := map[string]bool{}
	var out []tomlBlock
	for _, d := range ds {
		b := tomlBlock{typ: d.Kind, url: d.URL}
		base := meter.Slug(d.Name)
		if base == "" {
			base = d.Kind
		}
		name := base
		for i := 2; used[name]; i++ {
			name = fmt.Sprintf("%s-%d", base, i)
		}
		used[name] = true
		b.name = name
		b.comment = strings.TrimSpace(d.Model + " " + d.Note)
		if d.Password {
			b.passVar = "${" + envName(name) + "_PASSWORD}"
		}
		switch d.Kind {
		case "fritzbox":
			b.typ, b.user = "fritzdect", "${"+envName(name)+"_USER}"
			b.comment += "; every energy meter on the box: run discover --toml with this entry for one per device"
		case "tasmota":
			if strings.Contains(d.Model, "read head") {
				b.sml = &config.SML{}
			}
		}
		if d.Kind != "fritzbox" {
			b.role, b.why = guessScanRole(d)
		}
		out = append(out, b)
	}
	return out
}

func guessScanRole(d scan.Device) (string, string) {
	switch {
	case d.Kind == "tasmota" && strings.Contains(d.Model, "read head"):
		return "grid", "a smart-meter read head (SML)"
	case d.Kind == "opendtu" || d.Kind == "ahoydtu":
		return "pv", "a DTU of solar inverters"
	case d.Kind == "epever":
		return "pv", "a solar charge controller"
	}
	return guessRole(d.Kind, d.Model, d.Name, nil)
}
