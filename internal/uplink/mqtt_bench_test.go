package uplink_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/mqttc/mqtttest"
	"github.com/powermeter/powermeter/internal/outbox"
	"github.com/powermeter/powermeter/internal/uplink"
)

// BenchmarkMQTTDrainDay drains a day of one meter's backlog (8 640
// readings at 10 s) over MQTT to the broker on 127.0.0.1:1883, each
// reading acknowledged (QoS 1) before the batch counts as sent, with Home
// Assistant discovery on. scripts/bench.sh mqtt runs it.
func BenchmarkMQTTDrainDay(b *testing.B) {
	broker := mqtttest.Shared(b)
	prefix := mqtttest.Prefix(b)
	items := make([]outbox.Item, 8640)
	for i := range items {
		items[i] = item(uint64(i+1), "balcony", t0.Add(time.Duration(i)*10*time.Second), float64(i%500))
	}
	for n := 0; n < b.N; n++ {
		b.StopTimer()
		cfg := mqttConfigTB(b, broker, prefix, "", "balcony")
		s, err := uplink.New(cfg.Uplinks[0], 0, uplink.Options{Source: "home", MeterTypes: map[string]string{"balcony": "shelly"}, MeterOrder: []string{"balcony"}, Interval: 10 * time.Second, Log: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for !s.(interface{ Ready() bool }).Ready() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		b.StartTimer()
		began := time.Now()
		rest := items
		for len(rest) > 0 {
			k := min(len(rest), s.MaxBatch())
			m, err := s.Send(context.Background(), rest[:k], time.Now, nil)
			if err != nil {
				b.Fatal(err)
			}
			rest = rest[m:]
		}
		b.ReportMetric(time.Since(began).Seconds(), "s/day")
		b.ReportMetric(float64(len(items))/time.Since(began).Seconds(), "readings/s")
		b.StopTimer()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_ = s.(uplink.Closer).Close(ctx)
		cancel()
		b.StartTimer()
	}
}
