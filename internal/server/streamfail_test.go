package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
	"github.com/powermeter/powermeter/internal/store"
)

// failingStore is a real store whose reads start failing on demand: Range
// fails after failAfter readings (0: never), LastTime when readsFail is set
// — a disk going bad under a running server.
type failingStore struct {
	store.Store
	failAfter atomic.Int64
	readsFail atomic.Bool
}

var errDiskRead = errors.New("reading page 4711: input/output error")

func (f *failingStore) Range(ctx context.Context, source string, from, to time.Time, fn func(reading.Reading) error) error {
	if f.readsFail.Load() {
		return errDiskRead
	}
	limit := f.failAfter.Load()
	n := int64(0)
	return f.Store.Range(ctx, source, from, to, func(r reading.Reading) error {
		n++
		if limit > 0 && n > limit {
			return errDiskRead
		}
		return fn(r)
	})
}

func (f *failingStore) Ping(ctx context.Context) error {
	if p, ok := f.Store.(interface{ Ping(context.Context) error }); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (f *failingStore) LastTime(ctx context.Context, source string) (time.Time, bool, error) {
	if f.readsFail.Load() {
		return time.Time{}, false, errDiskRead
	}
	return f.Store.LastTime(ctx, source)
}

// logBuf collects the server's log lines.
func logBuf() (*syncBuf, *slog.Logger) {
	b := &syncBuf{}
	return b, slog.New(slog.NewTextHandler(b, nil))
}

// TestStreamFailureVisible: when the store fails in the middle of a long
// answer, the read API and the CSV export end the connection without the
// final chunk (the client sees an error, not a short file) and log it;
// /healthz reports a store that fails reads (issue 9, item 6).
func TestStreamFailureVisible(t *testing.T) {
	fs := &failingStore{Store: openStore(t)}
	logs, log := logBuf()
	ts := startServerLog(t, baseConfig, fs, func(s *Server) { s.errs.every = 0 }, log)
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	var batch []reading.Reading
	for i := range 20000 {
		batch = append(batch, reading.Reading{Device: "plug-with-a-long-name", Time: t0.Add(time.Duration(i) * time.Second), Power: float64(i)})
	}
	if _, err := fs.Insert(context.Background(), "home", batch); err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, int, error) {
		resp, err := client.Get(ts.base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, len(b), err
	}
	for _, path := range []string{
		"/api/v1/sources/home/readings?from=2026-11-26T00:00:00Z&to=2026-11-27T00:00:00Z",
		"/api/v1/sources/home/readings?from=2026-11-26T00:00:00Z&to=2026-11-27T00:00:00Z&format=csv",
		"/s/home/export.csv?from=2026-11-26T00:00:00Z&to=2026-11-27T00:00:00Z",
	} {
		fs.failAfter.Store(0)
		code, full, err := get(path)
		if code != 200 || err != nil {
			t.Fatalf("%s without faults: %d %v", path, code, err)
		}
		fs.failAfter.Store(15000)
		code, n, err := get(path)
		if err == nil {
			t.Errorf("%s: the store failed midway but the answer ended cleanly (%d, %d of %d bytes)", path, code, n, full)
		}
	}
	if got := strings.Count(logs.String(), "level=ERROR"); got < 3 {
		t.Errorf("%d errors logged for 3 broken streams:\n%s", got, logs.String())
	}
	// a store that fails before anything is sent gets a clean 503
	fs.readsFail.Store(true)
	if code, _, err := get("/api/v1/sources/home/readings?from=2026-11-26T00:00:00Z&to=2026-11-27T00:00:00Z"); code != 503 || err != nil {
		t.Errorf("failing at once: %d %v, want 503", code, err)
	}
	if code, body, _ := do(t, "GET", ts.base+"/healthz", "", ""); code != 503 || !strings.Contains(body, "reads") {
		t.Errorf("/healthz with failing reads: %d %q", code, body)
	}
	fs.readsFail.Store(false)
	if code, _, _ := do(t, "GET", ts.base+"/healthz", "", ""); code != 200 {
		t.Errorf("/healthz: %d", code)
	}
}

// fullStore is a real store on a disk that has filled up.
type fullStore struct{ store.Store }

func (fullStore) Insert(context.Context, string, []reading.Reading) (store.InsertResult, error) {
	return store.InsertResult{}, &os.PathError{Op: "write", Path: "/var/lib/powermeter/powermeter.db-wal", Err: syscall.ENOSPC}
}

// TestDiskFullLoggedOncePerInterval: a full disk answers 503 to every
// request but logs one line naming "disk full" per 10 s, with the count
// held back (issue 9, item 11).
func TestDiskFullLoggedOncePerInterval(t *testing.T) {
	logs, log := logBuf()
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	ts := startServerLog(t, baseConfig, fullStore{openStore(t)}, func(s *Server) { s.now = clock }, log)
	send := func(i int) {
		line := fmt.Sprintf("26.11.2026,12:%02d:%02d,1.00", i/60, i%60)
		if code, body, _ := do(t, "GET", ts.base+"/log.php?key="+homeKey+"&stats="+line, "", ""); code != 503 {
			t.Fatalf("disk full: %d %q", code, body)
		}
	}
	for i := range 200 {
		send(i)
	}
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	send(200)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	var errs []string
	for _, l := range lines {
		if strings.Contains(l, "level=ERROR") {
			errs = append(errs, l)
		}
	}
	// per 10 s: one line naming the disk full, one request line of the 503s
	var full []string
	for _, l := range errs {
		if strings.Contains(l, "disk full") {
			full = append(full, l)
		}
	}
	if len(errs) != 4 || len(full) != 2 {
		t.Fatalf("%d error lines (%d naming the full disk) for 201 failures, want 4 (2):\n%s", len(errs), len(full), strings.Join(errs, "\n"))
	}
	if !strings.Contains(full[1], "repeated=199") {
		t.Errorf("the second line should count the 199 held back: %s", full[1])
	}
	if !DiskFull(errors.New("sqlite: database or disk is full (13)")) || !DiskFull(errors.New("ERROR: could not extend file: No space left on device (SQLSTATE 53100)")) || DiskFull(errDiskRead) {
		t.Error("DiskFull misreads an error")
	}
}
