package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// TestBackupUnderLoad protects the backup's promise (issue 20): a backup taken while writers
// commit is a ledger that verifies and holds every award acknowledged before the backup began
// (VACUUM INTO reads one snapshot, taken after those commits); a backup never overwrites a
// file; and it is written under a name of its own, then named: an earlier run cut short (its
// OUT.partial-* left behind) does not stop it, and it leaves no file but the backup.
func TestBackupUnderLoad(t *testing.T) {
	t.Parallel()
	db := newSQLiteDB(t)
	l := db.open(t)
	for i := range 4 {
		mustCreateEnvelope(t, l, fmt.Sprintf("line-%d", i), "", 1<<50)
	}
	var (
		mu      sync.Mutex
		acked   []string
		stop    atomic.Bool
		enough  = make(chan struct{})
		once    sync.Once
		wg      sync.WaitGroup
		writers = 8
	)
	for w := range writers {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				res, err := l.Commit(t.Context(), commitCmd(fmt.Sprintf("line-%d", w%4), fmt.Sprintf("siren:%d-%d", w, i), 100))
				if err != nil {
					t.Errorf("award: %v", err)
					return
				}
				mu.Lock()
				acked = append(acked, res.Commitment.ID)
				if len(acked) >= 300 {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		})
	}
	<-enough
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	folder := t.TempDir()
	out := filepath.Join(folder, "backup.db")
	leftover := out + ".partial-1234" // an earlier backup killed half-way
	if err := os.WriteFile(leftover, []byte("SQLite format 3\x00 cut short"), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := Backup(t.Context(), db.dsn, out, "")
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup under load: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(folder, "*"))
	if want := []string{out, leftover}; !slices.Equal(files, want) {
		t.Errorf("the backup's folder holds %q, want %q: the backup and the earlier run's file only", files, want)
	}
	if rep.Verify.Commitments < len(before) {
		t.Fatalf("the backup holds %d commitments, %d were acknowledged before it began", rep.Verify.Commitments, len(before))
	}
	restored, err := Open(t.Context(), out, Config{TxTimeout: testdb.TxTimeout, MustExist: true})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	for _, id := range before {
		if _, err := restored.GetCommitment(t.Context(), id); err != nil {
			t.Fatalf("award %s acknowledged before the backup is not in it: %v", id, err)
		}
	}
	// A backup never overwrites a file, the backup just written included.
	info, _ := os.Stat(out)
	if _, err := Backup(t.Context(), db.dsn, out, ""); !errors.Is(err, store.ErrBackupExists) {
		t.Fatalf("a second backup to the same file = %v, want ErrBackupExists", err)
	}
	if again, _ := os.Stat(out); again.Size() != info.Size() || again.ModTime() != info.ModTime() {
		t.Fatal("the refused backup changed the existing file")
	}
}

// TestBackupOfAnotherSchemaSaysToBackUpFirst: a backup of a ledger whose schema is older than
// this binary's is refused, before anything is written, with the advice of docs/operations.md
// ("back up with the ledgerd that serves the file"), not a copy's (upgrade it first, which would
// migrate the ledger before its backup).
func TestBackupOfAnotherSchemaSaysToBackUpFirst(t *testing.T) {
	t.Parallel()
	db := newSQLiteDB(t)
	l := db.open(t)
	mustCreateEnvelope(t, l, "fund", "", 1_000)
	if err := rawExec(t.Context(), l, "DELETE FROM goose_db_version WHERE version_id = (SELECT MAX(version_id) FROM goose_db_version)"); err != nil {
		t.Fatal(err)
	}
	l.Close()
	out := filepath.Join(t.TempDir(), "backup.db")
	_, err := Backup(t.Context(), db.dsn, out, "")
	if !errors.Is(err, store.ErrBackupRefused) || !strings.Contains(err.Error(), "back it up with the ledgerd release that serves it") ||
		strings.Contains(err.Error(), "then copy") {
		t.Errorf("backup of an older schema: %v, want it refused with a backup's advice", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("the refused backup left %s: %v", out, err)
	}
}

// TestRefusedBackupLeavesNothing: a backup whose verification fails (here: checked with another
// log's verifier key) is not given its name: nothing is left at --out, nor beside it, and the same
// backup can be taken again at once.
func TestRefusedBackupLeavesNothing(t *testing.T) {
	t.Parallel()
	db := newSQLiteDB(t)
	skey, vkey, err := translog.GenerateKey("ledger.test/backup")
	if err != nil {
		t.Fatal(err)
	}
	_, otherKey, err := translog.GenerateKey("ledger.test/other")
	if err != nil {
		t.Fatal(err)
	}
	l := openWithLog(t, db, skey)
	mustCreateEnvelope(t, l, "fund", "", 1_000)
	if err := l.checkpoint(t.Context()); err != nil {
		t.Fatal(err)
	}
	folder := t.TempDir()
	out := filepath.Join(folder, "backup.db")
	if _, err := Backup(t.Context(), db.dsn, out, otherKey); !errors.Is(err, ErrBackupUnsound) {
		t.Fatalf("a backup checked with another log's key: %v, want ErrBackupUnsound", err)
	}
	if files, _ := filepath.Glob(filepath.Join(folder, "*")); len(files) != 0 {
		t.Fatalf("the refused backup left %q", files)
	}
	if rep, err := Backup(t.Context(), db.dsn, out, vkey); err != nil || rep.Log.Checkpoints == 0 {
		t.Fatalf("the same backup again, with the log's key: %+v, %v", rep.Log, err)
	}
}
