// Package fritzdect reads FRITZ!DECT 200/210 sockets (FRITZ!Smart Energy
// 200/210) through a FRITZ!Box's AHA-HTTP interface.
//
// All meters that name the same box URL and user share one session and one
// getdevicelistinfos answer per round; boxes that do not know that command
// (old FRITZ!OS) are read with the single commands. The package also holds
// an emulator of a FRITZ!Box (kind "fritzbox") for tests and demos.
package fritzdect

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

func init() {
	meter.Register("fritzdect", func(cfg config.Meter, deps meter.Deps) (meter.Meter, error) {
		return New(cfg, deps)
	})
}

// Meter is one [[meters]] entry of type fritzdect: one AIN, a list, or
// every energy meter on the box.
type Meter struct {
	cfg  config.Meter
	box  *box
	ains []string // without spaces; nil = every energy meter on the box
	log  *slog.Logger

	closeOnce sync.Once
	closeErr  error
	closed    atomic.Bool

	mu      sync.Mutex
	skipped map[string]string // AIN → last reason it was skipped (for logging changes only)
	// names maps an AIN (without spaces) to the device's name in readings
	// of a several-device meter: a slug of the name on the box
	// (meter.DeviceSlugs); boxNames to the name on the box itself.
	names    map[string]string
	boxNames map[string]string
	// invert holds the invert_ains entries as AINs, lower-case names and
	// slugs; warnedInvert once an entry matched no device.
	invert       map[string]bool
	invertList   []string
	warnedInvert bool
}

var (
	_ meter.Meter      = (*Meter)(nil)
	_ meter.Historian  = (*Meter)(nil)
	_ meter.Discoverer = (*Meter)(nil)
)

var ainRE = regexp.MustCompile(`^[0-9A-Za-z]{1,24}(-[0-9]{1,3})?$`)

// New checks cfg and joins (or opens) the shared session of its box. It
// does not talk to the box: the first Read logs in.
func New(cfg config.Meter, deps meter.Deps) (*Meter, error) {
	deps = deps.OrDefaults()
	if cfg.Username == "" {
		return nil, meter.ConfigError(cfg, "username", "missing: %s", userHint)
	}
	base, err := baseURL(cfg.URL)
	if err != nil {
		return nil, meter.ConfigError(cfg, "url", "%v", err)
	}
	var ains []string
	field := "ains"
	switch {
	case cfg.AIN != "" && len(cfg.AINs) > 0:
		return nil, meter.ConfigError(cfg, "ain", "set either ain or ains, not both")
	case cfg.AIN != "":
		ains, field = []string{cfg.AIN}, "ain"
	case len(cfg.AINs) > 0:
		ains = cfg.AINs
	}
	seen := map[string]bool{}
	norm := make([]string, 0, len(ains))
	for _, a := range ains {
		n := normAIN(a)
		if !ainRE.MatchString(n) {
			return nil, meter.ConfigError(cfg, field, "%q is not an AIN (like \"11657 0020838\"; see the device in Home Network > Smart Home)", a)
		}
		if seen[n] {
			return nil, meter.ConfigError(cfg, field, "AIN %q is listed twice", a)
		}
		seen[n] = true
		norm = append(norm, n)
	}
	if len(ains) == 0 {
		norm = nil
	}
	if cfg.Invert && len(norm) == 0 {
		return nil, meter.ConfigError(cfg, "invert", "would flip every device on the FRITZ!Box (a fridge would show feed-in): name the solar ones in invert_ains, or pick one with ain")
	}
	invert := map[string]bool{}
	for _, e := range cfg.InvertAINs {
		if strings.TrimSpace(e) == "" {
			return nil, meter.ConfigError(cfg, "invert_ains", "an empty entry (want AINs or the devices' names on the box)")
		}
		invert[normAIN(e)] = true
		invert[strings.ToLower(strings.TrimSpace(e))] = true
		if s := meter.Slug(e); s != "" {
			invert[s] = true
		}
	}
	log := deps.Log.With("meter", cfg.Name)
	b, err := acquire(cfg, base, log, deps.Now)
	if err != nil {
		return nil, err
	}
	return &Meter{cfg: cfg, box: b, ains: norm, log: log, skipped: map[string]string{},
		names: map[string]string{}, boxNames: map[string]string{}, invert: invert, invertList: cfg.InvertAINs}, nil
}

// baseURL normalises the configured URL (default http://fritz.box).
func baseURL(raw string) (string, error) {
	if raw == "" {
		raw = "http://fritz.box"
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("not a URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", fmt.Errorf("%q: want http:// or https://", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("%q has no host", raw)
	}
	if u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("%q: give only scheme, host and port (credentials go into username and password)", raw)
	}
	return u.Scheme + "://" + u.Host + strings.TrimSuffix(u.Path, "/"), nil
}

// deviceID names a device in a Reading: the meter's name when it covers
// one AIN; otherwise name/slug of the device's name on the box (names =
// "box", the default) or name/AIN (names = "ain", or a device whose name
// is not known).
func (m *Meter) deviceID(ain string) string {
	if len(m.ains) == 1 {
		return m.cfg.Name
	}
	n := normAIN(ain)
	if m.cfg.Names != "ain" {
		m.mu.Lock()
		s := m.names[n]
		m.mu.Unlock()
		if s != "" {
			return m.cfg.Name + "/" + s
		}
	}
	return m.cfg.Name + "/" + n
}

// learnNames records the names the box gives its energy meters (all of
// them, so that a device's slug does not depend on which are selected or
// present).
func (m *Meter) learnNames(devs []meter.NamedDevice) {
	slugs := meter.DeviceSlugs(devs)
	m.mu.Lock()
	defer m.mu.Unlock()
	changed := len(slugs) != len(m.names)
	for id, s := range slugs {
		changed = changed || m.names[id] != s
	}
	if !changed {
		return
	}
	m.names = slugs
	m.boxNames = make(map[string]string, len(devs))
	for _, d := range devs {
		m.boxNames[d.ID] = d.Name
	}
	if len(m.invertList) > 0 && !m.warnedInvert {
		for _, e := range m.invertList {
			if !m.matchesLocked(e) {
				m.warnedInvert = true
				m.log.Warn("fritzdect: an invert_ains entry matches no energy meter on the box", "entry", e, "devices", m.boxNames)
			}
		}
	}
}

// matchesLocked reports whether the invert_ains entry e names a known device.
func (m *Meter) matchesLocked(e string) bool {
	for id, name := range m.boxNames {
		if normAIN(e) == id || strings.EqualFold(strings.TrimSpace(e), name) || meter.Slug(e) == m.names[id] {
			return true
		}
	}
	return false
}

// inverted reports whether the device's sign is flipped: invert = true
// (every device of the meter), or invert_ains naming it by AIN, by its
// name on the box or by its slug.
func (m *Meter) inverted(ain string) bool {
	if m.cfg.Invert {
		return true
	}
	if len(m.invert) == 0 {
		return false
	}
	n := normAIN(ain)
	if m.invert[n] {
		return true
	}
	m.mu.Lock()
	name, slug := m.boxNames[n], m.names[n]
	m.mu.Unlock()
	return (name != "" && m.invert[strings.ToLower(name)]) || (slug != "" && m.invert[slug])
}

// apply applies threshold and (per device) invert.
func (m *Meter) apply(ain string, r *reading.Reading) {
	cfg := m.cfg
	cfg.Invert = m.inverted(ain)
	meter.Apply(cfg, r)
}

// Read returns one Reading per covered device. A meter with one AIN fails
// when that device cannot be read; a meter with several skips the devices
// that are absent or have no values and fails only when none is left.
func (m *Meter) Read(ctx context.Context) ([]reading.Reading, error) {
	if m.closed.Load() {
		return nil, errClosed
	}
	dl, at, err := m.box.deviceList(ctx)
	if errors.Is(err, errLegacy) {
		return m.readSingle(ctx)
	}
	if err != nil {
		return nil, err
	}
	devs, err := m.selectDevices(dl)
	if err != nil {
		return nil, err
	}
	out := make([]reading.Reading, 0, len(devs))
	var errs []error
	for i := range devs {
		r, err := m.toReading(&devs[i], at)
		if err != nil {
			errs = append(errs, err)
			m.noteSkip(devs[i].AIN, err)
			continue
		}
		m.noteSkip(devs[i].AIN, nil)
		out = append(out, r)
	}
	return m.finish(out, errs)
}

// finish applies the one-or-several rule to the results of a round.
func (m *Meter) finish(out []reading.Reading, errs []error) ([]reading.Reading, error) {
	if len(out) > 0 {
		return out, nil
	}
	switch len(errs) {
	case 0:
		return nil, meter.Errorf(meter.Config, nil, "FRITZ!Box at %s lists no energy meter (FRITZ!DECT 200/210)", m.box.host())
	case 1:
		return nil, errs[0]
	}
	kind := meter.KindOf(errs[0])
	for _, e := range errs[1:] {
		if meter.KindOf(e) != kind {
			kind = meter.BadAnswer
		}
	}
	msgs := make([]string, len(errs))
	for i, e := range errs {
		msgs[i] = e.Error()
	}
	return nil, meter.Errorf(kind, nil, "none of the %d devices of meter %s could be read: %s", len(errs), m.cfg.Name, strings.Join(msgs, "; "))
}

// noteSkip logs when a device of a several-device meter starts or stops
// being skipped (not every round).
func (m *Meter) noteSkip(ain string, err error) {
	if len(m.ains) == 1 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	prev, was := m.skipped[ain]
	switch {
	case err != nil && (!was || prev != err.Error()):
		m.skipped[ain] = err.Error()
		m.log.Warn("fritzdect: skipping device", "ain", ain, "err", err)
	case err == nil && was:
		delete(m.skipped, ain)
		m.log.Info("fritzdect: device back", "ain", ain)
	}
}

// selectDevices picks the meter's devices from the list.
func (m *Meter) selectDevices(dl *deviceList) ([]device, error) {
	byAIN := make(map[string]device, len(dl.Devices))
	bad := map[string]error{}
	var order []string
	var named []meter.NamedDevice
	for _, pd := range dl.all() {
		d, err := pd.d, pd.err
		n := normAIN(d.AIN)
		if err != nil {
			if n != "" {
				bad[n] = err
				order = append(order, n)
			}
			continue
		}
		byAIN[n] = d
		order = append(order, n)
		if d.isMeter() {
			named = append(named, meter.NamedDevice{ID: n, Name: d.Name})
		}
	}
	if len(m.ains) != 1 {
		m.learnNames(named)
	}
	if m.ains == nil {
		var out []device
		for _, n := range order {
			if d, ok := byAIN[n]; ok && d.isMeter() {
				out = append(out, d)
			}
		}
		if len(out) == 0 {
			return nil, meter.Errorf(meter.Config, nil, "FRITZ!Box at %s lists no energy meter (FRITZ!DECT 200/210); %d other devices", m.box.host(), len(dl.Devices))
		}
		return out, nil
	}
	out := make([]device, 0, len(m.ains))
	for _, a := range m.ains {
		if err, ok := bad[a]; ok {
			return nil, meter.Errorf(meter.BadAnswer, err, "FRITZ!Box at %s sent an unreadable entry for AIN %s", m.box.host(), a)
		}
		d, ok := byAIN[a]
		if !ok {
			return nil, meter.Errorf(meter.Config, nil, "FRITZ!Box at %s has no device with AIN %s (energy meters there: %s)", m.box.host(), a, meterList(byAIN))
		}
		if !d.isMeter() {
			return nil, meter.Errorf(meter.Config, nil, "device %s on FRITZ!Box at %s is a %s without energy meter (functionbitmask %d); energy meters there: %s", d.label(), m.box.host(), orUnknown(d.Product), d.Bitmask, meterList(byAIN))
		}
		out = append(out, d)
	}
	return out, nil
}

func orUnknown(s string) string {
	if s == "" {
		return "device"
	}
	return s
}

func meterList(byAIN map[string]device) string {
	var s []string
	for _, d := range byAIN {
		if d.isMeter() {
			s = append(s, d.AIN)
		}
	}
	if len(s) == 0 {
		return "none"
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

// toReading turns a device into a complete Reading or an error.
func (m *Meter) toReading(d *device, at time.Time) (reading.Reading, error) {
	if !d.Present {
		return reading.Reading{}, meter.Errorf(meter.NotPresent, nil, "FRITZ!DECT %s is not present: unplugged or out of DECT range of the FRITZ!Box", d.label())
	}
	if d.Power == nil {
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "FRITZ!Box gave no power value for %s (empty or inval; the box may not have it yet)", d.label())
	}
	r := reading.Reading{
		Device:      m.deviceID(d.AIN),
		Time:        at.UTC(),
		Power:       *d.Power,
		EnergyIn:    d.Energy,
		Voltage:     d.Voltage,
		Temperature: d.Temp,
	}
	m.apply(d.AIN, &r)
	return r, nil
}

// readSingle reads with the single commands of old FRITZ!OS.
func (m *Meter) readSingle(ctx context.Context) ([]reading.Reading, error) {
	ains := m.ains
	if ains == nil {
		list, err := m.box.single(ctx, "getswitchlist", "")
		if err != nil {
			return nil, err
		}
		for _, a := range strings.Split(list, ",") {
			if a = strings.TrimSpace(a); a != "" {
				ains = append(ains, a)
			}
		}
	}
	if len(m.ains) != 1 && m.cfg.Names != "ain" {
		if err := m.learnSingleNames(ctx, ains); err != nil {
			return nil, err
		}
	}
	out := make([]reading.Reading, 0, len(ains))
	var errs []error
	for _, a := range ains {
		r, err := m.readOne(ctx, a)
		if errors.Is(err, errNoMeter) && m.ains == nil {
			continue // a switch without energy meter
		}
		if err != nil {
			if k := meter.KindOf(err); k == meter.Unreachable || k == meter.Auth || k == meter.Blocked {
				return nil, err // the box, not the device: stop the round
			}
			errs = append(errs, err)
			m.noteSkip(a, err)
			continue
		}
		m.noteSkip(a, nil)
		out = append(out, r)
	}
	return m.finish(out, errs)
}

// learnSingleNames asks an old box for the names of AINs it has not named
// yet (getswitchname, once per device and process).
func (m *Meter) learnSingleNames(ctx context.Context, ains []string) error {
	m.mu.Lock()
	known := make([]meter.NamedDevice, 0, len(m.boxNames)+len(ains))
	for id, n := range m.boxNames {
		known = append(known, meter.NamedDevice{ID: id, Name: n})
	}
	var missing []string
	for _, a := range ains {
		if _, ok := m.boxNames[normAIN(a)]; !ok {
			missing = append(missing, a)
		}
	}
	m.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	for _, a := range missing {
		name, err := m.box.single(ctx, "getswitchname", a)
		if c := statusOf(err); c == http.StatusBadRequest || c == http.StatusInternalServerError {
			name, err = "", nil // unknown or no name: named by its AIN
		}
		if err != nil {
			return err
		}
		known = append(known, meter.NamedDevice{ID: normAIN(a), Name: strings.TrimSpace(name)})
	}
	m.learnNames(known)
	return nil
}

var errClosed = meter.Errorf(meter.Config, nil, "fritzdect: meter used after Close")

var errNoMeter = errors.New("device has no energy meter")

func (m *Meter) readOne(ctx context.Context, ain string) (reading.Reading, error) {
	cmd := func(c string) (string, error) {
		s, err := m.box.single(ctx, c, ain)
		switch statusOf(err) {
		case http.StatusBadRequest:
			return "", meter.Errorf(meter.Config, err, "FRITZ!Box at %s has no device with AIN %s", m.box.host(), ain)
		case http.StatusInternalServerError:
			return "", errNoMeter
		}
		return s, err
	}
	present, err := cmd("getswitchpresent")
	if err != nil {
		return reading.Reading{}, m.noMeter(err, ain)
	}
	switch present {
	case "1":
	case "0", "inval":
		return reading.Reading{}, meter.Errorf(meter.NotPresent, nil, "FRITZ!DECT %s is not present: unplugged or out of DECT range of the FRITZ!Box", ain)
	default:
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, nil, "FRITZ!Box at %s answered %q to getswitchpresent for %s", m.box.host(), clip(present), ain)
	}
	at := m.box.now()
	ps, err := cmd("getswitchpower")
	if err != nil {
		return reading.Reading{}, m.noMeter(err, ain)
	}
	if ps == "inval" {
		return reading.Reading{}, meter.Errorf(meter.NotPresent, nil, "FRITZ!DECT %s answers inval for power: not present or not yet measured", ain)
	}
	power, err := scaled(ps, 1000)
	if err != nil || power == nil {
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, err, "FRITZ!Box at %s answered %q to getswitchpower for %s", m.box.host(), clip(ps), ain)
	}
	r := reading.Reading{Device: m.deviceID(ain), Time: at.UTC(), Power: *power}
	if es, err := cmd("getswitchenergy"); err != nil && !errors.Is(err, errNoMeter) {
		return reading.Reading{}, err
	} else if r.EnergyIn, err = scaled(es, 1); err != nil {
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, err, "FRITZ!Box at %s answered %q to getswitchenergy for %s", m.box.host(), clip(es), ain)
	}
	if ts, err := cmd("gettemperature"); err != nil && !errors.Is(err, errNoMeter) {
		return reading.Reading{}, err
	} else if r.Temperature, err = scaled(ts, 10); err != nil {
		return reading.Reading{}, meter.Errorf(meter.BadAnswer, err, "FRITZ!Box at %s answered %q to gettemperature for %s", m.box.host(), clip(ts), ain)
	}
	m.apply(ain, &r)
	return r, nil
}

func (m *Meter) noMeter(err error, ain string) error {
	if errors.Is(err, errNoMeter) && m.ains != nil {
		return meter.Errorf(meter.Config, nil, "device %s on FRITZ!Box at %s has no energy meter", ain, m.box.host())
	}
	return err
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Discover lists the energy meters on the box (functionbitmask bit 7),
// whatever AINs this meter is configured for.
func (m *Meter) Discover(ctx context.Context) ([]meter.Device, error) {
	dl, _, err := m.box.deviceList(ctx)
	if errors.Is(err, errLegacy) {
		return m.discoverSingle(ctx)
	}
	if err != nil {
		return nil, err
	}
	var out []meter.Device
	for _, pd := range dl.all() {
		d, err := pd.d, pd.err
		if err != nil || !d.isMeter() {
			continue
		}
		dev := meter.Device{ID: d.AIN, Name: d.Name, Model: d.Product}
		if !d.Present {
			dev.Note = "not present"
		}
		out = append(out, dev)
	}
	m.noteReadingNames(out)
	return out, nil
}

// noteReadingNames adds to each device the name its readings carry when
// this meter covers several devices ("reads as home/kuehlschrank"): the
// name to give roles to.
func (m *Meter) noteReadingNames(devs []meter.Device) {
	if len(m.ains) == 1 || m.cfg.Names == "ain" {
		return
	}
	named := make([]meter.NamedDevice, len(devs))
	for i, d := range devs {
		named[i] = meter.NamedDevice{ID: normAIN(d.ID), Name: d.Name}
	}
	slugs := meter.DeviceSlugs(named)
	for i := range devs {
		note := "reads as " + m.cfg.Name + "/" + slugs[normAIN(devs[i].ID)]
		if devs[i].Note != "" {
			note = devs[i].Note + "; " + note
		}
		devs[i].Note = note
	}
}

func (m *Meter) discoverSingle(ctx context.Context) ([]meter.Device, error) {
	list, err := m.box.single(ctx, "getswitchlist", "")
	if err != nil {
		return nil, err
	}
	var out []meter.Device
	for _, a := range strings.Split(list, ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		if _, err := m.box.single(ctx, "getswitchpower", a); statusOf(err) == http.StatusInternalServerError {
			continue // a switch without energy meter
		}
		name, err := m.box.single(ctx, "getswitchname", a)
		if err != nil {
			return nil, err
		}
		out = append(out, meter.Device{ID: a, Name: name, Note: "old FRITZ!OS: found with getswitchlist"})
	}
	m.noteReadingNames(out)
	return out, nil
}

// Close leaves the shared session; the last meter of a box logs out.
func (m *Meter) Close(ctx context.Context) error {
	m.closeOnce.Do(func() {
		m.closed.Store(true)
		m.closeErr = m.box.release(ctx)
	})
	return m.closeErr
}
