package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/household"
	"github.com/powermeter/powermeter/internal/tariff"
)

// Tariff is [server.sources.tariff]: what the source's energy costs.
type Tariff struct {
	Currency string  `toml:"currency"`
	BaseFee  float64 `toml:"base_fee"` // per month
	Import   []Price `toml:"import"`
	FeedIn   []Price `toml:"feed_in"`
	// Investment is what the pv plant cost, on InvestedOn (YYYY-MM-DD).
	Investment float64 `toml:"investment"`
	InvestedOn string  `toml:"invested_on"`
}

// Price is one [[…tariff.import]] or [[…tariff.feed_in]] entry: a price
// per kWh from a local day on, with optional windows.
type Price struct {
	From    string   `toml:"from"` // YYYY-MM-DD; empty: since ever
	Price   float64  `toml:"price"`
	Windows []Window `toml:"windows"`
}

// Window is a price for some hours of some weekdays.
type Window struct {
	Days  []string `toml:"days"` // mon … sun; empty: every day
	From  int      `toml:"from"` // hour 0…24
	To    int      `toml:"to"`
	Price float64  `toml:"price"`
}

var weekdays = map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}

// tariffOf converts and checks a tariff; the error names the field below
// the tariff.
func tariffOf(t *Tariff, zone *time.Location) (*tariff.Tariff, error) {
	if t == nil {
		return nil, nil
	}
	if zone == nil {
		zone = time.UTC
	}
	out := &tariff.Tariff{Currency: t.Currency, BaseFee: t.BaseFee, Investment: t.Investment, Zone: zone}
	conv := func(name string, ps []Price) ([]tariff.Price, error) {
		var res []tariff.Price
		for i, p := range ps {
			tp := tariff.Price{PerKWh: p.Price}
			if p.From != "" {
				d, err := time.ParseInLocation("2006-01-02", p.From, zone)
				if err != nil {
					return nil, fmt.Errorf("%s[%d].from: %q: want YYYY-MM-DD", name, i, p.From)
				}
				tp.From = d
			}
			for j, w := range p.Windows {
				tw := tariff.Window{From: w.From, To: w.To, Price: w.Price}
				for k, dn := range w.Days {
					wd, ok := weekdays[strings.ToLower(dn)]
					if !ok {
						return nil, fmt.Errorf("%s[%d].windows[%d].days[%d]: %q: want mon, tue, wed, thu, fri, sat or sun", name, i, j, k, dn)
					}
					tw.Days = append(tw.Days, wd)
				}
				tp.Windows = append(tp.Windows, tw)
			}
			res = append(res, tp)
		}
		return res, nil
	}
	var err error
	if out.Import, err = conv("import", t.Import); err != nil {
		return nil, err
	}
	if out.FeedIn, err = conv("feed_in", t.FeedIn); err != nil {
		return nil, err
	}
	if t.InvestedOn != "" {
		d, err := time.ParseInLocation("2006-01-02", t.InvestedOn, zone)
		if err != nil {
			return nil, fmt.Errorf("invested_on: %q: want YYYY-MM-DD", t.InvestedOn)
		}
		out.InvestedOn = d
	} else if t.Investment > 0 {
		return nil, fmt.Errorf("invested_on: missing (the day the investment was made)")
	}
	if err := out.Check(); err != nil {
		return nil, err
	}
	return out, nil
}

// fieldsOf converts a source's field map.
func fieldsOf(fs []SourceField) (household.FieldMap, error) {
	m := make(household.FieldMap, len(fs))
	for i, f := range fs {
		m[i] = household.Field{Quantity: household.Quantity(f.Quantity), Unit: f.Unit, Label: f.Label}
	}
	return m.Check()
}

// devicesOf lists a source's devices: [[meters]] roles for the logger's
// own source first, then the source's own entries, which win.
func (c *Config) devicesOf(src Source) []household.Device {
	byName := map[string]int{}
	var out []household.Device
	put := func(d household.Device) {
		if i, ok := byName[d.Name]; ok {
			out[i] = d
			return
		}
		byName[d.Name] = len(out)
		out = append(out, d)
	}
	if src.Name == c.Logger.Source {
		for _, m := range c.Meters {
			if m.Role == "" && m.Label == "" && m.Temperature == "" {
				continue
			}
			// the meter's invert is applied when it is read: what is stored is
			// already oriented
			put(household.Device{Name: m.Name, Role: household.Role(m.Role), Label: m.Label, Temperature: m.Temperature})
		}
	}
	for _, d := range src.Devices {
		put(household.Device{Name: d.Name, Role: household.Role(d.Role), Label: d.Label, Invert: d.Invert, Temperature: d.Temperature})
	}
	return out
}

func (c *Config) validateSource(add func(key, format string, args ...any), p string, src Source) {
	seen := map[string]bool{}
	for j, d := range src.Devices {
		k := fmt.Sprintf("%s.devices[%d]", p, j)
		switch {
		case d.Name == "":
			add(k+".name", "missing (the device name readings carry; \"legacy\" for log.php lines)")
		case seen[d.Name]:
			add(k+".name", "%q is listed twice", d.Name)
		}
		seen[d.Name] = true
		if _, err := household.ParseRole(d.Role); err != nil {
			add(k+".role", "%v", err)
		}
		if d.Temperature != "" && d.Temperature != household.TempRoom && d.Temperature != household.TempDevice {
			add(k+".temperature", "%q: want room or device", d.Temperature)
		}
	}
	if _, err := household.New(c.devicesOf(src)); err != nil {
		add(p+".devices", "%v", err)
	}
	if _, err := fieldsOf(src.Fields); err != nil {
		add(p+".fields", "%v", err)
	}
	if _, err := tariffOf(src.Tariff, src.Timezone.Location); err != nil {
		add(p+".tariff."+strings.SplitN(err.Error(), ":", 2)[0], "%s", strings.TrimSpace(strings.SplitN(err.Error(), ":", 2)[1]))
	}
}

// Home is the household of the source called name: its devices' roles.
// An unknown source, or one without roles, is a home without roles.
func (c *Config) Home(name string) *household.Home {
	src := Source{Name: name}
	if c.Server != nil {
		if s, ok := c.Server.Source(name); ok {
			src = s
		}
	}
	h, err := household.New(c.devicesOf(src))
	if err != nil {
		return nil // refused by validate
	}
	return h
}

// Fields is the field map of the source called name (the default when it
// has none).
func (c *Config) Fields(name string) household.FieldMap {
	if c.Server != nil {
		if s, ok := c.Server.Source(name); ok {
			return SourceFields(s)
		}
	}
	return household.DefaultFields()
}

// SourceFields is the field map of src (the default when it has none);
// for a loop over all sources, where Fields' lookup by name would make the
// loop quadratic (100 000 sources: a minute).
func SourceFields(src Source) household.FieldMap {
	if m, err := fieldsOf(src.Fields); err == nil {
		return m
	}
	return household.DefaultFields()
}

// TariffOf is the tariff of the source called name, or nil.
func (c *Config) TariffOf(name string) *tariff.Tariff {
	if c.Server == nil {
		return nil
	}
	s, ok := c.Server.Source(name)
	if !ok {
		return nil
	}
	t, err := tariffOf(s.Tariff, s.Timezone.Location)
	if err != nil {
		return nil
	}
	return t
}
