package store

import "slices"

// Migration 11, the transparency log's tables (issue 14, docs/transparency.md): the journal as an RFC 6962 Merkle tree
// whose leaf n-1 is the entry at position n. tlog_nodes keeps the hash (lowercase hex SHA-256) of
// every complete perfect subtree, by level (0: the leaves) and index, written by the transaction
// that positions the entries (store/tlog.go), so that a root or a proof reads O(log n) rows.
// tlog_head is the tree's size; tlog_checkpoints keeps every signed checkpoint.
//
// Like the journal, the tables are append-only inside the database (invariant 6): node hashes and
// checkpoints are never changed or deleted, and the tree's size only grows. Trigger syntax differs
// between engines, hence a Go migration; each statement is safe to run again.
var tlogSchema = func() map[string][]string {
	tables := []string{
		`CREATE TABLE IF NOT EXISTS tlog_nodes (
    level INTEGER NOT NULL CHECK (level >= 0 AND level < 64),
    idx   BIGINT NOT NULL CHECK (idx >= 0),
    hash  TEXT NOT NULL,
    PRIMARY KEY (level, idx)
)`,
		`CREATE TABLE IF NOT EXISTS tlog_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL CHECK (size >= 0)
)`,
		`INSERT INTO tlog_head (id, size) SELECT 1, 0 WHERE NOT EXISTS (SELECT 1 FROM tlog_head)`,
		`CREATE TABLE IF NOT EXISTS tlog_checkpoints (
    size       BIGINT PRIMARY KEY CHECK (size >= 0),
    root_hash  TEXT NOT NULL,
    note       TEXT NOT NULL,
    created_at BIGINT NOT NULL
)`,
	}
	return map[string][]string{
		"sqlite": slices.Concat(tables, []string{
			`DROP TRIGGER IF EXISTS tlog_nodes_append_only`,
			`CREATE TRIGGER tlog_nodes_append_only BEFORE UPDATE ON tlog_nodes
			 BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END`,
			`DROP TRIGGER IF EXISTS tlog_nodes_no_delete`,
			`CREATE TRIGGER tlog_nodes_no_delete BEFORE DELETE ON tlog_nodes
			 BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END`,
			`DROP TRIGGER IF EXISTS tlog_checkpoints_append_only`,
			`CREATE TRIGGER tlog_checkpoints_append_only BEFORE UPDATE ON tlog_checkpoints
			 BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END`,
			`DROP TRIGGER IF EXISTS tlog_checkpoints_no_delete`,
			`CREATE TRIGGER tlog_checkpoints_no_delete BEFORE DELETE ON tlog_checkpoints
			 BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END`,
			`DROP TRIGGER IF EXISTS tlog_head_grows`,
			`CREATE TRIGGER tlog_head_grows BEFORE UPDATE ON tlog_head WHEN NEW.size < OLD.size
			 BEGIN SELECT RAISE(ABORT, 'the transparency log only grows'); END`,
		}),
		"postgres": slices.Concat(tables, []string{
			// Triggers first dropped, then their function replaced (CockroachDB cannot replace a
			// function a trigger uses: see migrate.go's rule), then the triggers made again.
			`DROP TRIGGER IF EXISTS tlog_nodes_append_only ON tlog_nodes`,
			`DROP TRIGGER IF EXISTS tlog_checkpoints_append_only ON tlog_checkpoints`,
			`DROP TRIGGER IF EXISTS tlog_head_grows ON tlog_head`,
			`CREATE OR REPLACE FUNCTION ledger_tlog_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
			 BEGIN
			   IF TG_OP = 'UPDATE' AND TG_TABLE_NAME = 'tlog_head' AND NEW.size >= OLD.size THEN RETURN NEW; END IF;
			   RAISE EXCEPTION 'the transparency log table % is append-only', TG_TABLE_NAME;
			 END $$`,
			`CREATE TRIGGER tlog_nodes_append_only BEFORE UPDATE OR DELETE ON tlog_nodes
			 FOR EACH ROW EXECUTE FUNCTION ledger_tlog_append_only()`,
			`CREATE TRIGGER tlog_checkpoints_append_only BEFORE UPDATE OR DELETE ON tlog_checkpoints
			 FOR EACH ROW EXECUTE FUNCTION ledger_tlog_append_only()`,
			`CREATE TRIGGER tlog_head_grows BEFORE UPDATE OR DELETE ON tlog_head
			 FOR EACH ROW EXECUTE FUNCTION ledger_tlog_append_only()`,
		}),
	}
}()
