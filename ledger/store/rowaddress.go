package store

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5/pgtype"
)

// Rows read by their address (PostgreSQL).
//
// A batch that releases from, pays or closes commitments, or confirms or cancels holds, reads
// them inside its SERIALIZABLE transaction. Read by key, PostgreSQL's predicate lock covers the
// primary key's whole leaf page; commitment and hold ids are UUIDv7, so the recent ones share the
// key's last leaf, into which every concurrent award or hold inserts: batches of other queues or
// processes that award and pay then abort each other (docs/benchmarks.md, "Concurrent batches
// that pay or release"). So a batch first peeks at where its rows are, outside any transaction
// (peekRows), and inside it reads the rows at those addresses (loadAt): a read by ctid, a TID
// scan, takes the predicate locks of the rows it reads, never of the index. A row that has moved
// since (updated, or its slot reused) and an id with no row are read by key, as before.

// RowAddresses are rows' addresses (ctid) by id, from peekRows.
type RowAddresses map[string]pgtype.TID

// peekRows reads where the rows of ids are in table, outside any transaction, on PostgreSQL
// proper; elsewhere, or on any error, it returns nil and the rows are read by key.
func peekRows(ctx context.Context, q Querier, table string, ids []string) RowAddresses {
	if p, ok := q.(*pgxQuerier); !ok || !p.postgres || len(ids) == 0 {
		return nil
	}
	rs, err := queryByKeys(ctx, q, "SELECT id, ctid FROM "+table+" WHERE id = ANY($1)", ids)
	if err != nil {
		return nil
	}
	defer rs.Close()
	out := RowAddresses{}
	for rs.Next() {
		var (
			id  string
			tid pgtype.TID
		)
		if rs.Scan(&id, &tid) != nil {
			return nil
		}
		out[id] = tid
	}
	if rs.Err() != nil {
		return nil
	}
	return out
}

// loadAt reads, inside a PostgreSQL transaction, the rows of ids at the addresses rows gives
// (selectFrom is "SELECT <columns> FROM <table>", scan reads its columns, id names a row), with
// sequential scans off (a TID scan); a row found at its address must be the one peeked there.
// The rest, and every row on other engines, is read by key with byKey.
func loadAt[T any](ctx context.Context, q Querier, selectFrom string, ids []string, rows RowAddresses,
	scan func(Scanner) (T, error), id func(T) string,
	byKey func(context.Context, Querier, []string) (map[string]*T, error)) (map[string]*T, error) {
	p, ok := indexed(q)
	if !ok || len(rows) == 0 {
		return byKey(ctx, q, ids)
	}
	tids := make([]pgtype.TID, 0, len(rows))
	for _, id := range ids {
		if tid, ok := rows[id]; ok {
			tids = append(tids, tid)
		}
	}
	found := map[string]*T{}
	err := p.queryIndexed(ctx, "SELECT ctid, "+strings.TrimPrefix(selectFrom, "SELECT ")+" WHERE ctid = ANY($1)",
		[]any{tids}, func(s Scanner) error {
			var tid pgtype.TID
			v, err := scan(prefixScanner{s, &tid})
			if err != nil {
				return err
			}
			if want, ok := rows[id(v)]; ok && want == tid {
				found[id(v)] = &v
			}
			return nil
		})
	if err != nil {
		return nil, err
	}
	var rest []string
	for _, id := range ids {
		if found[id] == nil {
			rest = append(rest, id)
		}
	}
	if len(rest) == 0 {
		return found, nil
	}
	more, err := byKey(ctx, q, rest)
	for id, v := range more {
		found[id] = v
	}
	return found, err
}

// prefixScanner scans one more column, first, into first.
type prefixScanner struct {
	s     Scanner
	first any
}

func (p prefixScanner) Scan(dest ...any) error { return p.s.Scan(append([]any{p.first}, dest...)...) }
