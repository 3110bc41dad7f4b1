package ledger

import (
	"errors"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// TestOpenRefusesANewerSchema protects the journal and its log against a release older than the
// ledger: a ledger whose schema has a migration this binary does not know (a later release's) is
// refused by Open, for serving and for verify alike (MustExist), before any write. An older
// release writing on a later one's schema would record by rules the schema has moved past (log
// leaves without a field the later release logs), and its verify would judge by them.
func TestOpenRefusesANewerSchema(t *testing.T) {
	t.Parallel()
	forEachDatabase(t, func(t *testing.T, db testDB) {
		l := db.open(t)
		mustCreateEnvelope(t, l, "fund", "", 1_000)
		if err := rawExec(t.Context(), l, "INSERT INTO goose_db_version (version_id, is_applied) VALUES (9999, true)"); err != nil {
			t.Fatal(err)
		}
		l.Close()
		for _, cfg := range []Config{{TxTimeout: testdb.TxTimeout}, {TxTimeout: testdb.TxTimeout, MustExist: true}} {
			l, err := Open(t.Context(), db.dsn, cfg)
			if err == nil {
				l.Close()
			}
			if !errors.Is(err, ErrSchemaNewer) {
				t.Fatalf("Open (MustExist: %v) of a ledger with a later release's migration 9999: %v, want ErrSchemaNewer", cfg.MustExist, err)
			}
			t.Logf("MustExist %v: %v", cfg.MustExist, err)
		}
	})
}
