package server_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/translog"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

// TestWatchJournalFollowsUnderLoad protects the journal stream's promise (issue 14): a consumer
// following WatchJournalEntries while 64 callers award on 30 envelopes, disconnected and resumed
// several times and once with its server shut down (resuming on another server over the same
// database), ends with exactly the final journal, each entry once, in sequence order.
func TestWatchJournalFollowsUnderLoad(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		t.Parallel()
		open := func() *ledger.Ledger {
			l, err := ledger.Open(context.Background(), database, ledger.Config{TxTimeout: testdb.TxTimeout})
			if err != nil {
				t.Fatal(err)
			}
			return l
		}
		lA, lB := open(), open()
		t.Cleanup(lB.Close)
		var closeA sync.Once
		t.Cleanup(func() { closeA.Do(lA.Close) })
		addrA, srvA := serve(t, lA, server.Config{})
		addrB, _ := serve(t, lB, server.Config{})
		connB := dialPlain(t, addrB)
		envelopes, commitments := pb.NewEnvelopeServiceClient(connB), pb.NewCommitmentServiceClient(connB)
		ctx := context.Background()
		create := func(id, parent string, amount int64) {
			req := &pb.CreateEnvelopeRequest{RequestId: uuid.NewString(), EnvelopeId: id, DisplayName: id, Allocation: amount}
			if parent != "" {
				req.Parent = "envelopes/" + parent
			}
			if _, err := envelopes.CreateEnvelope(ctx, req); err != nil {
				t.Fatalf("CreateEnvelope %s: %v", id, err)
			}
		}
		create("fund", "", 30*1_000_000)
		for i := range 30 {
			create(fmt.Sprintf("line-%02d", i), "fund", 1_000_000)
		}

		// The consumer.
		var (
			mu       sync.Mutex
			cancelFn context.CancelFunc
			target   atomic.Int64 // the journal's final length, once known
		)
		var received []*pb.JournalEntry
		last := int64(0)
		consumerDone := make(chan struct{})
		// The last position received, after each message (never more messages than entries).
		progress := make(chan int64, 1+30+64*6)
		reconnects, killed := 0, false
		go func() {
			defer close(consumerDone)
			journal := pb.NewJournalServiceClient(dialPlain(t, addrA))
			for {
				sctx, cancel := context.WithCancel(ctx)
				// Checked and published under mu, with the main goroutine's Store and cancel
				// under mu too: either this stream's cancel is the one it calls, or the consumer
				// sees the target here (a stream opened after the wake-up would wait forever).
				mu.Lock()
				if n := target.Load(); n > 0 && last == n {
					mu.Unlock()
					cancel()
					return
				}
				cancelFn = cancel
				mu.Unlock()
				stream, err := journal.WatchJournalEntries(sctx, &pb.WatchJournalEntriesRequest{AfterSequence: last})
				if err != nil {
					t.Errorf("WatchJournalEntries: %v", err)
					cancel()
					return
				}
				thisStream := 0
				for {
					resp, err := stream.Recv()
					if err != nil {
						code := status.Code(err)
						if code != codes.Canceled && code != codes.Unavailable {
							t.Errorf("stream ended with %v", err)
							cancel()
							return
						}
						break
					}
					for _, e := range resp.GetJournalEntries() {
						if e.GetSequence() != last+1 {
							t.Errorf("received position %d after %d: a gap or a duplicate", e.GetSequence(), last)
							cancel()
							return
						}
						received = append(received, e)
						last = e.GetSequence()
					}
					if len(resp.GetJournalEntries()) > 0 {
						progress <- last
					}
					if n := target.Load(); n > 0 && last == n {
						cancel()
						return
					}
					thisStream += len(resp.GetJournalEntries())
					if thisStream >= 1 && reconnects < 5 {
						reconnects++
						if reconnects == 3 && !killed {
							// The server goes away under the stream: resume on the other.
							killed = true
							sctx, stop := context.WithTimeout(ctx, 10*time.Second)
							srvA.Shutdown(sctx)
							stop()
							closeA.Do(lA.Close)
							journal = pb.NewJournalServiceClient(connB)
						}
						break
					}
				}
				cancel()
			}
		}()

		// The writers, in rounds of one award per caller, all at once. Each round waits until the
		// consumer has received the journal so far, so that every round reaches it in messages of
		// their own, and it reconnects five times however fast the machine writes (in one pass,
		// a fast writer could hand it the whole journal in four messages).
		const callers, awards = 64, 6
		for a := range awards {
			var writers sync.WaitGroup
			for c := range callers {
				writers.Go(func() {
					_, err := commitments.Commit(ctx, &pb.CommitRequest{RequestId: uuid.NewString(),
						Envelope: fmt.Sprintf("envelopes/line-%02d", (c+a)%30), Beneficiary: fmt.Sprintf("siren:%d-%d", c, a),
						Project: "p", Amount: 1_000})
					if err != nil {
						t.Errorf("Commit: %v", err)
					}
				})
			}
			writers.Wait()
			for seen, want := int64(0), int64(1+30+callers*(a+1)); seen < want && !t.Failed(); {
				select {
				case seen = <-progress:
				case <-consumerDone:
					t.Errorf("the consumer stopped at position %d of %d", seen, want)
				}
			}
		}
		if t.Failed() {
			mu.Lock()
			cancelFn()
			mu.Unlock()
			<-consumerDone
			return
		}
		var final []*pb.JournalEntry
		token := ""
		for {
			resp, err := pb.NewJournalServiceClient(connB).ListJournalEntries(ctx, &pb.ListJournalEntriesRequest{PageSize: 1000, PageToken: token})
			if err != nil {
				t.Fatal(err)
			}
			final = append(final, resp.GetJournalEntries()...)
			if token = resp.GetNextPageToken(); token == "" {
				break
			}
		}
		if want := 1 + 30 + callers*awards; len(final) != want {
			t.Fatalf("the journal has %d entries, want %d", len(final), want)
		}
		// Wake a consumer that already has everything and waits for more.
		mu.Lock()
		target.Store(int64(len(final)))
		cancelFn()
		mu.Unlock()
		<-consumerDone
		if reconnects < 5 || !killed {
			t.Errorf("the consumer reconnected %d times (server killed: %v), want 5 and once killed", reconnects, killed)
		}
		if len(received) != len(final) {
			t.Fatalf("the consumer received %d entries, the journal has %d", len(received), len(final))
		}
		for i := range final {
			if received[i].GetName() != final[i].GetName() || received[i].GetSequence() != final[i].GetSequence() {
				t.Fatalf("position %d: received %s, the journal holds %s", i+1, received[i].GetName(), final[i].GetName())
			}
		}
	})
}

// TestRevokedTokenEndsJournalStream protects the stream's credential check: once a reload of the
// tokens file drops the token of an open WatchJournalEntries stream, the stream ends with
// UNAUTHENTICATED, even while it has nothing to send.
func TestRevokedTokenEndsJournalStream(t *testing.T) {
	t.Parallel()
	a := startAuth(t, server.Config{})
	ctx := context.Background()
	conn := dialPlain(t, a.addr)
	if _, err := pb.NewEnvelopeServiceClient(conn).CreateEnvelope(bearer(ctx, a.tokens[server.RoleAdmin]),
		&pb.CreateEnvelopeRequest{RequestId: uuid.NewString(), EnvelopeId: "fund", DisplayName: "fund", Allocation: 100}); err != nil {
		t.Fatal(err)
	}
	stream, err := pb.NewJournalServiceClient(conn).WatchJournalEntries(bearer(ctx, a.tokens[server.RoleAuditor]), &pb.WatchJournalEntriesRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := stream.Recv(); err != nil || len(resp.GetJournalEntries()) != 1 {
		t.Fatalf("first message: %v, %v", resp, err)
	}
	var keep string
	for _, line := range strings.Split(readFile(t, a.file), "\n") {
		if strings.HasSuffix(line, " service") {
			keep = line + "\n"
		}
	}
	if err := os.WriteFile(a.file, []byte(keep), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	if code, info := errorInfo(t, err); code != codes.Unauthenticated || info.GetReason() != "UNAUTHENTICATED" {
		t.Fatalf("the stream after its token was revoked: %v, want UNAUTHENTICATED", err)
	}
}

// TestCheckpointNamesTheLegacyBound protects GetCheckpoint's legacy_effective_until: an outsider
// encoding leaves from the API needs the last position logged without effective times (before
// migration 25, docs/transparency.md). A ledger made since has none (0); the position the
// migration recorded is given as it is (written here behind the ledger's back: on a journal with
// no backdated entry the leaves are the same by either rule, and VerifyLog stays clean).
func TestCheckpointNamesTheLegacyBound(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		ctx := context.Background()
		skey, vkey, err := translog.GenerateKey("server.test/legacy")
		if err != nil {
			t.Fatal(err)
		}
		signer, err := translog.NewSigner(skey)
		if err != nil {
			t.Fatal(err)
		}
		h := startWith(t, database, ledger.Config{Log: ledger.LogConfig{Signer: signer}}, server.Config{})
		resp, err := h.journal.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
		if err != nil || resp.GetLegacyEffectiveUntil() != 0 {
			t.Fatalf("GetCheckpoint on a new ledger: %v, legacy_effective_until %d; want 0", err, resp.GetLegacyEffectiveUntil())
		}
		// (While the tree is empty: with a leaf in it, the database refuses to move the bound.)
		tamper(t, database, "UPDATE tlog_head SET legacy_effective_until = 2 WHERE id = 1")
		h.buildFund(t)
		if resp, err = h.journal.GetCheckpoint(ctx, &pb.GetCheckpointRequest{}); err != nil || resp.GetLegacyEffectiveUntil() != 2 {
			t.Fatalf("GetCheckpoint: %v, legacy_effective_until %d; want the recorded 2", err, resp.GetLegacyEffectiveUntil())
		}
		if rep, err := h.ledger.VerifyLog(ctx, vkey); err != nil || !rep.OK() || rep.LegacyEffectiveUntil != 2 {
			t.Fatalf("VerifyLog = %+v, %v", rep, err)
		}
	})
}
