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

// TestDeleteVerb: a reading from a clock glitch (2106) is removed with the
// delete verb; without --yes nothing goes (issue 9, item 4).
func TestDeleteVerb(t *testing.T) {
	dir := t.TempDir()
	db := "sqlite://" + filepath.Join(dir, "pm.db")
	cfg := filepath.Join(dir, "pm.toml")
	if err := os.WriteFile(cfg, []byte("[server]\ndatabase = \""+db+"\"\n[[server.sources]]\nname = \"home\"\nkey = \"home-key-1\"\n"), 0o600); err != nil {
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
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	glitch := time.Date(2106, 2, 7, 6, 28, 15, 0, time.UTC)
	if _, err := st.Insert(ctx, "home", []reading.Reading{
		{Device: "plug", Time: now, Power: 1}, {Device: "plug", Time: glitch, Power: 2}, {Device: "grid", Time: glitch, Power: 3},
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	args := []string{"delete", "--config", cfg, "--source", "home", "--device", "plug", "--from", "2100-01-01", "--to", "2200-12-31"}
	code, out, errs := runCLI(t, args...)
	if code != 0 || !strings.Contains(out, "would delete 1 readings of plug of home") || !strings.Contains(out, "2106-02-07T06:28:15Z") {
		t.Fatalf("dry run: exit %d\n%s%s", code, out, errs)
	}
	code, out, errs = runCLI(t, append(args, "--yes")...)
	if code != 0 || !strings.Contains(out, "deleted 1 readings of plug of home") {
		t.Fatalf("delete: exit %d\n%s%s", code, out, errs)
	}
	st, err = store.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	latest, err := st.Latest(ctx, "home")
	if err != nil || len(latest) != 2 || latest[1].Device != "plug" || !latest[1].Time.Equal(now) || !latest[0].Time.Equal(glitch) {
		t.Fatalf("latest after delete: %+v %v", latest, err)
	}
	for _, bad := range [][]string{
		{"delete", "--config", cfg, "--source", "home", "--from", "2100-01-01", "--to", "2200-12-31"},
		{"delete", "--config", cfg, "--source", "home", "--device", "plug", "--from", "2200-01-01", "--to", "2100-12-31"},
		{"delete", "--config", cfg, "--source", "nowhere", "--device", "plug", "--from", "2100-01-01", "--to", "2200-12-31"},
	} {
		if code, _, _ := runCLI(t, bad...); code != 2 {
			t.Errorf("%v: exit %d, want 2", bad, code)
		}
	}
}
