package fritzdect

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/powermeter/powermeter/internal/meter"
	"github.com/powermeter/powermeter/internal/reading"
)

// series is one <stats> of getbasicdevicestats: values newest first, Grid
// seconds apart, nil where the box wrote "-".
type series struct {
	Grid     time.Duration
	DataTime time.Time // of the newest value; zero when the box does not say
	Values   []*float64
}

type deviceStats struct {
	Power, Voltage, Temperature, Energy []series
}

type xmlStats struct {
	Count    string `xml:"count,attr"`
	Grid     string `xml:"grid,attr"`
	DataTime string `xml:"datatime,attr"`
	Text     string `xml:",chardata"`
}

func parseDeviceStats(b []byte) (*deviceStats, error) {
	var x struct {
		XMLName     xml.Name   `xml:"devicestats"`
		Power       []xmlStats `xml:"power>stats"`
		Voltage     []xmlStats `xml:"voltage>stats"`
		Temperature []xmlStats `xml:"temperature>stats"`
		Energy      []xmlStats `xml:"energy>stats"`
	}
	if err := decodeXML(b, &x); err != nil {
		return nil, err
	}
	var ds deviceStats
	for _, g := range []struct {
		in  []xmlStats
		div float64
		out *[]series
		nm  string
	}{
		{x.Power, 100, &ds.Power, "power"},
		{x.Voltage, 1000, &ds.Voltage, "voltage"},
		{x.Temperature, 10, &ds.Temperature, "temperature"},
		{x.Energy, 1, &ds.Energy, "energy"},
	} {
		for _, s := range g.in {
			ser, err := parseSeries(s, g.div)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", g.nm, err)
			}
			*g.out = append(*g.out, ser)
		}
	}
	return &ds, nil
}

func parseSeries(x xmlStats, div float64) (series, error) {
	var s series
	grid, err := strconv.Atoi(strings.TrimSpace(x.Grid))
	if err != nil || grid <= 0 {
		return s, fmt.Errorf("grid %q is not a positive number", x.Grid)
	}
	s.Grid = time.Duration(grid) * time.Second
	if dt := strings.TrimSpace(x.DataTime); dt != "" {
		n, err := strconv.ParseInt(dt, 10, 64)
		if err != nil || n <= 0 {
			return s, fmt.Errorf("datatime %q is not a Unix time", dt)
		}
		s.DataTime = time.Unix(n, 0).UTC()
	}
	text := strings.TrimSpace(x.Text)
	if text == "" {
		return s, nil
	}
	fields := strings.Split(text, ",")
	s.Values = make([]*float64, len(fields))
	for i, f := range fields {
		f = strings.TrimSpace(f)
		if f == "-" {
			continue
		}
		v, err := scaled(f, div)
		if err != nil {
			return s, fmt.Errorf("value %d: %w", i, err)
		}
		s.Values[i] = v
	}
	if c, err := strconv.Atoi(strings.TrimSpace(x.Count)); err == nil && c != len(fields) {
		return s, fmt.Errorf("count=%d but %d values", c, len(fields))
	}
	return s, nil
}

// finest is the series with the smallest grid (the 10-s power), or nil.
func finest(ss []series) *series {
	var best *series
	for i := range ss {
		if len(ss[i].Values) > 0 && (best == nil || ss[i].Grid < best.Grid) {
			best = &ss[i]
		}
	}
	return best
}

// History returns the 10-s power values the box kept (the last hour) that
// lie after since, oldest first, marked Backfilled. Devices that are not
// present now are left out: the box fills their series with zeros.
func (m *Meter) History(ctx context.Context, since time.Time) ([]reading.Reading, error) {
	if m.closed.Load() {
		return nil, errClosed
	}
	dl, _, err := m.box.deviceList(ctx)
	if errors.Is(err, errLegacy) {
		return nil, meter.Errorf(meter.Config, nil, "FRITZ!Box at %s runs an old FRITZ!OS without getbasicdevicestats: no history to fill gaps", m.box.host())
	}
	if err != nil {
		return nil, err
	}
	devs, err := m.selectDevices(dl)
	if err != nil {
		return nil, err
	}
	var out []reading.Reading
	for i := range devs {
		d := &devs[i]
		if !d.Present {
			continue
		}
		body, err := m.box.single(ctx, "getbasicdevicestats", d.AIN)
		if c := statusOf(err); c == http.StatusBadRequest || c == http.StatusNotFound {
			return nil, meter.Errorf(meter.Config, err, "FRITZ!Box at %s offers no history for %s (getbasicdevicestats needs FRITZ!OS 7)", m.box.host(), d.label())
		}
		if err != nil {
			return nil, err
		}
		asked := m.box.now()
		ds, err := parseDeviceStats([]byte(body))
		if err != nil {
			return nil, m.box.badAnswer([]byte(body), err, "getbasicdevicestats")
		}
		out = append(out, m.historyOf(d.AIN, ds, asked, since)...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// historyOf turns one device's stats into readings after since. Without
// datatime the newest value is taken to be from the time of the request.
func (m *Meter) historyOf(ain string, ds *deviceStats, asked, since time.Time) []reading.Reading {
	p := finest(ds.Power)
	if p == nil {
		return nil
	}
	newest := p.DataTime
	if newest.IsZero() {
		newest = asked.UTC().Truncate(time.Second)
	}
	var volt *series
	if v := finest(ds.Voltage); v != nil && v.Grid == p.Grid && v.DataTime.Equal(p.DataTime) {
		volt = v
	}
	id := m.deviceID(ain)
	out := make([]reading.Reading, 0, len(p.Values))
	for i := len(p.Values) - 1; i >= 0; i-- {
		t := newest.Add(-time.Duration(i) * p.Grid)
		if !t.After(since) || p.Values[i] == nil {
			continue
		}
		r := reading.Reading{Device: id, Time: t, Power: *p.Values[i], Backfilled: true}
		if volt != nil && i < len(volt.Values) {
			r.Voltage = volt.Values[i]
		}
		m.apply(ain, &r)
		out = append(out, r)
	}
	return out
}
