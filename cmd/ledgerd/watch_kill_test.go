package main

import (
	"context"
	"fmt"
	"os/exec"
	"sync"
	"syscall"
	"testing"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestWatchJournalSurvivesAKilledLedgerd protects the journal stream across a crash (issue 14):
// a consumer follows WatchJournalEntries on one ledgerd process while 64 callers award on 30
// envelopes through another; the first is killed (SIGKILL) under the stream; the consumer resumes
// on the other with the last sequence it received, and ends with exactly the final journal, each
// entry once, in order.
func TestWatchJournalSurvivesAKilledLedgerd(t *testing.T) {
	t.Parallel()
	database := testdb.Postgres(t)
	bin := buildLedgerd(t)
	victim := exec.Command(bin, "--listen", "127.0.0.1:0", "--database", database, "--tx-timeout", testdb.TxTimeout.String())
	stderr, err := victim.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	var killOnce sync.Once
	kill := func() {
		killOnce.Do(func() {
			_ = victim.Process.Signal(syscall.SIGKILL)
			_ = victim.Wait()
		})
	}
	t.Cleanup(kill)
	addrA := waitListening(t, stderr)
	addrB := startProcess(t, bin, database)
	ctx := context.Background()
	connB := dial(t, addrB)
	envelopes, commitments := pb.NewEnvelopeServiceClient(connB), pb.NewCommitmentServiceClient(connB)
	create := func(id, parent string, amount int64) {
		req := &pb.CreateEnvelopeRequest{RequestId: id, EnvelopeId: id, Allocation: amount}
		if parent != "" {
			req.Parent = "envelopes/" + parent
		}
		if err := retrying(func() error { _, err := envelopes.CreateEnvelope(ctx, req); return err }); err != nil {
			t.Fatalf("CreateEnvelope %s: %v", id, err)
		}
	}
	create("fund", "", 30*1_000_000)
	for i := range 30 {
		create(fmt.Sprintf("line-%02d", i), "fund", 1_000_000)
	}
	const callers, awards = 64, 4
	var writers sync.WaitGroup
	for c := range callers {
		writers.Go(func() {
			for a := range awards {
				req := &pb.CommitRequest{RequestId: uuid.NewString(), Envelope: fmt.Sprintf("envelopes/line-%02d", (c+a)%30),
					Beneficiary: fmt.Sprintf("siren:%d-%d", c, a), Project: "p", Amount: 1_000}
				if err := retrying(func() error { _, err := commitments.Commit(ctx, req); return err }); err != nil {
					t.Errorf("Commit: %v", err)
				}
			}
		})
	}
	defer writers.Wait()
	want := int64(1 + 30 + callers*awards) // every award fits: 30 lines of 1,000,000

	var received []*pb.JournalEntry
	last := int64(0)
	journal := pb.NewJournalServiceClient(dial(t, addrA))
	killed := false
	for last < want {
		sctx, cancel := context.WithCancel(ctx)
		stream, err := journal.WatchJournalEntries(sctx, &pb.WatchJournalEntriesRequest{AfterSequence: last})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		for last < want {
			resp, err := stream.Recv()
			if err != nil {
				if status.Code(err) != codes.Unavailable || !killed {
					t.Fatalf("stream ended with %v", err)
				}
				break
			}
			for _, e := range resp.GetJournalEntries() {
				if e.GetSequence() != last+1 {
					t.Fatalf("received position %d after %d: a gap or a duplicate", e.GetSequence(), last)
				}
				received = append(received, e)
				last = e.GetSequence()
			}
			if !killed {
				kill() // under the open stream, after its first message
				killed = true
				journal = pb.NewJournalServiceClient(connB)
			}
		}
		cancel()
	}
	writers.Wait()
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
	if int64(len(final)) != want || len(received) != len(final) {
		t.Fatalf("received %d entries; the journal has %d, want %d", len(received), len(final), want)
	}
	for i := range final {
		if received[i].GetName() != final[i].GetName() {
			t.Fatalf("position %d: received %s, the journal holds %s", i+1, received[i].GetName(), final[i].GetName())
		}
	}
}
