//go:build faults

package faults

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/budgetledger/budgetledger/client"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// op is one mutation a client sends: exactly one of its fields is set. Its request id is chosen
// by the test, so that an operation that got no definite answer can be sent again with the same id
// to learn (or make) its one outcome. A commit's project is its request id, which lets the checks
// map every stored commitment back to the request that made it.
type op struct {
	commit  *client.CommitParams
	release *client.ReleaseParams
	move    *client.MoveAllocationParams
}

func commitOp(envelope, requestID string, amount int64) op {
	return op{commit: &client.CommitParams{Envelope: envelope, Beneficiary: "siren:200054781", Project: requestID,
		Amount: amount, RequestID: requestID}}
}

func releaseOp(commitment, requestID string, amount int64) op {
	return op{release: &client.ReleaseParams{Commitment: commitment, Amount: amount, Reason: "cost lower than planned",
		RequestID: requestID}}
}

func moveOp(source, destination, requestID string, amount int64) op {
	return op{move: &client.MoveAllocationParams{Source: source, Destination: destination, Amount: amount,
		Reason: "rebalancing", RequestID: requestID}}
}

func (o op) requestID() string {
	switch {
	case o.commit != nil:
		return o.commit.RequestID
	case o.release != nil:
		return o.release.RequestID
	}
	return o.move.RequestID
}

// send sends o once through c (whose own retries apply) and returns the response.
func (o op) send(ctx context.Context, c *client.Client) (any, error) {
	switch {
	case o.commit != nil:
		return c.Commit(ctx, *o.commit)
	case o.release != nil:
		return c.Release(ctx, *o.release)
	}
	return c.MoveAllocation(ctx, *o.move)
}

// outcome is what the client learnt of one operation.
type outcome int

const (
	acknowledged outcome = iota
	refused              // a business refusal: decided, and nothing was posted
	unanswered           // no definite answer (server gone, deadline, retries exhausted)
)

// ackedCommit is an acknowledged award.
type ackedCommit struct {
	name     string // commitments/{id}
	envelope string
	amount   int64
}

// tracker records what the clients were told, to compare with what the ledger holds.
type tracker struct {
	t *testing.T

	mu         sync.Mutex
	commits    map[string]ackedCommit // request id → acknowledged award
	names      map[string]string      // commitment name → request id of its award
	releases   map[string]bool        // request ids of acknowledged releases
	releasedBy map[string]int64       // commitment name → sum of its acknowledged releases
	moves      map[string]bool        // request ids of acknowledged moves
	movedIn    map[string]int64       // envelope name → net allocation moved in by acknowledged moves
	nRefused   int
	pending    []op // unanswered, to resend
	duplicated int  // one commitment acknowledged for two request ids

	acked *counter
}

func newTracker(t *testing.T) *tracker {
	return &tracker{t: t, commits: map[string]ackedCommit{}, names: map[string]string{}, releases: map[string]bool{},
		releasedBy: map[string]int64{}, moves: map[string]bool{}, movedIn: map[string]int64{}, acked: newCounter()}
}

// classify says what err (from the Go client) tells of an operation.
func classify(err error) (outcome, bool) {
	if err == nil {
		return acknowledged, true
	}
	var e *client.Error
	if !errors.As(err, &e) {
		// Not a gRPC status: the call's context ended before it was sent.
		return unanswered, errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	}
	switch {
	case e.Reason == client.ReasonInsufficientFunds || e.Reason == client.ReasonReleaseExceedsRemaining:
		return refused, true
	case e.Retryable(), e.Code == codes.DeadlineExceeded, e.Code == codes.Canceled:
		return unanswered, true
	}
	return unanswered, false // unexpected: reported, and resent like an unanswered one
}

// do sends o once (with the client's retries) and records the outcome.
func (tr *tracker) do(ctx context.Context, c *client.Client, o op) (any, outcome) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := o.send(ctx, c)
	return resp, tr.settle(o, resp, err, true)
}

// settle records the outcome of o; unanswered operations are queued to be resent when queue is
// true.
func (tr *tracker) settle(o op, resp any, err error, queue bool) outcome {
	out, expected := classify(err)
	if !expected {
		tr.t.Errorf("%s: unexpected error: %v", o.requestID(), err)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	switch out {
	case refused:
		tr.nRefused++
	case unanswered:
		if queue {
			tr.pending = append(tr.pending, o)
		}
	case acknowledged:
		switch r := resp.(type) {
		case *pb.CommitResponse:
			name := r.GetCommitment().GetName()
			if prev, ok := tr.names[name]; ok && prev != o.commit.RequestID {
				tr.duplicated++
				tr.t.Errorf("commitment %s acknowledged to request %s and to request %s", name, prev, o.commit.RequestID)
			}
			tr.names[name] = o.commit.RequestID
			tr.commits[o.commit.RequestID] = ackedCommit{name: name, envelope: o.commit.Envelope, amount: o.commit.Amount}
		case *pb.ReleaseResponse:
			tr.releases[o.release.RequestID] = true
			tr.releasedBy[o.release.Commitment] += o.release.Amount
		case *pb.MoveAllocationResponse:
			tr.moves[o.move.RequestID] = true
			tr.movedIn[o.move.Source] -= o.move.Amount
			tr.movedIn[o.move.Destination] += o.move.Amount
		}
		tr.acked.add()
	}
	return out
}

// resolve sends every unanswered operation again, with its own request id, until it is decided;
// it returns how many there were. Sent again, an operation the server had applied returns its
// first outcome; one it had not is decided now.
func (tr *tracker) resolve(ctx context.Context, c *client.Client) int {
	tr.t.Helper()
	tr.mu.Lock()
	pending := tr.pending
	tr.pending = nil
	tr.mu.Unlock()
	for _, o := range pending {
		for attempt := 1; ; attempt++ {
			actx, cancel := context.WithTimeout(ctx, 30*time.Second)
			resp, err := o.send(actx, c)
			cancel()
			if tr.settle(o, resp, err, false) != unanswered {
				break
			}
			if attempt == 10 || ctx.Err() != nil {
				tr.t.Errorf("%s: still no answer after %d resends: %v", o.requestID(), attempt, err)
				break
			}
		}
	}
	return len(pending)
}

func (tr *tracker) ackedCount() int { return tr.acked.value() }

func (tr *tracker) refusedCount() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.nRefused
}

// snapshot is what had been acknowledged at one moment.
type snapshot struct {
	commits    map[string]ackedCommit
	releasedBy map[string]int64
}

func (tr *tracker) snapshot() snapshot {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	s := snapshot{commits: make(map[string]ackedCommit, len(tr.commits)), releasedBy: make(map[string]int64, len(tr.releasedBy))}
	for k, v := range tr.commits {
		s.commits[k] = v
	}
	for k, v := range tr.releasedBy {
		s.releasedBy[k] = v
	}
	return s
}

// loadGen is a client workload: awards on a few envelopes, and releases of part of every second
// award, each operation recorded by the tracker.
type loadGen struct {
	tr        *tracker
	c         *client.Client
	prefix    string   // of every request id, unique to the test run
	envelopes []string // resource names the awards go to
	amount    int64    // of each award; a quarter of it is released
}

// worker runs until stop is closed (finishing the operation in hand) or ctx ends.
func (g *loadGen) worker(ctx context.Context, stop <-chan struct{}, w int) {
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		default:
		}
		id := fmt.Sprintf("%s-w%d-%d", g.prefix, w, i)
		resp, out := g.tr.do(ctx, g.c, commitOp(g.envelopes[(w+i)%len(g.envelopes)], id, g.amount))
		if out == acknowledged && i%2 == 0 {
			name := resp.(*pb.CommitResponse).GetCommitment().GetName()
			g.tr.do(ctx, g.c, releaseOp(name, id+"-r", g.amount/4))
		}
	}
}

// start runs n workers; the returned function stops them and waits for them (it may be called
// more than once). cancel ends their calls in flight at once rather than letting them finish.
func (g *loadGen) start(ctx context.Context, n int) (stopAndWait func(), cancelCalls func()) {
	ctx, cancel := context.WithCancel(ctx)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() { g.worker(ctx, stop, w) })
	}
	var once sync.Once
	return func() {
		once.Do(func() { close(stop) })
		wg.Wait()
		cancel()
	}, cancel
}

// openLedger opens the database directly, not through ledgerd, for the checks; a fresh handle
// per check, so that a database restart between checks does not matter.
func openLedger(ctx context.Context, t *testing.T, database string) *ledger.Ledger {
	t.Helper()
	var l *ledger.Ledger
	var err error
	for attempt := 1; attempt <= 10; attempt++ {
		if l, err = ledger.Open(ctx, database, ledger.Config{DisableBatching: true, TxTimeout: 30 * time.Second}); err == nil {
			return l
		}
		time.Sleep(time.Duration(attempt) * 100 * time.Millisecond)
	}
	t.Fatalf("opening the ledger for checking: %v", err)
	return nil
}

// verify runs ledger.Verify and reports every discrepancy; it returns how many.
func verify(ctx context.Context, t *testing.T, l *ledger.Ledger, when string) int {
	t.Helper()
	rep, err := l.Verify(ctx)
	if err != nil {
		t.Fatalf("Verify (%s): %v", when, err)
	}
	for _, d := range rep.Discrepancies {
		t.Errorf("Verify (%s): %s", when, d)
	}
	return len(rep.Discrepancies)
}

// storedCommitments reads every commitment of the ledger.
func storedCommitments(ctx context.Context, t *testing.T, l *ledger.Ledger) []ledger.Commitment {
	t.Helper()
	var all []ledger.Commitment
	page := ledger.Page{Size: 1000}
	for {
		cs, next, err := l.ListCommitments(ctx, ledger.CommitmentFilter{}, page)
		if err != nil {
			t.Fatalf("ListCommitments: %v", err)
		}
		all = append(all, cs...)
		if next == "" {
			return all
		}
		page.Token = next
	}
}

// checkDurable checks, while the load may still run, that everything acknowledged in snap is in
// the ledger (awards present once, releases applied), and that Verify finds nothing. It returns
// how many acknowledged operations are missing, how many request ids are applied twice, and
// Verify's discrepancies.
func checkDurable(ctx context.Context, t *testing.T, database string, snap snapshot, when string) (lost, dup, disc int) {
	t.Helper()
	l := openLedger(ctx, t, database)
	defer l.Close()
	byName := map[string]ledger.Commitment{}
	perRequest := map[string]int{}
	for _, c := range storedCommitments(ctx, t, l) {
		byName[ledger.CommitmentName(c.ID)] = c
		perRequest[c.Project]++
	}
	for id, n := range perRequest {
		if n > 1 {
			dup++
			t.Errorf("%s: request %s made %d commitments", when, id, n)
		}
	}
	for id, a := range snap.commits {
		if c, ok := byName[a.name]; !ok || c.Project != id || c.Amount != a.amount {
			lost++
			t.Errorf("%s: acknowledged award %s (%s) is missing: %+v", when, id, a.name, c)
		}
	}
	for name, sum := range snap.releasedBy {
		if c := byName[name]; c.Released < sum {
			lost++
			t.Errorf("%s: %s released %d, acknowledged releases sum to %d", when, name, c.Released, sum)
		}
	}
	return lost, dup, verify(ctx, t, l, when)
}

// checkExact checks, once the load has stopped and every unanswered operation is resolved, that
// the ledger holds exactly what was acknowledged: each acknowledged award once, no other award,
// each commitment's released amount the sum of its acknowledged releases, each envelope's
// committed amount the sum of what its commitments hold, and, for the envelopes of initial (name →
// allocation before the load), allocation = initial + acknowledged moves. Verify must find nothing.
func checkExact(ctx context.Context, t *testing.T, database string, tr *tracker, initial map[string]int64) (lost, dup, phantom, disc int) {
	t.Helper()
	l := openLedger(ctx, t, database)
	defer l.Close()
	tr.mu.Lock()
	defer tr.mu.Unlock()
	stored := storedCommitments(ctx, t, l)
	perRequest := map[string]int{}
	held := map[string]int64{} // envelope id → what its commitments hold
	for _, c := range stored {
		name := ledger.CommitmentName(c.ID)
		perRequest[c.Project]++
		held[c.EnvelopeID] += c.Remaining()
		a, ok := tr.commits[c.Project]
		switch {
		case !ok:
			phantom++
			t.Errorf("commitment %s (request %s) is in the ledger but was never acknowledged", name, c.Project)
		case a.name != name || a.amount != c.Amount || a.envelope != ledger.EnvelopeName(c.EnvelopeID):
			t.Errorf("commitment %s of request %s differs from the acknowledged %+v", name, c.Project, a)
		}
		if c.Released != tr.releasedBy[name] {
			t.Errorf("commitment %s released %d; its acknowledged releases sum to %d", name, c.Released, tr.releasedBy[name])
		}
	}
	for id, n := range perRequest {
		if n > 1 {
			dup++
			t.Errorf("request %s made %d commitments", id, n)
		}
	}
	for id, a := range tr.commits {
		if perRequest[id] == 0 {
			lost++
			t.Errorf("acknowledged award %s (%s) is missing", id, a.name)
		}
	}
	envs, _, err := l.ListEnvelopes(ctx, ledger.EnvelopeFilter{}, ledger.Page{Size: 1000})
	if err != nil {
		t.Fatalf("ListEnvelopes: %v", err)
	}
	for _, e := range envs {
		if e.Committed != held[e.ID] {
			t.Errorf("envelope %s: committed %d, its commitments hold %d", e.ID, e.Committed, held[e.ID])
		}
		if e.Available() < 0 {
			t.Errorf("envelope %s: available %d < 0", e.ID, e.Available())
		}
		if want, ok := initial[ledger.EnvelopeName(e.ID)]; ok && e.Allocation != want+tr.movedIn[ledger.EnvelopeName(e.ID)] {
			t.Errorf("envelope %s: allocation %d, want %d + acknowledged moves %d", e.ID, e.Allocation, want,
				tr.movedIn[ledger.EnvelopeName(e.ID)])
		}
	}
	return lost, dup + tr.duplicated, phantom, verify(ctx, t, l, "at the end")
}

// createEnvelopes creates root envelopes, each with the allocation given.
func createEnvelopes(ctx context.Context, t *testing.T, c *client.Client, allocation int64, ids ...string) []string {
	t.Helper()
	var names []string
	for _, id := range ids {
		if _, err := c.CreateEnvelope(ctx, client.CreateEnvelopeParams{EnvelopeID: id, Allocation: allocation,
			RequestID: "create-" + id}); err != nil {
			t.Fatalf("CreateEnvelope(%s): %v", id, err)
		}
		names = append(names, "envelopes/"+id)
	}
	return names
}

// pick returns a random element of s.
func pick[T any](s []T) T { return s[rand.IntN(len(s))] }

// verifyRPC asks the running ledgerd to verify its ledger (AuditService.VerifyLedger, the same
// check as ledger.Verify, through the server) and reports every discrepancy; it returns how many.
func verifyRPC(ctx context.Context, t *testing.T, c *client.Client, when string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	resp, err := pb.NewAuditServiceClient(c.Conn()).VerifyLedger(ctx, &pb.VerifyLedgerRequest{})
	if err != nil {
		t.Fatalf("VerifyLedger (%s): %v", when, err)
	}
	for _, d := range resp.GetDiscrepancies() {
		t.Errorf("VerifyLedger (%s): invariant %d: %s: %s", when, d.GetInvariant(), d.GetSubject(), d.GetDetail())
	}
	return len(resp.GetDiscrepancies())
}
