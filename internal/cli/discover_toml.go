package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
)

// tomlBlock is one [[meters]] entry `discover --toml` writes.
type tomlBlock struct {
	name, typ, url, user, passVar string
	ain, serial                   string
	channel                       int
	hasChannel                    bool
	role, why                     string
	sml                           *config.SML
	comment                       string
}

// smlReader is implemented by the Tasmota meter: true when it read a
// smart-meter read head's group.
type smlReader interface{ ReadsSML() bool }

// guessRole guesses a device's role from its family, model and name, as
// the rule says: 3EM and SML → grid, DTU and balcony plugs → pv,
// other plugs → consumer. why says what the guess rests on.
func guessRole(typ, model, name string, m meter.Meter) (role, why string) {
	lname := strings.ToLower(name + " " + model)
	solarish := false
	for _, w := range []string{"balkon", "balcony", "solar", "pv", "photovolt", "wechselrichter", "inverter", "bkw"} {
		solarish = solarish || strings.Contains(lname, w)
	}
	switch typ {
	case "ahoydtu", "opendtu":
		return "pv", "a solar inverter behind a DTU"
	case "epever":
		return "pv", "a solar charge controller (panel power)"
	case "tasmota":
		if s, ok := m.(smlReader); ok && s.ReadsSML() {
			return "grid", "a smart-meter read head (SML)"
		}
	case "shelly":
		um := strings.ToUpper(model)
		if strings.Contains(um, "3EM") || strings.Contains(um, "SPEM") || strings.Contains(um, "SHEM") {
			return "grid", "a " + model + " energy meter"
		}
	}
	if solarish {
		return "pv", fmt.Sprintf("a plug whose name %q sounds like solar", name)
	}
	if model != "" {
		return "consumer", "a " + model + " plug"
	}
	return "consumer", "a plug"
}

// tomlBlocks turns what discover found into [[meters]] entries: one per
// device of a FRITZ!Box, a DTU or a multi-channel Shelly, named after the
// device (a slug of its own name), one for any other meter under its name.
func tomlBlocks(sel []config.Meter, ms []meter.Meter, found []discovered) []tomlBlock {
	used := map[string]bool{}
	unique := func(base string) string {
		if base == "" {
			base = "meter"
		}
		n := base
		for i := 2; used[n]; i++ {
			n = base + "-" + strconv.Itoa(i)
		}
		used[n] = true
		return n
	}
	var out []tomlBlock
	for i, d := range found {
		if d.err != nil {
			continue
		}
		cm := sel[i]
		base := tomlBlock{typ: cm.Type, url: cm.URL, user: cm.Username, sml: cm.SML}
		if cm.Password != "" {
			base.passVar = "${" + envName(cm.Name) + "_PASSWORD}"
		}
		if d.Devices == nil || len(d.Devices) == 1 && d.Type != "fritzdect" {
			b := base
			b.name = unique(cm.Name)
			b.ain, b.serial, b.channel, b.hasChannel = cm.AIN, cm.Serial, cm.Channel, cm.Channel != 0
			model := ""
			if len(d.Devices) == 1 {
				model = d.Devices[0].Model
			}
			b.role, b.why = guessRole(cm.Type, model, cm.Name, ms[i])
			if s, ok := ms[i].(smlReader); ok && s.ReadsSML() && b.sml == nil {
				b.sml = &config.SML{} // the common script's names
			}
			out = append(out, b)
			continue
		}
		named := make([]meter.NamedDevice, len(d.Devices))
		for j, dev := range d.Devices {
			named[j] = meter.NamedDevice{ID: dev.ID, Name: dev.Name}
		}
		slugs := meter.DeviceSlugs(named)
		for _, dev := range d.Devices {
			b := base
			b.ain, b.serial = "", ""
			switch cm.Type {
			case "fritzdect":
				b.ain = dev.ID
				b.name = unique(slugs[dev.ID])
			case "opendtu":
				b.serial = dev.ID
				b.name = unique(slugs[dev.ID])
			default: // ahoydtu, shelly: channels by number
				b.channel, _ = strconv.Atoi(dev.ID)
				b.hasChannel = true
				b.name = unique(meter.Slug(cm.Name + "-" + dev.Name))
			}
			if cm.Type == "shelly" {
				// one channel of a multi-channel device measures one load
				b.role, b.why = guessRole(cm.Type, "", dev.Name, nil)
				if b.role == "consumer" {
					b.why = "a channel of a " + dev.Model
				}
			} else {
				b.role, b.why = guessRole(cm.Type, dev.Model, dev.Name, nil)
			}
			b.comment = strings.TrimSpace(dev.Name + " " + dev.Model)
			if dev.Note != "" {
				b.comment += " (" + dev.Note + ")"
			}
			out = append(out, b)
		}
	}
	return out
}

// envName makes an environment variable name from a meter name.
func envName(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// writeTOML prints the blocks, ready to paste; every role is marked as a
// guess. Passwords are never printed: the block reads them from the
// environment.
func writeTOML(w io.Writer, blocks []tomlBlock) error {
	var b strings.Builder
	b.WriteString("# Found by `powermeter discover --toml`: paste into the config file.\n")
	b.WriteString("# Roles marked \"guess\" were guessed from the model and name: check them.\n")
	vars := map[string]bool{}
	for _, bl := range blocks {
		if bl.passVar != "" && !vars[bl.passVar] {
			vars[bl.passVar] = true
			fmt.Fprintf(&b, "# Set %s in the environment (or write the password instead).\n", strings.Trim(bl.passVar, "${}"))
		}
	}
	q := strconv.Quote
	for _, bl := range blocks {
		b.WriteString("\n[[meters]]\n")
		if bl.comment != "" {
			fmt.Fprintf(&b, "# %s\n", strings.ReplaceAll(bl.comment, "\n", " "))
		}
		fmt.Fprintf(&b, "name = %s\ntype = %s\nurl = %s\n", q(bl.name), q(bl.typ), q(bl.url))
		if bl.user != "" {
			fmt.Fprintf(&b, "username = %s\n", q(bl.user))
		}
		if bl.passVar != "" {
			fmt.Fprintf(&b, "password = %s\n", q(bl.passVar))
		}
		if bl.ain != "" {
			fmt.Fprintf(&b, "ain = %s\n", q(bl.ain))
		}
		if bl.serial != "" {
			fmt.Fprintf(&b, "serial = %s\n", q(bl.serial))
		}
		if bl.hasChannel {
			fmt.Fprintf(&b, "channel = %d\n", bl.channel)
		}
		fmt.Fprintf(&b, "role = %s  # guess: %s\n", q(bl.role), bl.why)
		if bl.role == "pv" && (bl.typ == "fritzdect" || bl.typ == "shelly" || bl.typ == "tasmota") {
			b.WriteString("# invert = true  # if the plug shows the plant's output as consumption\n")
		}
		if s := bl.sml; s != nil {
			b.WriteString("[meters.sml]\n")
			for _, kv := range [][2]string{{"group", s.Group}, {"total_in", s.TotalIn}, {"total_out", s.TotalOut}, {"power", s.Power},
				{"power_l1", s.PowerL1}, {"power_l2", s.PowerL2}, {"power_l3", s.PowerL3},
				{"voltage_l1", s.VoltageL1}, {"voltage_l2", s.VoltageL2}, {"voltage_l3", s.VoltageL3},
				{"current_l1", s.CurrentL1}, {"current_l2", s.CurrentL2}, {"current_l3", s.CurrentL3}} {
				if kv[1] != "" {
					fmt.Fprintf(&b, "%s = %s\n", kv[0], q(kv[1]))
				}
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
