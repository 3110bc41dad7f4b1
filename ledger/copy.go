package ledger

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/budgetledger/budgetledger/ledger/store"
	"github.com/budgetledger/budgetledger/ledger/translog"
)

// Moving a whole ledger between databases (issue 20, `ledgerd copy`, docs/operations.md): the
// source is verified, copied table by table by store.Copy (generic over the schema, in one
// snapshot of the source, restartable), and the target is verified.

// CopyOptions tune Copy.
type CopyOptions struct {
	// Force copies a source that fails verification; its discrepancies are in the report.
	Force bool
	// VerifierKey, when set, checks the signatures of the log's checkpoints on both sides too.
	VerifierKey string
	// BatchRows is the most rows one target transaction writes (default 5000).
	BatchRows int
	// Progress, when set, is called after every batch.
	Progress func(store.CopyProgress)
	// AfterBatch, when set (tests), is called after every batch has committed.
	AfterBatch func()
}

// CopyReport is what Copy did and found.
type CopyReport struct {
	// Source and SourceLog are the source's verification (before the copy).
	Source    VerifyReport
	SourceLog LogReport
	// Copy is what store.Copy wrote: the rows per table; CopyTime how long it took (the
	// verifications excluded).
	Copy     store.CopyResult
	CopyTime time.Duration
	// Target and TargetLog are the target's verification (after the copy).
	Target    VerifyReport
	TargetLog LogReport
	// LastSequence is the journal's last position in the target; LogSize and LogRoot the
	// transparency log's tree.
	LastSequence int64
	LogSize      int64
	LogRoot      []byte
}

// SourceDiscrepancies are the source's discrepancies, the log's included.
func (r CopyReport) SourceDiscrepancies() []string { return discrepancyTexts(r.Source, r.SourceLog) }

// TargetDiscrepancies are the target's discrepancies, the log's included, as text.
func (r CopyReport) TargetDiscrepancies() []string { return discrepancyTexts(r.Target, r.TargetLog) }

// discrepancyTexts are a verification's discrepancies and its log's, as text.
func discrepancyTexts(v VerifyReport, l LogReport) []string {
	var out []string
	for _, d := range v.Discrepancies {
		out = append(out, fmt.Sprint(d))
	}
	return append(out, l.Discrepancies...)
}

// ErrSourceUnsound says that the source fails verification and Force was not given: nothing
// was copied.
var ErrSourceUnsound = errors.New("the source ledger fails verification")

// ErrTargetUnsound says that the copied ledger fails verification.
var ErrTargetUnsound = errors.New("the copied ledger fails verification")

// verifyAll opens the ledger at database (which must exist and be at this binary's schema) and
// verifies it and its log, and reads its journal's last position and its log's root.
func verifyAll(ctx context.Context, database, vkey string) (rep VerifyReport, logRep LogReport, last, size int64, root []byte, err error) {
	l, err := Open(ctx, database, Config{DisableBatching: true, MustExist: true, TxTimeout: 0})
	if err != nil {
		return rep, logRep, 0, 0, nil, err
	}
	defer l.Close()
	if rep, err = l.Verify(ctx); err != nil {
		return rep, logRep, 0, 0, nil, err
	}
	if logRep, err = l.VerifyLog(ctx, vkey); err != nil {
		return rep, logRep, 0, 0, nil, err
	}
	err = l.db.ReadOnly(ctx, func(q store.Querier) error {
		if err := q.QueryRow(ctx, `SELECT last_seq FROM journal_head WHERE id = 1`).Scan(&last); err != nil {
			return err
		}
		if size, err = store.LogSize(ctx, q); err != nil {
			return err
		}
		root, err = translog.Root(uint64(size), store.LogNodes(ctx, q))
		return err
	})
	return rep, logRep, last, size, root, err
}

// Copy moves the whole ledger at from into to, an empty database (or one holding this copy
// interrupted, which is resumed), any pair among SQLite, PostgreSQL and CockroachDB. The source
// must be at this binary's schema version; it is verified first and refused when it fails
// (unless Force). The target is verified when the copy is finished.
func Copy(ctx context.Context, from, to string, opts CopyOptions) (CopyReport, error) {
	var rep CopyReport
	if err := store.CheckSchema(ctx, from); err != nil {
		return rep, err
	}
	var err error
	rep.Source, rep.SourceLog, _, _, _, err = verifyAll(ctx, from, opts.VerifierKey)
	if err != nil {
		return rep, fmt.Errorf("verifying the source: %w", err)
	}
	if bad := rep.SourceDiscrepancies(); len(bad) > 0 && !opts.Force {
		return rep, fmt.Errorf("%w (%d discrepancies; nothing was copied; --force copies it as it is): %v",
			ErrSourceUnsound, len(bad), bad)
	}
	start := time.Now()
	rep.Copy, err = store.Copy(ctx, from, to, store.CopyOptions{BatchRows: opts.BatchRows, Progress: opts.Progress, AfterBatch: opts.AfterBatch})
	rep.CopyTime = time.Since(start)
	if err != nil {
		return rep, err
	}
	rep.Target, rep.TargetLog, rep.LastSequence, rep.LogSize, rep.LogRoot, err = verifyAll(ctx, to, opts.VerifierKey)
	if err != nil {
		return rep, fmt.Errorf("verifying the target: %w", err)
	}
	// A sound source makes a sound target; a source copied as it is (Force), a target with the
	// same discrepancies, no more and no fewer.
	if src, dst := rep.SourceDiscrepancies(), rep.TargetDiscrepancies(); !slices.Equal(slices.Sorted(slices.Values(src)), slices.Sorted(slices.Values(dst))) {
		return rep, fmt.Errorf("%w: %d discrepancies where the source has %d: %v", ErrTargetUnsound, len(dst), len(src), dst)
	}
	return rep, nil
}

// BackupReport is the verification of a backup.
type BackupReport struct {
	Verify       VerifyReport
	Log          LogReport
	LastSequence int64
	LogSize      int64
	LogRoot      []byte
}

// ErrBackupUnsound says that the backup was written but fails verification.
var ErrBackupUnsound = errors.New("the backup fails verification")

// Backup writes an online, consistent copy of the SQLite ledger at database to the new file out
// (store.Backup), then opens the copy and verifies it and its log (vkey, when set, checks the
// checkpoints' signatures too).
func Backup(ctx context.Context, database, out, vkey string) (BackupReport, error) {
	var rep BackupReport
	// Opening the backup to verify it would migrate a ledger of another schema version.
	if err := store.CheckBackupSchema(ctx, database); err != nil {
		return rep, err
	}
	// The copy is verified before it takes its name: one that fails is removed, and the same
	// command can run again.
	name := store.BackupPath(out)
	err := store.Backup(ctx, database, out, func(path string) error {
		var err error
		rep.Verify, rep.Log, rep.LastSequence, rep.LogSize, rep.LogRoot, err = verifyAll(ctx, path, vkey)
		if err != nil {
			return fmt.Errorf("verifying the backup %s: %w", name, err)
		}
		if n := len(rep.Verify.Discrepancies) + len(rep.Log.Discrepancies); n > 0 {
			return fmt.Errorf("%w: %s: %d discrepancies: %v %v", ErrBackupUnsound, name, n, rep.Verify.Discrepancies, rep.Log.Discrepancies)
		}
		return nil
	})
	return rep, err
}
