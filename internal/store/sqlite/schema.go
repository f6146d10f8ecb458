package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// migrations[i] brings the schema from version i to i+1. The version lives
// in PRAGMA user_version. Append only: never edit a released step.
var migrations = []string{
	// 1: sources, devices, day versions; each source's readings table
	// (readingsTable) is created with the source.
	`
CREATE TABLE sources (
	id       INTEGER PRIMARY KEY,         -- from 1
	name     TEXT NOT NULL UNIQUE,
	timezone TEXT NOT NULL,               -- IANA zone of its local days
	vclock   INTEGER NOT NULL DEFAULT 0   -- last day version handed out
);
CREATE TABLE devices (
	src      INTEGER NOT NULL REFERENCES sources(id),
	id       INTEGER NOT NULL,            -- from 0 within the source
	name     TEXT NOT NULL,
	n        INTEGER NOT NULL DEFAULT 0,  -- readings stored
	first_ts INTEGER,                     -- oldest reading (ts units)
	last_ts  INTEGER,                     -- newest reading (ts units)
	PRIMARY KEY (src, id),
	UNIQUE (src, name)
) WITHOUT ROWID;
CREATE TABLE days (
	src             INTEGER NOT NULL,
	day             TEXT NOT NULL,              -- YYYY-MM-DD in the source's zone
	version         INTEGER NOT NULL,           -- from sources.vclock
	summary         BLOB,
	summary_version INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (src, day)
) WITHOUT ROWID;
`,
	// 2: day summaries imported without readings (the PHP app's
	// chart_stats.csv): energy and peak of days whose raw files are gone.
	`
CREATE TABLE imported_days (
	src     INTEGER NOT NULL REFERENCES sources(id),
	day     TEXT NOT NULL,        -- YYYY-MM-DD in the source's zone
	in_wh   REAL NOT NULL,
	out_wh  REAL NOT NULL,
	peak_w  REAL NOT NULL,
	peak_at TEXT NOT NULL DEFAULT '',
	first   TEXT NOT NULL DEFAULT '',
	last    TEXT NOT NULL DEFAULT '',
	origin  TEXT NOT NULL,
	PRIMARY KEY (src, day)
) WITHOUT ROWID;
`,
	// 3: retention. Before reduced_before (ts units) a source holds only
	// reduced readings, one per device and UTC minute, in its readings
	// table (the extra blob's xReduced flag); NULL: nothing reduced.
	`
ALTER TABLE sources ADD COLUMN reduced_before INTEGER;
`,
	// 4: a reduced reading's blob may end with the part of its energy in
	// the minutes without readings before it (Reduced.Gap, codec.go). No
	// table changes: the step marks the file, so a program that would
	// refuse such a blob refuses the file instead.
	`
SELECT 1;
`,
}

// readingsTable is the DDL of the readings table of source id: one table
// per source (a partition), so the source costs no bytes in its rows. A
// row is clustered on (ts, dev): a time range is one contiguous scan in
// (time, device id) order. A migration that changes this layout must
// rewrite every readings_<id> table and this function together.
func readingsTable(id int64) string {
	return fmt.Sprintf(`CREATE TABLE %s (
	ts  INTEGER NOT NULL,  -- seconds since 2000-01-01T00:00:00Z
	dev INTEGER NOT NULL,  -- devices.id within the source
	p   INTEGER NOT NULL,  -- power, mW
	v,                     -- NULL: nothing more; INTEGER: temperature in 0.01 °C;
	                       -- BLOB: flags + varints (energy, temperature, voltage,
	                       -- device time, phases, backfilled): see codec.go
	PRIMARY KEY (ts, dev)
) WITHOUT ROWID`, readings(id))
}

// readings is the name of the readings table of source id.
func readings(id int64) string { return fmt.Sprintf("readings_%d", id) }

// SchemaVersion is the schema version this code writes.
var SchemaVersion = len(migrations)

// migrate applies the missing migrations in one transaction.
func migrate(ctx context.Context, w *sql.DB) error {
	tx, err := w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("migrate: read schema version: %w", err)
	}
	if v > len(migrations) {
		return fmt.Errorf("schema version %d is newer than this program knows (%d): upgrade powermeter", v, len(migrations))
	}
	if v == len(migrations) {
		return nil
	}
	for i := v; i < len(migrations); i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(migrations))); err != nil {
		return fmt.Errorf("migrate: set schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
