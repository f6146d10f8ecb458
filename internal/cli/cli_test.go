package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func mainOf(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &Env{Stdout: &out, Stderr: &errb, Stdin: strings.NewReader(""), LookupEnv: func(string) (string, bool) { return "", false }})
	return code, out.String(), errb.String()
}

func TestUnknownVerbAndFlag(t *testing.T) {
	if code, _, stderr := mainOf(t, "serv"); code != 2 || !strings.Contains(stderr, `unknown verb "serv"`) {
		t.Errorf("unknown verb: exit %d, %q", code, stderr)
	}
	if code, _, stderr := mainOf(t, "version", "--bogus"); code != 2 || !strings.Contains(stderr, "bogus") {
		t.Errorf("unknown flag: exit %d, %q", code, stderr)
	}
	if code, _, _ := run(t); code != 2 {
		t.Errorf("no verb: exit %d, want 2", code)
	}
}

func TestHelpOnEveryVerb(t *testing.T) {
	for name, c := range commands {
		code, out, stderr := mainOf(t, name, "--help")
		if code != 0 || !strings.Contains(out, "usage: powermeter") {
			t.Errorf("%s --help: exit %d, out %q, err %q", name, code, out, stderr)
		}
		if c.Summary == "" {
			t.Errorf("%s has no summary", name)
		}
	}
	code, out, _ := mainOf(t, "help")
	if code != 0 {
		t.Errorf("help: exit %d", code)
	}
	for name := range commands {
		if !strings.Contains(out, name) {
			t.Errorf("help does not list %s", name)
		}
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := mainOf(t, "version")
	if code != 0 || !strings.HasPrefix(out, "powermeter ") {
		t.Errorf("version: exit %d, %q", code, out)
	}
	if code, _, _ := mainOf(t, "version", "extra"); code != 2 {
		t.Errorf("version extra: exit %d, want 2", code)
	}
}

func TestConfigErrorExits2(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "pm.toml")
	if err := os.WriteFile(f, []byte("timezone = \"Mars/Base\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, verb := range []string{"read", "run"} {
		if _, ok := commands[verb]; !ok {
			continue
		}
		code, _, stderr := mainOf(t, verb, "--config", f)
		if code != 2 || !strings.Contains(stderr, "pm.toml:1: timezone") {
			t.Errorf("%s with a bad config: exit %d, %q", verb, code, stderr)
		}
	}
}
