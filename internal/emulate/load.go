package emulate

import (
	"math"
	"sync"
	"time"
)

// The load models give emulated devices values that move like real loads.
// Each is a pure function of the time, so a test knows what to expect.

// Solar is a balcony plant's AC output in W at t (peak watts at local noon,
// zero at night, a little cloud flicker), for the day's length in zone.
func Solar(t time.Time, zone *time.Location, peak float64) float64 {
	lt := t.In(zone)
	h := float64(lt.Hour()) + float64(lt.Minute())/60 + float64(lt.Second())/3600
	// day length by season, solar noon about 13:00 local
	doy := float64(lt.YearDay())
	half := 6.15 + 2.25*math.Cos((doy-172)/365*2*math.Pi) // half day: 3.9 h in December, 8.4 h in June (Berlin)
	x := (h - 13) / half                                  // solar noon about 13:00 local
	if x <= -1 || x >= 1 {
		return 0
	}
	p := peak * math.Cos(x*math.Pi/2) * math.Cos(x*math.Pi/2)
	flicker := 0.85 + 0.15*math.Sin(float64(t.Unix())/37)
	return math.Round(p*flicker*100) / 100
}

// Fridge cycles its compressor: about 85 W for 12 min, then 3 W for 28 min,
// with a start spike of 300 W for the first 10 s of a cycle.
func Fridge(t time.Time) float64 {
	s := t.Unix() % 2400
	switch {
	case s < 10:
		return 300
	case s < 720:
		return 85 + 3*math.Sin(float64(s)/50)
	default:
		return 3.1
	}
}

// House3 is a 3-phase house at the grid meter: L1 and L2 consume, L3 has a
// balcony plant and feeds in when the sun shines.
func House3(t time.Time, zone *time.Location) [3]float64 {
	base := 180 + 60*math.Sin(float64(t.Unix())/600)
	l1 := math.Round((base+Fridge(t))*100) / 100
	l2 := math.Round((120+40*math.Cos(float64(t.Unix())/900))*100) / 100
	l3 := math.Round((60-Solar(t, zone, 600))*100) / 100
	return [3]float64{l1, l2, l3}
}

// Counter is an energy counter in Wh that an emulator advances with the
// power it reports: it only grows (until Reset), as a device's does.
type Counter struct {
	mu   sync.Mutex
	wh   float64
	last time.Time
}

// NewCounter starts a counter at wh.
func NewCounter(wh float64) *Counter { return &Counter{wh: wh} }

// At advances the counter to t with power p (W) since the last call
// (negative power is not counted) and returns the count in Wh.
func (c *Counter) At(t time.Time, p float64) float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.last.IsZero() && t.After(c.last) && p > 0 {
		c.wh += p * t.Sub(c.last).Hours()
	}
	if t.After(c.last) {
		c.last = t
	}
	return math.Round(c.wh*1000) / 1000
}

// Reset sets the counter back to 0 (a device reboot or a restart).
func (c *Counter) Reset() {
	c.mu.Lock()
	c.wh = 0
	c.mu.Unlock()
}
