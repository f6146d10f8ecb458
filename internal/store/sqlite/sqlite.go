// Package sqlite is the embedded store: one SQLite file (modernc.org/sqlite,
// pure Go) in WAL mode with synchronous=FULL, one writer connection fed by a
// group committer, and a pool of reader connections.
//
// Readings live in a WITHOUT ROWID table clustered on (source, time,
// device), so a time range of one source is one contiguous scan already in
// the (time, device) order Range promises. Values are integers: power and
// temperature in milli-units, time in seconds since 2000, source and device
// as small ids; rare fields share one NULL-able blob. A legacy reading
// (power and temperature every 10 s) takes about 20 bytes on disk.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/groupcommit"
)

func init() {
	store.Register("sqlite", func(ctx context.Context, url string) (store.Store, error) {
		s, err := Open(ctx, url)
		if err != nil {
			return nil, err
		}
		return s, nil
	})
}

// Store is the SQLite backend of store.Store.
type Store struct {
	path string
	w    *sql.DB // exactly one connection: every write goes through it
	r    *sql.DB // readers (query_only)
	gc   *groupcommit.Committer[*batch, *store.InsertResult]
	log  *slog.Logger

	mu      sync.Mutex
	srcIDs  map[string]int64           // source name → id (ids never change)
	devIDs  map[devKey]int64           // committed devices (ids never change)
	devName map[int64]map[int64]string // source id → device id → name
	locs    map[string]*time.Location  // zone name → location
	stmts   map[string]*sql.Stmt       // prepared on w, by query
	// preparedSrc are the sources whose inserts are in stmts (at most
	// maxPreparedSources)
	preparedSrc map[int64]struct{}
	insQ        map[int64][]string // source id → insertQueries

	unlock    func() // releases the shared lock on the file
	closeOnce sync.Once
	closeErr  error
}

type devKey struct {
	src  int64
	name string
}

var _ store.Store = (*Store)(nil)

// PathFromURL returns the file a sqlite:// URL names: sqlite:///abs/x.db is
// /abs/x.db, sqlite://rel/x.db is rel/x.db (relative to the working folder).
func PathFromURL(url string) (string, error) {
	const scheme = "sqlite://"
	if !strings.HasPrefix(url, scheme) {
		return "", fmt.Errorf("database %q: not a sqlite:// URL", url)
	}
	path := url[len(scheme):]
	switch {
	case path == "":
		return "", fmt.Errorf("database %q: no file path (want sqlite:///abs/path.db or sqlite://rel/path.db)", url)
	case strings.ContainsAny(path, "?#"):
		return "", fmt.Errorf("database %q: options in the URL are not supported", url)
	case strings.HasSuffix(path, "/"):
		return "", fmt.Errorf("database %q: names a folder, want a file", url)
	}
	return path, nil
}

// Open opens (creating the file and its folder if needed) the database a
// sqlite:// URL names, and applies pending schema migrations.
func Open(ctx context.Context, url string) (*Store, error) {
	path, err := PathFromURL(url)
	if err != nil {
		return nil, err
	}
	return OpenFile(ctx, path)
}

// OpenFile opens the database file at path; see Open.
func OpenFile(ctx context.Context, path string) (*Store, error) {
	if !driverAvailable {
		return nil, fmt.Errorf("open database %s: SQLite is not available on %s/%s: use a postgres:// database, or run only the logger on this machine",
			path, runtime.GOOS, runtime.GOARCH)
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("create database folder: %w", err)
		}
	}
	const common = "_pragma=busy_timeout(10000)"
	w, err := sql.Open("sqlite", path+"?"+common+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=foreign_keys(1)"+
		"&_pragma=journal_size_limit(67108864)&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := checkWAL(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := migrate(ctx, w); err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", path+"?"+common+"&_pragma=query_only(1)")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open database %s for reading: %w", path, err)
	}
	// All readers stay open: a new connection reads the whole schema
	// before its first statement, which with a table per source is slow
	// (10 000 sources: 1.5 ms a connection; with 4 idle of 8, every
	// source's first line after a start paid it, 9.9 → 4.4 s until each of
	// 10 000 had sent once).
	r.SetMaxOpenConns(8)
	r.SetMaxIdleConns(8)
	if err := r.PingContext(ctx); err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open database %s for reading: %w", path, err)
	}
	unlock, err := lockShared(path)
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s := &Store{
		unlock:  unlock,
		path:    path,
		w:       w,
		r:       r,
		log:     slog.Default().With("db", path),
		srcIDs:  map[string]int64{},
		devIDs:  map[devKey]int64{},
		devName: map[int64]map[int64]string{},
		locs:    map[string]*time.Location{},
		stmts:   map[string]*sql.Stmt{},

		preparedSrc: map[int64]struct{}{},
		insQ:        map[int64][]string{},
	}
	if err := s.prepare(ctx, qSource, qSourceTx, qDevStats, qClock, qDay, qClockExec, qDayClock, qSavepoint, qRollbackTo, qRelease); err != nil {
		w.Close()
		r.Close()
		unlock()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	s.gc = groupcommit.New(s.begin, groupcommit.Options{Log: s.log})
	return s, nil
}

// checkWAL makes sure the file really is in WAL mode (a read-only or
// network file system may refuse it silently).
func checkWAL(ctx context.Context, w *sql.DB) error {
	var mode string
	if err := w.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("journal mode is %q, WAL is needed", mode)
	}
	return nil
}

// Path is the database file.
func (s *Store) Path() string { return s.path }

// CommitStats reports what the group committer did since Open.
func (s *Store) CommitStats() groupcommit.Stats { return s.gc.Stats() }

// Checkpoint copies the write-ahead log into the database file and
// truncates it (for measuring the file size; SQLite checkpoints on its own).
func (s *Store) Checkpoint(ctx context.Context) error {
	var busy, logged, moved int
	if err := s.w.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &moved); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if busy != 0 {
		return errors.New("checkpoint: blocked by a reader")
	}
	return nil
}

// Close finishes pending inserts, then closes the database.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.gc.Close()
		s.closeErr = errors.Join(s.r.Close(), s.w.Close())
		s.unlock()
		if s.closeErr != nil {
			s.closeErr = fmt.Errorf("close database %s: %w", s.path, s.closeErr)
		}
	})
	return s.closeErr
}

// location loads (once) the zone of a source.
func (s *Store) location(name string) (*time.Location, error) {
	s.mu.Lock()
	loc, ok := s.locs[name]
	s.mu.Unlock()
	if ok {
		return loc, nil
	}
	loc, err := loadZone(name)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.locs[name] = loc
	s.mu.Unlock()
	return loc, nil
}

func loadZone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("timezone %q: want an IANA zone name such as Europe/Berlin", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("timezone %q: %w", name, err)
	}
	return loc, nil
}
