package cli

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ieCLI runs the command line with a config file and returns code and output.
func ieCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &Env{Stdout: &out, Stderr: &errb, LookupEnv: func(string) (string, bool) { return "", false }})
	return code, out.String(), errb.String()
}

func ieConfig(t *testing.T, listen string, sources bool) string {
	t.Helper()
	dir := t.TempDir()
	text := fmt.Sprintf("timezone = \"Europe/Berlin\"\n[server]\nlisten = %q\ndatabase = \"sqlite://%s/pm.db\"\n", listen, filepath.ToSlash(dir))
	if sources {
		text += "[[server.sources]]\nname = \"home\"\nkey = \"abc12345\"\n"
	}
	path := filepath.Join(dir, "powermeter.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestImportExportVerbs(t *testing.T) {
	cfg := ieConfig(t, "127.0.0.1:8080", true)
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "2026-11-25.csv"), []byte("25.11.2026,23:59:50,100.00,21.5\n25.11.2026,23:59:60,1.00\n"), 0o644)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	io.WriteString(zw, "26.11.2026,00:00:00,101.50,21.4\n26.11.2026,00:00:10,-5.25,,1.00,2.00\n")
	zw.Close()
	os.WriteFile(filepath.Join(in, "2026-11-26.csv.gz"), gz.Bytes(), 0o644)
	os.WriteFile(filepath.Join(in, "stats.txt"), []byte("26.11.2026,00:00:10,-5.25,,1.00,2.00"), 0o644)

	code, out, errs := ieCLI(t, "import", "--config", cfg, "--source", "home", in)
	if code != 0 {
		t.Fatalf("import: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(out, `refused 2026-11-25.csv:2: stats field 2 (time) "23:59:60"`) ||
		!strings.Contains(out, "imported 3, already present 0, refused 1 (4 lines in 2 files)") {
		t.Fatalf("import output:\n%s", out)
	}
	code, out, _ = ieCLI(t, "import", "--config", cfg, "--source", "home", in)
	if code != 0 || !strings.Contains(out, "imported 0, already present 3, refused 1") {
		t.Fatalf("second import: %d\n%s", code, out)
	}

	dst := filepath.Join(t.TempDir(), "out")
	code, out, errs = ieCLI(t, "export", "--config", cfg, "--source", "home", "--dir", dst, "--from", "2026-11-25", "--to", "2026-11-26")
	if code != 0 || !strings.Contains(out, "exported 3 lines of home/legacy into 2 day files") {
		t.Fatalf("export: %d\n%s%s", code, out, errs)
	}
	for name, want := range map[string]string{
		"2026-11-25.csv": "25.11.2026,23:59:50,100.00,21.5\n",
		"2026-11-26.csv": "26.11.2026,00:00:00,101.50,21.4\n26.11.2026,00:00:10,-5.25,,1.00,2.00\n",
		"stats.txt":      "26.11.2026,00:00:10,-5.25,,1.00,2.00",
	} {
		got, err := os.ReadFile(filepath.Join(dst, name))
		if err != nil || string(got) != want {
			t.Errorf("%s: %q %v, want %q", name, got, err, want)
		}
	}

	for _, c := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"import", "--config", cfg, in}, 2, "--source is required"},
		{[]string{"import", "--config", cfg, "--source", "home"}, 2, "exactly one folder"},
		{[]string{"import", "--source", "home", in}, 2, "--config FILE is required"},
		{[]string{"import", "--config", cfg, "--source", "elsewhere", in}, 2, "unknown source"},
		{[]string{"import", "--config", cfg, "--source", "home", t.TempDir()}, 1, "no .csv"},
		{[]string{"export", "--config", cfg, "--source", "home"}, 2, "--source and --dir are required"},
		{[]string{"export", "--config", cfg, "--source", "home", "--dir", dst, "--from", "soon"}, 2, "--from"},
		{[]string{"export", "--config", cfg, "--source", "home", "--dir", dst, "--device", "plug"}, 2, `no device "plug"`},
	} {
		code, out, errs := ieCLI(t, c.args...)
		if code != c.code || !strings.Contains(out+errs, c.msg) {
			t.Errorf("%v: exit %d %q%q, want %d and %q", c.args, code, out, errs, c.code, c.msg)
		}
	}
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestServeVerb(t *testing.T) {
	addr := freeAddr(t)
	cfg := ieConfig(t, addr, false)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	commands["serve"].Flags(fs)
	if err := fs.Parse([]string{"--config", cfg}); err != nil {
		t.Fatal(err)
	}
	var out, errb syncBuffer
	env := &Env{Stdout: &out, Stderr: &errb, LookupEnv: func(string) (string, bool) { return "", false }}
	env.Log = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, env, fs) }()
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ {
		if resp, err = http.Get("http://" + addr + "/healthz"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		cancel()
		t.Fatalf("serve never answered: %v (stderr %s)", err, errb.String())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/healthz: %d", resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if s := out.String(); !strings.Contains(s, "[[server.sources]]") || !strings.Contains(s, "http://"+addr+"/") {
		t.Fatalf("serve without sources should print how to add one:\n%s", s)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// import goes on past a corrupt .gz and exits 1 at the end; a file of
// garbage prints 10 refusals and a count, not every line; a symbolic link
// is named and skipped.
func TestImportHostileFolder(t *testing.T) {
	cfg := ieConfig(t, "127.0.0.1:8080", true)
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "2026-11-24.csv.gz"), []byte("not gzip"), 0o644)
	os.WriteFile(filepath.Join(in, "2026-11-25.csv"), []byte(strings.Repeat("garbage line\n", 500)), 0o644)
	os.WriteFile(filepath.Join(in, "2026-11-26.csv"), []byte("\ufeff26.11.2026,12:00:00,5.00\r26.11.2026,12:00:10,6.00\r"), 0o644)
	if err := os.Symlink("/etc/passwd", filepath.Join(in, "2026-11-27.csv")); err != nil {
		t.Fatal(err)
	}
	code, out, errs := ieCLI(t, "import", "--config", cfg, "--source", "home", in)
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
	}
	for _, want := range []string{
		"failed 2026-11-24.csv.gz: not a readable gzip file",
		"refused 490 more lines of 2026-11-25.csv (not shown)",
		"skipped 2026-11-27.csv: a symbolic link",
		"imported 2, already present 0, refused 500 (502 lines in 2 files); 1 skipped (not regular files); 1 failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "refused 2026-11-25.csv:"); n != 10 {
		t.Errorf("%d refusals printed, want 10", n)
	}
	if !strings.Contains(errs, "1 of 3 files could not be read") {
		t.Errorf("stderr: %s", errs)
	}
}
