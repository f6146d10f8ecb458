package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/config"
	"github.com/powermeter/powermeter/internal/logger"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/server"
	"github.com/powermeter/powermeter/internal/store"
)

// newBenchServer is our server on a fresh SQLite file, over HTTP.
func newBenchServer(b testing.TB, dir string) (string, store.Store) {
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(dir, "server.db"))
	if err != nil {
		b.Fatal(err)
	}
	scfg, err := config.Parse("s.toml", []byte("[server]\n[[server.sources]]\nname = \"home\"\nkey = \"bench-key-1\"\n"), func(string) (string, bool) { return "", false })
	if err != nil {
		b.Fatal(err)
	}
	srv, err := server.New(context.Background(), scfg, st, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	b.Cleanup(func() { hs.Close(); st.Close() })
	return hs.URL, st
}

// BenchmarkDrainDay measures how long a day of one meter's backlog (8640
// readings at 10 s) takes to reach our server (SQLite, over HTTP) once it
// is reachable again, natively and with the legacy protocol.
func BenchmarkDrainDay(b *testing.B) {
	for _, proto := range []string{"native", "legacy"} {
		b.Run(proto, func(b *testing.B) {
			var total time.Duration
			for n := 0; n < b.N; n++ {
				b.StopTimer()
				dir := b.TempDir()
				url, st := newBenchServer(b, dir)
				cfg, err := config.Parse("l.toml", []byte(fmt.Sprintf("data_dir = %q\n[[meters]]\nname = \"m\"\ntype = \"shelly\"\nurl = \"http://127.0.0.1:9\"\n[[uplinks]]\nname = \"ours\"\nurl = %q\nprotocol = %q\nkey = \"bench-key-1\"\nmeters = [\"m\"]\n", dir, url+"/", proto)), func(string) (string, bool) { return "", false })
				if err != nil {
					b.Fatal(err)
				}
				ob, err := outbox.Open(filepath.Join(dir, "outbox"), outbox.Options{})
				if err != nil {
					b.Fatal(err)
				}
				day := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
				batch := make([]outbox.Item, 0, 8640)
				for i := 0; i < 8640; i++ {
					batch = append(batch, outbox.Item{Meter: "m", Reading: reading.Reading{Device: "m", Time: day.Add(time.Duration(i) * 10 * time.Second), Power: 100 + float64(i%300), EnergyIn: reading.F(1e5 + float64(i)), Temperature: reading.F(21.5)}})
				}
				if _, err := ob.Append(batch); err != nil {
					b.Fatal(err)
				}
				ob.Close()
				l, err := logger.New(cfg, logger.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Clock: logger.NewFakeClock(day.Add(24*time.Hour+time.Second), false)})
				if err != nil {
					b.Fatal(err)
				}
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				b.StartTimer()
				began := time.Now()
				go func() { done <- l.Run(ctx) }()
				for l.Outbox().Backlog("ours") > 0 {
					time.Sleep(time.Millisecond)
				}
				took := time.Since(began)
				b.StopTimer()
				total += took
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				src, err := st.Sources(context.Background())
				if err != nil || len(src) != 1 || src[0].Count != 8640 {
					b.Fatalf("server holds %+v, %v; want 8640 readings", src, err)
				}
			}
			b.ReportMetric(total.Seconds()/float64(b.N), "s/day")
			b.ReportMetric(8640*float64(b.N)/total.Seconds(), "readings/s")
		})
	}
}
