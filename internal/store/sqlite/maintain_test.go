package sqlite

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store/storetest"
)

// fill makes a database of n legacy readings and closes it.
func fill(t testing.TB, path string, n int) {
	t.Helper()
	ctx := context.Background()
	s, err := OpenFile(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i += 1000 {
		rs := storetestReadings(i, min(i+1000, n))
		if _, err := s.Insert(ctx, "home", rs); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestCheckFileFindsDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pm.db")
	fill(t, path, 20000)
	ctx := context.Background()
	for _, full := range []bool{false, true} {
		if p, err := CheckFile(ctx, path, full); err != nil || len(p) != 0 {
			t.Fatalf("sound file (full %v): %v %v", full, p, err)
		}
	}
	// overwrite the middle of the file (table pages) with garbage
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	fi, _ := f.Stat()
	junk := []byte(strings.Repeat("\xa5\x5a", 2048))
	for off := fi.Size() / 3; off < fi.Size()*2/3; off += 16384 {
		if _, err := f.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	p, err := CheckFile(ctx, path, true)
	if err == nil && len(p) == 0 {
		t.Fatal("integrity_check found nothing in a damaged file")
	}
	t.Logf("damage reported: %d lines, first %q, err %v", len(p), first(p), err)
	if len(p) < 2 || !strings.Contains(strings.Join(p, "\n"), "page") {
		t.Errorf("want one problem per line naming pages, got %d", len(p))
	}
}

func first(p []string) string {
	if len(p) == 0 {
		return ""
	}
	return p[0]
}

func TestRestoreRefusedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	db, backup := filepath.Join(dir, "pm.db"), filepath.Join(dir, "b.db")
	fill(t, db, 3000)
	ctx := context.Background()
	if err := BackupFile(ctx, db, backup); err != nil {
		t.Fatal(err)
	}
	if err := BackupFile(ctx, db, backup); err == nil || !strings.Contains(err.Error(), "exists already") {
		t.Errorf("second backup into the same file: %v", err)
	}
	s, err := OpenFile(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := RestoreFile(ctx, backup, db); err == nil || !strings.Contains(err.Error(), "in use by a running powermeter") {
		t.Errorf("restore over an open database: %v", err)
	}
	s.Close()
	if err := RestoreFile(ctx, backup, db); err != nil {
		t.Fatalf("restore over a closed database: %v", err)
	}
	s, err = OpenFile(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srcs, err := s.Sources(ctx)
	if err != nil || len(srcs) != 1 || srcs[0].Count != 3000 {
		t.Fatalf("restored: %+v %v", srcs, err)
	}
}

// BenchmarkBackupYear: backup (VACUUM INTO) and quick_check of a year of
// 10-s legacy readings.
func BenchmarkBackupYear(b *testing.B) {
	dir := b.TempDir()
	db := filepath.Join(dir, "year.db")
	ctx := context.Background()
	s, err := OpenFile(ctx, db)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := storetest.FillYear(ctx, s, "home", 0, nil); err != nil {
		b.Fatal(err)
	}
	if err := s.Checkpoint(ctx); err != nil {
		b.Fatal(err)
	}
	s.Close()
	fi, _ := os.Stat(db)
	b.ResetTimer()
	var backupDur, checkDur time.Duration
	for i := 0; i < b.N; i++ {
		to := filepath.Join(dir, "backup.db")
		os.Remove(to)
		t0 := time.Now()
		if err := BackupFile(ctx, db, to); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if p, err := CheckFile(ctx, to, false); err != nil || len(p) > 0 {
			b.Fatal(p, err)
		}
		backupDur += t1.Sub(t0)
		checkDur += time.Since(t1)
	}
	b.ReportMetric(backupDur.Seconds()/float64(b.N), "backup-s")
	b.ReportMetric(checkDur.Seconds()/float64(b.N), "quickcheck-s")
	b.ReportMetric(float64(fi.Size())/1e6, "db-MB")
}

func storetestReadings(from, to int) []reading.Reading {
	rs := make([]reading.Reading, 0, to-from)
	for i := from; i < to; i++ {
		rs = append(rs, storetest.LegacyReading(storetest.YearStart, i))
	}
	return rs
}
