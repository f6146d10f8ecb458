package postgres

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/powermeter/powermeter/internal/store/groupcommit"
)

// Device registration is batched like inserts: the first readings of many
// sources at once (a server starting with 100 000 homes, or a fleet
// reconnecting) register all their new devices with one round trip, not
// two per source. Registration commits on its own: a device row without
// readings is invisible.

// devReq asks for the ids of the named devices of one source.
type devReq struct {
	source int32
	names  []string
	ids    map[string]int32 // filled when its group commits
}

type devTx struct {
	s    *Store
	reqs []*devReq
}

func (s *Store) beginDevices(context.Context) (groupcommit.Tx[*devReq, *devReq], error) {
	return &devTx{s: s}, nil
}

func (d *devTx) Apply(_ context.Context, r *devReq) (*devReq, error) {
	d.reqs = append(d.reqs, r)
	return r, nil
}

func (d *devTx) Rollback() error { d.reqs = nil; return nil }

// Commit registers every requested device (in key order, so servers
// registering the same devices cannot deadlock) and reads all their ids,
// in one round trip.
func (d *devTx) Commit(ctx context.Context) error {
	type key struct {
		source int32
		name   string
	}
	var keys []key
	for _, r := range d.reqs {
		for _, n := range r.names {
			keys = append(keys, key{r.source, n})
		}
	}
	slices.SortFunc(keys, func(a, b key) int {
		if a.source != b.source {
			return int(a.source - b.source)
		}
		return strings.Compare(a.name, b.name)
	})
	keys = slices.Compact(keys)
	srcs := make([]int32, len(keys))
	names := make([]string, len(keys))
	for i, k := range keys {
		srcs[i], names[i] = k.source, k.name
	}
	var b pgx.Batch
	b.Queue(`INSERT INTO devices (source_id, name)
		SELECT s, n FROM unnest($1::int4[], $2::text[]) AS u(s, n) ORDER BY s, n COLLATE "C"
		ON CONFLICT (source_id, name) DO NOTHING`, srcs, names)
	b.Queue(`SELECT d.id, d.source_id, d.name FROM unnest($1::int4[], $2::text[]) AS u(s, n)
		JOIN LATERAL (SELECT id, source_id, name FROM devices WHERE source_id = u.s AND name = u.n) d ON true`, srcs, names)
	br := d.s.pool.SendBatch(ctx, &b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("registering %d devices: %w", len(keys), err)
	}
	rows, err := br.Query()
	if err != nil {
		return fmt.Errorf("registering %d devices: %w", len(keys), err)
	}
	found := make(map[key]int32, len(keys))
	var k key
	var id int32
	_, err = pgx.ForEachRow(rows, []any{&id, &k.source, &k.name}, func() error {
		found[k] = id
		return nil
	})
	if err != nil {
		return fmt.Errorf("registering %d devices: %w", len(keys), err)
	}
	if err := br.Close(); err != nil {
		return fmt.Errorf("registering %d devices: %w", len(keys), err)
	}
	d.s.mu.Lock()
	for k, id := range found {
		d.s.devices[devKey{k.source, k.name}] = id
		d.s.names[id] = k.name
	}
	d.s.mu.Unlock()
	for _, r := range d.reqs {
		r.ids = make(map[string]int32, len(r.names))
		for _, n := range r.names {
			id, ok := found[key{r.source, n}]
			if !ok {
				return fmt.Errorf("registering device %q: not found after insert", n)
			}
			r.ids[n] = id
		}
	}
	return nil
}
