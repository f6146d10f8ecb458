package server

import (
	"encoding/json"
	"testing"

	"github.com/powermeter/powermeter/internal/reading"
)

// FuzzDecodeReading: any item either gets an error naming what is wrong or
// decodes to a valid reading in UTC; nothing panics.
func FuzzDecodeReading(f *testing.F) {
	for _, s := range []string{
		`{"device":"plug","time":"2026-11-26T12:00:00Z","power_w":12.5}`,
		`{"device":"3em","time":"2026-11-26T13:00:00+01:00","power_w":-300,"phases_w":[-100,-100,-100],"device_time":"2026-11-26T12:00:01Z"}`,
		`{"device":"plug","time":"2026-11-26T12:00:00","power_w":1}`,
		`{"device":"","time":"2026-11-26T12:00:00Z","power_w":1,"colour":"red"}`,
		`{"device":"x","time":"1970-01-01T00:00:00Z","power_w":"high","energy_in_wh":-1}`,
		`[]`, `null`, `{`, `{"phases_w":[1e400]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var rd reading.Reading
		ie := decodeReading(json.RawMessage(b), &rd)
		if ie != nil {
			if ie.Error == "" {
				t.Fatalf("%q: an error without a message", b)
			}
			return
		}
		if err := rd.Validate(); err != nil {
			t.Fatalf("%q: accepted an invalid reading: %v", b, err)
		}
		if rd.Time.Location().String() != "UTC" {
			t.Fatalf("%q: time not in UTC: %v", b, rd.Time)
		}
	})
}
