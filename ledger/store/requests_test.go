package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// Invariant 5 across the upgrade that scoped request ids per caller: a row recorded under a bare
// request id must still be found by a retry, on every path that can bring one into a ledger. A
// lookup names bare ids only where requests_bare_keys has its row (migration 19), so each path
// must write that row with them:
//   - migration 19 itself, on a ledger that already holds such a row (its statements are run
//     again here, as THE RULE of migrate.go allows, on a ledger where the row was written behind
//     the ledger's back), and not on a ledger that holds none;
//   - InsertRequests, with any row under a bare id.
//
// `ledgerd copy` carries the row like any other (TestCopyCarriesBareRequestKeys, ledger package).
func TestBareRequestKeysAreLookedUpWhereRecorded(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := t.Context()
		db := openEngine(t, database)
		at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
		scoped := core.RequestKey("alice", "r-1")
		marked := func() bool {
			t.Helper()
			var n int
			if err := db.Reader().QueryRow(ctx, "SELECT count(*) FROM requests_bare_keys").Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n == 1
		}
		found := func(keys ...string) map[string]core.Prior {
			t.Helper()
			priors, err := LoadRequests(ctx, db.Reader(), keys)
			if err != nil {
				t.Fatal(err)
			}
			return priors
		}
		rerunMigration19 := func() {
			t.Helper()
			dialect := db.Name()
			if dialect == "cockroachdb" {
				dialect = "postgres"
			}
			for _, stmt := range requestsBareKeys[dialect] {
				if err := db.ReadWrite(ctx, func(q Querier) error { _, err := q.Exec(ctx, stmt); return err }); err != nil {
					t.Fatalf("%s: %v", stmt, err)
				}
			}
		}
		insertRaw := func(key string) {
			t.Helper()
			if err := db.ReadWrite(ctx, func(q Querier) error {
				_, err := q.Exec(ctx, `INSERT INTO requests (request_id, operation, fingerprint, outcome, created_at)
					VALUES ($1, 'result', 'f', '{}', $2)`, key, micros(at))
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}

		// A ledger of scoped rows only: no row, before and after the migration runs again.
		if err := db.ReadWrite(ctx, func(q Querier) error {
			return InsertRequests(ctx, q, at, []core.RequestRow{{Key: scoped, Fingerprint: "f", Outcome: core.Outcome{Result: []byte(`{}`)}}})
		}); err != nil {
			t.Fatal(err)
		}
		rerunMigration19()
		if marked() {
			t.Fatal("requests_bare_keys has its row on a ledger whose request log holds no bare request id")
		}
		if got := found(core.LookupKeys("alice", "r-1")...); len(got) != 1 || got[scoped].Fingerprint != "f" {
			t.Fatalf("lookup of a scoped row found %v", got)
		}

		// A bare row written as the code before the scoping did: not looked up until migration
		// 19 sees it (the state it repairs), then found.
		insertRaw("r-old")
		if got := found(core.LookupKeys("alice", "r-old")...); len(got) != 0 {
			t.Fatalf("found %v before requests_bare_keys has its row; the lookup does not depend on it", got)
		}
		rerunMigration19()
		if !marked() {
			t.Fatal("migration 19 did not record that the request log holds a bare request id")
		}
		if got := found(core.LookupKeys("alice", "r-old")...); len(got) != 1 || got["r-old"].Fingerprint != "f" {
			t.Fatalf("lookup of a bare row after migration 19 found %v", got)
		}
		// Both kinds of keys in one lookup, as a batch names them.
		if got := found(append(core.LookupKeys("alice", "r-1"), core.LookupKeys("bob", "r-old")...)...); len(got) != 2 {
			t.Fatalf("a lookup of both kinds found %v, want the scoped row and the bare one", got)
		}
		// The row is kept: removing it would hide the bare rows again.
		err := db.ReadWrite(ctx, func(q Querier) error { _, err := q.Exec(ctx, "DELETE FROM requests_bare_keys"); return err })
		if err == nil || !marked() {
			t.Fatalf("DELETE FROM requests_bare_keys: %v, and the row is there: %v; want it refused", err, marked())
		}
	})
}

// InsertRequests of a row under a bare request id writes requests_bare_keys' row in the same
// transaction, so that the row it wrote is found.
func TestInsertRequestsMarksBareKeys(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		ctx := t.Context()
		db := openEngine(t, database)
		if err := db.ReadWrite(ctx, func(q Querier) error {
			return InsertRequests(ctx, q, time.Now(), []core.RequestRow{
				{Key: core.RequestKey("alice", "r-2"), Fingerprint: "f2", Outcome: core.Outcome{Result: []byte(`{}`)}},
				{Key: "r-old", Fingerprint: "f", Outcome: core.Outcome{Result: []byte(`{}`)}},
			})
		}); err != nil {
			t.Fatal(err)
		}
		priors, err := LoadRequests(ctx, db.Reader(), core.LookupKeys("alice", "r-old"))
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := core.FindPrior(priors, "alice", "r-old"); !ok || p.Fingerprint != "f" {
			t.Fatalf("a bare row written by InsertRequests is not found: %v", priors)
		}
	})
}

// openEngine opens the ledger database at database for a test, closed when it ends.
func openEngine(t *testing.T, database string) Engine {
	t.Helper()
	db, err := Open(t.Context(), database, Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// openOneConnection opens a new PostgreSQL database with a pool of one connection: the
// backend's own counts (pg_stat_xact_*, pg_stat_get_xact_*) are then those of every statement.
func openOneConnection(t *testing.T) Engine {
	t.Helper()
	db, err := Open(t.Context(), testdb.Postgres(t), Config{MaxConns: 1, TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// TestKeyLookupsArePlannedForTheTableAsItIs: the request log, read by a list of keys, is never
// read whole once it has grown, on a connection that looked keys up while it was small
// (queryByKeys). PostgreSQL would otherwise keep the generic plan it settles on after five runs of
// one statement, made for a table of a few rows: a sequential scan. The count of sequential scans
// comes from pg_stat_xact_user_tables, read before and after the lookup; the pool has one
// connection, so every lookup runs on the connection whose plans are at stake.
func TestKeyLookupsArePlannedForTheTableAsItIs(t *testing.T) {
	t.Parallel()
	db := openOneConnection(t)
	ctx := t.Context()
	at := time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)
	record := func(from, n int) {
		t.Helper()
		rows := make([]core.RequestRow, n)
		for i := range rows {
			rows[i] = core.RequestRow{Key: core.RequestKey("alice", fmt.Sprintf("r-%06d", from+i)), Fingerprint: "f",
				Outcome: core.Outcome{Result: []byte(`{}`)}}
		}
		if err := db.ReadWrite(ctx, func(q Querier) error { return InsertRequests(ctx, q, at, rows) }); err != nil {
			t.Fatal(err)
		}
	}
	keys := []string{core.RequestKey("alice", "r-000001"), core.RequestKey("alice", "r-000002"), core.RequestKey("bob", "r-1")}
	// Each lookup in a transaction that reads the backend's counts of scans before and after it
	// (they are not flushed to the shared statistics inside a transaction).
	lookup := func() (found int, seqScans, indexScans int64) {
		t.Helper()
		counts := func(q Querier) (seq, idx int64, err error) {
			err = q.QueryRow(ctx, `SELECT COALESCE(sum(seq_scan), 0), COALESCE(sum(idx_scan), 0)
				FROM pg_stat_xact_user_tables WHERE relname = 'requests'`).Scan(&seq, &idx)
			return seq, idx, err
		}
		err := db.ReadWrite(ctx, func(q Querier) error {
			seq0, idx0, err := counts(q)
			if err != nil {
				return err
			}
			priors, err := LoadRequests(ctx, q, keys)
			found = len(priors)
			if err != nil {
				return err
			}
			seq1, idx1, err := counts(q)
			seqScans, indexScans = seq1-seq0, idx1-idx0
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return found, seqScans, indexScans
	}
	record(0, 5)
	for range 8 { // more than the five custom plans after which PostgreSQL may keep a generic one
		lookup()
	}
	record(5, 20_000)
	found, seqScans, indexScans := lookup()
	if found != 2 {
		t.Fatalf("the lookup found %d of its keys; want the 2 recorded", found)
	}
	if seqScans != 0 || indexScans == 0 {
		t.Fatalf("a lookup of 3 keys in a request log of 20,005 rows made %d sequential scans and %d index scans; "+
			"want it read by its primary key only", seqScans, indexScans)
	}
}
