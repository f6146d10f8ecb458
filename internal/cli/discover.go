package cli

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"strings"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

func init() {
	Register(&Command{
		Name:    "discover",
		Summary: "list the devices behind the configured meters",
		Usage: `powermeter discover --config FILE [--json | --toml] [NAME…]
powermeter discover --scan [--timeout 3s] [--json | --toml]

For each named meter (default: all): a FRITZ!Box, AhoyDTU or OpenDTU lists
the devices it knows (with the ain, channel or serial to configure); other
devices are read once to show what they are. Exits 1 when a meter failed.
--toml prints ready-to-paste [[meters]] entries (one per device, named
after the device, roles guessed and marked as guesses).
--scan looks for devices on the local network without a config file:
Shellys (mDNS), FRITZ!Box (SSDP, fritz.box), Tasmota, OpenDTU, AhoyDTU and
ESP-Epever (mDNS and an HTTP probe of the hosts that answered), within
--timeout; only private, link-local and loopback addresses are probed.`,
		Flags: func(fs *flag.FlagSet) {
			fs.String("config", "", "the configuration `file`")
			fs.Bool("json", false, "print the result as JSON")
			fs.Bool("toml", false, "print [[meters]] entries to paste into the config")
			fs.Bool("scan", false, "look for devices on the local network (no --config needed)")
			fs.Duration("timeout", defaultScanTimeout, "how long --scan takes at most")
		},
		Run: runDiscover,
	})
}

type discovered struct {
	Meter    string            `json:"meter"`
	Type     string            `json:"type"`
	URL      string            `json:"url"`
	Devices  []meter.Device    `json:"devices,omitempty"`
	Readings []reading.Reading `json:"readings,omitempty"`
	Error    string            `json:"error,omitempty"`
	err      error
}

func runDiscover(ctx context.Context, env *Env, fs *flag.FlagSet) error {
	if flagBool(fs, "scan") {
		return runScan(ctx, env, fs)
	}
	return withMeters(ctx, env, fs, func(cfg *config.Config, sel []config.Meter, ms []meter.Meter) error {
		out := make([]discovered, len(ms))
		forEach(ms, func(i int, m meter.Meter) {
			d := discovered{Meter: sel[i].Name, Type: sel[i].Type, URL: redactURL(sel[i].URL)}
			if dm, ok := m.(meter.Discoverer); ok {
				d.Devices, d.err = dm.Discover(ctx)
			} else {
				d.Readings, d.err = m.Read(ctx)
			}
			if d.err != nil {
				d.Devices, d.Readings, d.Error = nil, nil, d.err.Error()
			}
			out[i] = d
		})
		switch {
		case flagBool(fs, "toml"):
			if err := writeTOML(env.Stdout, tomlBlocks(sel, ms, out)); err != nil {
				return err
			}
		case flagBool(fs, "json"):
			if err := writeJSON(env.Stdout, out); err != nil {
				return err
			}
		default:
			for _, d := range out {
				printDiscovered(env, cfg, d)
			}
		}
		return failures(env, "failed", out, func(d discovered) (string, error) { return d.Meter, d.err })
	})
}

func printDiscovered(env *Env, cfg *config.Config, d discovered) {
	w := env.Stdout
	switch {
	case d.err != nil:
		fmt.Fprintf(w, "%s (%s at %s): failed, see below\n", d.Meter, d.Type, d.URL)
	case d.Readings != nil:
		fmt.Fprintf(w, "%s (%s at %s): one device, it reads:\n", d.Meter, d.Type, d.URL)
		for _, r := range d.Readings {
			fmt.Fprintf(w, "  %s\n", describe(cfg, d.Type, r))
		}
	default:
		fmt.Fprintf(w, "%s (%s at %s): %d device(s)\n", d.Meter, d.Type, d.URL, len(d.Devices))
		for _, dev := range d.Devices {
			fmt.Fprintf(w, "  %s\t%s", dev.ID, dev.Name)
			if dev.Model != "" {
				fmt.Fprintf(w, "\t%s", dev.Model)
			}
			if dev.Note != "" {
				fmt.Fprintf(w, "\t(%s)", dev.Note)
			}
			fmt.Fprintln(w)
		}
	}
}

// describe says what a reading holds, in words.
func describe(cfg *config.Config, typ string, r reading.Reading) string {
	parts := []string{fmt.Sprintf("power %s W", legacy.FormatNumber(r.Power, 2))}
	if r.EnergyIn != nil {
		parts = append(parts, fmt.Sprintf("energy in %s kWh", legacy.FormatNumber(*r.EnergyIn/1000, 3)))
	}
	if r.EnergyOut != nil {
		parts = append(parts, fmt.Sprintf("energy out %s kWh", legacy.FormatNumber(*r.EnergyOut/1000, 3)))
	}
	if r.Temperature != nil {
		parts = append(parts, fmt.Sprintf("temperature %s °C", legacy.FormatNumber(*r.Temperature, tempDecimals(typ))))
	}
	if r.Voltage != nil {
		parts = append(parts, fmt.Sprintf("voltage %s V", legacy.FormatNumber(*r.Voltage, 1)))
	}
	if len(r.Phases) > 0 {
		ps := make([]string, len(r.Phases))
		for i, p := range r.Phases {
			ps[i] = legacy.FormatNumber(p, 2)
		}
		parts = append(parts, fmt.Sprintf("channels/phases [%s] W", strings.Join(ps, " ")))
	}
	if r.DeviceTime != nil {
		parts = append(parts, "device clock "+r.DeviceTime.In(cfg.Timezone.Location).Format("2006-01-02 15:04:05"))
	}
	return r.Device + ": " + strings.Join(parts, ", ")
}

// redactURL hides a password written into the URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	return u.Redacted()
}
