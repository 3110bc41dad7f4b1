package store

import "slices"

// Migration 11, the transparency log's tables (issue 14, docs/transparency.md): the journal as an RFC 6962 Merkle tree
// whose leaf n-1 is the entry at position n. tlog_nodes keeps the hash (lowercase hex SHA-256) of
// every complete perfect subtree, by level (0: the leaves) and index, written by the transaction
// that positions the entries (store/tlog.go), so that a root or a proof reads O(log n) rows.
// tlog_head is the tree's size; tlog_checkpoints keeps every signed checkpoint.
// (Migrations 23 and 24 replace tlog_nodes with tlog_hashes, a row per leaf: see tlogHashes.)
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

// tlogHashes (migration 23) keeps the tree's nodes in tlog_hashes: one row per leaf, holding the
// hashes, as bytes, of the nodes that leaf completes (NodeRow), instead of tlog_nodes' row per node
// keyed by (level, index) with its hash in 64 hexadecimal characters. A transaction that extends
// the tree writes at the end of one key instead of at one place per level of the tree, an award
// is one row instead of two, and a hash weighs 32 bytes. The nodes of an existing tree are carried
// over with their hashes unchanged (the same tree, the same roots and proofs: checkpoints signed
// before still verify); migration 24 then drops tlog_nodes. On SQLite the key is the table's
// rowid, with no index beside it. The row's length is checked by its readers (readLogRows).
var tlogHashes = map[string][]string{
	"sqlite": {
		`CREATE TABLE IF NOT EXISTS tlog_hashes (
    leaf   INTEGER PRIMARY KEY CHECK (leaf >= 0),
    hashes BLOB NOT NULL CHECK (typeof(hashes) = 'blob' AND length(hashes) % 32 = 0 AND length(hashes) BETWEEN 32 AND 1856)
)`,
		// (WHERE: SQLite's parser needs one before ON CONFLICT in an INSERT … SELECT.)
		`INSERT INTO tlog_hashes (leaf, hashes)
		 SELECT ((idx + 1) << level) - 1, unhex(group_concat(hash, '' ORDER BY level)) FROM tlog_nodes
		 WHERE true GROUP BY ((idx + 1) << level) - 1
		 ON CONFLICT DO NOTHING`,
		`DROP TRIGGER IF EXISTS tlog_hashes_append_only`,
		`CREATE TRIGGER tlog_hashes_append_only BEFORE UPDATE ON tlog_hashes
		 BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END`,
		`DROP TRIGGER IF EXISTS tlog_hashes_no_delete`,
		`CREATE TRIGGER tlog_hashes_no_delete BEFORE DELETE ON tlog_hashes
		 BEGIN SELECT RAISE(ABORT, 'the transparency log is append-only'); END`,
	},
	"postgres": {
		`CREATE TABLE IF NOT EXISTS tlog_hashes (
    leaf   BIGINT PRIMARY KEY CHECK (leaf >= 0),
    hashes BYTEA NOT NULL CHECK (length(hashes) % 32 = 0 AND length(hashes) BETWEEN 32 AND 1856)
)`,
		`INSERT INTO tlog_hashes (leaf, hashes)
		 SELECT ((idx + 1) << level) - 1, decode(string_agg(hash, '' ORDER BY level), 'hex') FROM tlog_nodes
		 GROUP BY ((idx + 1) << level) - 1
		 ON CONFLICT DO NOTHING`,
		// ledger_tlog_append_only is migration 11's, not replaced here.
		`DROP TRIGGER IF EXISTS tlog_hashes_append_only ON tlog_hashes`,
		`CREATE TRIGGER tlog_hashes_append_only BEFORE UPDATE OR DELETE ON tlog_hashes
		 FOR EACH ROW EXECUTE FUNCTION ledger_tlog_append_only()`,
	},
}

// tlogNodesDropped (migration 24) drops tlog_nodes, whose nodes migration 23 carried over (a
// migration of its own: a second run of 23 after a failure half-way reads tlog_nodes again).
var tlogNodesDropped = map[string][]string{
	"sqlite":   {`DROP TABLE IF EXISTS tlog_nodes`},
	"postgres": {`DROP TABLE IF EXISTS tlog_nodes`},
}

// logEffectiveTimes (migration 25): the log's leaves hold each entry's effective time, as
// docs/transparency.md says they do. Releases before it built leaves from entries read without
// their effective time, so a backdated entry's leaf holds its created_at in that field; those
// leaves are in signed checkpoints and stay as they are. legacy_effective_until is the position of
// the last such entry in the tree when the migration ran (0: none), and EntriesBySequence gives
// the entries up to it as they were logged. It is checked by the tree itself: a leaf
// recomputed with the other rule does not match its stored hash.
var logEffectiveTimes = map[string][]string{
	"sqlite": {
		`ALTER TABLE tlog_head ADD COLUMN legacy_effective_until BIGINT NOT NULL DEFAULT 0`,
		legacyEffectiveBound,
	},
	"postgres": {
		`ALTER TABLE tlog_head ADD COLUMN IF NOT EXISTS legacy_effective_until BIGINT NOT NULL DEFAULT 0`,
		legacyEffectiveBound,
	},
}

// legacyEffectiveBound sets legacy_effective_until from the tree as releases before migration 25
// left it (run again, it finds the same entries: only releases before it write leaves until the
// migration is recorded).
const legacyEffectiveBound = `UPDATE tlog_head SET legacy_effective_until = COALESCE((SELECT MAX(seq) FROM journal_entries
    WHERE seq <= tlog_head.size AND effective_at IS NOT NULL AND effective_at <> created_at), 0) WHERE id = 1`

// legacyBoundFixed (migration 26): the database refuses to move legacy_effective_until once the
// tree has a leaf. Migration 25 set it on the tree as it was, and a copy sets it on a fresh target
// (its tree still empty: the copy writes the source's head in one row); nothing else writes it.
// Since the size never goes back (tlog_head_grows), the bound stays as recorded for the tree's
// life, like the leaves it describes. VerifyLog still reports a moved bound, should the trigger be
// dropped: the leaves up to it would be read by the other rule and miss their stored hashes.
var legacyBoundFixed = map[string][]string{
	"sqlite": {
		`DROP TRIGGER IF EXISTS tlog_head_legacy_fixed`,
		`CREATE TRIGGER tlog_head_legacy_fixed BEFORE UPDATE ON tlog_head
		 WHEN OLD.size > 0 AND NEW.legacy_effective_until IS NOT OLD.legacy_effective_until
		 BEGIN SELECT RAISE(ABORT, 'the transparency log''s legacy bound cannot move once the log has leaves'); END`,
	},
	"postgres": {
		// A function of its own: ledger_tlog_append_only is used by other triggers, and CockroachDB
		// cannot replace a function a trigger uses (migrate.go).
		`DROP TRIGGER IF EXISTS tlog_head_legacy_fixed ON tlog_head`,
		`CREATE OR REPLACE FUNCTION ledger_tlog_legacy_fixed() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF OLD.size > 0 AND NEW.legacy_effective_until IS DISTINCT FROM OLD.legacy_effective_until THEN
		     RAISE EXCEPTION 'the transparency log''s legacy bound cannot move once the log has leaves';
		   END IF;
		   RETURN NEW;
		 END $$`,
		`CREATE TRIGGER tlog_head_legacy_fixed BEFORE UPDATE ON tlog_head
		 FOR EACH ROW EXECUTE FUNCTION ledger_tlog_legacy_fixed()`,
	},
}
