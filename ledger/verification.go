package ledger

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/budgetledger/budgetledger/ledger/audit"
	"github.com/budgetledger/budgetledger/ledger/core"
)

// Verifications run Verify in the background (AIP-151's long work), for ledgers too large to
// verify within one call's deadline: StartVerification returns at once, GetVerification polls.
//
// They live in this process's memory, not in the database: a verification only reads, and its
// result is one report, cheap to make again. So a restarted process, or another process on the same
// database, does not know a verification (VERIFICATION_NOT_FOUND). One runs at a time per process
// (another would read the same ledger again for the same answer): starting a second while one runs
// is VERIFICATION_RUNNING. The last MaxFinishedVerifications finished ones are kept. Close cancels
// the running one, which ends CANCELLED, and waits for it.

// MaxFinishedVerifications is how many finished verifications a process remembers.
const MaxFinishedVerifications = 100

// VerificationState is where a verification is.
type VerificationState int

// The states of a verification.
const (
	VerificationRunning VerificationState = iota + 1
	VerificationSucceeded
	VerificationFailed
	VerificationCancelled
)

func (s VerificationState) String() string {
	switch s {
	case VerificationRunning:
		return "RUNNING"
	case VerificationSucceeded:
		return "SUCCEEDED"
	case VerificationFailed:
		return "FAILED"
	case VerificationCancelled:
		return "CANCELLED"
	}
	return fmt.Sprintf("VerificationState(%d)", int(s))
}

// Verification is one run of Verify in the background.
type Verification struct {
	ID     string
	Caller string
	State  VerificationState
	// CreatedAt is when it started; DoneAt when it ended (zero while it runs).
	CreatedAt, DoneAt time.Time
	// Report is what it found, when it succeeded.
	Report VerifyReport
	// Err is why it failed or was cancelled.
	Err *Error

	requestKey string // core.RequestKey of its caller's request id, or ""
}

// verifications are a process's background verifications.
type verifications struct {
	mu        sync.Mutex
	byID      map[string]*Verification
	byRequest map[string]string // request key → id
	finished  []string          // ids of the finished ones, oldest first
	running   string            // id of the running one, or ""

	ctx    context.Context // ended by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// beforeVerify, set by tests only, runs in the verification's goroutine before it reads the
	// ledger, with the verification's context.
	beforeVerify func(ctx context.Context)
}

func newVerifications() *verifications {
	ctx, cancel := context.WithCancel(context.Background())
	return &verifications{byID: map[string]*Verification{}, byRequest: map[string]string{}, ctx: ctx, cancel: cancel}
}

// close cancels the running verification and waits for it to end. It cancels under mu, so that
// no StartVerification adds to wg once Wait may have begun.
func (v *verifications) close() {
	v.mu.Lock()
	v.cancel()
	v.mu.Unlock()
	v.wg.Wait()
}

// StartVerification starts a verification of the whole ledger in the background and returns it,
// RUNNING. With a request id, the same caller's retry gets the verification the first call started
// (as it is now), as long as this process remembers it; without one, every call starts its own.
// A verification already running is VERIFICATION_RUNNING, with its name in the metadata.
func (l *Ledger) StartVerification(_ context.Context, caller, requestID string) (Verification, error) {
	if requestID != "" {
		if err := core.CheckRequestID(requestID); err != nil {
			return Verification{}, err
		}
	}
	v := l.verifications
	v.mu.Lock()
	defer v.mu.Unlock()
	key := ""
	if requestID != "" {
		key = core.RequestKey(caller, requestID)
		if id, ok := v.byRequest[key]; ok {
			return *v.byID[id], nil
		}
	}
	if v.running != "" {
		return Verification{}, &Error{Reason: ReasonVerificationRunning,
			Message:  fmt.Sprintf("verification %q is running; one runs at a time: poll it, then start another", VerificationName(v.running)),
			Metadata: map[string]string{"verification": VerificationName(v.running)}}
	}
	if v.ctx.Err() != nil {
		return Verification{}, errShuttingDown
	}
	ver := &Verification{ID: newID(), Caller: caller, State: VerificationRunning, CreatedAt: stamp().At, requestKey: key}
	v.byID[ver.ID] = ver
	if key != "" {
		v.byRequest[key] = ver.ID
	}
	v.running = ver.ID
	v.wg.Add(1)
	go l.runVerification(ver.ID)
	return *ver, nil
}

// runVerification runs Verify for verification id and records how it ended.
func (l *Ledger) runVerification(id string) {
	v := l.verifications
	defer v.wg.Done()
	if v.beforeVerify != nil {
		v.beforeVerify(v.ctx)
	}
	rep, err := audit.Verify(v.ctx, l.db)
	v.mu.Lock()
	defer v.mu.Unlock()
	ver := v.byID[id]
	ver.DoneAt = stamp().At
	switch {
	case err == nil:
		ver.State, ver.Report = VerificationSucceeded, rep
	case v.ctx.Err() != nil:
		ver.State = VerificationCancelled
		ver.Err = &Error{Reason: ReasonStoreUnavailable, Message: "the server shut down before the verification finished; start another"}
	default:
		ver.State = VerificationFailed
		var e *Error
		if !errors.As(l.classify(v.ctx, err), &e) {
			e = core.Internal("verification: %v", err)
		}
		ver.Err = e
	}
	v.running = ""
	v.finished = append(v.finished, id)
	for len(v.finished) > MaxFinishedVerifications {
		old := v.byID[v.finished[0]]
		delete(v.byID, old.ID)
		if old.requestKey != "" {
			delete(v.byRequest, old.requestKey)
		}
		v.finished = v.finished[1:]
	}
}

// GetVerification returns a verification this process started and remembers, or
// VERIFICATION_NOT_FOUND.
func (l *Ledger) GetVerification(_ context.Context, id string) (Verification, error) {
	v := l.verifications
	v.mu.Lock()
	defer v.mu.Unlock()
	ver, ok := v.byID[id]
	if !ok {
		return Verification{}, &Error{Reason: ReasonVerificationNotFound,
			Message: fmt.Sprintf("verification %q is not known to this server: it never existed, was forgotten (the last %d finished ones are kept), or was started before a restart or by another server process",
				VerificationName(id), MaxFinishedVerifications),
			Metadata: map[string]string{"verification": VerificationName(id)}}
	}
	return *ver, nil
}

// VerificationName is the resource name of verification id.
func VerificationName(id string) string { return "verifications/" + id }
