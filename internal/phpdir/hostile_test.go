//go:build unix

package phpdir

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// importGuarded runs Import and fails the test (instead of hanging it) if
// it does not return: the attack run's FIFO and /dev/zero hung it forever.
func importGuarded(t *testing.T, ctx context.Context, dir string, opt ImportOptions) (ImportResult, error) {
	t.Helper()
	type out struct {
		res ImportResult
		err error
	}
	done := make(chan out, 1)
	st := openStore(t)
	go func() {
		res, err := Import(ctx, st, dir, opt)
		done <- out{res, err}
	}()
	select {
	case o := <-done:
		return o.res, o.err
	case <-time.After(2 * time.Minute):
		t.Fatal("Import hangs")
		return ImportResult{}, nil
	}
}

// Only regular files are read: a symbolic link (to /etc/passwd, to
// /dev/zero), a FIFO, a folder named *.csv are skipped and named.
func TestImportReadsRegularFilesOnly(t *testing.T) {
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "2026-11-26.csv"), []byte("26.11.2026,12:00:00,5.00\n"), 0o644)
	secret := filepath.Join(t.TempDir(), "passwd")
	os.WriteFile(secret, []byte("root:x:0:0:root:/root:/bin/bash\n"), 0o600)
	if err := os.Symlink(secret, filepath.Join(in, "a.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(in, "b.csv")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(in, "c.csv"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(in, "d.csv"), 0o755)
	var skipped []string
	var refused []Refusal
	res, err := importGuarded(t, context.Background(), in, ImportOptions{Source: "home", Zone: berlin,
		OnSkip:   func(name, why string) { skipped = append(skipped, name+": "+why) },
		OnRefuse: func(r Refusal) { refused = append(refused, r) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 1 || res.Imported != 1 || res.Skipped != 4 || len(refused) != 0 {
		t.Fatalf("result %+v, refused %v", res, refused)
	}
	got := strings.Join(skipped, "\n")
	for _, want := range []string{"a.csv: a symbolic link", "b.csv: a symbolic link", "c.csv: a named pipe", "d.csv: a folder"} {
		if !strings.Contains(got, want) {
			t.Errorf("skips:\n%s\nwant %q", got, want)
		}
	}
}

// A refused line is shown as a short escaped excerpt, never whole.
func TestRefusedLineExcerptIsShortAndEscaped(t *testing.T) {
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "x.csv"), []byte("\x1b[2Jroot:x:0:0:root:/root:/bin/bash\n26.11.2026,12:00:00,\x07\x1b]0;pwned\x07xxxxxxxxxxxxxxxxxxxxxxxxxxx\n"), 0o644)
	var refused []string
	_, err := importGuarded(t, context.Background(), in, ImportOptions{Source: "home", Zone: berlin,
		OnRefuse: func(r Refusal) { refused = append(refused, r.String()) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(refused) != 2 {
		t.Fatalf("refused %q", refused)
	}
	for _, r := range refused {
		if strings.ContainsAny(r, "\x1b\x07") || strings.Contains(r, "/bin/bash") || strings.Contains(r, "xxxxxxxxxxxxxxxxxxxx") || len(r) > 140 {
			t.Errorf("refusal shows too much or unescaped: %q", r)
		}
	}
	if !strings.Contains(refused[0], `x.csv:1: stats field 1 (date) "\x1b[2Jroot:x:0:0:r"…: want`) {
		t.Errorf("excerpt: %q", refused[0])
	}
	if got := (Refusal{File: "\x1b[2J.csv", Line: 1, Err: errors.New("x")}).String(); got != `"\x1b[2J.csv":1: x` {
		t.Errorf("a file name with escapes: %q", got)
	}
}

// A corrupt .gz is reported, the import goes on with the next file, and
// what a truncated .gz gave before the damage is kept.
func TestCorruptGzipIsReportedAndTheImportGoesOn(t *testing.T) {
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "2026-11-24.csv.gz"), []byte("this is not gzip at all\n"), 0o644)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	for i := 0; i < 2000; i++ {
		zw.Write([]byte(time.Date(2026, 11, 25, 0, 0, 0, 0, berlin).Add(time.Duration(i)*10*time.Second).Format("02.01.2006,15:04:05") + ",1.00\n"))
	}
	zw.Close()
	os.WriteFile(filepath.Join(in, "2026-11-25.csv.gz"), gz.Bytes()[:gz.Len()/2], 0o644)
	os.WriteFile(filepath.Join(in, "2026-11-26.csv"), []byte("26.11.2026,12:00:00,5.00\n"), 0o644)
	var failed []string
	res, err := importGuarded(t, context.Background(), in, ImportOptions{Source: "home", Zone: berlin,
		OnFileError: func(name string, err error) { failed = append(failed, name+": "+err.Error()) }})
	if err != nil {
		t.Fatalf("a corrupt .gz ended the import: %v", err)
	}
	if res.Failed != 2 || res.Files != 1 || len(failed) != 2 || !strings.Contains(failed[0], "2026-11-24.csv.gz: not a readable gzip file") {
		t.Fatalf("result %+v, failed %q", res, failed)
	}
	if res.Imported < 2 || res.Imported > 2000 {
		t.Fatalf("imported %d: the good file and the readable part of the cut one", res.Imported)
	}
}

// A UTF-8 byte order mark and CR-only or CRLF line ends are accepted.
func TestBOMAndLineEnds(t *testing.T) {
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "2026-11-24.csv"), []byte("\ufeff24.11.2026,12:00:00,1.00\r24.11.2026,12:00:10,2.00\r24.11.2026,12:00:20,3.00\r"), 0o644)
	os.WriteFile(filepath.Join(in, "2026-11-25.csv"), []byte("\ufeff25.11.2026,12:00:00,1.00\r\n25.11.2026,12:00:10,2.00\r\n\r\n25.11.2026,12:00:20,3.00"), 0o644)
	var refused []string
	res, err := importGuarded(t, context.Background(), in, ImportOptions{Source: "home", Zone: berlin,
		OnRefuse: func(r Refusal) { refused = append(refused, r.String()) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Imported != 6 || res.Refused != 0 {
		t.Fatalf("result %+v, refused %q", res, refused)
	}
}

// Ctrl-C / SIGTERM (the context) stops a read that would take forever: a
// sparse file of 64 GiB of zeros (one endless line, as /dev/zero was).
func TestImportStopsWhenTheContextEnds(t *testing.T) {
	in := t.TempDir()
	os.WriteFile(filepath.Join(in, "2026-11-24.csv"), []byte("24.11.2026,12:00:00,1.00\n"), 0o644)
	f, err := os.Create(filepath.Join(in, "2026-11-25.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(64 << 30); err != nil {
		t.Skipf("no sparse files here: %v", err)
	}
	f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	var read int64
	res, err := importGuarded(t, ctx, in, ImportOptions{Source: "home", Zone: berlin,
		Progress: func(n int64) {
			read += n
			if read > 1<<20 {
				cancel()
			}
		}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if res.Imported != 1 {
		t.Fatalf("what was read before the interrupt is not stored: %+v", res)
	}
}
