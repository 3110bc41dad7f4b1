package ledger

import (
	"math/bits"
	"reflect"
	"testing"

	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// toTlogNodes puts a ledger's tree back in the shape migration 11 wrote, before migrations 23 and
// 24: tlog_nodes, by (level, index), with each hash as lowercase hexadecimal, and no tlog_hashes.
// tlogNodesTable is tlog_nodes as migration 11 made it.
const tlogNodesTable = `CREATE TABLE tlog_nodes (
    level INTEGER NOT NULL CHECK (level >= 0 AND level < 64),
    idx   BIGINT NOT NULL CHECK (idx >= 0),
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
)`

var toTlogNodes = map[string][]string{
	"sqlite": {
		tlogNodesTable,
		`INSERT INTO tlog_nodes (level, idx, hash)
		 WITH RECURSIVE levels(l) AS (SELECT 0 UNION ALL SELECT l + 1 FROM levels WHERE l < 57)
		 SELECT l, ((leaf + 1) >> l) - 1, lower(hex(substr(hashes, 32 * l + 1, 32)))
		 FROM tlog_hashes JOIN levels ON 32 * l < length(hashes)`,
		`DROP TABLE tlog_hashes`,
		`DELETE FROM goose_db_version WHERE version_id IN (23, 24)`,
	},
	"postgres": {
		tlogNodesTable,
		`INSERT INTO tlog_nodes (level, idx, hash)
		 SELECT l, ((leaf + 1) >> l) - 1, encode(substring(hashes FROM 32 * l + 1 FOR 32), 'hex')
		 FROM tlog_hashes JOIN generate_series(0, 57) AS l ON 32 * l < length(hashes)`,
		`DROP TABLE tlog_hashes`,
		`DELETE FROM goose_db_version WHERE version_id IN (23, 24)`,
	},
}

// TestLogHashesMigration protects migrations 23 and 24 (the tree's nodes kept in a row per leaf,
// their hashes as bytes), on a ledger with every kind of entry whose tree was
// stored the way migration 11 stored it: afterwards the tree is the same one (invariant 11):
// every node carried over with its hash, the same root at every size a checkpoint was signed at,
// the same inclusion and consistency proofs, VerifyLog clean, the checkpoint signed before
// verifying against a newer one; tlog_nodes is gone, and the tree goes on growing.
func TestLogHashesMigration(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		if db.engine == "cockroachdb" {
			t.Skip("the return to migration 11's shape is written for SQLite and PostgreSQL")
		}
		ctx := t.Context()
		src := fillForCopy(t, db)
		open := src.opener(t)
		type tree struct {
			size        int64
			rows        int64
			roots       [][]byte
			inclusion   []InclusionProof
			consistency [][][]byte
		}
		read := func(l *Ledger) tree {
			t.Helper()
			var tr tree
			err := l.db.ReadOnly(ctx, func(q store.Querier) error {
				var err error
				if tr.size, err = store.LogSize(ctx, q); err != nil {
					return err
				}
				if err := q.QueryRow(ctx, "SELECT COUNT(*) FROM tlog_hashes").Scan(&tr.rows); err != nil {
					return err
				}
				for size := int64(1); size <= tr.size; size++ {
					root, err := translog.Root(uint64(size), store.LogNodes(ctx, q))
					if err != nil {
						return err
					}
					tr.roots = append(tr.roots, root)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for seq := int64(1); seq <= tr.size; seq += 3 {
				p, err := l.GetInclusionProof(ctx, seq, tr.size)
				if err != nil {
					t.Fatal(err)
				}
				tr.inclusion = append(tr.inclusion, p)
			}
			for from := int64(1); from < tr.size; from += 4 {
				p, err := l.GetConsistencyProof(ctx, from, tr.size)
				if err != nil {
					t.Fatal(err)
				}
				tr.consistency = append(tr.consistency, p)
			}
			if rep, err := l.VerifyLog(ctx, src.vkey); err != nil || !rep.OK() {
				t.Fatalf("VerifyLog = %+v, %v", rep, err)
			}
			return tr
		}

		l := open()
		before := read(l)
		if before.size < 20 || before.rows != before.size {
			t.Fatalf("before: %d rows for %d leaves, want one per leaf", before.rows, before.size)
		}
		for _, stmt := range toTlogNodes[db.engine] {
			if err := rawExec(ctx, l, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		// A tree of n leaves has 2n − popcount(n) complete nodes.
		var nodes int64
		err := l.db.ReadOnly(ctx, func(q store.Querier) error {
			return q.QueryRow(ctx, "SELECT COUNT(*) FROM tlog_nodes").Scan(&nodes)
		})
		if err != nil || nodes != 2*before.size-int64(bits.OnesCount64(uint64(before.size))) {
			t.Fatalf("at migration 11's shape: %d nodes for %d leaves (%v)", nodes, before.size, err)
		}
		l.Close()

		l = open() // runs migrations 23 and 24
		defer l.Close()
		var old int64
		err = l.db.ReadOnly(ctx, func(q store.Querier) error {
			query := `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'tlog_nodes'`
			if db.engine == "sqlite" {
				query = `SELECT COUNT(*) FROM sqlite_master WHERE name = 'tlog_nodes'`
			}
			return q.QueryRow(ctx, query).Scan(&old)
		})
		if err != nil || old != 0 {
			t.Fatalf("after migration 24: tlog_nodes is still there (%d, %v)", old, err)
		}
		after := read(l)
		if !reflect.DeepEqual(before, after) {
			t.Errorf("the tree changed:\n before %+v\n after  %+v", before, after)
		}
		// The tree grows on from the nodes carried over.
		if _, err := l.Commit(ctx, commitCmd("b-other", "siren:after-23", 1_000)); err != nil {
			t.Fatal(err)
		}
		if err := checkpointExtends(t, l, src.checkpoint, src.vkey); err != nil {
			t.Errorf("the checkpoint signed before migration 23 does not verify against a newer one: %v", err)
		}
		if rep, err := l.VerifyLog(ctx, src.vkey); err != nil || !rep.OK() {
			t.Fatalf("VerifyLog after a new award = %+v, %v", rep, err)
		}
	})
}
