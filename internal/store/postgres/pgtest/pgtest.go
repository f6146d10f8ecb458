// Package pgtest gives tests and benchmarks a PostgreSQL database URL whose
// search_path is a fresh schema of their own, dropped at cleanup, so tests
// run in parallel and repeatedly against one server.
//
// The server comes from POWERMETER_TEST_POSTGRES (a postgres:// URL). When
// it is unset the test is skipped, except with CI=true, where it fails.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env is the variable naming the test server.
const Env = "POWERMETER_TEST_POSTGRES"

// Server returns the test server's URL, or skips (fails under CI) tb.
func Server(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv(Env)
	if dsn == "" {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("%s is not set: PostgreSQL tests must run in CI (e.g. %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable)", Env, Env)
		}
		tb.Skipf("PostgreSQL tests skipped: set %s=postgres://postgres@127.0.0.1:5432/test?sslmode=disable", Env)
	}
	return dsn
}

// URL creates a fresh schema on the test server and returns a URL whose
// search_path is that schema; the schema is dropped when tb ends.
func URL(tb testing.TB) string {
	tb.Helper()
	dsn := Server(tb)
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		tb.Fatal(err)
	}
	schema := "pmtest_" + hex.EncodeToString(b[:])
	u, err := Schema(dsn, schema)
	if err != nil {
		tb.Fatal(err)
	}
	if err := Exec(dsn, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
		tb.Fatalf("creating test schema: %v", err)
	}
	tb.Cleanup(func() {
		if err := Exec(dsn, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`); err != nil {
			tb.Errorf("dropping test schema %s: %v", schema, err)
		}
	})
	return u
}

// Schema returns dsn with its search_path set to schema and a small pool
// (many tests share the server's connection limit).
func Schema(dsn, schema string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%s: want a postgres:// URL", Env)
	}
	q := u.Query()
	q.Set("search_path", schema)
	if q.Get("pool_max_conns") == "" {
		q.Set("pool_max_conns", "4")
	}
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// Exec runs one statement on the server named by dsn.
func Exec(dsn, sql string, args ...any) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql, args...)
	return err
}
