package ledger

import (
	"context"
	"errors"
	"testing"

	"github.com/budgetledger/budgetledger/internal/testdb"
)

// Background verifications (AIP-151): the result of a verification is Verify's; one runs at a
// time; a retry with the same request id gets the same verification; Close cancels the running
// one; a verification this process does not know is VERIFICATION_NOT_FOUND.

// waitVerifications waits until no verification runs.
func (l *Ledger) waitVerifications() { l.verifications.wg.Wait() }

func TestVerificationGivesVerifysReport(t *testing.T) {
	t.Parallel()
	forEachEngine(t, func(t *testing.T, l *Ledger) {
		ctx := t.Context()
		mustCreateEnvelope(t, l, "fund", "", 1_000_000)
		mustCreateEnvelope(t, l, "axis-1", "fund", 400_000)
		v, err := l.StartVerification(ctx, "auditor:a", "verify-1")
		if err != nil {
			t.Fatal(err)
		}
		if v.State != VerificationRunning || v.Caller != "auditor:a" || v.CreatedAt.IsZero() {
			t.Fatalf("started: %+v", v)
		}
		l.waitVerifications()
		got, err := l.GetVerification(ctx, v.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := requireVerifyOK(t, l)
		if got.State != VerificationSucceeded || got.DoneAt.Before(got.CreatedAt) || got.Report.Envelopes != want.Envelopes ||
			got.Report.Entries != want.Entries || len(got.Report.Discrepancies) != 0 {
			t.Fatalf("verification: %+v, Verify: %+v", got, want)
		}
		again, err := l.StartVerification(ctx, "auditor:a", "verify-1")
		if err != nil || again.ID != v.ID || again.State != VerificationSucceeded {
			t.Fatalf("a retry with the same request id: %+v, %v; want verification %s, succeeded", again, err, v.ID)
		}
		other, err := l.StartVerification(ctx, "auditor:b", "verify-1")
		if err != nil || other.ID == v.ID {
			t.Fatalf("another caller's request id: %+v, %v; want a verification of its own", other, err)
		}
		l.waitVerifications()
		if _, err := l.GetVerification(ctx, "0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e"); !errors.Is(err, ErrVerificationNotFound) {
			t.Fatalf("an unknown verification: %v", err)
		}
	})
}

// TestOneVerificationAtATime: while one runs, starting another is VERIFICATION_RUNNING naming
// the running one; once it is done, another starts.
func TestOneVerificationAtATime(t *testing.T) {
	t.Parallel()
	l := newSQLiteDB(t).open(t)
	release := make(chan struct{})
	l.verifications.beforeVerify = func(context.Context) { <-release }
	ctx := t.Context()
	first, err := l.StartVerification(ctx, "auditor:a", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = l.StartVerification(ctx, "auditor:b", "")
	var e *Error
	if !errors.As(err, &e) || e.Reason != ReasonVerificationRunning || e.Metadata["verification"] != VerificationName(first.ID) {
		t.Fatalf("a second verification while one runs: %v, want VERIFICATION_RUNNING naming %s", err, first.ID)
	}
	if again, err := l.StartVerification(ctx, "auditor:a", ""); err == nil {
		t.Fatalf("without a request id, a call started %s while %s runs", again.ID, first.ID)
	}
	close(release)
	l.waitVerifications()
	if _, err := l.StartVerification(ctx, "auditor:b", ""); err != nil {
		t.Fatalf("after the first ended: %v", err)
	}
	l.waitVerifications()
}

// TestCloseCancelsVerification: a verification running when the ledger closes ends CANCELLED,
// and Close waits for it.
func TestCloseCancelsVerification(t *testing.T) {
	t.Parallel()
	l, err := Open(t.Context(), newSQLiteDB(t).dsn, Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	l.verifications.beforeVerify = func(ctx context.Context) {
		close(started)
		<-ctx.Done()
	}
	v, err := l.StartVerification(t.Context(), "auditor:a", "")
	if err != nil {
		t.Fatal(err)
	}
	<-started
	l.Close()
	got, err := l.GetVerification(t.Context(), v.ID)
	if err != nil || got.State != VerificationCancelled || got.DoneAt.IsZero() {
		t.Fatalf("after Close: %+v, %v; want CANCELLED", got, err)
	}
	if _, err := l.StartVerification(t.Context(), "auditor:a", ""); !errors.Is(err, ErrStoreUnavailable) {
		t.Fatalf("a verification started after Close: %v, want STORE_UNAVAILABLE", err)
	}
}

// TestFinishedVerificationsAreBounded: a process keeps the last MaxFinishedVerifications finished
// verifications; older ones, and their request ids, are forgotten (VERIFICATION_NOT_FOUND).
func TestFinishedVerificationsAreBounded(t *testing.T) {
	t.Parallel()
	l := newSQLiteDB(t).open(t)
	ctx := t.Context()
	var ids []string
	for i := range MaxFinishedVerifications + 1 {
		v, err := l.StartVerification(ctx, "auditor:a", "v-"+string(rune('a'+i%26))+string(rune('a'+i/26)))
		if err != nil {
			t.Fatal(err)
		}
		l.waitVerifications()
		ids = append(ids, v.ID)
	}
	if _, err := l.GetVerification(ctx, ids[0]); !errors.Is(err, ErrVerificationNotFound) {
		t.Fatalf("the oldest of %d: %v, want VERIFICATION_NOT_FOUND", len(ids), err)
	}
	if _, err := l.GetVerification(ctx, ids[1]); err != nil {
		t.Fatalf("the second oldest: %v", err)
	}
	if v, err := l.StartVerification(ctx, "auditor:a", "v-aa"); err != nil || v.ID == ids[0] {
		t.Fatalf("the forgotten verification's request id: %+v, %v; want a new verification", v, err)
	}
	l.waitVerifications()
}
