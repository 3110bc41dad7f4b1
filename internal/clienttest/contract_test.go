package clienttest_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestMoveWithETag: through the Go client, a move carrying the etag of the last read is made
// when nothing changed, and refused with ErrETagMismatch (once, not retried) when the source
// changed since (AIP-154).
func TestMoveWithETag(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	c := dial(t, d.addr)
	ctx := context.Background()
	for _, p := range []client.CreateEnvelopeParams{{EnvelopeID: "fund", Allocation: 10 * million},
		{EnvelopeID: "axis-1", Parent: "envelopes/fund", Allocation: million}} {
		if _, err := c.CreateEnvelope(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	fund, err := c.GetEnvelope(ctx, "envelopes/fund")
	if err != nil || fund.GetEtag() == "" {
		t.Fatalf("GetEnvelope: %v, etag %q", err, fund.GetEtag())
	}
	moved, err := c.MoveAllocation(ctx, client.MoveAllocationParams{Source: "envelopes/fund", Destination: "envelopes/axis-1",
		Amount: 1, Reason: "r", ETag: fund.GetEtag()})
	if err != nil {
		t.Fatalf("a move with the current etag: %v", err)
	}
	if moved.GetSource().GetEtag() == fund.GetEtag() {
		t.Fatal("the move left the source's etag as it was")
	}
	_, err = c.MoveAllocation(ctx, client.MoveAllocationParams{Source: "envelopes/fund", Destination: "envelopes/axis-1",
		Amount: 1, Reason: "r", ETag: fund.GetEtag()})
	var ce *client.Error
	if !errors.Is(err, client.ErrETagMismatch) || !errors.As(err, &ce) || ce.Metadata["envelope"] != "envelopes/fund" {
		t.Fatalf("a move with the etag of before the last move: %v, want ErrETagMismatch on envelopes/fund", err)
	}
}

// TestBackgroundVerification: StartVerification runs VerifyLedger's verification in the
// background (AIP-151); polled to its end, it holds what VerifyLedger answers.
func TestBackgroundVerification(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	c := dial(t, d.addr)
	ctx := context.Background()
	if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: "fund", Allocation: million}); err != nil {
		t.Fatal(err)
	}
	v, err := c.StartVerification(ctx, "verify-1")
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitVerification(ctx, v.GetName(), time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	sync, err := c.Audit().VerifyLedger(ctx, &pb.VerifyLedgerRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if done.GetState() != pb.Verification_STATE_SUCCEEDED || done.GetDoneTime() == nil ||
		done.GetResult().GetEnvelopeCount() != sync.GetEnvelopeCount() || done.GetResult().GetJournalEntryCount() != sync.GetJournalEntryCount() ||
		done.GetResult().GetDiscrepancyCount() != 0 {
		t.Fatalf("verification %v; VerifyLedger %v", done, sync)
	}
	if _, err := c.GetVerification(ctx, "verifications/0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e"); !errors.Is(err, client.ErrVerificationNotFound) {
		t.Fatalf("an unknown verification: %v", err)
	}
}

// TestVerificationForgottenByRestart: verifications live in the memory of the server process
// (documented in the proto and the README); after a restart on the same database, the server
// answers GetVerification with NOT_FOUND, reason VERIFICATION_NOT_FOUND, naming it.
func TestVerificationForgottenByRestart(t *testing.T) {
	t.Parallel()
	database := testdb.SQLite(t)
	first := startLedgerd(t, database, "127.0.0.1:0")
	c := dial(t, first.addr)
	ctx := context.Background()
	v, err := c.StartVerification(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WaitVerification(ctx, v.GetName(), time.Millisecond); err != nil {
		t.Fatal(err)
	}
	first.stop()
	second := startLedgerd(t, database, "127.0.0.1:0")
	_, err = dial(t, second.addr).GetVerification(ctx, v.GetName())
	var ce *client.Error
	if !errors.Is(err, client.ErrVerificationNotFound) || !errors.As(err, &ce) || ce.Metadata["verification"] != v.GetName() {
		t.Fatalf("a verification of before the restart: %v, want VERIFICATION_NOT_FOUND naming %s", err, v.GetName())
	}
}

// TestStartVerificationRetriedWithOneRequestID protects the client's rule that a mutation is
// retried only under one request id (client/doc.go): StartVerification without one gets a fresh
// id before its first attempt, and a retry after a lost answer carries it, so that the retry
// returns the verification the first attempt started instead of starting another.
func TestStartVerificationRetriedWithOneRequestID(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	var (
		mu  sync.Mutex
		ids []string
	)
	// Runs inside the client's retries, once per attempt: the first attempt reaches the server,
	// and its answer is lost.
	loseFirst := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		if method != pb.AuditService_StartVerification_FullMethodName {
			return invoker(ctx, method, req, reply, cc, opts...)
		}
		mu.Lock()
		ids = append(ids, req.(*pb.StartVerificationRequest).GetRequestId())
		first := len(ids) == 1
		mu.Unlock()
		err := invoker(ctx, method, req, reply, cc, opts...)
		if first && err == nil {
			return status.Error(codes.Unavailable, "the answer was lost")
		}
		return err
	}
	c := dial(t, d.addr, client.WithRetry(3, time.Millisecond), client.WithDialOptions(grpc.WithChainUnaryInterceptor(loseFirst)))
	v, err := c.StartVerification(context.Background(), "")
	if err != nil {
		t.Fatalf("StartVerification, its first answer lost: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] == "" || ids[1] != ids[0] {
		t.Fatalf("attempts carried request ids %q, want two, the same, not empty", ids)
	}
	if v.GetName() == "" {
		t.Fatalf("verification %v", v)
	}
}

// TestStreamErrorsAreClientErrors protects client/doc.go's "every error a call returns is an
// *Error" for streams: a refused stream, through the generated client and through the typed
// iterator, and a context ended while the iterator waits, match the client's sentinels.
func TestStreamErrorsAreClientErrors(t *testing.T) {
	t.Parallel()
	d := startLedgerd(t, testdb.SQLite(t), "127.0.0.1:0")
	c := dial(t, d.addr)
	ctx := context.Background()
	buildFund(t, c)
	stream, err := c.Journal().WatchJournalEntries(ctx, &pb.WatchJournalEntriesRequest{Envelope: "envelopes/Not A Name"})
	if err == nil {
		_, err = stream.Recv()
	}
	var e *client.Error
	if !errors.As(err, &e) || !errors.Is(err, client.ErrInvalidArgument) {
		t.Errorf("a refused stream through the generated client: %T %v, want an *Error matching ErrInvalidArgument", err, err)
	}
	for _, err := range c.WatchJournalEntries(ctx, client.WatchFilter{Envelope: "envelopes/Not A Name"}) {
		if !errors.As(err, &e) || !errors.Is(err, client.ErrInvalidArgument) {
			t.Errorf("a refused stream through WatchJournalEntries: %T %v, want an *Error matching ErrInvalidArgument", err, err)
		}
		break
	}
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for entry, err := range c.WatchJournalEntries(watchCtx, client.WatchFilter{}) {
		if err == nil {
			cancel() // after the first entry: the iterator then ends with the context's error
			_ = entry
			continue
		}
		if !errors.As(err, &e) || !errors.Is(err, client.ErrCancelled) || !errors.Is(err, context.Canceled) {
			t.Errorf("WatchJournalEntries ended by its context: %T %v, want an *Error matching ErrCancelled and context.Canceled", err, err)
		}
		break
	}
}
