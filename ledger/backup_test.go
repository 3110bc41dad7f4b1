package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// TestBackupUnderLoad protects the backup's promise (issue 20): a backup taken while writers
// commit is a ledger that verifies and holds every award acknowledged before the backup began
// (VACUUM INTO reads one snapshot, taken after those commits); and a backup never overwrites a
// file.
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
	out := filepath.Join(t.TempDir(), "backup.db")
	rep, err := Backup(t.Context(), db.dsn, out, "")
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup under load: %v", err)
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
