package store

// Migrations.
//
// The schema is versioned by goose: SQL files in migrations/ and Go migrations registered in
// goMigrations below. SQLite and PostgreSQL run each migration in one transaction with its goose
// version row, so a failed migration leaves nothing behind. CockroachDB does not: CREATE TRIGGER
// runs only as a statement of its own, outside an explicit transaction (cockroachdb/cockroach#140053),
// and from 25.1 autocommit_before_ddl commits every schema change on its own anyway. So on
// CockroachDB every statement of every migration runs alone (goose's isolated DDL), and a process
// that dies half-way through a migration leaves some of its statements applied and no version row:
// the next start runs the whole migration again.
//
// THE RULE, for every migration (SQL or Go): each statement must succeed when run again after
// any prefix of the migration has already been applied, and leave the same schema.
//
//   - CREATE TABLE IF NOT EXISTS, CREATE [UNIQUE] INDEX IF NOT EXISTS, DROP … IF EXISTS;
//   - ALTER TABLE … ADD COLUMN IF NOT EXISTS (SQLite has no IF NOT EXISTS there: it is removed
//     for SQLite, where the migration's transaction makes the statement atomic with its version
//     row);
//   - functions with CREATE OR REPLACE FUNCTION, but only after DROP TRIGGER IF EXISTS of every
//     trigger that uses them (CockroachDB cannot replace a function a trigger uses, nor run
//     CREATE OR REPLACE TRIGGER), then CREATE TRIGGER;
//   - seed rows with INSERT … ON CONFLICT DO NOTHING, backfills written so that a second run
//     changes nothing (set values, never add to them);
//   - no statement may rely on running in the same transaction as another one, except on SQLite,
//     which runs every migration in one transaction (its DDL is transactional) and never
//     statement by statement (migration.run refuses to): there a table is rebuilt, as SQLite
//     has no ALTER COLUMN, by CREATE TABLE (without IF NOT EXISTS: a second run fails instead of
//     dropping what the first copied), INSERT … SELECT, DROP TABLE and RENAME (migration 27);
//   - a Go migration is a list of statements per dialect in goMigrations (never a Go function
//     of its own), so that it runs statement by statement on CockroachDB and the re-run test
//     covers it;
//   - a table keyed by an id the ledger makes (UUIDv7) gets, on CockroachDB, a native UUID
//     column and a hash-sharded primary key: a file of the same name in migrations/cockroachdb/
//     replaces the SQL file there (see migrations/cockroachdb/00001_schema.sql).
//
// TestMigrationsRerunAfterFailure runs every registered migration, fails it before each of its
// statements in turn (and after the last one, before its version row, in the CockroachDB mode)
// and starts again: a migration that breaks the rule fails it.

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing/fstest"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/sethvargo/go-retry"
)

//go:embed migrations/*.sql migrations/cockroachdb/*.sql
var migrationFiles embed.FS

// appendOnlyTriggers (migration 2) make the journal and the request log append-only (invariant 6)
// inside the database itself, so that no code path, tool or operator session can edit history
// unnoticed. Trigger syntax differs between engines, hence a Go migration.
var appendOnlyTriggers = map[string][]string{
	"sqlite": {
		`DROP TRIGGER IF EXISTS journal_entries_append_only`,
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE ON journal_entries
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
		`DROP TRIGGER IF EXISTS journal_entries_no_delete`,
		`CREATE TRIGGER journal_entries_no_delete BEFORE DELETE ON journal_entries
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
		`DROP TRIGGER IF EXISTS postings_append_only`,
		`CREATE TRIGGER postings_append_only BEFORE UPDATE ON postings
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
		`DROP TRIGGER IF EXISTS postings_no_delete`,
		`CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
		`DROP TRIGGER IF EXISTS requests_append_only`,
		`CREATE TRIGGER requests_append_only BEFORE UPDATE ON requests
		 BEGIN SELECT RAISE(ABORT, 'the request log is append-only'); END`,
		`DROP TRIGGER IF EXISTS requests_no_delete`,
		`CREATE TRIGGER requests_no_delete BEFORE DELETE ON requests
		 BEGIN SELECT RAISE(ABORT, 'the request log is append-only'); END`,
	},
	"postgres": {
		`DROP TRIGGER IF EXISTS journal_entries_append_only ON journal_entries`,
		`DROP TRIGGER IF EXISTS postings_append_only ON postings`,
		`DROP TRIGGER IF EXISTS requests_append_only ON requests`,
		`CREATE OR REPLACE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN RAISE EXCEPTION 'the ledger table % is append-only', TG_TABLE_NAME; END $$`,
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
		 FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`,
		`CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
		 FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`,
		`CREATE TRIGGER requests_append_only BEFORE UPDATE OR DELETE ON requests
		 FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`,
	},
}

// rulesAppendOnly (migration 6) makes the rule sets append-only like the journal (invariant 6:
// "every table that a decision reads"): a rule set edited in place would let awards through that
// its RULES_CHANGED entry forbids. The PostgreSQL function is its own, so it depends on no other
// migration.
var rulesAppendOnly = map[string][]string{
	"sqlite": {
		`DROP TRIGGER IF EXISTS envelope_rules_append_only`,
		`CREATE TRIGGER envelope_rules_append_only BEFORE UPDATE ON envelope_rules
		 BEGIN SELECT RAISE(ABORT, 'the rule sets are append-only'); END`,
		`DROP TRIGGER IF EXISTS envelope_rules_no_delete`,
		`CREATE TRIGGER envelope_rules_no_delete BEFORE DELETE ON envelope_rules
		 BEGIN SELECT RAISE(ABORT, 'the rule sets are append-only'); END`,
	},
	"postgres": {
		`DROP TRIGGER IF EXISTS envelope_rules_append_only ON envelope_rules`,
		`CREATE OR REPLACE FUNCTION ledger_rules_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN RAISE EXCEPTION 'the ledger table % is append-only', TG_TABLE_NAME; END $$`,
		`CREATE TRIGGER envelope_rules_append_only BEFORE UPDATE OR DELETE ON envelope_rules
		 FOR EACH ROW EXECUTE FUNCTION ledger_rules_append_only()`,
	},
}

// paymentsAppendOnly (migration 16) makes the payments append-only like the journal (invariant 6):
// a payment is money that left the programme, recorded once; its amount, date and commitment
// are never edited or removed. A payment undone is not a thing the ledger knows: what was paid
// stays paid (docs/payments.md). The PostgreSQL function is its own, so it depends on no other
// migration.
var paymentsAppendOnly = map[string][]string{
	"sqlite": {
		`DROP TRIGGER IF EXISTS payments_append_only`,
		`CREATE TRIGGER payments_append_only BEFORE UPDATE ON payments
		 BEGIN SELECT RAISE(ABORT, 'the payments are append-only'); END`,
		`DROP TRIGGER IF EXISTS payments_no_delete`,
		`CREATE TRIGGER payments_no_delete BEFORE DELETE ON payments
		 BEGIN SELECT RAISE(ABORT, 'the payments are append-only'); END`,
	},
	"postgres": {
		`DROP TRIGGER IF EXISTS payments_append_only ON payments`,
		`CREATE OR REPLACE FUNCTION ledger_payments_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN RAISE EXCEPTION 'the ledger table % is append-only', TG_TABLE_NAME; END $$`,
		`CREATE TRIGGER payments_append_only BEFORE UPDATE OR DELETE ON payments
		 FOR EACH ROW EXECUTE FUNCTION ledger_payments_append_only()`,
	},
}

// sequenceTriggers (migration 7, after 00004) let the journal's append-only trigger allow one
// change: giving an entry its position (seq) once, from NULL, with nothing else changed.
var sequenceTriggers = map[string][]string{
	"sqlite": {
		`DROP TRIGGER IF EXISTS journal_entries_append_only`,
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE ON journal_entries
		 WHEN NOT (OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.id = OLD.id AND NEW.kind = OLD.kind
		   AND NEW.currency = OLD.currency AND NEW.caller = OLD.caller AND NEW.request_id = OLD.request_id
		   AND NEW.memo = OLD.memo AND NEW.created_at = OLD.created_at)
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
	},
	"postgres": {
		`DROP TRIGGER IF EXISTS journal_entries_append_only ON journal_entries`,
		`CREATE OR REPLACE FUNCTION ledger_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
		      AND (NEW.id, NEW.kind, NEW.currency, NEW.caller, NEW.request_id, NEW.memo, NEW.created_at)
		          IS NOT DISTINCT FROM (OLD.id, OLD.kind, OLD.currency, OLD.caller, OLD.request_id, OLD.memo, OLD.created_at)
		   THEN RETURN NEW; END IF;
		   RAISE EXCEPTION 'the ledger table % is append-only', TG_TABLE_NAME;
		 END $$`,
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
		 FOR EACH ROW EXECUTE FUNCTION ledger_journal_append_only()`,
	},
}

// effectiveTimes (migration 10, issue 13 §3) gives journal entries, envelopes and commitments
// the time their act took effect, beside the time they were recorded (created_at). The columns
// are NULL in rows written before: such a row took effect when it was recorded, and readers
// COALESCE accordingly (no UPDATE of the append-only journal is needed). An envelope's
// latest_effective_at is the latest effective time of an entry posting to it (see
// core.CheckEffective); NULL, its updated_at bounds it. The journal's append-only trigger is
// remade so that giving an entry its position still changes nothing else, effective_at
// included.
var effectiveTimes = map[string][]string{
	"sqlite": {
		`ALTER TABLE journal_entries ADD COLUMN effective_at BIGINT CHECK (effective_at <= created_at)`,
		`ALTER TABLE envelopes ADD COLUMN effective_at BIGINT`,
		`ALTER TABLE envelopes ADD COLUMN latest_effective_at BIGINT`,
		`ALTER TABLE commitments ADD COLUMN effective_at BIGINT`,
		`DROP TRIGGER IF EXISTS journal_entries_append_only`,
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE ON journal_entries
		 WHEN NOT (OLD.seq IS NULL AND NEW.seq IS NOT NULL AND NEW.id = OLD.id AND NEW.kind = OLD.kind
		   AND NEW.currency = OLD.currency AND NEW.caller = OLD.caller AND NEW.request_id = OLD.request_id
		   AND NEW.memo = OLD.memo AND NEW.created_at = OLD.created_at AND NEW.effective_at IS OLD.effective_at)
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
	},
	"postgres": {
		`ALTER TABLE journal_entries ADD COLUMN IF NOT EXISTS effective_at BIGINT CHECK (effective_at <= created_at)`,
		`ALTER TABLE envelopes ADD COLUMN IF NOT EXISTS effective_at BIGINT`,
		`ALTER TABLE envelopes ADD COLUMN IF NOT EXISTS latest_effective_at BIGINT`,
		`ALTER TABLE commitments ADD COLUMN IF NOT EXISTS effective_at BIGINT`,
		`DROP TRIGGER IF EXISTS journal_entries_append_only ON journal_entries`,
		`CREATE OR REPLACE FUNCTION ledger_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
		      AND (NEW.id, NEW.kind, NEW.currency, NEW.caller, NEW.request_id, NEW.memo, NEW.created_at, NEW.effective_at)
		          IS NOT DISTINCT FROM (OLD.id, OLD.kind, OLD.currency, OLD.caller, OLD.request_id, OLD.memo, OLD.created_at, OLD.effective_at)
		   THEN RETURN NEW; END IF;
		   RAISE EXCEPTION 'the ledger table % is append-only', TG_TABLE_NAME;
		 END $$`,
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
		 FOR EACH ROW EXECUTE FUNCTION ledger_journal_append_only()`,
	},
}

// holdsSchema (migration 8) adds holds: the envelopes' held amount, with the invariant
// allocation = available + held + committed + allocated_to_children and available >= 0 checked by
// the database, and the holds table. A hold in a final state never changes and no hold is deleted
// (a trigger): a hold ends, and returns or commits its amount, at most once.
var holdsSchema = map[string][]string{
	"sqlite": {
		`ALTER TABLE envelopes ADD COLUMN held BIGINT NOT NULL DEFAULT 0
		 CHECK (held >= 0 AND allocation - committed - children_allocated - held >= 0)`,
		holdsTable,
		`CREATE INDEX IF NOT EXISTS holds_by_envelope ON holds (envelope_id, id)`,
		`CREATE INDEX IF NOT EXISTS holds_expiring ON holds (expire_at, id) WHERE state = 'HELD' AND expire_at > 0`,
		`DROP TRIGGER IF EXISTS holds_end_once`,
		`CREATE TRIGGER holds_end_once BEFORE UPDATE ON holds
		 WHEN OLD.state <> 'HELD' OR NEW.id <> OLD.id OR NEW.envelope_id <> OLD.envelope_id OR NEW.amount <> OLD.amount
		 BEGIN SELECT RAISE(ABORT, 'a hold ends once: a hold in a final state never changes'); END`,
		`DROP TRIGGER IF EXISTS holds_no_delete`,
		`CREATE TRIGGER holds_no_delete BEFORE DELETE ON holds
		 BEGIN SELECT RAISE(ABORT, 'holds are never deleted'); END`,
	},
	"postgres": {
		`ALTER TABLE envelopes ADD COLUMN IF NOT EXISTS held BIGINT NOT NULL DEFAULT 0 CHECK (held >= 0)`,
		`ALTER TABLE envelopes DROP CONSTRAINT IF EXISTS envelopes_available_with_holds`,
		`ALTER TABLE envelopes ADD CONSTRAINT envelopes_available_with_holds
		 CHECK (allocation - committed - children_allocated - held >= 0)`,
		holdsTable,
		`CREATE INDEX IF NOT EXISTS holds_by_envelope ON holds (envelope_id, id)`,
		`CREATE INDEX IF NOT EXISTS holds_expiring ON holds (expire_at, id) WHERE state = 'HELD' AND expire_at > 0`,
		`DROP TRIGGER IF EXISTS holds_end_once ON holds`,
		`CREATE OR REPLACE FUNCTION ledger_holds_end_once() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF TG_OP = 'UPDATE' AND OLD.state = 'HELD' AND NEW.id = OLD.id AND NEW.envelope_id = OLD.envelope_id
		      AND NEW.amount = OLD.amount THEN RETURN NEW; END IF;
		   RAISE EXCEPTION 'a hold ends once: a hold in a final state never changes, and no hold is deleted';
		 END $$`,
		`CREATE TRIGGER holds_end_once BEFORE UPDATE OR DELETE ON holds
		 FOR EACH ROW EXECUTE FUNCTION ledger_holds_end_once()`,
	},
}

// holdsTable is the holds table, the same on every engine. eligible_cost and population are NULL
// when the hold did not give them (0 given is another figure for the funding rules); expire_at
// and effective_at are 0 when not given.
const holdsTable = `CREATE TABLE IF NOT EXISTS holds (
    id               TEXT PRIMARY KEY,
    envelope_id      TEXT NOT NULL,
    beneficiary      TEXT NOT NULL,
    project          TEXT NOT NULL,
    currency         TEXT NOT NULL,
    amount           BIGINT NOT NULL CHECK (amount > 0),
    state            TEXT NOT NULL CHECK (state IN ('HELD', 'CONFIRMED', 'CANCELLED', 'EXPIRED')),
    description      TEXT NOT NULL,
    eligible_cost    BIGINT,
    territory        TEXT NOT NULL,
    population       BIGINT,
    expire_at        BIGINT NOT NULL,
    effective_at     BIGINT NOT NULL,
    confirmed_amount BIGINT NOT NULL CHECK (confirmed_amount >= 0 AND confirmed_amount <= amount),
    commitment_id    TEXT NOT NULL,
    reason           TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    CHECK ((state = 'CONFIRMED') = (confirmed_amount > 0))
)`

// commitEntryFromJournal (migration 28) changes no table: since it, a Commit's packed record
// (core.PackCommit) leaves its journal entry's id to the journal, where the one COMMITTED entry
// crediting the commitment gives it back (store.awardEntries), 18 bytes less per award. The
// version is what makes a release older than it refuse the ledger (ErrSchemaNewer), as it could
// not replay those records. PostgreSQL and CockroachDB record the format on the column itself.
var commitEntryFromJournal = map[string][]string{
	"sqlite": {`SELECT 1`},
	"postgres": {`COMMENT ON COLUMN requests.packed IS 'a Commit''s or bulk call''s result by reference, or an outcome deflated; ` +
		`a Commit''s journal entry is the COMMITTED entry crediting its commitment (migration 28)'`},
}

// postgresOnly are statements for PostgreSQL proper, not CockroachDB: envelope rows are updated by
// every batch, so each gets room on its page for HOT updates, which write no index entry; an
// index entry would conflict with the predicate lock every batch holds on the envelopes index.
var postgresOnly = []string{`ALTER TABLE envelopes SET (fillfactor = 10)`}

// requestLogPacked (migration 18) gives the request log two columns for its compact rows:
// digest, a canonical fingerprint's 32 bytes (instead of its 67 characters in fingerprint), and
// packed, a Commit's or bulk call's result by reference (core.PackCommit, core.PackBulk) or any
// other outcome deflated (core.DeflateOutcome), instead of its JSON in outcome. Rows
// written before keep them NULL and are read as before; new rows leave fingerprint and outcome ”
// where the new columns hold them. Plain nullable columns: the copy reads them from the catalog.
var requestLogPacked = map[string][]string{
	"sqlite": {
		`ALTER TABLE requests ADD COLUMN digest BLOB`,
		`ALTER TABLE requests ADD COLUMN packed BLOB`,
	},
	"postgres": {
		`ALTER TABLE requests ADD COLUMN IF NOT EXISTS digest BYTEA`,
		`ALTER TABLE requests ADD COLUMN IF NOT EXISTS packed BYTEA`,
	},
}

// requestsBareKeys (migration 19) records whether the request log may hold rows keyed by a bare
// request id, recorded before request ids were scoped per caller (core.LookupKeys). A retry is
// looked up under both its keys only where the table has its row (LoadRequests): a ledger made
// since has none, and each lookup names half the keys. The row is written by this migration
// where such a row exists (a scan of the request log, once, stopped by the first), by
// InsertRequests with any row under a bare key, and by `ledgerd copy` with the rest of a ledger
// that has it. It is never removed: its trigger refuses it, like the request log's own.
var requestsBareKeys = map[string][]string{
	"sqlite": {
		`CREATE TABLE IF NOT EXISTS requests_bare_keys (id INTEGER PRIMARY KEY CHECK (id = 1))`,
		`INSERT INTO requests_bare_keys (id) SELECT 1 WHERE EXISTS
		 (SELECT 1 FROM requests WHERE instr(request_id, char(9)) = 0) ON CONFLICT DO NOTHING`,
		`DROP TRIGGER IF EXISTS requests_bare_keys_append_only`,
		`CREATE TRIGGER requests_bare_keys_append_only BEFORE UPDATE ON requests_bare_keys
		 BEGIN SELECT RAISE(ABORT, 'the request log is append-only'); END`,
		`DROP TRIGGER IF EXISTS requests_bare_keys_no_delete`,
		`CREATE TRIGGER requests_bare_keys_no_delete BEFORE DELETE ON requests_bare_keys
		 BEGIN SELECT RAISE(ABORT, 'the request log is append-only'); END`,
	},
	"postgres": {
		`CREATE TABLE IF NOT EXISTS requests_bare_keys (id INTEGER PRIMARY KEY CHECK (id = 1))`,
		`INSERT INTO requests_bare_keys (id) SELECT 1 WHERE EXISTS
		 (SELECT 1 FROM requests WHERE strpos(request_id, chr(9)) = 0) ON CONFLICT DO NOTHING`,
		`DROP TRIGGER IF EXISTS requests_bare_keys_append_only ON requests_bare_keys`,
		`CREATE OR REPLACE FUNCTION ledger_requests_bare_keys_kept() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN RAISE EXCEPTION 'the ledger table % is append-only', TG_TABLE_NAME; END $$`,
		`CREATE TRIGGER requests_bare_keys_append_only BEFORE UPDATE OR DELETE ON requests_bare_keys
		 FOR EACH ROW EXECUTE FUNCTION ledger_requests_bare_keys_kept()`,
	},
}

// positionedEntriesIndex (migration 20) keeps only positioned entries in the key on seq. On
// PostgreSQL an entry is inserted without a position and the sequencer gives it one with an
// UPDATE that is not HOT, so the key held a NULL for every entry until the next VACUUM; the
// sequencer's search for unpositioned entries could then take that key (seq IS NULL) instead of
// journal_entries_unsequenced and read every one of those old versions: 200 ms for a run instead
// of 5 (docs/benchmarks.md, "The sequencer's statement"). Every read by position has a condition
// on seq (seq > $1) that implies the index's predicate, on every engine. SQLite, which positions
// entries as it inserts them, and CockroachDB take the same schema.
var positionedEntriesIndex = map[string][]string{
	"sqlite":   positionedEntriesKey,
	"postgres": positionedEntriesKey,
}

var positionedEntriesKey = []string{
	`DROP INDEX IF EXISTS journal_entries_by_seq`,
	`CREATE UNIQUE INDEX journal_entries_by_seq ON journal_entries (seq) WHERE seq IS NOT NULL`,
}

// holdResultsByReference (migration 29) marks the request log's records of CreateHold's and
// ConfirmHold's results by reference (core.PackCreateHold, core.PackConfirmHold: record formats 4
// and 5), which a release before them cannot read (it answers a retry of such a request with an
// INTERNAL error): it changes nothing but the schema's version, so that an older ledgerd refuses
// the ledger (ErrSchemaNewer) instead of serving it. Records written before keep their format
// (the JSON deflated) and replay as before. PostgreSQL and CockroachDB record the formats on the
// column, as migration 28 did.
var holdResultsByReference = map[string][]string{
	"sqlite": {`SELECT 1`},
	"postgres": {`COMMENT ON COLUMN requests.packed IS 'by reference: a Commit''s result (format 1; its journal entry is ` +
		`the COMMITTED entry crediting its commitment, migration 28), a bulk call''s (2), a CreateHold''s (4) or ` +
		`ConfirmHold''s (5, migration 29); any other outcome deflated (3)'`},
}

// paymentResultsByReference (migration 30) marks the request log's records of CreatePayment's
// results by reference (core.PackPayment: record format 6), which a release before it cannot read
// (it answers a retry of such a request with an INTERNAL error): like 29, it changes nothing but
// the schema's version (and, on PostgreSQL and CockroachDB, the formats named on the column), so
// that an older ledgerd refuses the ledger (ErrSchemaNewer) instead of serving it. Records written
// before keep their format (the JSON deflated) and replay as before.
var paymentResultsByReference = map[string][]string{
	"sqlite": {`SELECT 1`},
	"postgres": {`COMMENT ON COLUMN requests.packed IS 'by reference: a Commit''s result (format 1; its journal entry is ` +
		`the COMMITTED entry crediting its commitment, migration 28), a bulk call''s (2), a CreateHold''s (4) or ` +
		`ConfirmHold''s (5, migration 29), a CreatePayment''s (6, migration 30; its journal entry is its payment''s); ` +
		`any other outcome deflated (3)'`},
}

// goMigration is a Go migration: statements run in order (see THE RULE above).
type goMigration struct {
	version    int64
	statements []string
}

// goMigrations lists the Go migrations for a dialect ("sqlite" or "postgres"; cockroach when the
// PostgreSQL-speaking server is CockroachDB).
func goMigrations(dialect string, cockroach bool) []goMigration {
	triggers := appendOnlyTriggers[dialect]
	var uuids, creditHash []string // PostgreSQL proper only (uuids.go)
	if dialect == "postgres" && !cockroach {
		triggers = append(triggers[:len(triggers):len(triggers)], postgresOnly...)
		uuids, creditHash = nativeUUIDs[dialect], creditHashIndex[dialect]
	}
	all := []goMigration{
		{2, triggers},
		{6, rulesAppendOnly[dialect]},
		{7, sequenceTriggers[dialect]},
		{8, holdsSchema[dialect]},
		{10, effectiveTimes[dialect]},
		{11, tlogSchema[dialect]}, // the transparency log (tlog_schema.go)
		{16, paymentsAppendOnly[dialect]},
		{17, transfersSchema[dialect]}, // two-leg entries in one row (transfers.go)
		{18, requestLogPacked[dialect]},
		{19, requestsBareKeys[dialect]},
		{20, positionedEntriesIndex[dialect]},
		{21, uuids},
		{22, creditHash},
		{23, tlogHashes[dialect]},        // the tree's nodes by the order they are completed (tlog_schema.go)
		{24, tlogNodesDropped[dialect]},  // ... and the table they were in dropped
		{25, logEffectiveTimes[dialect]}, // leaves with their effective times (tlog_schema.go)
		{26, legacyBoundFixed[dialect]},  // ... and the bound of the leaves without them fixed
		{27, commitmentsSparse[dialect]}, // a commitment's defaults stored as NULL (commitments.go)
		{28, commitEntryFromJournal[dialect]},
		{29, holdResultsByReference[dialect]},
		{30, paymentResultsByReference[dialect]},
	}
	// A migration with nothing to do on this engine is not registered for it (21 and 22 on
	// SQLite and CockroachDB).
	return slices.DeleteFunc(all, func(g goMigration) bool { return len(g.statements) == 0 })
}

// migration settings: how the migrations of one database run.
type migration struct {
	dialect   string // "sqlite" or "postgres"
	cockroach bool   // the server is CockroachDB
	// isolated runs every statement on its own, outside a transaction (CockroachDB; tests use it
	// on PostgreSQL to reproduce CockroachDB's partial migrations).
	isolated bool
	// beforeStatement, when set (tests), is called before each statement of a Go migration.
	beforeStatement func(ctx context.Context, version int64, statement string)
	// options are extra goose options (tests).
	options []goose.ProviderOption
	// logger, when set, is told that the migration waits for another process's lock.
	logger *slog.Logger
}

// runStatements is a Go migration that runs stmts in order: in goose's transaction, or, when
// isolated, each on its own.
func (m migration) runStatements(version int64, stmts []string) *goose.GoFunc {
	run := func(ctx context.Context, exec func(ctx context.Context, query string, args ...any) (sql.Result, error)) error {
		for _, stmt := range stmts {
			if m.beforeStatement != nil {
				m.beforeStatement(ctx, version, stmt)
			}
			if _, err := exec(ctx, stmt); err != nil {
				return fmt.Errorf("migration %d: %w", version, err)
			}
		}
		return nil
	}
	if m.isolated {
		return &goose.GoFunc{RunDB: func(ctx context.Context, db *sql.DB) error { return run(ctx, db.ExecContext) }}
	}
	return &goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error { return run(ctx, tx.ExecContext) }}
}

// sqliteAddColumn is the clause SQLite does not have: ADD COLUMN IF NOT EXISTS.
var sqliteAddColumn = regexp.MustCompile(`(?i)ADD\s+COLUMN\s+IF\s+NOT\s+EXISTS`)

// migrationSources returns the SQL migrations as the dialect runs them: on SQLite without the
// IF NOT EXISTS of ADD COLUMN, which it lacks; on CockroachDB with the files of
// migrations/cockroachdb/ in place of those of the same name (native UUIDs, hash-sharded keys).
func migrationSources(dialect string, cockroach bool) (fs.FS, error) {
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(sub, "*.sql")
	if err != nil {
		return nil, err
	}
	out := fstest.MapFS{}
	for _, name := range names {
		path := name
		if cockroach {
			if _, err := fs.Stat(sub, "cockroachdb/"+name); err == nil {
				path = "cockroachdb/" + name
			}
		}
		b, err := fs.ReadFile(sub, path)
		if err != nil {
			return nil, err
		}
		if dialect == "sqlite" {
			b = sqliteAddColumn.ReplaceAll(b, []byte("ADD COLUMN"))
		}
		out[name] = &fstest.MapFile{Data: b, Mode: 0o444}
	}
	return out, nil
}

// migrate brings the schema up to date with goose. dialect is "sqlite" or "postgres" (CockroachDB
// speaks the PostgreSQL dialect; cockroach is set when the server is CockroachDB, whose
// migrations run statement by statement: see the top of this file).
func migrate(ctx context.Context, db *sql.DB, dialect string, cockroach bool, logger *slog.Logger) error {
	return migration{dialect: dialect, cockroach: cockroach, isolated: cockroach, logger: logger}.run(ctx, db)
}

func (m migration) provider(db *sql.DB) (*goose.Provider, error) {
	gooseDialect := goose.DialectPostgres
	if m.dialect == "sqlite" {
		gooseDialect = goose.DialectSQLite3
	}
	sources, err := migrationSources(m.dialect, m.cockroach)
	if err != nil {
		return nil, err
	}
	var gos []*goose.Migration
	for _, g := range goMigrations(m.dialect, m.cockroach) {
		gos = append(gos, goose.NewGoMigration(g.version, m.runStatements(g.version, g.statements), nil))
	}
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		// A ledger upgraded by a build that had a later migration but not an earlier one (they were
		// written side by side) still gets the earlier one: every migration is safe to run again.
		goose.WithAllowOutofOrder(true),
		goose.WithGoMigrations(gos...),
		goose.WithIsolateDDL(m.isolated),
	}
	if m.dialect == "postgres" {
		// Several ledgerd processes may start at once on one database: a lock row in a plain
		// table (not an advisory lock, which CockroachDB does not honour) lets one migrate while
		// the others wait.
		// The lock's lease is goose's default, 30 s, renewed every 5 s: the lock of a process
		// killed while migrating is taken over once its lease has run out, so a restart waits
		// up to 30 s (docs/operations.md). The first failed attempt says so.
		var waiting sync.Once
		locker, err := lock.NewPostgresTableLocker(lock.WithTableName("ledger_migration_lock"),
			lock.WithTableLockTimeout(100*time.Millisecond, 600),
			lock.WithTableRetryPolicy(func(err error) bool {
				waiting.Do(func() { m.warnLockHeld(db, err) })
				return true
			}))
		if err != nil {
			return nil, err
		}
		opts = append(opts, goose.WithLocker(locker))
	}
	opts = append(opts, m.options...)
	p, err := goose.NewProvider(gooseDialect, db, sources, opts...)
	if err != nil {
		return nil, fmt.Errorf("preparing migrations: %w", err)
	}
	return p, nil
}

// warnLockHeld logs that the migration waits for the lock, and who holds it until when.
func (m migration) warnLockHeld(db *sql.DB, err error) {
	if m.logger == nil {
		return
	}
	var holder sql.NullString
	var until sql.NullTime
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = db.QueryRowContext(ctx, `SELECT locked_by, lease_expires_at FROM ledger_migration_lock WHERE locked`).Scan(&holder, &until)
	m.logger.Warn("waiting for the migration lock (table ledger_migration_lock): another ledgerd is migrating this database, "+
		"or one stopped while migrating and its lock is taken over when its lease ends (at most 30 s after it stopped)",
		"holder", holder.String, "lease_expires_at", until.Time, "error", err)
}

func (m migration) run(ctx context.Context, db *sql.DB) error {
	if m.isolated && m.dialect == "sqlite" {
		// SQLite's table rebuilds rely on the migration's transaction (THE RULE above).
		return errors.New("migrating the schema: SQLite migrations run in a transaction, never statement by statement")
	}
	provider, err := m.provider(db)
	if err != nil {
		return err
	}
	// Creating the lock table itself can race between processes starting together, and a
	// migration can fail half-way on CockroachDB (a node restarting, a schema change job
	// failing): every migration is safe to run again (THE RULE above), so trying again is too.
	b := retry.WithMaxRetries(4, retry.NewExponential(100*time.Millisecond))
	err = retry.Do(ctx, b, func(ctx context.Context) error {
		if _, err := provider.Up(ctx); err != nil {
			return retry.RetryableError(err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrating the schema: %w", err)
	}
	return nil
}

// minCockroach is the oldest CockroachDB the ledger runs on: 24.3 is the first with CREATE
// TRIGGER, which keeps the journal, the request log and the rule sets append-only (invariant 6).
var minCockroach = [2]int{24, 3}

var cockroachVersion = regexp.MustCompile(`CockroachDB \S+ v(\d+)\.(\d+)`)

// checkCockroachVersion refuses a CockroachDB older than minCockroach, from the answer of
// SELECT version().
func checkCockroachVersion(version string) error {
	m := cockroachVersion.FindStringSubmatch(version)
	if m == nil {
		return fmt.Errorf("cannot read the CockroachDB version from %q: the ledger needs CockroachDB %d.%d or later",
			version, minCockroach[0], minCockroach[1])
	}
	var major, minor int
	fmt.Sscan(m[1], &major)
	fmt.Sscan(m[2], &minor)
	if major < minCockroach[0] || major == minCockroach[0] && minor < minCockroach[1] {
		return fmt.Errorf("CockroachDB v%d.%d is too old: the ledger needs CockroachDB %d.%d or later "+
			"(its append-only tables are kept by triggers, which CockroachDB has from %d.%d); "+
			"nothing was changed in the database", major, minor, minCockroach[0], minCockroach[1],
			minCockroach[0], minCockroach[1])
	}
	return nil
}

// ErrForeignDatabase refuses a database that holds tables and is not a ledger: another
// application's, whose tables the ledger's migrations would be added beside (or, on a name both
// use, fail half-way among, leaving goose's tables behind).
var ErrForeignDatabase = errors.New("the database holds tables that are not a ledger's")

// foreignError is ErrForeignDatabase for one database, naming its first tables.
type foreignError struct {
	database string
	tables   []string
}

func (e *foreignError) Error() string {
	names := e.tables
	if len(names) > 5 {
		names = append(names[:5:5], fmt.Sprintf("… %d tables", len(e.tables)))
	}
	return fmt.Sprintf("database %s holds tables that are not a ledger's (%s): refusing to add the ledger's schema to it",
		e.database, strings.Join(names, ", "))
}

func (e *foreignError) Is(target error) bool { return target == ErrForeignDatabase }

// gooseTables are the tables goose makes, before any migration runs: the version table and
// (PostgreSQL) the migration lock, taken first.
var gooseTables = []string{"goose_db_version", "ledger_migration_lock"}

// firstTables are tables migration 1 makes and no migration drops: with a schema version, they
// tell a ledger from another application that goose migrates too.
var firstTables = []string{"envelopes", "journal_entries", "postings", "requests"}

var createTableName = regexp.MustCompile(`(?i)CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?"?(\w+)`)

// ledgerTables are the names of every table a migration of this binary makes on any engine,
// dropped ones included (an older ledger may still hold them), with goose's.
func ledgerTables() (map[string]bool, error) {
	names := map[string]bool{}
	for _, t := range gooseTables {
		names[t] = true
	}
	add := func(sql string) {
		for _, m := range createTableName.FindAllStringSubmatch(sql, -1) {
			names[strings.ToLower(m[1])] = true
		}
	}
	for _, cockroach := range []bool{false, true} {
		sources, err := migrationSources("postgres", cockroach)
		if err != nil {
			return nil, err
		}
		files, err := fs.Glob(sources, "*.sql")
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			b, err := fs.ReadFile(sources, f)
			if err != nil {
				return nil, err
			}
			add(string(b))
		}
	}
	for _, dialect := range []string{"sqlite", "postgres"} {
		for _, cockroach := range []bool{false, true} {
			for _, g := range goMigrations(dialect, cockroach) {
				add(strings.Join(g.statements, "\n"))
			}
		}
	}
	return names, nil
}

// schemaTables are the tables of the database where the ledger's live: on PostgreSQL and
// CockroachDB those of the connection's current schema, where the migrations create theirs (not
// pg_catalog, information_schema or CockroachDB's own schemas), but an extension's; on SQLite all
// but SQLite's own.
func schemaTables(ctx context.Context, q queryer, dialect string) ([]string, error) {
	query := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`
	if dialect != "sqlite" {
		// A table an extension owns (PostGIS's spatial_ref_sys, put in every new database by a
		// template1 that has the extension) is the server's, not another application's.
		query = `SELECT t.table_name FROM information_schema.tables t
			WHERE t.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
			AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
				JOIN pg_catalog.pg_class c ON c.oid = d.objid
				JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
				WHERE d.deptype = 'e' AND c.relname = t.table_name AND n.nspname = t.table_schema)
			ORDER BY t.table_name`
	}
	rows, err := queryStrings(ctx, q, query)
	if err != nil {
		return nil, fmt.Errorf("listing the database's tables: %w", err)
	}
	var names []string
	for _, r := range rows {
		names = append(names, r[0])
	}
	return names, nil
}

// refuseForeign returns ErrForeignDatabase (naming database) when db holds tables and is not a
// ledger, reading only. A ledger is a database with a schema version and migration 1's tables
// (tables of its operator's beside them are left alone); an empty database, or one whose first
// migration is under way (or stopped half-way on CockroachDB: goose's tables and some of the
// ledger's, no version yet), is migrated. Without goose's version table every table counts, even
// one named like a ledger's: another application's envelopes would make migration 1 fail half-way.
func refuseForeign(ctx context.Context, db *sql.DB, dialect, database string) error {
	tables, err := schemaTables(ctx, db, dialect)
	if err != nil {
		return err
	}
	hasAll := func(want []string) bool {
		return !slices.ContainsFunc(want, func(t string) bool { return !slices.Contains(tables, t) })
	}
	var foreign []string
	switch {
	case !slices.Contains(tables, "goose_db_version"):
		foreign = slices.DeleteFunc(slices.Clone(tables), func(t string) bool { return slices.Contains(gooseTables, t) })
	default:
		applied, err := appliedVersions(ctx, db)
		if err != nil {
			return err
		}
		if len(applied) > 0 && hasAll(firstTables) {
			return nil
		}
		known, err := ledgerTables()
		if err != nil {
			return err
		}
		foreign = slices.DeleteFunc(slices.Clone(tables), func(t string) bool { return known[t] })
		if len(foreign) == 0 && len(applied) > 0 {
			// Versions applied by goose, and not the ledger's tables: another application's.
			foreign = slices.DeleteFunc(slices.Clone(tables), func(t string) bool { return slices.Contains(gooseTables, t) })
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	return &foreignError{database: database, tables: foreign}
}
