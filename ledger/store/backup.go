package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/budgetledger/budgetledger/internal/newfile"
)

// ErrBackupExists refuses to write a backup over an existing file.
var ErrBackupExists = errors.New("the backup file exists already: a backup never overwrites a file")

// Backup writes an online, consistent copy of the SQLite ledger at database to the new file out,
// with SQLite's VACUUM INTO (issue 20, docs/operations.md): it reads one snapshot of the WAL
// database, as any reader does, so ledgerd goes on serving and committing beside it, and the
// copy holds exactly the transactions committed before the snapshot began, its pages written
// anew (no WAL to carry). PostgreSQL and CockroachDB are backed up with their own tools
// (pg_dump, pg_basebackup; BACKUP): Backup refuses them.
//
// check, when set, is run on the copy before it takes its name (the caller's verification): a
// copy it refuses is removed, and nothing is left at out.
func Backup(ctx context.Context, database, out string, check func(path string) error) error {
	if isPostgres(database) {
		return errors.New("ledgerd backup copies a SQLite ledger; back up PostgreSQL with pg_dump or pg_basebackup, CockroachDB with BACKUP (docs/operations.md)")
	}
	if isPostgres(out) {
		return errors.New("ledgerd backup writes a SQLite file: --out names a file, not a server (to move a ledger to PostgreSQL, use ledgerd copy)")
	}
	out = sqlitePath(out) // sqlite:PATH and file:PATH name PATH, as --database does
	if _, err := os.Lstat(out); err == nil {
		return fmt.Errorf("%w: %s", ErrBackupExists, out)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	e, err := open(ctx, database, Config{MustExist: true, noMigrate: true, TxTimeout: 30 * time.Second})
	if err != nil {
		return err
	}
	defer e.Close()
	// A copy's target not yet filled is no ledger to back up (nothing would be written).
	if err := checkCopyFinished(ctx, e); err != nil {
		return err
	}
	// The copy is written beside out under a name of its own, made durable, checked, then given
	// its name (a link, which refuses an existing file): a backup cut short (killed, the disk
	// full) or refused by check leaves nothing at out (at most OUT.partial-* after a kill), and
	// never overwrites a file made meanwhile.
	dir, base := filepath.Split(out)
	if dir == "" {
		dir = "." // (CreateTemp would take the system's temporary folder)
	}
	tmp, err := os.CreateTemp(dir, base+".partial-*")
	if err != nil {
		return fmt.Errorf("writing the backup %s: %w", out, err)
	}
	partial := tmp.Name()
	tmp.Close()
	done := false
	defer func() {
		if !done {
			os.Remove(partial)
		}
	}()
	// VACUUM INTO writes into a file that does not exist or is empty, as partial is.
	if _, err := e.(*sqliteEngine).db.ExecContext(ctx, `VACUUM INTO $1`, partial); err != nil {
		return fmt.Errorf("writing the backup %s: %w", out, err)
	}
	if err := newfile.Sync(partial); err != nil {
		return fmt.Errorf("writing the backup %s: %w", out, err)
	}
	if check != nil {
		if err := check(partial); err != nil {
			return err
		}
	}
	if err := newfile.Name(partial, out); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrBackupExists, out)
		}
		return fmt.Errorf("naming the backup %s: %w", out, err)
	}
	done = true
	return nil
}

// BackupPath is the file that Backup writes for out (sqlite:PATH and file:PATH name PATH).
func BackupPath(out string) string { return sqlitePath(out) }
