package shelly

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/emulate"
)

// BenchmarkRead is one Read against an emulator on 127.0.0.1, the
// emulator's own work included (it runs in the same process, so allocs/op
// count both sides). Gen2 and the Pro 3EM use digest auth, preemptively.
func BenchmarkRead(b *testing.B) {
	cfg := DefaultEmulatorConfig()
	cfg.RateLimit = 0
	for _, c := range []struct {
		name string
		make func(emulate.Options, EmulatorConfig) (emulate.Emulator, error)
	}{
		{"gen1", func(o emulate.Options, c EmulatorConfig) (emulate.Emulator, error) { return NewGen1Emulator(o, c) }},
		{"gen2", func(o emulate.Options, c EmulatorConfig) (emulate.Emulator, error) { return NewGen2Emulator(o, c) }},
		{"pro3em", func(o emulate.Options, c EmulatorConfig) (emulate.Emulator, error) { return NewPro3EMEmulator(o, c) }},
	} {
		b.Run(c.name, func(b *testing.B) {
			e, err := c.make(emulate.Options{Password: "bench", Now: time.Now, Zone: time.UTC}, cfg)
			if err != nil {
				b.Fatal(err)
			}
			srv, _ := startEmulator(b, e)
			m := newTestMeter(b, srv.URL, time.UTC, func(c *config.Meter) { c.Password = "bench" })
			ctx := context.Background()
			if _, err := m.Read(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadClient is the client's side alone: a Read against a server
// that answers a fixed testdata body (no digest).
func BenchmarkReadClient(b *testing.B) {
	for _, c := range []struct {
		name  string
		files map[string][]byte
	}{
		{"gen1", gen1Files(b, "gen1_plugs_shelly.json", "gen1_plugs_status.json")},
		{"gen2", gen2Files(b, "gen2_plus1pm_shelly.json", "gen2_plus1pm_status.json")},
		{"pro3em", gen2Files(b, "gen2_pro3em_shelly.json", "gen2_pro3em_status.json")},
	} {
		b.Run(c.name, func(b *testing.B) {
			srv := serve(b, &fakeDevice{files: c.files})
			m := newTestMeter(b, srv.URL, time.UTC, nil)
			ctx := context.Background()
			if _, err := m.Read(ctx); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Read(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode is the parsing of one status answer, no HTTP.
func BenchmarkDecode(b *testing.B) {
	m := newTestMeter(b, "http://127.0.0.1", time.UTC, nil)
	resp := &http.Response{Header: http.Header{"Content-Type": {"application/json"}}}
	b.Run("gen1", func(b *testing.B) {
		body := testdata(b, "gen1_plugs_status.json")
		m.dev = &device{gen: 1, model: "SHPLG-S"}
		b.ReportAllocs()
		for b.Loop() {
			var st gen1Status
			if err := m.decode("/status", resp, body, &st); err != nil {
				b.Fatal(err)
			}
			if _, err := m.gen1Reading(&st); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gen2", func(b *testing.B) {
		body := testdata(b, "gen2_plus1pm_status.json")
		m.dev = &device{gen: 2, model: "SNSW-001P16EU"}
		b.ReportAllocs()
		for b.Loop() {
			var st map[string]json.RawMessage
			if err := m.decode(gen2StatusPath, resp, body, &st); err != nil {
				b.Fatal(err)
			}
			if _, err := m.gen2Reading(st); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDigestAuthorization is the client's Authorization header for
// one request on a known nonce (HA1 is kept per challenge).
func BenchmarkDigestAuthorization(b *testing.B) {
	d := digestClient{user: "admin", pass: "pw"}
	if err := d.accept(challenge{realm: "shellyplusplugs-aabbccddeeff", nonce: "Zm9vYmFyYmF6cXV4MTIzNA==", algorithm: "SHA-256", qopAuth: true}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.authorization("GET", gen2StatusPath); err != nil {
			b.Fatal(err)
		}
	}
}
