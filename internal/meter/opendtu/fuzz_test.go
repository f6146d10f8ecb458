package opendtu

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/powermeter/powermeter/internal/config"
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
		f.Add(b, true)
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, body []byte, one bool) {
		cfg := config.Meter{URL: "http://127.0.0.1:9"}
		if one {
			cfg.Serial = "114184020874"
		}
		m := newMeter(t, cfg)
		var ld livedata
		if m.c.Decode("/api/livedata/status", body, &ld) != nil {
			return
		}
		var err error
		if one {
			_, err = m.one(&ld)
		} else {
			_, err = m.total(&ld)
		}
		_ = err // an error is a fine answer to garbage; a panic is not
	})
}
