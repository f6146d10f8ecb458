package meter

import (
	"encoding/json"
	"math"
	"regexp"
	"testing"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/reading"
)

var negZero = regexp.MustCompile(`[:\[,]-0[,\]}]`)

// An inverted 0 W (and a device's own "-0") must not come out as -0: read
// --json printed "power_w": -0.
func TestApplyNoNegativeZero(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  config.Meter
		in   float64
	}{
		{"inverted zero", config.Meter{Invert: true}, 0},
		{"device -0", config.Meter{}, math.Copysign(0, -1)},
		{"below threshold", config.Meter{PowerThreshold: 1}, -0.4},
	} {
		r := reading.Reading{Power: c.in, Phases: []float64{0, math.Copysign(0, -1), 5}}
		Apply(c.cfg, &r)
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if math.Signbit(r.Power) || negZero.Match(b) {
			t.Errorf("%s: %s", c.name, b)
		}
	}
}
