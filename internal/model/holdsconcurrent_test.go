package model_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/budgetledger/budgetledger/internal/model"
	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
)

// TestModelHoldsConcurrent: concurrent callers send a seeded mix of awards, holds,
// confirmations (some partial, some for too much), cancellations, payments and closings, all on
// one envelope with a funding-share rule, so that they share group-commit batches (and, with
// batching disabled, contend for the envelope one transaction each). Holds and commitments are
// shared between callers, so two of them confirm, cancel, pay or close the same one at once.
// Then:
//
//   - every accepted request, replayed into the model in the ledger's journal order with the
//     names the ledger gave, is accepted there with the same result (the hold, commitment,
//     payment and envelope figures it answered): the batch decided them as one transaction after
//     another would have, in that order;
//
// It runs undated, and dated: every request dated (an undated award or hold would make the
// envelope's latest effective time a time of the run, and every dated award or hold after it
// would be refused), a minute after the last date any caller drew (a counter the callers share,
// so that a hold's confirmation is dated after the hold; an award or hold that takes the lock
// after a later-dated one is refused, before the envelope's latest effective time). The envelope
// takes effect on a date and, besides the share in force now, has a stricter one kept at a later
// date (funding rules by effective date): dated awards, holds and confirmations are judged by no
// rule before that date and by that one from it. Refusals are not compared (they depend on the
// interleaving); the accepted requests are.
//   - the ledger's envelope, holds and commitments end as the model's;
//   - every request sent again is answered exactly as the first time (invariant 5);
//   - the verifier finds nothing.
//
// It runs on every engine, with group commit on and off.
func TestModelHoldsConcurrent(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		for _, batching := range []bool{true, false} {
			for _, withDates := range []bool{false, true} {
				t.Run(fmt.Sprintf("batching=%t/dated=%t", batching, withDates), func(t *testing.T) {
					for run, seed := range seeds(t) {
						ops := opsPerRun(480)
						t.Logf("run %d: seed %d, %d operations", run, seed, ops)
						runHoldsConcurrent(t, database, batching, withDates, seed, ops)
					}
				})
			}
		}
	})
}

// The dates of TestModelHoldsConcurrent: the envelope's, and the stricter rule set's, kept at
// two hours after it (the callers' dates are a minute apart).
var (
	hcDatesFrom = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)
	hcRulesFrom = hcDatesFrom.Add(2 * time.Hour)
)

// hcCall is one request of a caller and what the ledger answered.
type hcCall struct {
	kind    string
	cmd     any    // the model's command
	send    func() // sends it (again), its answer into result, entryID, id and err
	result  any    // the ledger's result, in the model's types
	entryID string // the journal entry of an accepted request
	id      string // the name the ledger gave (hold, commitment or payment)
	err     error
}

type hcAnswer struct {
	result any
	err    error
}

func runHoldsConcurrent(t *testing.T, database string, batching, withDates bool, seed uint64, ops int) {
	ctx := t.Context()
	l, err := ledger.Open(ctx, database, ledger.Config{TxTimeout: 10 * time.Minute, DisableBatching: !batching,
		HoldSweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	prefix := fmt.Sprintf("hc%t%d-", batching, seed%100000)
	if withDates {
		prefix = fmt.Sprintf("hcd%t%d-", batching, seed%100000)
	}
	envID := prefix + "e"
	span := newSpan()

	// The envelope and its rules, in the ledger and the model alike.
	m := model.New(span)
	ce := model.CreateEnvelope{RequestID: prefix + "setup-envelope", Caller: "admin", EnvelopeID: envID, Allocation: 3_000_000,
		Effective: hcDatesFrom}
	if _, r := m.CreateEnvelope(ce); r != nil {
		t.Fatal(r)
	}
	if _, err := l.CreateEnvelope(ctx, ledger.CreateEnvelope{RequestID: ce.RequestID, Caller: ce.Caller, EnvelopeID: envID,
		Allocation: ce.Allocation, Effective: ce.Effective}); err != nil {
		t.Fatal(err)
	}
	bps := int64(8000)
	sr := model.SetRules{RequestID: prefix + "setup-rules", Caller: "admin", EnvelopeID: envID, Call: "appel",
		Rules: model.Rules{MaxFundingShareBPS: &bps}}
	if _, r := m.SetRules(sr); r != nil {
		t.Fatal(r)
	}
	if _, err := l.SetRules(ctx, ledger.SetRules{RequestID: sr.RequestID, Caller: sr.Caller, EnvelopeID: envID, Call: sr.Call,
		Rules: toLedgerRules(sr.Rules)}); err != nil {
		t.Fatal(err)
	}
	// Given after it, but kept at its date (after the envelope's latest effective time): dated
	// requests from then on are judged by it, the undated ones still by the share in force at once.
	stricter := int64(5000)
	kept := model.SetRules{RequestID: prefix + "setup-rules-dated", Caller: "admin", EnvelopeID: envID, Call: "appel-dated",
		EffectiveTime: hcRulesFrom, Rules: model.Rules{MaxFundingShareBPS: &stricter}}
	if res, r := m.SetRules(kept); r != nil || res.AtOnce {
		t.Fatalf("the model does not keep the rule set dated %s: %+v %v", hcRulesFrom, res, r)
	}
	if _, err := l.SetRules(ctx, ledger.SetRules{RequestID: kept.RequestID, Caller: kept.Caller, EnvelopeID: envID,
		Call: kept.Call, EffectiveTime: kept.EffectiveTime, Rules: toLedgerRules(kept.Rules)}); err != nil {
		t.Fatal(err)
	}

	// Names made so far, shared by the callers.
	var (
		mu          sync.Mutex
		holds       []string
		commitments []string
	)
	pickFrom := func(r *rand.Rand, xs *[]string) string {
		mu.Lock()
		defer mu.Unlock()
		if len(*xs) == 0 || r.IntN(30) == 0 {
			return "0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e" // none such
		}
		// Mostly a recent one still open, so that callers meet on the same names.
		n := len(*xs)
		return (*xs)[max(0, n-1-r.IntN(min(n, 8)))]
	}
	remember := func(xs *[]string, id string) {
		mu.Lock()
		defer mu.Unlock()
		*xs = append(*xs, id)
	}
	forget := func(xs *[]string, id string) {
		mu.Lock()
		defer mu.Unlock()
		*xs = slices.DeleteFunc(*xs, func(x string) bool { return x == id })
	}
	policy := func(r *rand.Rand, amount int64) model.Policy {
		// Mostly within the 80 % share, some not: the rule refuses those, and a project's
		// total counts (the projects are drawn among a few hundred, so some meet).
		return model.Policy{EligibleCost: amount * int64(110+r.IntN(150)) / 100}
	}

	const callers = 8
	perCaller := max(1, ops/callers)
	calls := make([][]*hcCall, callers)
	var (
		wg    sync.WaitGroup
		ticks atomic.Int64 // the dates drawn so far, by all callers
	)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(c)))
			// A dated run's dates: a minute after the last date any caller drew (the operations
			// a seed draws are the same, dated or not).
			date := func() time.Time {
				if !withDates {
					return time.Time{}
				}
				return hcDatesFrom.Add(time.Duration(ticks.Add(1)) * time.Minute)
			}
			caller := fmt.Sprintf("service:%d", c%3)
			for i := range perCaller {
				call := &hcCall{}
				rid := fmt.Sprintf("%sc%d-%d", prefix, c, i)
				project := fmt.Sprintf("p%d", r.IntN(300))
				switch roll := r.IntN(100); {
				case roll < 25:
					amount := int64(1 + r.IntN(60_000))
					cmd := model.Commit{RequestID: rid, Caller: caller, EnvelopeID: envID, Beneficiary: "b", Project: project,
						Amount: amount, Policy: policy(r, amount), Effective: date()}
					call.kind, call.cmd = "Commit"+dated(cmd.Effective), cmd
					call.send = func() {
						got, err := l.Commit(ctx, ledger.Commit{RequestID: cmd.RequestID, Caller: cmd.Caller, EnvelopeID: cmd.EnvelopeID,
							Beneficiary: cmd.Beneficiary, Project: cmd.Project, Amount: cmd.Amount, Policy: toLedgerPolicy(cmd.Policy),
							Effective: cmd.Effective})
						call.answer(err, got.EntryID, got.Commitment.ID,
							model.CommitResult{Commitment: fromCommitment(got.Commitment), Envelope: fromEnvelope(got.Envelope)})
					}
				case roll < 55:
					amount := int64(1 + r.IntN(60_000))
					cmd := model.CreateHold{RequestID: rid, Caller: caller, EnvelopeID: envID, Beneficiary: "b", Project: project,
						Amount: amount, Policy: policy(r, amount), Effective: date()}
					call.kind, call.cmd = "CreateHold"+dated(cmd.Effective), cmd
					call.send = func() {
						got, err := l.CreateHold(ctx, ledger.CreateHold{RequestID: cmd.RequestID, Caller: cmd.Caller,
							EnvelopeID: cmd.EnvelopeID, Beneficiary: cmd.Beneficiary, Project: cmd.Project, Amount: cmd.Amount,
							Policy: toLedgerPolicy(cmd.Policy), Effective: cmd.Effective})
						call.answer(err, got.EntryID, got.Hold.ID,
							model.CreateHoldResult{Hold: fromHold(got.Hold), Envelope: fromEnvelope(got.Envelope)})
					}
				case roll < 75:
					cmd := model.ConfirmHold{RequestID: rid, Caller: caller, HoldID: pickFrom(r, &holds)}
					if r.IntN(2) == 0 {
						cmd.Amount = int64(1 + r.IntN(70_000)) // sometimes more than held
					}
					cmd.Effective = date()
					call.kind, call.cmd = "ConfirmHold"+dated(cmd.Effective), cmd
					call.send = func() {
						got, err := l.ConfirmHold(ctx, ledger.ConfirmHold{RequestID: cmd.RequestID, Caller: cmd.Caller,
							HoldID: cmd.HoldID, Amount: cmd.Amount, Effective: cmd.Effective})
						call.answer(err, got.EntryID, got.Commitment.ID,
							model.ConfirmHoldResult{Hold: fromHold(got.Hold), Commitment: fromCommitment(got.Commitment),
								Envelope: fromEnvelope(got.Envelope)})
					}
				case roll < 83:
					cmd := model.CancelHold{RequestID: rid, Caller: caller, HoldID: pickFrom(r, &holds), Reason: "withdrawn",
						Effective: date()}
					call.kind, call.cmd = "CancelHold"+dated(cmd.Effective), cmd
					call.send = func() {
						got, err := l.CancelHold(ctx, ledger.CancelHold{RequestID: cmd.RequestID, Caller: cmd.Caller,
							HoldID: cmd.HoldID, Reason: cmd.Reason, Effective: cmd.Effective})
						call.answer(err, got.EntryID, "",
							model.CancelHoldResult{Hold: fromHold(got.Hold), Envelope: fromEnvelope(got.Envelope)})
					}
				case roll < 96:
					cmd := model.CreatePayment{RequestID: rid, Caller: caller, CommitmentID: pickFrom(r, &commitments),
						Amount: int64(1 + r.IntN(30_000)), Effective: date()}
					call.kind, call.cmd = "CreatePayment"+dated(cmd.Effective), cmd
					call.send = func() {
						got, err := l.CreatePayment(ctx, ledger.CreatePayment{RequestID: cmd.RequestID, Caller: cmd.Caller,
							CommitmentID: cmd.CommitmentID, Amount: cmd.Amount, Effective: cmd.Effective})
						call.answer(err, got.EntryID, got.Payment.ID,
							model.CreatePaymentResult{Payment: model.Payment{ID: got.Payment.ID, CommitmentID: got.Payment.CommitmentID,
								Amount: got.Payment.Amount}, Commitment: fromCommitment(got.Commitment), Envelope: fromEnvelope(got.Envelope)})
					}
				default:
					cmd := model.CloseCommitment{RequestID: rid, Caller: caller, CommitmentID: pickFrom(r, &commitments),
						Reason: "done", Effective: date()}
					call.kind, call.cmd = "CloseCommitment"+dated(cmd.Effective), cmd
					call.send = func() {
						got, err := l.CloseCommitment(ctx, ledger.CloseCommitment{RequestID: cmd.RequestID, Caller: cmd.Caller,
							CommitmentID: cmd.CommitmentID, Reason: cmd.Reason, Effective: cmd.Effective})
						call.answer(err, got.EntryID, "",
							model.CloseCommitmentResult{Commitment: fromCommitment(got.Commitment), Envelope: fromEnvelope(got.Envelope),
								Returned: got.Returned})
					}
				}
				// A transient failure records nothing: send it again, as a client would.
				for attempt := 0; attempt == 0 || (call.err != nil && !isRefusal(call.err) && attempt < 20); attempt++ {
					call.send()
				}
				if call.err != nil && !isRefusal(call.err) {
					t.Errorf("%s %s: %v", call.kind, rid, call.err)
					return
				}
				if call.err == nil {
					switch cmd := call.cmd.(type) {
					case model.Commit:
						remember(&commitments, call.id)
					case model.ConfirmHold:
						remember(&commitments, call.id)
						forget(&holds, cmd.HoldID)
					case model.CancelHold:
						forget(&holds, cmd.HoldID)
					case model.CloseCommitment:
						forget(&commitments, cmd.CommitmentID)
					case model.CreateHold:
						remember(&holds, call.id)
					}
				}
				calls[c] = append(calls[c], call)
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.Fatalf("%s", reproduce(t, seed, ops))
	}

	// Every request again: the first answer, exactly.
	for _, cs := range calls {
		for _, call := range cs {
			first := hcAnswer{call.result, call.err}
			call.send()
			if diff := diffAnswer(first, hcAnswer{call.result, call.err}); diff != "" {
				t.Errorf("%s %+v sent again: %s", call.kind, call.cmd, diff)
			}
		}
	}

	// The accepted requests in the journal's order, into the model.
	entries, err := journal(ctx, l, prefix+"c") // the callers' requests, not the setup's
	if err != nil {
		t.Fatal(err)
	}
	position := map[string]int{}
	for i, e := range entries {
		position[e.ID] = i
	}
	var accepted []*hcCall
	tally := newTally()
	for _, cs := range calls {
		for _, call := range cs {
			if call.err != nil {
				var e *ledger.Error
				errors.As(call.err, &e)
				tally[call.kind+" "+string(e.Reason)]++
				continue
			}
			tally[call.kind+" ok"]++
			if _, ok := position[call.entryID]; !ok {
				t.Fatalf("%s %+v was accepted with entry %s, which is not in the journal", call.kind, call.cmd, call.entryID)
			}
			accepted = append(accepted, call)
		}
	}
	if len(accepted) != len(entries) {
		t.Fatalf("%d requests accepted, %d journal entries", len(accepted), len(entries))
	}
	slices.SortFunc(accepted, func(a, b *hcCall) int { return position[a.entryID] - position[b.entryID] })
	for i, call := range accepted {
		var (
			want    any
			refusal *model.Refusal
		)
		switch cmd := call.cmd.(type) {
		case model.Commit:
			want, refusal = m.Commit(cmd, call.id)
		case model.CreateHold:
			want, refusal = m.CreateHold(cmd, call.id)
		case model.ConfirmHold:
			want, refusal = m.ConfirmHold(cmd, call.id)
		case model.CancelHold:
			want, refusal = m.CancelHold(cmd)
		case model.CreatePayment:
			want, refusal = m.CreatePayment(cmd, call.id)
		case model.CloseCommitment:
			want, refusal = m.CloseCommitment(cmd)
		}
		if refusal != nil {
			t.Fatalf("journal entry %d: the ledger accepted %s %+v; at its place the model refuses it: %v", i, call.kind, call.cmd, refusal)
		}
		if diff := cmp.Diff(want, call.result); diff != "" {
			t.Fatalf("journal entry %d: %s %+v: the ledger answered otherwise than the model (-model +ledger):\n%s",
				i, call.kind, call.cmd, diff)
		}
	}
	compareHoldState(t, l, m, []string{envID})
	for _, id := range m.CommitmentIDs() {
		want, _ := m.Commitment(id)
		got, err := l.GetCommitment(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, fromCommitment(got)); diff != "" {
			t.Errorf("commitment %s (-model +ledger):\n%s", id, diff)
		}
	}
	verify(t, l, "")
	if t.Failed() {
		t.Fatalf("%s", reproduce(t, seed, ops))
	}
	t.Logf("outcomes:%s", tally)
}

// answer records what the ledger answered a call (the first time, or again).
func (c *hcCall) answer(err error, entryID, id string, result any) {
	if err != nil {
		c.result, c.err = nil, err
		return
	}
	c.result, c.err, c.entryID, c.id = result, nil, entryID, id
}

// isRefusal reports whether err is a business refusal (recorded, answered again to a retry).
func isRefusal(err error) bool {
	var e *ledger.Error
	return errors.As(err, &e) && e.Reason != ledger.ReasonInternal && e.Reason != ledger.ReasonTransactionConflict &&
		e.Reason != ledger.ReasonStoreUnavailable
}

// diffAnswer compares two answers to one request: the same result, or the same refusal.
func diffAnswer(first, again hcAnswer) string {
	if (first.err == nil) != (again.err == nil) {
		return fmt.Sprintf("first %v / %v, again %v / %v", first.result, first.err, again.result, again.err)
	}
	if first.err != nil {
		var a, b *ledger.Error
		errors.As(first.err, &a)
		errors.As(again.err, &b)
		if a == nil || b == nil {
			return fmt.Sprintf("first %v, again %v", first.err, again.err)
		}
		return cmp.Diff(refusalView(a), refusalView(b))
	}
	return cmp.Diff(first.result, again.result)
}
