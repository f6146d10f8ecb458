package shelly

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

const gen2StatusPath = "/rpc/Shelly.GetStatus"

// gen2Keys are the Shelly.GetStatus keys of the configured channel.
type gen2Keys struct {
	sw, pm1, em, emdata, em1, em1data string
}

func newGen2Keys(ch int) gen2Keys {
	n := strconv.Itoa(ch)
	return gen2Keys{sw: "switch:" + n, pm1: "pm1:" + n, em: "em:" + n, emdata: "emdata:" + n, em1: "em1:" + n, em1data: "em1data:" + n}
}

// gen2Energy is an aenergy / ret_aenergy object.
type gen2Energy struct {
	Total *float64 `json:"total"` // Wh
}

// gen2Switch is a switch:N or pm1:N status.
type gen2Switch struct {
	APower      *float64    `json:"apower"`
	Voltage     *float64    `json:"voltage"`
	AEnergy     *gen2Energy `json:"aenergy"`
	RetAEnergy  *gen2Energy `json:"ret_aenergy"` // also counted in aenergy
	Temperature *struct {
		TC *float64 `json:"tC"` // null when the sensor fails
	} `json:"temperature"`
}

// gen2EM is an em:N status (Pro 3EM triphase profile).
type gen2EM struct {
	A      *float64 `json:"a_act_power"`
	B      *float64 `json:"b_act_power"`
	C      *float64 `json:"c_act_power"`
	AV     *float64 `json:"a_voltage"`
	BV     *float64 `json:"b_voltage"`
	CV     *float64 `json:"c_voltage"`
	Total  *float64 `json:"total_act_power"`
	Errors []string `json:"errors"`
}

type gen2EMData struct {
	TotalAct    *float64 `json:"total_act"`
	TotalActRet *float64 `json:"total_act_ret"`
}

// gen2EM1 is an em1:N status (monophase profile, Pro EM).
type gen2EM1 struct {
	ActPower *float64 `json:"act_power"`
	Voltage  *float64 `json:"voltage"`
	Errors   []string `json:"errors"`
}

type gen2EM1Data struct {
	TotalAct    *float64 `json:"total_act_energy"`
	TotalActRet *float64 `json:"total_act_ret_energy"`
}

type gen2Sys struct {
	Unixtime *float64 `json:"unixtime"` // null until the clock is synced
}

type gen2Temp struct {
	TC *float64 `json:"tC"`
}

// readGen2 reads Shelly.GetStatus with digest auth.
func (m *Meter) readGen2(ctx context.Context) (reading.Reading, error) {
	st, err := m.fetchGen2(ctx)
	if err != nil {
		return reading.Reading{}, err
	}
	return m.gen2Reading(st)
}

func (m *Meter) fetchGen2(ctx context.Context) (map[string]json.RawMessage, error) {
	resp, body, err := m.rpcGet(ctx, gen2StatusPath)
	if err != nil {
		return nil, err
	}
	var st map[string]json.RawMessage
	if err := m.decode(gen2StatusPath, resp, body, &st); err != nil {
		return nil, err
	}
	return st, nil
}

// gen2ConfigPath is the device's configuration, with the names the user
// gave its channels ("switch:0": {"name": "Kaffeemaschine"}).
const gen2ConfigPath = "/rpc/Shelly.GetConfig"

// nameGen2Channels puts the names the user gave the channels (in
// Shelly.GetConfig) into the devices' Name, with the component key in the
// note. A device whose configuration cannot be read keeps the keys: the
// names are a nicety, not worth failing discovery for.
func (m *Meter) nameGen2Channels(ctx context.Context, devs []meter.Device) {
	resp, body, err := m.rpcGet(ctx, gen2ConfigPath)
	if err != nil {
		m.log.Debug("shelly: no channel names", "err", err)
		return
	}
	var cfg map[string]json.RawMessage
	if m.decode(gen2ConfigPath, resp, body, &cfg) != nil {
		return
	}
	for i := range devs {
		var c struct {
			Name *string `json:"name"`
		}
		if json.Unmarshal(cfg[devs[i].Name], &c) == nil && c.Name != nil && strings.TrimSpace(*c.Name) != "" {
			devs[i].Note = devs[i].Name + "; " + devs[i].Note
			devs[i].Name = strings.TrimSpace(*c.Name)
		}
	}
}

// gen2Channels lists the measuring components of a Gen2+ status.
func (m *Meter) gen2Channels(st map[string]json.RawMessage) []meter.Device {
	var out []meter.Device
	for _, key := range measuring(st) {
		name, n, _ := strings.Cut(key, ":")
		if name == "switch" {
			var s gen2Switch
			if json.Unmarshal(st[key], &s) != nil || s.APower == nil {
				continue // a switch without power metering
			}
		}
		d := meter.Device{ID: n, Name: key, Model: m.dev.model, Note: "channel = " + n}
		if name == "em" {
			d.Note += "; three phases, read as a whole"
		}
		out = append(out, d)
	}
	return out
}

// gen2Reading picks the configured channel's component: switch:N, pm1:N,
// em:N (+ emdata:N) or em1:N (+ em1data:N), in that order.
func (m *Meter) gen2Reading(st map[string]json.RawMessage) (reading.Reading, error) {
	var r reading.Reading
	k := m.keys
	switch {
	case st[k.sw] != nil:
		if err := m.gen2Switch(k.sw, st[k.sw], &r); err != nil {
			return reading.Reading{}, err
		}
	case st[k.pm1] != nil:
		if err := m.gen2Switch(k.pm1, st[k.pm1], &r); err != nil {
			return reading.Reading{}, err
		}
	case st[k.em] != nil:
		if err := m.gen2EM(st, &r); err != nil {
			return reading.Reading{}, err
		}
	case st[k.em1] != nil:
		if err := m.gen2EM1(st, &r); err != nil {
			return reading.Reading{}, err
		}
	default:
		return reading.Reading{}, meter.Errorf(meter.Config, nil, "%s (%s) has no %s, %s, %s or %s; it has %s: set channel accordingly",
			m.where, m.dev.model, k.sw, k.pm1, k.em, k.em1, componentList(st))
	}
	if raw := st["sys"]; raw != nil {
		var sys gen2Sys
		if err := m.unmarshalPart("sys", raw, &sys); err != nil {
			return reading.Reading{}, err
		}
		if sys.Unixtime != nil && *sys.Unixtime > 0 {
			t := time.Unix(int64(*sys.Unixtime), 0).UTC()
			r.DeviceTime = &t
		}
	}
	return r, nil
}

func (m *Meter) gen2Switch(key string, raw json.RawMessage, r *reading.Reading) error {
	var s gen2Switch
	if err := m.unmarshalPart(key, raw, &s); err != nil {
		return err
	}
	if s.APower == nil {
		return meter.Errorf(meter.Config, nil, "%s (%s): %s does not measure power (no apower; a Plus 1 without PM?)", m.where, m.dev.model, key)
	}
	r.Power = *s.APower
	r.Voltage = s.Voltage
	if s.AEnergy != nil && s.AEnergy.Total != nil {
		in := *s.AEnergy.Total
		if s.RetAEnergy != nil && s.RetAEnergy.Total != nil {
			// aenergy counts both directions; import is the rest.
			ret := *s.RetAEnergy.Total
			in = max(in-ret, 0)
			r.EnergyOut = reading.F(ret)
		}
		r.EnergyIn = reading.F(in)
	}
	if s.Temperature != nil && s.Temperature.TC != nil {
		r.Temperature = reading.F(*s.Temperature.TC)
	}
	return nil
}

func (m *Meter) gen2EM(st map[string]json.RawMessage, r *reading.Reading) error {
	k := m.keys
	var em gen2EM
	if err := m.unmarshalPart(k.em, st[k.em], &em); err != nil {
		return err
	}
	if em.A == nil || em.B == nil || em.C == nil {
		return meter.Errorf(meter.BadAnswer, nil, "%s (%s): %s lacks a_/b_/c_act_power", m.where, m.dev.model, k.em)
	}
	if hasMeterFailure(em.Errors) {
		return meter.Errorf(meter.NotPresent, nil, "%s (%s) reports %s errors %v: no reading", m.where, m.dev.model, k.em, em.Errors)
	}
	r.Phases = []float64{*em.A, *em.B, *em.C}
	if em.Total != nil {
		r.Power = *em.Total
	} else {
		r.Power = *em.A + *em.B + *em.C
	}
	var vsum float64
	var nv int
	for _, v := range [3]*float64{em.AV, em.BV, em.CV} {
		if v != nil && *v > 0 {
			vsum += *v
			nv++
		}
	}
	if nv > 0 {
		r.Voltage = reading.F(vsum / float64(nv))
	}
	if raw := st[k.emdata]; raw != nil {
		var d gen2EMData
		if err := m.unmarshalPart(k.emdata, raw, &d); err != nil {
			return err
		}
		r.EnergyIn, r.EnergyOut = d.TotalAct, d.TotalActRet
	}
	m.gen2DeviceTemp(st, r)
	return nil
}

func (m *Meter) gen2EM1(st map[string]json.RawMessage, r *reading.Reading) error {
	k := m.keys
	var em gen2EM1
	if err := m.unmarshalPart(k.em1, st[k.em1], &em); err != nil {
		return err
	}
	if em.ActPower == nil {
		return meter.Errorf(meter.BadAnswer, nil, "%s (%s): %s lacks act_power", m.where, m.dev.model, k.em1)
	}
	if hasMeterFailure(em.Errors) {
		return meter.Errorf(meter.NotPresent, nil, "%s (%s) reports %s errors %v: no reading", m.where, m.dev.model, k.em1, em.Errors)
	}
	r.Power = *em.ActPower
	r.Voltage = em.Voltage
	if raw := st[k.em1data]; raw != nil {
		var d gen2EM1Data
		if err := m.unmarshalPart(k.em1data, raw, &d); err != nil {
			return err
		}
		r.EnergyIn, r.EnergyOut = d.TotalAct, d.TotalActRet
	}
	m.gen2DeviceTemp(st, r)
	return nil
}

// gen2DeviceTemp takes the device temperature (temperature:0) of Pro meters.
func (m *Meter) gen2DeviceTemp(st map[string]json.RawMessage, r *reading.Reading) {
	raw := st["temperature:0"]
	if raw == nil {
		return
	}
	var t gen2Temp
	if json.Unmarshal(raw, &t) == nil && t.TC != nil {
		r.Temperature = reading.F(*t.TC)
	}
}

// hasMeterFailure reports the error a Pro EM sets when its metering chip
// does not answer.
func hasMeterFailure(errs []string) bool {
	for _, e := range errs {
		if e == "power_meter_failure" {
			return true
		}
	}
	return false
}

func (m *Meter) unmarshalPart(key string, raw json.RawMessage, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return meter.Errorf(meter.BadAnswer, err, "%s answered an unexpected %q in Shelly.GetStatus", m.where, key)
	}
	return nil
}

// componentList names the measuring components of a status for messages.
func componentList(st map[string]json.RawMessage) string {
	have := measuring(st)
	if len(have) == 0 {
		return "no switch, pm1, em or em1 component (it measures no power)"
	}
	return strings.Join(have, ", ")
}

// measuring returns the sorted switch:N, pm1:N, em:N and em1:N keys.
func measuring(st map[string]json.RawMessage) []string {
	var have []string
	for key := range st {
		name, _, ok := strings.Cut(key, ":")
		if ok && (name == "switch" || name == "pm1" || name == "em" || name == "em1") {
			have = append(have, key)
		}
	}
	sort.Strings(have)
	return have
}

// rpcGet sends GET path with digest auth: preemptively with the last nonce,
// taking a new challenge on 401. A stale nonce costs exactly one more
// request; a 401 on a nonce fresh from a challenge means a wrong password.
func (m *Meter) rpcGet(ctx context.Context, path string) (*http.Response, []byte, error) {
	const attempts = 3
	for try := 0; try < attempts; try++ {
		sent := false
		var setAuth func(*http.Request) error
		if m.pass != "" && m.dig.has() {
			setAuth = func(req *http.Request) error {
				h, err := m.dig.authorization(http.MethodGet, path)
				if err != nil {
					return err
				}
				req.Header.Set("Authorization", h)
				sent = true
				return nil
			}
		}
		resp, body, err := m.get(ctx, path, setAuth)
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode != http.StatusUnauthorized {
			if err := m.checkStatus(resp, body); err != nil {
				return nil, nil, err
			}
			m.dig.fresh = false
			return resp, body, nil
		}
		ch, perr := parseChallenge(resp.Header.Values("WWW-Authenticate"))
		if perr != nil {
			m.dig.reset()
			return nil, nil, meter.Errorf(meter.Auth, perr, "%s answered 401 without a usable digest challenge", m.where)
		}
		if m.pass == "" {
			return nil, nil, meter.Errorf(meter.Auth, nil, "%s (%s) requires a password: set password (the user is always admin)", m.where, m.dev.model)
		}
		wasFresh := m.dig.fresh
		if sent && wasFresh && !ch.stale {
			m.dig.reset()
			return nil, nil, meter.Errorf(meter.Auth, nil, "%s (%s) refused the password for user %q (digest auth): wrong password", m.where, m.dev.model, m.user)
		}
		if err := m.dig.accept(ch); err != nil {
			return nil, nil, meter.Errorf(meter.Auth, err, "%s (%s) asks for an authentication powermeter cannot do", m.where, m.dev.model)
		}
		if ch.stale {
			m.log.Debug("shelly digest nonce stale, re-challenged")
		}
	}
	m.dig.reset()
	return nil, nil, meter.Errorf(meter.Auth, nil, "%s (%s) kept rejecting digest nonces (%d tries): wrong password or a clock problem on the device", m.where, m.dev.model, attempts)
}
