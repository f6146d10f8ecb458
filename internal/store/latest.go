package store

import (
	"context"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// LatestAt is Latest as of now: a device whose newest reading lies after
// now (a clock glitch stored before max_future existed, e.g. 2106) gets
// its newest reading at or before now instead, looked up in the last day;
// a device with none there is left out. So one reading from the future
// cannot freeze a live page.
func LatestAt(ctx context.Context, st Store, source string, now time.Time) ([]reading.Reading, error) {
	rs, err := st.Latest(ctx, source)
	if err != nil {
		return rs, err
	}
	ahead := map[string]bool{}
	keep := rs[:0]
	for _, r := range rs {
		if r.Time.After(now) {
			ahead[r.Device] = true
			continue
		}
		keep = append(keep, r)
	}
	if len(ahead) == 0 {
		return keep, nil
	}
	end := now.Truncate(time.Second).Add(time.Second)
	found := map[string]reading.Reading{}
	for _, win := range []time.Duration{10 * time.Minute, 24 * time.Hour} {
		err := st.Range(ctx, source, end.Add(-win), end, func(r reading.Reading) error {
			if ahead[r.Device] && !r.Time.After(now) {
				found[r.Device] = clone(r) // the store may reuse what r points to
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		if len(found) == len(ahead) {
			break
		}
	}
	for _, r := range found {
		keep = append(keep, r)
	}
	return keep, nil
}

// clone copies r with everything it points to.
func clone(r reading.Reading) reading.Reading {
	cp := func(p *float64) *float64 {
		if p == nil {
			return nil
		}
		v := *p
		return &v
	}
	r.EnergyIn, r.EnergyOut, r.Temperature, r.Voltage = cp(r.EnergyIn), cp(r.EnergyOut), cp(r.Temperature), cp(r.Voltage)
	if r.Phases != nil {
		r.Phases = append([]float64(nil), r.Phases...)
	}
	if r.DeviceTime != nil {
		t := *r.DeviceTime
		r.DeviceTime = &t
	}
	return r
}
