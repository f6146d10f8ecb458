package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/powermeter/powermeter/internal/store"
	"github.com/powermeter/powermeter/internal/store/groupcommit"
)

// maxGroup caps the readings one group-commit transaction takes; more wait
// for the next one.
const maxGroup = 20000

// batch is one Insert call, validated and encoded by the caller.
type batch struct {
	source  int32
	rows    []row
	devices []int32 // device id per row

	res store.InsertResult // set when its group commits
}

// groupTx is one group-commit transaction. Apply only collects the
// batches; Prepare stores them all with one statement in a transaction it
// leaves open (the readings are written, their flush is not awaited), and
// Commit commits it: the committer writes the next group on another
// connection while this one's WAL flush is waited for. When it fails,
// groupcommit retries every batch alone, so one bad batch fails alone.
type groupTx struct {
	s       *Store
	batches []*batch
	conn    *pgxpool.Conn // in a transaction from Prepare to Commit or Rollback
}

func (s *Store) beginGroup(context.Context) (groupcommit.Tx[*batch, *batch], error) {
	return &groupTx{s: s}, nil
}

func (g *groupTx) Apply(_ context.Context, b *batch) (*batch, error) {
	g.batches = append(g.batches, b)
	return b, nil
}

// Prepare writes the group in a new transaction, trying again a few times
// after a deadlock or serialization failure.
func (g *groupTx) Prepare(ctx context.Context) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if err = g.write(ctx); err == nil || !transient(err) {
			return err
		}
		select {
		case <-time.After(time.Duration(attempt+1) * 20 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
	return err
}

// write begins a transaction on a connection of its own and stores the
// group in it, in one round trip.
func (g *groupTx) write(ctx context.Context) error {
	conn, err := g.s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("storing readings: %w", err)
	}
	// Held from here on, so that a panic on the way (recovered by the
	// committer, which then calls Rollback) still ends the transaction
	// and hands the connection back.
	g.conn = conn
	if err := g.s.storeGroupOn(ctx, conn, g.batches, true); err != nil {
		g.conn = nil
		end(conn, "ROLLBACK")
		return err
	}
	return nil
}

func (g *groupTx) Commit(ctx context.Context) error {
	if g.conn == nil {
		if err := g.Prepare(ctx); err != nil {
			return err
		}
	}
	conn := g.conn
	g.conn = nil
	defer conn.Release()
	tag, err := conn.Exec(ctx, "COMMIT")
	if err != nil {
		return fmt.Errorf("storing readings: committing: %w", err)
	}
	// COMMIT of a failed transaction answers ROLLBACK, not an error.
	if tag.String() != "COMMIT" {
		return fmt.Errorf("storing readings: committing: the transaction was rolled back (%s)", tag)
	}
	return nil
}

func (g *groupTx) Rollback() error {
	g.batches = nil
	if g.conn == nil {
		return nil
	}
	conn := g.conn
	g.conn = nil
	return end(conn, "ROLLBACK")
}

// end ends the transaction of a connection and hands the connection back
// to the pool (which closes it if it is still in a transaction).
func end(conn *pgxpool.Conn, how string) error {
	defer conn.Release()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := conn.Exec(ctx, how)
	return err
}

// transient reports errors worth retrying the same statement for.
func transient(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

type rowKey struct {
	source, device int32
	t              int64
}

// insertSQL inserts the readings into recent (those not stored yet:
// neither in recent nor folded into a chunk), makes sure each local day
// that got a new one (the zone is the source's, applied in SQL) is listed
// in days — without writing a day that is listed already: its version
// follows from the day's readings in recent (dayversion.go) — and updates
// the per-device count, first and last time. It returns the keys
// actually inserted, each with the number of devices rows updated (the
// caller checks that every device it inserted for has its row: an
// unknown device fails the group). A raw reading older than its source's
// reduced horizon (sources.reduced_before: retention kept only minutes
// there) is not inserted, so it counts as present; the horizon and the
// zone are read in the statement itself, once per source of the group
// ($14), so every server sees a raised horizon at once, without a cache
// to keep in step.
//
// It runs after lockSQL in the same transaction: the shared per-source
// locks keep the folder (which takes them exclusively) from moving rows of
// these sources into chunks meanwhile, so a reading is found either in
// recent or in its chunk, never in neither or both.
//
// Every step takes its row locks in key order, and the steps run in one
// order (readings, days, devices; the "count(*) >= 0" init plan forces
// it), so concurrent transactions from several servers cannot deadlock.
// The sources row is only read: a zone change locks the days table, so
// no insert runs while it refiles (see refileDays). Every row the
// statement touches belongs to one of the group's sources: nothing in it
// crosses sources (a Citus deployment routes it by source_id). Every
// lookup is by key (LATERAL … LIMIT 1, and the devices update joins
// only the group's few device keys), so the generic plan cannot turn one
// into a scan of devices, sources or chunks, however many there are: with
// a join, it scanned all devices, which made ingest slow down with 10 000
// sources.
const insertSQL = `
WITH input AS (
	SELECT * FROM unnest($1::int4[], $2::timestamptz[], $3::int4[], $4::int8[], $5::int8[], $6::int8[],
	                     $7::int4[], $8::int4[], $9::text[], $10::timestamptz[], $11::bool[], $12::timestamptz[], $13::int2[])
		AS u(source_id, t, device_id, power, energy_in, energy_out, temperature, voltage, phases, device_time, backfilled, hour, off)
), src AS MATERIALIZED (
	SELECT u.id, coalesce(s.reduced_before, '-infinity') AS h, s.timezone
	FROM unnest($14::int4[]) AS u(id)
	LEFT JOIN LATERAL (SELECT reduced_before, timezone FROM sources WHERE id = u.id LIMIT 1) s ON true
), fresh AS (
	SELECT i.* FROM input i
	JOIN src ON src.id = i.source_id AND i.t >= src.h
	LEFT JOIN LATERAL (SELECT c.offs FROM chunks c
		WHERE c.source_id = i.source_id AND c.hour = i.hour AND c.device_id = i.device_id LIMIT 1) c ON true
	WHERE c.offs IS NULL OR NOT (i.off = ANY (c.offs))
), ins AS (
	INSERT INTO recent (source_id, t, device_id, power, energy_in, energy_out, temperature, voltage, phases, device_time, backfilled)
	SELECT source_id, t, device_id, power, energy_in, energy_out, temperature, voltage, phases::int8[], device_time, backfilled
	FROM fresh ORDER BY source_id, t, device_id
	ON CONFLICT DO NOTHING
	RETURNING source_id, t, device_id
), ver AS (
	SELECT ` + newDayVersion + ` AS v
), dd AS (
	INSERT INTO days AS d (source_id, day, version)
	SELECT i.source_id, (i.t AT TIME ZONE src.timezone)::date, max(ver.v)
	FROM ins i JOIN src ON src.id = i.source_id CROSS JOIN ver
	GROUP BY 1, 2 ORDER BY 1, 2
	ON CONFLICT (source_id, day) DO NOTHING
	RETURNING 1
), dv AS (
	UPDATE devices AS d SET n = d.n + a.n, first_t = least(d.first_t, a.first_t), last_t = greatest(d.last_t, a.last_t)
	FROM (SELECT source_id, device_id, count(*) AS n, min(t) AS first_t, max(t) AS last_t
	      FROM ins GROUP BY 1, 2 ORDER BY 1, 2) a
	WHERE d.source_id = a.source_id AND d.id = a.device_id AND (SELECT count(*) FROM dd) >= 0
	RETURNING 1
)
SELECT source_id, t, device_id, (SELECT count(*) FROM dv) FROM ins`

// lockSQL takes the shared fold lock of every source of a group, in
// ascending order ($2 is sorted).
const lockSQL = `SELECT count(pg_advisory_xact_lock_shared($1::int4, s)) FROM unnest($2::int4[]) AS s`

// batchSender sends a pipelined batch: a connection of the pool or an
// open transaction.
type batchSender interface {
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// storeGroupOn stores one group in a transaction: the one on is in, or
// with begin one the batch begins itself (BEGIN travels with the
// statements: no round trip of its own). The caller commits it, or rolls
// it back when this fails. Readings repeated within the group are sent
// once, credited to the first batch.
func (s *Store) storeGroupOn(ctx context.Context, on batchSender, group []*batch, begin bool) error {
	var cols columns
	owner := make(map[rowKey]int, len(group))
	for gi, b := range group {
		b.res = store.InsertResult{}
		for i := range b.rows {
			k := rowKey{b.source, b.devices[i], b.rows[i].t.Unix()}
			if _, dup := owner[k]; dup {
				continue
			}
			owner[k] = gi
			cols.add(b.source, b.devices[i], &b.rows[i])
		}
	}
	srcs := make([]int32, 0, 4)
	for _, b := range group {
		srcs = append(srcs, b.source)
	}
	slices.Sort(srcs)
	srcs = slices.Compact(srcs)
	// One round trip: [BEGIN,] the locks, then the insert.
	var pb pgx.Batch
	if begin {
		pb.Queue("BEGIN")
	}
	pb.Queue(lockSQL, s.lockKey, srcs)
	pb.Queue(insertSQL, append(cols.args(), srcs)...)
	br := on.SendBatch(ctx, &pb)
	defer br.Close()
	if begin {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("storing %d readings: beginning: %w", len(cols.t), err)
		}
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("storing %d readings: locking the sources: %w", len(cols.t), err)
	}
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("storing %d readings: %w", len(cols.t), err)
	}
	var k rowKey
	var t time.Time
	var updated int64
	inserted := make([]int, len(group))
	devs := make(map[[2]int32]bool, len(group))
	_, err = pgx.ForEachRow(rows, []any{&k.source, &t, &k.device, &updated}, func() error {
		k.t = t.Unix()
		if gi, ok := owner[k]; ok {
			inserted[gi]++
		}
		devs[[2]int32{k.source, k.device}] = true
		return nil
	})
	if err != nil {
		return fmt.Errorf("storing %d readings: %w", len(cols.t), err)
	}
	if int(updated) != len(devs) {
		return fmt.Errorf("storing %d readings: %d of their %d devices are not registered", len(cols.t), len(devs)-int(updated), len(devs))
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("storing %d readings: %w", len(cols.t), err)
	}
	for gi, b := range group {
		b.res = store.InsertResult{Inserted: inserted[gi], Present: len(b.rows) - inserted[gi]}
	}
	return nil
}
