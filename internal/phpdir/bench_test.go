package phpdir

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/legacy"
	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store/sqlite"
)

// BenchmarkImport imports a week of 10-s lines (60 480) from a PHP data
// folder into a fresh SQLite file per iteration.
func BenchmarkImport(b *testing.B) {
	dir := b.TempDir()
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, berlin)
	lines := 0
	for d := 0; d < 7; d++ {
		day := start.AddDate(0, 0, d)
		var sb strings.Builder
		for tm := day; tm.Before(day.AddDate(0, 0, 1)); tm = tm.Add(10 * time.Second) {
			l, err := legacy.Format(tm, berlin, float64(lines%3000)+0.25, reading.F(21.5), 1, nil)
			if err != nil {
				b.Fatal(err)
			}
			sb.WriteString(l)
			sb.WriteByte('\n')
			lines++
		}
		if err := os.WriteFile(filepath.Join(dir, day.Format("2006-01-02")+".csv"), []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	ctx := context.Background()
	b.ResetTimer()
	var total time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		st, err := sqlite.OpenFile(ctx, filepath.Join(b.TempDir(), "pm.db"))
		if err != nil {
			b.Fatal(err)
		}
		if err := st.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		t0 := time.Now()
		res, err := Import(ctx, st, dir, ImportOptions{Source: "home", Zone: berlin})
		total += time.Since(t0)
		b.StopTimer()
		st.Close()
		if err != nil || res.Imported != lines {
			b.Fatalf("import: %+v %v, want %d imported", res, err, lines)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(lines*b.N)/total.Seconds(), "lines/s")
}
