package ledger

import (
	"fmt"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/google/go-cmp/cmp"
)

// sparseColumns are the commitment columns stored as NULL at their default (migration 27), with
// that default.
var sparseColumns = [][2]string{{"released", "0"}, {"description", "''"}, {"updated_at", "created_at"},
	{"eligible_cost", "0"}, {"territory", "''"}, {"population", "0"}, {"paid", "0"}, {"close_reason", "''"},
	{"decision_reference", "''"}, {"beneficiary_legal_name", "''"}, {"beneficiary_siret", "''"},
	{"beneficiary_rna", "''"}, {"purpose", "''"}, {"effective_at", "created_at"}}

// sqliteCommitmentsBefore27 is SQLite's commitments table as migrations 1 to 26 left it (as
// sqlite_master gives it).
const sqliteCommitmentsBefore27 = `CREATE TABLE commitments_before_27 (
    id          TEXT PRIMARY KEY,
    envelope_id TEXT NOT NULL,
    beneficiary TEXT NOT NULL,
    project     TEXT NOT NULL,
    currency    TEXT NOT NULL,
    amount      BIGINT NOT NULL CHECK (amount > 0),
    released    BIGINT NOT NULL CHECK (released >= 0 AND released <= amount),
    description TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
, eligible_cost BIGINT NOT NULL DEFAULT 0, territory TEXT NOT NULL DEFAULT '', population BIGINT NOT NULL DEFAULT 0,
  paid BIGINT NOT NULL DEFAULT 0 CHECK (paid >= 0), closed_at BIGINT, close_reason TEXT NOT NULL DEFAULT '',
  close_effective_at BIGINT, decision_reference TEXT NOT NULL DEFAULT '', beneficiary_legal_name TEXT NOT NULL DEFAULT '',
  beneficiary_siret TEXT NOT NULL DEFAULT '', beneficiary_rna TEXT NOT NULL DEFAULT '', purpose TEXT NOT NULL DEFAULT '',
  effective_at BIGINT)`

// columnNames are the names of sparseColumns.
func columnNames() []string {
	var names []string
	for _, c := range sparseColumns {
		names = append(names, c[0])
	}
	return names
}

// TestCommitmentDefaultsMigration protects migration 27 (a commitment's defaults stored as NULL)
// on a ledger with every kind of entry and a commitment with every figure given, put back in the
// shape written before it (every default stored, the columns NOT NULL with their defaults): after
// the migration every commitment reads the same, Verify is clean, an award made since stores its
// defaults as NULL, and on SQLite, which
// rebuilds the table, no row keeps a stored default.
func TestCommitmentDefaultsMigration(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		ctx := t.Context()
		src := fillForCopy(t, db)
		open := src.opener(t)
		l := open()
		full := commitCmd("b-other", "siren:full", 2_000)
		full.Description, full.Policy = "every figure", Policy{EligibleCost: 9_000, Territory: "insee:69123", Population: 500_000}
		full.Publication = Publication{DecisionReference: "DEC-1", BeneficiaryLegalName: "Commune", BeneficiarySIRET: "21690123100011",
			BeneficiaryRNA: "W691234567", Purpose: "Dématérialisation"}
		res, err := l.Commit(ctx, full)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Release(ctx, Release{RequestID: newRequestID(), Caller: testCaller, CommitmentID: res.Commitment.ID, Amount: 500, Reason: "r"}); err != nil {
			t.Fatal(err)
		}
		read := func(l *Ledger) []Commitment {
			t.Helper()
			var all []Commitment
			for _, e := range []string{"z-programme", "a-axis-1", "m-axis-2", "b-other"} {
				cs, _, err := l.ListCommitments(ctx, CommitmentFilter{EnvelopeID: e}, Page{Size: 100})
				if err != nil {
					t.Fatal(err)
				}
				all = append(all, cs...)
			}
			requireVerifyOK(t, l)
			return all
		}
		before := read(l)

		// The shape before migration 27: every default stored; on PostgreSQL the columns NOT NULL
		// with their defaults again, on SQLite the table as migrations 1 to 26 left it.
		var set, kept []string
		for _, c := range sparseColumns {
			set = append(set, fmt.Sprintf("%s = COALESCE(%s, %s)", c[0], c[0], c[1]))
			kept = append(kept, fmt.Sprintf("COALESCE(%s, %s)", c[0], c[1]))
		}
		var demote []string
		if db.engine == "sqlite" {
			demote = []string{sqliteCommitmentsBefore27,
				"INSERT INTO commitments_before_27 (id, envelope_id, beneficiary, project, currency, amount, created_at, closed_at, " +
					"close_effective_at, " + strings.Join(columnNames(), ", ") + ") SELECT id, envelope_id, beneficiary, project, " +
					"currency, amount, created_at, closed_at, close_effective_at, " + strings.Join(kept, ", ") + " FROM commitments",
				"DROP TABLE commitments", "ALTER TABLE commitments_before_27 RENAME TO commitments",
				"CREATE INDEX commitments_by_envelope ON commitments (envelope_id, id)",
				"CREATE INDEX commitments_by_beneficiary ON commitments (beneficiary, id)"}
		} else {
			demote = []string{"UPDATE commitments SET " + strings.Join(set, ", ")}
			for _, c := range sparseColumns {
				if c[0] != "effective_at" {
					def := c[1]
					if def == "created_at" {
						demote = append(demote, "ALTER TABLE commitments ALTER COLUMN "+c[0]+" SET NOT NULL")
						continue
					}
					demote = append(demote, "ALTER TABLE commitments ALTER COLUMN "+c[0]+" SET NOT NULL, ALTER COLUMN "+
						c[0]+" SET DEFAULT "+def)
				}
			}
		}
		demote = append(demote, "DELETE FROM goose_db_version WHERE version_id = 27")
		for _, stmt := range demote {
			if err := rawExec(ctx, l, stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		l.Close()

		l = open() // runs migration 27
		defer l.Close()
		if diff := cmp.Diff(before, read(l)); diff != "" {
			t.Errorf("the commitments changed (-before +after):\n%s", diff)
		}
		count := func(cond string) int64 {
			t.Helper()
			var n int64
			err := l.db.ReadOnly(ctx, func(q store.Querier) error {
				return q.QueryRow(ctx, "SELECT COUNT(*) FROM commitments WHERE "+cond).Scan(&n)
			})
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
		var stored []string
		for _, c := range sparseColumns {
			stored = append(stored, c[0]+" = "+c[1])
		}
		if db.engine != "sqlite" {
			var n int64
			err := l.db.ReadOnly(ctx, func(q store.Querier) error {
				return q.QueryRow(ctx, `SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema()
					AND table_name = 'commitments' AND column_name = ANY($1) AND is_nullable = 'YES' AND column_default IS NULL`,
					columnNames()).Scan(&n)
			})
			if err != nil || n != int64(len(sparseColumns)) {
				t.Errorf("after migration 27, %d of the %d columns are nullable without a default (%v)", n, len(sparseColumns), err)
			}
		}
		if db.engine == "sqlite" {
			if n := count(strings.Join(stored, " OR ")); n != 0 {
				t.Errorf("after SQLite's rebuild, %d commitments store a default, want none", n)
			}
		}

		fresh, err := l.Commit(ctx, commitCmd("b-other", "siren:fresh", 1_000))
		if err != nil {
			t.Fatal(err)
		}
		var null []string
		for _, c := range sparseColumns {
			null = append(null, c[0]+" IS NULL")
		}
		if n := count("id = '" + fresh.Commitment.ID + "' AND " + strings.Join(null, " AND ")); n != 1 {
			t.Errorf("an award made after migration 27 stores its defaults, want every one NULL")
		}
		if got, err := l.GetCommitment(ctx, fresh.Commitment.ID); err != nil || !cmp.Equal(got, fresh.Commitment) {
			t.Errorf("GetCommitment = %+v, %v; the award answered %+v", got, err, fresh.Commitment)
		}
	})
}
