package tasmota

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/powermeter/powermeter/internal/config"
)

// FuzzParse: whatever a device answers, parsing returns a valid reading or
// an error, never a panic.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.json")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, 0)
		f.Add(b, 1)
	}
	f.Fuzz(func(t *testing.T, body []byte, ch int) {
		if ch < 0 || ch > 16 {
			return
		}
		m := newMeter(t, config.Meter{URL: "http://127.0.0.1:9", Channel: ch})
		var st status8
		if m.c.Decode("/cm", body, &st) != nil {
			return
		}
		r, err := m.parse(&st)
		if err == nil {
			if verr := r.Validate(); verr != nil {
				t.Fatalf("parse returned an invalid reading: %v", verr)
			}
		}
	})
}
