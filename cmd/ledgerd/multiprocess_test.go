package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// buildLedgerd compiles this command into a temporary directory.
func buildLedgerd(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ledgerd")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startProcess runs a ledgerd process on database and returns its address; the process gets
// SIGTERM when the test ends and must exit cleanly.
func startProcess(t *testing.T, bin, database string) string {
	t.Helper()
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--database", database, "--tx-timeout", testdb.TxTimeout.String())
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		if err := cmd.Wait(); err != nil {
			t.Errorf("ledgerd exited with %v after SIGTERM", err)
		}
	})
	return waitListening(t, stderr)
}

func reason(err error) (codes.Code, string) {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return st.Code(), info.GetReason()
		}
	}
	return st.Code(), ""
}

// retrying sends call until it is decided, as a well-behaved client does: the same request id on
// every attempt, again after ABORTED or UNAVAILABLE.
func retrying(call func() error) error {
	for attempt := 0; ; attempt++ {
		err := call()
		code, _ := reason(err)
		if err == nil || (code != codes.Aborted && code != codes.Unavailable) || attempt == 20 {
			return err
		}
	}
}

// TestThreeProcessesOnePostgres runs three ledgerd processes on one PostgreSQL database while
// clients race to over-commit one envelope through all of them and others release awards. The
// database transaction, not a process, enforces the invariants, so afterwards: no envelope is
// over-committed (invariant 2), balances recomputed from the journal equal the stored ones
// (invariant 4), every acknowledged award is present exactly once and nothing else is (5, 7), and
// every commitment's released amount is the sum of its acknowledged releases (3).
func TestThreeProcessesOnePostgres(t *testing.T) {
	database := testdb.Postgres(t)
	bin := buildLedgerd(t)
	var addrs []string
	for range 3 {
		addrs = append(addrs, startProcess(t, bin, database))
	}
	var clients []pb.CommitmentServiceClient
	for _, a := range addrs {
		clients = append(clients, pb.NewCommitmentServiceClient(dial(t, a)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	const (
		budget     = 100_000
		award      = 700 // 142 awards fit at once
		release    = 300
		committers = 48
		perClient  = 12
		releasers  = 8
	)
	if _, err := pb.NewEnvelopeServiceClient(dial(t, addrs[0])).CreateEnvelope(ctx,
		&pb.CreateEnvelopeRequest{EnvelopeId: "hot", Allocation: budget, RequestId: "hot"}); err != nil {
		t.Fatal(err)
	}

	var (
		mu       sync.Mutex
		awarded  = map[string]int{} // acknowledged commitment → times acknowledged
		released = map[string]int64{}
		refused  int
		wg       sync.WaitGroup
		toFree   = make(chan string, committers*perClient)
	)
	for c := range committers {
		wg.Go(func() {
			for i := range perClient {
				req := &pb.CommitRequest{Envelope: "envelopes/hot", Beneficiary: fmt.Sprintf("b%d", c),
					Project: fmt.Sprintf("p%d-%d", c, i), Amount: award, RequestId: fmt.Sprintf("award-%d-%d", c, i)}
				var resp *pb.CommitResponse
				err := retrying(func() (err error) {
					resp, err = clients[(c+i)%3].Commit(ctx, req)
					return err
				})
				mu.Lock()
				switch code, why := reason(err); {
				case err == nil:
					awarded[resp.GetCommitment().GetName()]++
					if i%2 == 0 {
						toFree <- resp.GetCommitment().GetName()
					}
				case code == codes.FailedPrecondition && why == "INSUFFICIENT_FUNDS":
					refused++
				default:
					t.Errorf("award %s: %v", req.GetRequestId(), err)
				}
				mu.Unlock()
			}
		})
	}
	var rg sync.WaitGroup
	for r := range releasers {
		rg.Go(func() {
			n := 0
			for name := range toFree {
				n++
				req := &pb.ReleaseRequest{Commitment: name, Amount: release, Reason: "cost lower than planned",
					RequestId: fmt.Sprintf("release-%d-%d", r, n)}
				err := retrying(func() error {
					_, err := clients[(r+n)%3].Release(ctx, req)
					return err
				})
				mu.Lock()
				if err != nil {
					t.Errorf("release of %s: %v", name, err)
				} else {
					released[name] += release
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(toFree)
	rg.Wait()
	t.Logf("%d awards acknowledged, %d refused, %d releases", len(awarded), refused, len(released))
	if refused == 0 {
		t.Error("no award was refused: the test did not over-commit the envelope")
	}

	l, err := ledger.Open(ctx, database, ledger.Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	rep, err := l.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rep.Discrepancies {
		t.Errorf("invariant broken: %s", d)
	}
	stored := map[string]ledger.Commitment{}
	page := ledger.Page{Size: 1000}
	for {
		cs, next, err := l.ListCommitments(ctx, ledger.CommitmentFilter{EnvelopeID: "hot"}, page)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			stored[ledger.CommitmentName(c.ID)] = c
		}
		if next == "" {
			break
		}
		page.Token = next
	}
	var outstanding int64
	for name, times := range awarded {
		if times != 1 {
			t.Errorf("%s acknowledged %d times", name, times)
		}
		c, ok := stored[name]
		if !ok {
			t.Errorf("acknowledged award %s is missing", name)
			continue
		}
		if c.Released != released[name] {
			t.Errorf("%s released %d, acknowledged releases sum to %d", name, c.Released, released[name])
		}
		outstanding += c.Remaining()
	}
	if len(stored) != len(awarded) {
		t.Errorf("%d commitments stored, %d acknowledged", len(stored), len(awarded))
	}
	env, err := l.GetEnvelope(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	if env.Available() < 0 || env.Committed != outstanding {
		t.Errorf("envelope %+v; acknowledged awards hold %d", env, outstanding)
	}
}
