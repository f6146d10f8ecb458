package shelly

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

// gen1Status is the part of a Gen1 GET /status answer we use.
type gen1Status struct {
	Unixtime    int64    `json:"unixtime"` // UTC, 0 until the clock is synced
	Temperature *float64 `json:"temperature"`
	Tmp         *struct {
		TC      *float64 `json:"tC"`
		IsValid *bool    `json:"is_valid"`
	} `json:"tmp"`
	Voltage    *float64     `json:"voltage"` // Shelly 2.5
	Meters     []gen1Meter  `json:"meters"`
	EMeters    []gen1EMeter `json:"emeters"`
	TotalPower *float64     `json:"total_power"`
}

type gen1Meter struct {
	Power     *float64 `json:"power"`
	IsValid   *bool    `json:"is_valid"`
	Timestamp float64  `json:"timestamp"` // LOCAL wall clock as epoch seconds
	Total     *float64 `json:"total"`     // watt-minutes, reset on reboot
}

type gen1EMeter struct {
	Power         *float64 `json:"power"` // negative when returning
	Voltage       *float64 `json:"voltage"`
	IsValid       *bool    `json:"is_valid"`
	Total         *float64 `json:"total"`          // Wh
	TotalReturned *float64 `json:"total_returned"` // Wh
}

// readGen1 reads GET /status with Basic auth.
func (m *Meter) readGen1(ctx context.Context) (reading.Reading, error) {
	st, err := m.fetchGen1(ctx)
	if err != nil {
		return reading.Reading{}, err
	}
	return m.gen1Reading(st)
}

// gen1Auth sets HTTP Basic credentials on a Gen1 request (nil without a
// password).
func (m *Meter) gen1Auth() func(*http.Request) error {
	if m.pass == "" {
		return nil
	}
	return func(r *http.Request) error { r.SetBasicAuth(m.user, m.pass); return nil }
}

func (m *Meter) fetchGen1(ctx context.Context) (*gen1Status, error) {
	resp, body, err := m.get(ctx, "/status", m.gen1Auth())
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized {
		if m.pass == "" {
			return nil, meter.Errorf(meter.Auth, nil, "%s (%s) requires a login: set password, and username if it is not admin", m.where, m.dev.model)
		}
		return nil, meter.Errorf(meter.Auth, nil, "%s (%s) refused user %q: wrong user name or password", m.where, m.dev.model, m.user)
	}
	if err := m.checkStatus(resp, body); err != nil {
		return nil, err
	}
	var st gen1Status
	if err := m.decode("/status", resp, body, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// gen1SettingsPath is a Gen1 device's configuration: its own name and the
// names the user gave its relays ({"name": "Keller", "relays":
// [{"name": "Kühlschrank", …}]}), null where none was given.
const gen1SettingsPath = "/settings"

// nameGen1Channels puts the names the user gave a Gen1 device into its
// channels' Name, with the generic one in the note: a meter channel takes
// its relay's name, a device with one channel (a Plug S, a 3EM read as a
// whole) the device's name when its relay has none. A device whose
// settings cannot be read keeps the generic names: the names are a
// nicety, not worth failing discovery for.
func (m *Meter) nameGen1Channels(ctx context.Context, devs []meter.Device) {
	resp, body, err := m.get(ctx, gen1SettingsPath, m.gen1Auth())
	if err != nil {
		m.log.Debug("shelly: no channel names", "err", err)
		return
	}
	if resp.StatusCode != http.StatusOK {
		m.log.Debug("shelly: no channel names", "status", resp.StatusCode)
		return
	}
	var st struct {
		Name   *string `json:"name"`
		Relays []struct {
			Name *string `json:"name"`
		} `json:"relays"`
	}
	if m.decode(gen1SettingsPath, resp, body, &st) != nil {
		return
	}
	given := func(p *string) string {
		if p == nil {
			return ""
		}
		return strings.TrimSpace(*p)
	}
	for i := range devs {
		name := ""
		if n, err := strconv.Atoi(devs[i].ID); err == nil && n < len(st.Relays) && len(st.Relays) == len(devs) {
			name = given(st.Relays[n].Name)
		}
		if name == "" && len(devs) == 1 {
			name = given(st.Name)
		}
		if name != "" {
			devs[i].Note = devs[i].Name + "; " + devs[i].Note
			devs[i].Name = name
		}
	}
}

// gen1Channels lists what channel can select on a Gen1 device.
func (m *Meter) gen1Channels(st *gen1Status) []meter.Device {
	var out []meter.Device
	switch {
	case len(st.EMeters) == 3:
		out = append(out, meter.Device{ID: "0", Name: "emeters 0..2 (three phases)", Model: m.dev.model, Note: "read as a whole; channel = 0"})
	case len(st.EMeters) > 0:
		for i := range st.EMeters {
			out = append(out, meter.Device{ID: strconv.Itoa(i), Name: "emeter " + strconv.Itoa(i), Model: m.dev.model, Note: "channel = " + strconv.Itoa(i)})
		}
	default:
		for i := range st.Meters {
			out = append(out, meter.Device{ID: strconv.Itoa(i), Name: "meter " + strconv.Itoa(i), Model: m.dev.model, Note: "channel = " + strconv.Itoa(i)})
		}
	}
	return out
}

// gen1Reading builds the reading for the configured channel. A 3EM (three
// emeters) is read as a whole: phases into Phases, their sum into Power.
func (m *Meter) gen1Reading(st *gen1Status) (reading.Reading, error) {
	var r reading.Reading
	ch := m.cfg.Channel
	model := m.dev.model
	switch {
	case len(st.EMeters) == 3:
		if ch != 0 {
			return r, meter.Errorf(meter.Config, nil, "%s (%s) is read as a whole (all three phases): leave channel at 0", m.where, model)
		}
		r.Phases = make([]float64, 3)
		var in, out, vsum float64
		var nv int
		for i, e := range st.EMeters {
			if e.IsValid != nil && !*e.IsValid {
				return reading.Reading{}, meter.Errorf(meter.NotPresent, nil, "%s (%s) reports phase %d as not valid (is_valid=false): no reading", m.where, model, i+1)
			}
			if e.Power == nil {
				return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "%s (%s) answered emeters[%d] without power", m.where, model, i)
			}
			r.Phases[i] = *e.Power
			r.Power += *e.Power
			if e.Total != nil {
				in += *e.Total
			}
			if e.TotalReturned != nil {
				out += *e.TotalReturned
			}
			if e.Voltage != nil && *e.Voltage > 0 {
				vsum += *e.Voltage
				nv++
			}
		}
		if st.TotalPower != nil {
			r.Power = *st.TotalPower
		}
		if st.EMeters[0].Total != nil {
			r.EnergyIn = reading.F(in)
		}
		if st.EMeters[0].TotalReturned != nil {
			r.EnergyOut = reading.F(out)
		}
		if nv > 0 {
			r.Voltage = reading.F(vsum / float64(nv))
		}
	case len(st.EMeters) > 0:
		if ch >= len(st.EMeters) {
			return r, meter.Errorf(meter.Config, nil, "%s (%s) has %d emeters (channel 0..%d), not channel %d", m.where, model, len(st.EMeters), len(st.EMeters)-1, ch)
		}
		e := st.EMeters[ch]
		if e.IsValid != nil && !*e.IsValid {
			return r, meter.Errorf(meter.NotPresent, nil, "%s (%s) reports emeter %d as not valid (is_valid=false): no reading", m.where, model, ch)
		}
		if e.Power == nil {
			return r, meter.Errorf(meter.BadAnswer, nil, "%s (%s) answered emeters[%d] without power", m.where, model, ch)
		}
		r.Power = *e.Power
		r.Voltage = e.Voltage
		r.EnergyIn = e.Total
		r.EnergyOut = e.TotalReturned
	case len(st.Meters) > 0:
		if ch >= len(st.Meters) {
			return r, meter.Errorf(meter.Config, nil, "%s (%s) has %d meter(s) (channel 0..%d), not channel %d", m.where, model, len(st.Meters), len(st.Meters)-1, ch)
		}
		mt := st.Meters[ch]
		if mt.IsValid != nil && !*mt.IsValid {
			return r, meter.Errorf(meter.NotPresent, nil, "%s (%s) reports meter %d as not valid (is_valid=false): no reading", m.where, model, ch)
		}
		if mt.Power == nil {
			return r, meter.Errorf(meter.BadAnswer, nil, "%s (%s) answered meters[%d] without power", m.where, model, ch)
		}
		r.Power = *mt.Power
		if mt.Total != nil {
			r.EnergyIn = reading.F(*mt.Total / 60) // watt-minutes → Wh
		}
		r.Voltage = st.Voltage
		if st.Unixtime <= 0 && mt.Timestamp > 0 {
			if t := localEpoch(int64(mt.Timestamp), m.zone); t.Year() >= 2000 {
				r.DeviceTime = &t
			}
		}
	default:
		return r, meter.Errorf(meter.Config, nil, "%s (%s) measures no power (its /status has no meters or emeters)", m.where, model)
	}
	if st.Unixtime > 0 {
		t := time.Unix(st.Unixtime, 0).UTC()
		r.DeviceTime = &t
	}
	switch {
	case st.Tmp != nil && st.Tmp.IsValid != nil && !*st.Tmp.IsValid:
		// the sensor failed: no temperature (the top-level copy is as bad)
	case st.Tmp != nil && st.Tmp.TC != nil:
		r.Temperature = reading.F(*st.Tmp.TC)
	case st.Temperature != nil:
		r.Temperature = reading.F(*st.Temperature)
	}
	return r, nil
}

// localEpoch converts a Gen1 meter timestamp (epoch seconds whose UTC
// reading is the device's local wall clock) to UTC, using the configured
// zone. In the repeated hour of autumn, the earlier instant is taken.
func localEpoch(ts int64, zone *time.Location) time.Time {
	w := time.Unix(ts, 0).UTC()
	t := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), 0, zone)
	// The wall clock may stand for two instants: try the offsets in force
	// a day before and after, keep the earliest that shows this wall clock.
	best := t
	for _, probe := range [2]time.Time{t.Add(-24 * time.Hour), t.Add(24 * time.Hour)} {
		_, off := probe.Zone()
		c := w.Add(-time.Duration(off) * time.Second)
		if c.In(zone).Format(time.DateTime) == w.Format(time.DateTime) && c.Before(best) {
			best = c
		}
	}
	return best.UTC()
}
