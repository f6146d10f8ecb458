package phpdir

import (
	"bufio"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/powermeter/powermeter/internal/household"
)

// PHPConfig is what the PHP app's config.inc.php says about its data: the
// units and labels of the values of a line ($unit1…$unit6,
// $unitN_label), $power_threshold, and whether the logged power is a
// production ($produce_consume or $unit1_label naming production, e.g.
// "Erzeugung").
type PHPConfig struct {
	Fields     household.FieldMap
	Threshold  float64
	Production bool // the values are a plant's production: role pv
	Label      string
}

var phpAssignRE = regexp.MustCompile(`^\s*\$([A-Za-z0-9_]+)\s*=\s*(.+?)\s*;`)

// phpValue reads a PHP literal: a quoted string, a number, true/false.
func phpValue(s string) (string, bool) {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1], true
	}
	if _, err := strconv.ParseFloat(s, 64); err == nil {
		return s, true
	}
	switch strings.ToLower(s) {
	case "true":
		return "1", true
	case "false", "null":
		return "", true
	}
	return "", false
}

// productionWords mark a label as production.
var productionWords = []string{"erzeug", "produktion", "ertrag", "solar", "pv", "production", "yield"}

// ReadPHPConfig reads config.inc.php. Variables it does not know, and
// expressions that are not plain literals, are left alone; the PHP app's
// defaults fill what the file does not set.
func ReadPHPConfig(path string) (PHPConfig, error) {
	f, err := os.Open(path)
	if err != nil {
		return PHPConfig{}, fmt.Errorf("reading the PHP config: %w", err)
	}
	defer f.Close()
	vars := map[string]string{}
	sc := bufio.NewScanner(f)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		// several assignments may share a line
		for _, part := range strings.SplitAfter(line, ";") {
			m := phpAssignRE.FindStringSubmatch(part)
			if m == nil {
				continue
			}
			if v, ok := phpValue(m[2]); ok {
				vars[m[1]] = v
			}
		}
	}
	if err := sc.Err(); err != nil {
		return PHPConfig{}, fmt.Errorf("reading the PHP config %s: %w", path, err)
	}
	var c PHPConfig
	def := household.DefaultFields()
	last := 0
	for i := 1; i <= 6; i++ {
		if vars[fmt.Sprintf("unit%d", i)] != "" || vars[fmt.Sprintf("unit%d_label", i)] != "" {
			last = i
		}
	}
	last = max(last, 2)
	for i := 1; i <= last; i++ {
		f := def.At(i)
		if u := vars[fmt.Sprintf("unit%d", i)]; u != "" {
			f.Unit = strings.ReplaceAll(u, "&deg;", "°")
			f.Quantity = household.UnitFor(f.Unit)
		}
		if l := vars[fmt.Sprintf("unit%d_label", i)]; l != "" {
			f.Label = l
		}
		c.Fields = append(c.Fields, f)
	}
	if c.Fields[0].Quantity != household.Power || c.Fields[0].Unit != "W" {
		return PHPConfig{}, fmt.Errorf("%s: $unit1 = %q: value 1 of a line must be a power in W", path, c.Fields[0].Unit)
	}
	if c.Fields, err = c.Fields.Check(); err != nil {
		return PHPConfig{}, fmt.Errorf("%s: %w", path, err)
	}
	if v := vars["power_threshold"]; v != "" {
		t, err := strconv.ParseFloat(v, 64)
		if err != nil || t < 0 {
			return PHPConfig{}, fmt.Errorf("%s: $power_threshold = %q: want a number ≥ 0", path, v)
		}
		c.Threshold = t
	}
	c.Label = vars["produce_consume"]
	if c.Label == "" {
		c.Label = vars["unit1_label"]
	}
	low := strings.ToLower(c.Label)
	for _, w := range productionWords {
		if strings.Contains(low, w) {
			c.Production = true
		}
	}
	return c, nil
}

// TOML is the configuration that gives a source these meanings, to add to
// the powermeter config (roles and field maps are read, not stored).
func (c PHPConfig) TOML() string {
	var b strings.Builder
	if c.Production {
		fmt.Fprintf(&b, "[[server.sources.devices]]\nname = \"legacy\"\nrole = \"pv\"\nlabel = %q\n", c.Label)
	}
	if !c.Fields.IsDefault() {
		for _, f := range c.Fields {
			fmt.Fprintf(&b, "[[server.sources.fields]]\nquantity = %q\nunit = %q\nlabel = %q\n", f.Quantity, f.Unit, f.Label)
		}
	}
	return b.String()
}
