package cli

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, &Env{Stdout: &out, Stderr: &errb, LookupEnv: func(string) (string, bool) { return "", false }})
	return code, out.String(), errb.String()
}

func TestMigrateVerb(t *testing.T) {
	dir := t.TempDir()
	from := "sqlite://" + filepath.Join(dir, "from.db")
	to := "sqlite://" + filepath.Join(dir, "to.db")
	ctx := context.Background()
	st, err := store.Open(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnsureSource(ctx, "home", "Europe/Berlin"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var rs []reading.Reading
	for i := range 1200 {
		rs = append(rs, reading.Reading{Device: "grid", Time: t0.Add(time.Duration(i) * 10 * time.Second), Power: float64(i)})
	}
	if _, err := st.Insert(ctx, "home", rs); err != nil {
		t.Fatal(err)
	}
	st.Close()

	code, out, errs := runCLI(t, "migrate", "--from", from, "--to", to, "--chunk", "500", "--progress", "lines")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, out, errs)
	}
	if !strings.Contains(out, "home: 1200 read (from its first reading), 1200 new, 0 already there; 1200 in the source, 1200 in the target") ||
		!strings.Contains(out, "verified: the counts per source match") {
		t.Errorf("output:\n%s", out)
	}
	if !regexp.MustCompile(`migrate: 1200 of 1200 readings \(100\.0%\), source home`).MatchString(errs) {
		t.Errorf("progress lines:\n%s", errs)
	}
	// Again: resumes at the end, only the last instant is looked at.
	code, out, _ = runCLI(t, "migrate", "--from", from, "--to", to, "--progress", "none")
	if code != 0 || !strings.Contains(out, "home: 1 read (resumed at 2026-01-01T03:19:50Z), 0 new, 1 already there") {
		t.Errorf("second run: exit %d\n%s", code, out)
	}

	for _, args := range [][]string{
		{"migrate", "--from", from},
		{"migrate", "--from", from, "--to", from},
		{"migrate", "--from", from, "--to", to, "--chunk", "0"},
		{"migrate", "--from", from, "--to", to, "--progress", "fancy"},
		{"migrate", "--from", from, "--to", to, "extra"},
	} {
		if code, _, _ := runCLI(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errs := runCLI(t, "migrate", "--from", "mysql://x", "--to", to); code != 1 || !strings.Contains(errs, "no backend") {
		t.Errorf("unknown scheme: exit %d %s", code, errs)
	}
}
