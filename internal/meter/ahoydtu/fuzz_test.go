package ahoydtu

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/meter/metertest"
)

// FuzzParse: whatever the DTU answers, parsing returns a valid reading or an
// error, never a panic.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m := newMeter(t, config.Meter{URL: "http://127.0.0.1:9"}, metertest.NewClock(time.Unix(tsProducing, 0)))
		var inv inverter
		if m.c.Decode("/api/inverter/id/0", body, &inv) != nil {
			return
		}
		if r, err := m.parse(&inv); err == nil {
			if verr := r.Validate(); verr != nil {
				t.Fatalf("parse returned an invalid reading: %v", verr)
			}
		}
	})
}
