package store

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"time"

	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	"github.com/sethvargo/go-retry"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// appendOnlyTriggers make the journal and the request log append-only (invariant 6) inside the
// database itself, so that no code path, tool or operator session can edit history unnoticed.
// Trigger syntax differs between engines, hence a Go migration.
var appendOnlyTriggers = map[string][]string{
	"sqlite": {
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE ON journal_entries
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
		`CREATE TRIGGER journal_entries_no_delete BEFORE DELETE ON journal_entries
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
		`CREATE TRIGGER postings_append_only BEFORE UPDATE ON postings
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
		`CREATE TRIGGER postings_no_delete BEFORE DELETE ON postings
		 BEGIN SELECT RAISE(ABORT, 'the journal is append-only'); END`,
		`CREATE TRIGGER requests_append_only BEFORE UPDATE ON requests
		 BEGIN SELECT RAISE(ABORT, 'the request log is append-only'); END`,
		`CREATE TRIGGER requests_no_delete BEFORE DELETE ON requests
		 BEGIN SELECT RAISE(ABORT, 'the request log is append-only'); END`,
	},
	"postgres": {
		`CREATE FUNCTION ledger_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN RAISE EXCEPTION 'the ledger table % is append-only', TG_TABLE_NAME; END $$`,
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
		 FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`,
		`CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
		 FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`,
		`CREATE TRIGGER requests_append_only BEFORE UPDATE OR DELETE ON requests
		 FOR EACH ROW EXECUTE FUNCTION ledger_append_only()`,
	},
}

// sequenceTriggers let the journal's append-only trigger allow one change: giving an entry its
// position (seq) once, from NULL, with nothing else changed (Go migration 7, after 00004).
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
		`CREATE OR REPLACE FUNCTION ledger_journal_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN
		   IF TG_OP = 'UPDATE' AND OLD.seq IS NULL AND NEW.seq IS NOT NULL
		      AND (NEW.id, NEW.kind, NEW.currency, NEW.caller, NEW.request_id, NEW.memo, NEW.created_at)
		          IS NOT DISTINCT FROM (OLD.id, OLD.kind, OLD.currency, OLD.caller, OLD.request_id, OLD.memo, OLD.created_at)
		   THEN RETURN NEW; END IF;
		   RAISE EXCEPTION 'the ledger table % is append-only', TG_TABLE_NAME;
		 END $$`,
		`DROP TRIGGER IF EXISTS journal_entries_append_only ON journal_entries`,
		`CREATE TRIGGER journal_entries_append_only BEFORE UPDATE OR DELETE ON journal_entries
		 FOR EACH ROW EXECUTE FUNCTION ledger_journal_append_only()`,
	},
}

// rulesAppendOnly (migration 6) makes the rule sets append-only like the journal (invariant 6:
// "every table that a decision reads"): a rule set edited in place would let awards through that
// its RULES_CHANGED entry forbids. Each trigger is dropped first, so the migration is safe to run
// again; the PostgreSQL function is its own, so it depends on no other migration.
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
		`CREATE OR REPLACE FUNCTION ledger_rules_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
		 BEGIN RAISE EXCEPTION 'the ledger table % is append-only', TG_TABLE_NAME; END $$`,
		`DROP TRIGGER IF EXISTS envelope_rules_append_only ON envelope_rules`,
		`CREATE TRIGGER envelope_rules_append_only BEFORE UPDATE OR DELETE ON envelope_rules
		 FOR EACH ROW EXECUTE FUNCTION ledger_rules_append_only()`,
	},
}

// postgresOnly are statements for PostgreSQL proper, not CockroachDB: envelope rows are updated by
// every batch, so each gets room on its page for HOT updates, which write no index entry; an
// index entry would conflict with the predicate lock every batch holds on the envelopes index.
var postgresOnly = []string{`ALTER TABLE envelopes SET (fillfactor = 10)`}

// runStatements is a Go migration that runs stmts in order, in its transaction.
func runStatements(stmts []string) *goose.GoFunc {
	return &goose.GoFunc{RunTx: func(ctx context.Context, tx *sql.Tx) error {
		for _, stmt := range stmts {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
		return nil
	}}
}

// migrate brings the schema up to date with goose. dialect is "sqlite" or "postgres" (CockroachDB
// speaks the PostgreSQL dialect; cockroach is set when the server is CockroachDB).
func migrate(ctx context.Context, db *sql.DB, dialect string, cockroach bool) error {
	gooseDialect := goose.DialectPostgres
	if dialect == "sqlite" {
		gooseDialect = goose.DialectSQLite3
	}
	sub, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return err
	}
	triggers := appendOnlyTriggers[dialect]
	if dialect == "postgres" && !cockroach {
		triggers = append(triggers, postgresOnly...)
	}
	opts := []goose.ProviderOption{
		goose.WithDisableGlobalRegistry(true),
		// A ledger upgraded by a build that had a later migration but not an earlier one (they were
		// written side by side) still gets the earlier one; every migration after 4 is safe to
		// run again.
		goose.WithAllowOutofOrder(true),
		goose.WithGoMigrations(
			goose.NewGoMigration(2, runStatements(triggers), nil),
			goose.NewGoMigration(6, runStatements(rulesAppendOnly[dialect]), nil),
			goose.NewGoMigration(7, runStatements(sequenceTriggers[dialect]), nil),
			goose.NewGoMigration(11, runStatements(tlogSchema[dialect]), nil), // the transparency log (tlog_schema.go)
		),
	}
	if dialect == "postgres" {
		// Several ledgerd processes may start at once on one database: a lock row in a plain
		// table (not an advisory lock, which CockroachDB does not honour) lets one migrate while
		// the others wait.
		locker, err := lock.NewPostgresTableLocker(lock.WithTableName("ledger_migration_lock"),
			lock.WithTableLockTimeout(100*time.Millisecond, 600))
		if err != nil {
			return err
		}
		opts = append(opts, goose.WithLocker(locker))
	}
	provider, err := goose.NewProvider(gooseDialect, db, sub, opts...)
	if err != nil {
		return fmt.Errorf("preparing migrations: %w", err)
	}
	// Creating the lock table itself can race between processes starting together; each
	// migration runs in a transaction, so trying again is safe.
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
