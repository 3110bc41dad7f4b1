package store

import (
	"context"
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// SQL helpers. The statements of this package are the same on SQLite, PostgreSQL and CockroachDB. Every write touches
// rows by primary key or appends, so that transactions on different envelopes do not read each
// other's rows.

func micros(t time.Time) int64     { return t.UnixMicro() }
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

// placeholders returns "($n+1, $n+2, …)" for one row of width columns starting after n.
func placeholders(n, width int) string {
	b := make([]byte, 0, width*6+2)
	return string(appendPlaceholders(b, n, width))
}

// appendPlaceholders appends "($n+1, $n+2, …)" to b: without fmt, which took 5 % of ledgerd's CPU
// per award when every multi-row INSERT was spelled out with it.
func appendPlaceholders(b []byte, n, width int) []byte {
	b = append(b, '(')
	for i := range width {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(n+i+1), 10)
	}
	return append(b, ')')
}

// maxRowsPerInsert keeps every statement under SQLite's and PostgreSQL's limits on bound
// parameters (32,766 and 65,535).
const maxRowsPerInsert = 500

// maxParamsPerInsert bounds the bound parameters of one multi-row INSERT (see bulkInsert).
const maxParamsPerInsert = 1000

// copyThreshold is the row count from which an engine that can COPY rows in (PostgreSQL) does so
// instead of INSERT: parsing and binding thousands of parameters costs more than the round trip.
const copyThreshold = 100

// maxRowsPerCachedInsert bounds the rows of one INSERT where statements are prepared once
// (insertLimiter).
const maxRowsPerCachedInsert = 512

// insertLimiter is a Querier that keeps its prepared statements and binds up to maxInsertParams
// parameters in one (SQLite's write transactions).
type insertLimiter interface{ maxInsertParams() int }

// copier is a Querier that can COPY rows into a table (PostgreSQL).
type copier interface {
	copyRows(ctx context.Context, table string, columns []string, rows [][]any) (bool, error)
}

// bulkInsert writes rows with multi-row INSERT statements (or COPY, for many rows where the engine
// can); a statement that inserts fewer rows than it was given fails the transaction with onShort.
func bulkInsert(ctx context.Context, q Querier, table string, columns []string, rows [][]any, suffix string, onShort error) error {
	if c, ok := q.(copier); ok && suffix == "" && len(rows) >= copyThreshold {
		if done, err := c.copyRows(ctx, table, columns, rows); done || err != nil {
			return err
		}
	}
	// Each statement binds at most maxParamsPerInsert parameters (PostgreSQL: its few rows go
	// in one statement; COPY takes the many), or the engine's own limit where statements are
	// prepared once and kept (SQLite): there rows go in chunks of a power of two, so that a few
	// sizes of statement serve every batch.
	perStatement := max(1, min(maxRowsPerInsert, maxParamsPerInsert/max(1, len(columns))))
	limiter, pow2 := q.(insertLimiter)
	if pow2 {
		perStatement = max(1, min(maxRowsPerCachedInsert, limiter.maxInsertParams()/max(1, len(columns))))
	}
	for start := 0; start < len(rows); {
		n := min(perStatement, len(rows)-start)
		if pow2 {
			n = 1 << (bits.Len(uint(n)) - 1)
		}
		chunk := rows[start : start+n]
		start += n
		b := make([]byte, 0, 64+len(chunk)*len(columns)*6)
		b = append(b, "INSERT INTO "...)
		b = append(b, table...)
		b = append(b, " ("...)
		b = append(b, strings.Join(columns, ", ")...)
		b = append(b, ") VALUES "...)
		args := make([]any, 0, len(chunk)*len(columns))
		for i, row := range chunk {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = appendPlaceholders(b, len(args), len(columns))
			args = append(args, row...)
		}
		b = append(b, suffix...)
		want := int64(len(chunk))
		if err := q.Write(ctx, string(b), args, Expect(want, func(int64) error { return onShort })); err != nil {
			return err
		}
	}
	return nil
}

// keysIn returns the condition that column is one of keys, with its arguments, numbered after
// n: on PostgreSQL and CockroachDB one array parameter (column = ANY($n+1)), so that a statement
// of a thousand keys is not a thousand parameters to parse and plan; elsewhere one parameter per
// key (column IN ($n+1, …)).
func keysIn[K string | int64](q Querier, column string, n int, keys []K) (string, []any) {
	if _, ok := q.(*pgxQuerier); ok {
		return column + " = ANY($" + strconv.Itoa(n+1) + ")", []any{keys}
	}
	list, args := inList(n, keys)
	return column + " IN (" + list + ")", args
}

// queryByKeys runs a read of rows by a list of keys (keysIn) of a table that grows with every
// award: the request log, commitments, holds. On PostgreSQL the statement is planned for its
// arguments each time it runs (pgx's QueryExecModeCacheDescribe), never from a generic plan a
// connection cached. A generic plan made while the table was new and small is a sequential scan,
// and the connection kept it as the table grew: measured on a fresh ledger, a few lookups of each
// second read the whole request log (tens of thousands of rows) and a batch's lookup took 2.3–3.8
// ms instead of 1.4; inside a SERIALIZABLE transaction a sequential scan also takes a predicate
// lock on the whole table, which makes every concurrent writer of it conflict. Planning each time
// costs little with the keys in one array parameter. Other engines run the query as it is.
func queryByKeys(ctx context.Context, q Querier, query string, args ...any) (Rows, error) {
	if p, ok := q.(*pgxQuerier); ok {
		return p.Query(ctx, query, append([]any{pgx.QueryExecModeCacheDescribe}, args...)...)
	}
	return q.Query(ctx, query, args...)
}

// setColumn is a column updateByKeys sets: its name, its SQL type, and its values, a slice with
// one value per key (nil pointers for NULL).
type setColumn struct {
	name, sqlType string
	values        any
}

// maxRowsPerUpdate bounds the rows one updateByKeys statement writes: each row finds its values
// by array_position, a search of the statement's keys.
const maxRowsPerUpdate = 100

// updateByKeys holds back, with writeIndexed, an UPDATE of table (PostgreSQL) that sets cols of
// each row whose id is one of ids to that id's values; where, if not empty, adds a condition
// ("AND …"). The ids are sent as the key's type: uuid for a table whose id migration 21 made a
// native UUID (uuidColumns), text otherwise. The rows are found by id = ANY($1), read through the
// key's index (indexedStatements, envelopes.go). short is the error when fewer rows than ids were
// updated.
func (p *pgxQuerier) updateByKeys(table string, ids []string, cols []setColumn, where string, short func(n int64) error) {
	keyType := "text"
	if slices.Contains(uuidColumns[table], "id") {
		keyType = "uuid"
	}
	var names, values strings.Builder
	args := []any{ids}
	for i, c := range cols {
		if i > 0 {
			names.WriteString(", ")
			values.WriteString(", ")
		}
		names.WriteString(c.name)
		args = append(args, c.values)
		fmt.Fprintf(&values, "($%d::%s[])[k.i]", len(args), c.sqlType)
	}
	p.writeIndexed(fmt.Sprintf("UPDATE %s SET (%s) = (SELECT %s FROM (SELECT array_position($1::%s[], %s.id) AS i) AS k) "+
		"WHERE id = ANY($1::%s[])%s", table, names.String(), values.String(), keyType, table, keyType, where), args,
		Expect(int64(len(ids)), short))
}

// inChunks calls write with rows cut in chunks of at most maxRowsPerUpdate.
func inChunks[T any](rows []T, write func(part []T)) {
	for start := 0; start < len(rows); start += maxRowsPerUpdate {
		write(rows[start:min(start+maxRowsPerUpdate, len(rows))])
	}
}

// inList returns "$n+1, $n+2, …" and the args for a list of values.
func inList[V string | int64](n int, values []V) (string, []any) {
	b := make([]byte, 0, len(values)*6)
	args := make([]any, len(values))
	for i, v := range values {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, '$')
		b = strconv.AppendInt(b, int64(n+i+1), 10)
		args[i] = v
	}
	return string(b), args
}

// Request log.
