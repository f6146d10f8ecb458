package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// openRaw opens the file at path with one plain connection, without
// creating it and without migrations (for checks and backups).
func openRaw(ctx context.Context, path string, readOnly bool) (*sql.DB, error) {
	if !driverAvailable {
		return nil, fmt.Errorf("open database %s: SQLite is not available on this platform", path)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)"
	if readOnly {
		dsn += "&mode=ro"
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	return db, nil
}

// CheckFile runs SQLite's own consistency check on the database file at
// path: PRAGMA quick_check, or with full the slower integrity_check (which
// also compares every index with its table). It returns the problems found
// (none: the file is sound). It opens the file read-only and never creates
// it; a server may keep running meanwhile.
func CheckFile(ctx context.Context, path string, full bool) ([]string, error) {
	db, err := openRaw(ctx, path, true)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	pragma := "PRAGMA quick_check"
	if full {
		pragma = "PRAGMA integrity_check"
	}
	rows, err := db.QueryContext(ctx, pragma)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", pragma, path, err)
	}
	defer rows.Close()
	var problems []string
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return nil, fmt.Errorf("%s on %s: %w", pragma, path, err)
		}
		for _, l := range strings.Split(line, "\n") {
			if l = strings.TrimSpace(l); l != "" && l != "ok" {
				problems = append(problems, l)
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s on %s: %w", pragma, path, err)
	}
	return problems, nil
}

// BackupFile writes a consistent copy of the database at path to the new
// file to, with VACUUM INTO: it reads one snapshot, so a server may keep
// writing meanwhile (WAL readers do not block writers). The copy is
// written under a temporary name, fsync'd and then renamed; an existing
// to is refused. The copy is compact (no free pages) and in WAL-less
// rollback mode until it is opened as a store again.
func BackupFile(ctx context.Context, path, to string) error {
	if _, err := os.Stat(to); err == nil {
		return fmt.Errorf("backup: %s exists already (choose a new file name; nothing is overwritten)", to)
	}
	if strings.ContainsRune(to, 0) {
		return errors.New("backup: bad file name")
	}
	db, err := openRaw(ctx, path, false)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer db.Close()
	tmp := filepath.Join(filepath.Dir(to), "."+filepath.Base(to)+".partial")
	os.Remove(tmp)
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup of %s into %s: %w", path, to, err)
	}
	if err := syncFile(tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp, to); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("backup: %w", err)
	}
	return syncDir(filepath.Dir(to))
}

// RestoreFile replaces the database at path with the backup from. It
// refuses while a store has path open (in this or another process: every
// open store holds a shared lock on the file) and checks the backup first
// (quick_check). The replaced database is kept as path + ".before-restore"
// (an older one of that name is replaced).
func RestoreFile(ctx context.Context, from, path string) error {
	problems, err := CheckFile(ctx, from, false)
	if err != nil {
		return fmt.Errorf("restore: reading the backup: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("restore: the backup %s is damaged: %s", from, strings.Join(problems, "; "))
	}
	if dir := filepath.Dir(path); dir != "." {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return fmt.Errorf("restore: %w", err)
		}
	}
	exists := true
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		exists = false
	}
	if exists {
		unlock, err := lockExclusive(path)
		if err != nil {
			return fmt.Errorf("restore: %w", err)
		}
		defer unlock()
	}
	tmp := path + ".restoring"
	if err := copyFile(from, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	if exists {
		old := path + ".before-restore"
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(old + suffix)
		}
		if err := os.Rename(path, old); err != nil {
			os.Remove(tmp)
			return fmt.Errorf("restore: keeping the old database: %w", err)
		}
		for _, suffix := range []string{"-wal", "-shm"} {
			if err := os.Rename(path+suffix, old+suffix); err != nil && !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("restore: keeping the old database: %w", err)
			}
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	if _, err := out.ReadFrom(in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}
