package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// The journal's order. Every journal entry gets a position, its sequence (1, 2, 3, …, no gap),
// once it has committed: AssignSequences, run by one transaction at a time (they all lock the
// journal_head row first), gives the entries that have none the next positions, in (created_at,
// id) order, and only entries with a position are served to readers. Hence what invariant 9 asks:
// a reader that has seen position P never later finds an entry at a position ≤ P, since every
// position ≤ P was assigned, all at once, before P was visible — whatever order the write
// transactions committed in, and however many processes write. A transaction that commits late
// simply gets a later position.
//
// On SQLite, write transactions run one at a time: the position is taken inside the write
// transaction itself (Engine.InlineSequence), so entries never wait for one. InsertEntries writes
// it with the entry (inlinePositioner), in the order AssignSequences would give; AssignSequences,
// run again before the transaction commits, finds nothing left to position.

// MaxSequenceBatch bounds the entries one AssignSequences call positions.
const MaxSequenceBatch = 5000

// AssignSequences gives up to limit entries without a position the next positions, in the
// transaction of q (Engine.Sequencing, or a write transaction where InlineSequence). It returns
// how many it assigned and the last position.
func AssignSequences(ctx context.Context, q Querier, lock string, limit int) (assigned int, last int64, err error) {
	if err := q.QueryRow(ctx, "SELECT last_seq FROM journal_head WHERE id = 1"+lock).Scan(&last); err != nil {
		return 0, 0, fmt.Errorf("reading the journal head: %w", err)
	}
	if p, ok := indexed(q); ok {
		return assignBySet(ctx, p, last, limit)
	}
	rs, err := q.Query(ctx, "SELECT id FROM journal_entries WHERE seq IS NULL ORDER BY created_at, id LIMIT $1", limit)
	if err != nil {
		return 0, last, err
	}
	var ids []string
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			rs.Close()
			return 0, last, err
		}
		ids = append(ids, id)
	}
	rs.Close()
	if err := rs.Err(); err != nil || len(ids) == 0 {
		return 0, last, err
	}
	// One statement per chunk: UPDATE … SET seq = CASE id WHEN … END, valid on every engine.
	const chunk = 400
	for start := 0; start < len(ids); start += chunk {
		part := ids[start:min(start+chunk, len(ids))]
		var b strings.Builder
		args := make([]any, 0, 3*len(part))
		b.WriteString("UPDATE journal_entries SET seq = CASE id")
		for i, id := range part {
			args = append(args, id, last+int64(start+i+1))
			fmt.Fprintf(&b, " WHEN $%d THEN CAST($%d AS BIGINT)", len(args)-1, len(args))
		}
		b.WriteString(" END WHERE seq IS NULL AND id IN (")
		for i, id := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			args = append(args, id)
			fmt.Fprintf(&b, "$%d", len(args))
		}
		b.WriteString(")")
		want := int64(len(part))
		positioned := Expect(want, func(n int64) error {
			return fmt.Errorf("positioning journal entries: %d of %d updated", n, want)
		})
		if err := q.Write(ctx, b.String(), args, positioned); err != nil {
			return 0, last, err
		}
	}
	last += int64(len(ids))
	if err := q.Write(ctx, "UPDATE journal_head SET last_seq = $1 WHERE id = 1", []any{last}, nil); err != nil {
		return 0, last, err
	}
	return len(ids), last, nil
}

// positionBySet is the statement that positions, on PostgreSQL proper, up to $2 entries after
// position $1, in one round trip: the entries without a position are numbered in the server
// (row_number over the unpositioned index's order), updated from that set, and counted. Each is
// found by its primary key (joinByKeyOff; no condition on seq in the join, which would let the
// planner search the unpositioned index once per entry): a hash join would read every entry an
// index lists as unpositioned, which includes the old versions of the entries positioned since
// the last VACUUM. AssignSequences' portable form read their ids, then sent them back in a CASE of
// up to 400 branches per statement: 50 µs of PostgreSQL's time per award on one hot envelope, 212
// in calls of 1,000, against 39 and 30 (docs/benchmarks.md, "The sequencer's statement"). The
// append-only trigger refuses to position an entry twice.
const positionBySet = `WITH next AS (
	SELECT id, CAST($1 AS BIGINT) + row_number() OVER (ORDER BY created_at, id) AS seq
	FROM journal_entries WHERE seq IS NULL ORDER BY created_at, id LIMIT $2),
moved AS (
	UPDATE journal_entries j SET seq = next.seq FROM next WHERE j.id = next.id
	RETURNING j.seq)
SELECT count(*), COALESCE(max(seq), CAST($1 AS BIGINT)), COALESCE(min(seq), CAST($1 AS BIGINT) + 1) FROM moved`

// assignBySet is AssignSequences on PostgreSQL proper (positionBySet), with last read under the
// journal head's lock. The positions it gave must be last+1 … last+n, with no gap.
func assignBySet(ctx context.Context, p *pgxQuerier, last int64, limit int) (int, int64, error) {
	var (
		n        int64
		low, top int64
	)
	err := p.queryPlanned(ctx, joinByKeyOff, joinByKeyOn, positionBySet, []any{last, limit}, func(s Scanner) error {
		return s.Scan(&n, &top, &low)
	})
	if err != nil {
		return 0, last, fmt.Errorf("positioning journal entries: %w", err)
	}
	if n == 0 {
		return 0, last, nil
	}
	if low != last+1 || top != last+n {
		return 0, last, fmt.Errorf("positioning journal entries: %d positioned at %d…%d, want %d…%d", n, low, top, last+1, last+n)
	}
	moved := Expect(1, func(int64) error { return errors.New("positioning journal entries: the journal head was not updated") })
	if err := p.Write(ctx, "UPDATE journal_head SET last_seq = $1 WHERE id = 1", []any{top}, moved); err != nil {
		return 0, last, err
	}
	return int(n), top, nil
}

// inlinePositioner is the Querier of a write transaction of an engine whose writers run one at a
// time (SQLite): InsertEntries inserts entries with their positions (positionFrom) instead of
// leaving them to AssignSequences' UPDATE. On SQLite that UPDATE rewrote each row just inserted,
// took it out of the unpositioned index and put it in the positions' index: about as much CPU
// and WAL as the insert itself (docs/benchmarks.md, "Positions written with the entry").
type inlinePositioner interface{ positionsInline() bool }

// positionFrom reserves the next n positions, in the transaction of q, which must be the only
// writer: it positions first any entry left without one (AssignSequences: an entry written
// before the journal had positions, or by a path that does not position), then moves the head
// past the n reserved. It returns the first of them.
func positionFrom(ctx context.Context, q Querier, n int) (int64, error) {
	for {
		assigned, last, err := AssignSequences(ctx, q, "", MaxSequenceBatch)
		if err != nil {
			return 0, err
		}
		if assigned == MaxSequenceBatch {
			continue
		}
		moved := Expect(1, func(int64) error {
			return errors.New("reserving journal positions: the journal head was not updated")
		})
		if err := q.Write(ctx, "UPDATE journal_head SET last_seq = $1 WHERE id = 1", []any{last + int64(n)}, moved); err != nil {
			return 0, err
		}
		return last + 1, nil
	}
}

// Unsequenced reports whether some committed journal entry has no position yet. It asks in the
// order of journal_entries_unsequenced, so that the planner reads that index whatever its
// statistics say: taken while many entries waited (a bulk load), they made a sequential scan
// look as cheap as one row, and it read the journal from its start, where every entry has its
// position (TestUnsequencedReadsNoWholeJournal).
func Unsequenced(ctx context.Context, q Querier) (bool, error) {
	var one int
	err := q.QueryRow(ctx, "SELECT 1 FROM journal_entries WHERE seq IS NULL ORDER BY created_at, id LIMIT 1").Scan(&one)
	if errors.Is(err, ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}
