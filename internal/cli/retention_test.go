//go:build !loggeronly

package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// TestRetentionVerb: --dry-run counts the raw readings older than the
// retention, a run reduces them to minutes, --vacuum shrinks the file,
// and a second run has nothing to do.
func TestRetentionVerb(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pm.db")
	db := "sqlite://" + path
	cfg := filepath.Join(dir, "pm.toml")
	if err := os.WriteFile(cfg, []byte("[server]\ndatabase = \""+db+"\"\n[server.retention]\nraw = \"30d\"\n[[server.sources]]\nname = \"home\"\nkey = \"home-key-1\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	old := time.Now().UTC().AddDate(0, 0, -60).Truncate(time.Hour)
	var rs []reading.Reading
	for i := range 8640 {
		rs = append(rs, reading.Reading{Device: "plug", Time: old.Add(time.Duration(i) * 10 * time.Second), Power: float64(100 + i%50), Temperature: reading.F(21.5)})
	}
	rs = append(rs, reading.Reading{Device: "plug", Time: time.Now().UTC().Add(-time.Hour), Power: 5})
	if _, err := st.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, errs := runCLI(t, "retention", "--config", cfg, "--dry-run")
	if code != 0 || !strings.Contains(out, "home: 8640 raw readings before") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	sizeBefore := fileSize(t, path)
	code, out, errs = runCLI(t, "retention", "--config", cfg, "--vacuum")
	if code != 0 || !strings.Contains(out, "home: 8640 raw readings reduced to 1440 rows") || !strings.Contains(out, "vacuumed") {
		t.Fatalf("run: exit %d\n%s%s", code, out, errs)
	}
	if after := fileSize(t, path); after >= sizeBefore {
		t.Errorf("file %d bytes after reduction and vacuum, %d before", after, sizeBefore)
	}
	code, out, errs = runCLI(t, "retention", "--config", cfg)
	if code != 0 || !strings.Contains(out, "nothing to reduce") {
		t.Fatalf("second run: exit %d\n%s%s", code, out, errs)
	}
	st, err = store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n := 0
	if err := st.Range(ctx, "home", old, old.Add(24*time.Hour), func(r reading.Reading) error {
		if r.Reduced == nil || r.Reduced.Count != 6 {
			t.Fatalf("not reduced: %+v", r)
		}
		n++
		return nil
	}); err != nil || n != 1440 {
		t.Fatalf("after the run: %d reduced minutes, %v", n, err)
	}
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}
