package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/powermeter/powermeter/internal/reading"
)

// TestDevicesKeyedBySource: every table is keyed by its source first, as
// a sharded PostgreSQL (Citus) needs of a distributed table, and nothing
// relies on a device id being unique alone: without devices_id_key (the
// index kept for servers of earlier versions during an upgrade, which a
// sharded deployment drops) new and known devices of several sources are
// registered, counted, folded and read.
func TestDevicesKeyedBySource(t *testing.T) {
	t.Parallel()
	s, _ := open(t)
	ctx := context.Background()
	rows, err := s.pool.Query(ctx, `
		SELECT x.indrelid::regclass::text, (SELECT a.attname FROM pg_attribute a WHERE a.attrelid = x.indrelid AND a.attnum = x.indkey[0])
		FROM pg_index x
		WHERE x.indisprimary AND x.indrelid = ANY (ARRAY['devices', 'recent', 'chunks', 'minutes', 'days']::regclass[])`)
	if err != nil {
		t.Fatal(err)
	}
	first := map[string]string{}
	for rows.Next() {
		var table, col string
		if err := rows.Scan(&table, &col); err != nil {
			t.Fatal(err)
		}
		first[table] = col
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, table := range []string{"devices", "recent", "chunks", "minutes", "days"} {
		if first[table] != "source_id" {
			t.Errorf("primary key of %s starts with %q, want source_id (all: %v)", table, first[table], first)
		}
	}
	if _, err := s.pool.Exec(ctx, `DROP INDEX devices_id_key`); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	for _, src := range []string{"a", "b"} {
		if err := s.EnsureSource(ctx, src, "Europe/Berlin"); err != nil {
			t.Fatal(err)
		}
	}
	insert := func(i int) {
		for _, src := range []string{"a", "b"} {
			res, err := s.Insert(ctx, src, []reading.Reading{rd("plug", at.Add(time.Duration(i)*10*time.Second), float64(i)), rd(src+"-own", at.Add(time.Duration(i)*10*time.Second), 5)})
			if err != nil || res.Inserted != 2 {
				t.Fatalf("insert %d of %s: %+v %v", i, src, res, err)
			}
		}
	}
	for i := range 3 {
		insert(i)
	}
	if _, err := s.Fold(ctx, time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	insert(3) // known devices, readings in recent and in chunks
	srcs, err := s.Sources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range srcs {
		if si.Count != 8 || len(si.Devices) != 2 {
			t.Errorf("source %s: %d readings of %v, want 8 of 2 devices", si.Name, si.Count, si.Devices)
		}
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM readings WHERE device = 'plug'`).Scan(&n); err != nil || n != 8 {
		t.Errorf("the view holds %d readings of the two plugs (%v), want 8", n, err)
	}
}
