package model_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/budgetledger/budgetledger/internal/model"
	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
)

// sharedClock is the model's clock as the ledger reads it (ledger.Config.Clock), from the
// ledger's own goroutines too.
type sharedClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *sharedClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *sharedClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// TestModelHolds: random holds, confirmations (some at lower amounts), cancellations, awards, rule
// changes, replays, moves of the clock and sweeps go to the reference model and to the real ledger
// on every engine, whose clock is the model's; every answer, every envelope and every hold must
// agree, and the verifier must find every hold settled once (invariant 10). Expire times fall on
// half hours and the clock moves by whole hours, so that no decision is made at an expire time
// (the ledger stamps decisions a few microseconds apart).
//
// It runs with group commit on (holds decided in their envelope's batch, beside its awards) and
// off (one transaction each): both paths must agree with the model.
func TestModelHolds(t *testing.T) {
	t.Parallel()
	for _, batching := range []bool{true, false} {
		// A database for each run: the sweeper expires every hold of its database, and each run
		// starts the clock again (a run after another on the same database would find the
		// holds the first left HELD, which its model does not know, and a clock gone back).
		t.Run(fmt.Sprintf("batching=%t", batching), func(t *testing.T) {
			testdb.EachFresh(t, func(t *testing.T, fresh func() string) {
				for run, seed := range seeds(t) {
					ops := opsPerRun(600)
					t.Logf("run %d: seed %d, %d operations", run, seed, ops)
					runHolds(t, fresh(), batching, seed, ops)
				}
			})
		})
	}
}

func runHolds(t *testing.T, database string, batching bool, seed uint64, ops int) {
	t0 := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	clock := &sharedClock{t: t0}
	l, err := ledger.Open(t.Context(), database, ledger.Config{TxTimeout: 10 * time.Minute, Clock: clock.now, HoldSweepInterval: -1,
		DisableBatching: !batching})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	m := model.New(model.Span{From: t0, To: spanEnd})
	r := rand.New(rand.NewPCG(seed, seed^0x51f15e))
	// Effective times are drawn from a source of their own, so that a seed draws the same
	// operations as before they had dates.
	dates := &holdDates{r: rand.New(rand.NewPCG(seed, seed^0xda7e5)), clock: backdatedFrom}
	// Rule sets' dates too: a source of their own, so that a seed draws the same operations and
	// the same dates of everything else as before rule sets had dates.
	ruleDates := rand.New(rand.NewPCG(seed, seed^0x7a1e5))
	ctx := t.Context()
	prefix := fmt.Sprintf("h%t%d-", batching, seed%100000)
	var (
		tally    = newTally()
		envs     []string
		requests []func() (want, got any, kind string) // replays of requests already sent
	)
	pickEnv := func() string {
		if len(envs) == 0 || r.IntN(30) == 0 {
			return prefix + "nowhere"
		}
		return envs[r.IntN(len(envs))]
	}
	pickHold := func() string {
		ids := m.HoldIDs()
		if len(ids) == 0 || r.IntN(25) == 0 {
			return "0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e"
		}
		if r.IntN(4) > 0 { // mostly a hold still HELD, as clients would
			var held []string
			for _, id := range ids {
				if h, _ := m.Hold(id); h.State == model.Held {
					held = append(held, id)
				}
			}
			if len(held) > 0 {
				return held[r.IntN(len(held))]
			}
		}
		return ids[r.IntN(len(ids))]
	}
	// envDated and holdDated report whether an envelope's latest effective time, or a hold's
	// effective time, is a date (not a time of the run).
	envDated := func(id string) bool {
		e, refusal := m.Envelope(id)
		return refusal == nil && e.LatestEffectiveAt.Before(backdatedUntil)
	}
	holdDated := func(id string) bool {
		h, refusal := m.Hold(id)
		return refusal == nil && h.EffectiveAt.Before(backdatedUntil)
	}
	// ruleDate draws a rule set's effective time: when the envelope and its descendants have only
	// dates so far, mostly a date around the latest of them (after it, the rule set is kept at
	// it; else it is in force at once); else now and then a date around the dates' clock (at
	// once: the subtree has a time of the run), mostly none.
	ruleDate := func(id string) time.Time {
		var latest time.Time
		found := false
		for _, e := range m.EnvelopeIDs() {
			env, _ := m.Envelope(e)
			for x := e; x != ""; {
				if x == id {
					found = true
					if env.LatestEffectiveAt.After(latest) {
						latest = env.LatestEffectiveAt
					}
					break
				}
				up, _ := m.Envelope(x)
				x = up.ParentID
			}
		}
		switch {
		case found && latest.Before(backdatedUntil):
			if ruleDates.IntN(5) == 0 {
				return time.Time{}
			}
			return latest.AddDate(0, 0, ruleDates.IntN(9)-4)
		case ruleDates.IntN(4) == 0:
			return dates.clock.AddDate(0, 0, -ruleDates.IntN(10))
		}
		return time.Time{}
	}
	policy := func() model.Policy {
		var p model.Policy
		if r.IntN(2) == 0 {
			p.EligibleCost = int64(1 + r.IntN(200_000))
		}
		if r.IntN(2) == 0 {
			p.Population = int64(r.IntN(20_000))
		}
		return p
	}
	step := func(i int) {
		n := 0
		nextID := func() string { n++; return fmt.Sprintf("%sr%d-%d", prefix, i, n) }
		caller := []string{"service:a", "service:b"}[r.IntN(2)]
		roll := r.IntN(100)
		switch {
		case roll < 6 || len(envs) < 2:
			id := fmt.Sprintf("%se%d", prefix, len(envs))
			parent := ""
			if len(envs) > 0 && r.IntN(2) == 0 {
				parent = envs[r.IntN(len(envs))]
			}
			c := model.CreateEnvelope{RequestID: nextID(), Caller: "admin", EnvelopeID: id, ParentID: parent,
				Allocation: int64(50_000 + r.IntN(500_000)), Effective: dates.envelope()}
			want, wantR := m.CreateEnvelope(c)
			got, err := l.CreateEnvelope(ctx, ledger.CreateEnvelope{RequestID: c.RequestID, Caller: c.Caller, EnvelopeID: id,
				ParentID: parent, Allocation: c.Allocation, Effective: c.Effective})
			compare(t, i, "CreateEnvelope", tally, want.Envelope, wantR, func() any { return fromEnvelope(got.Envelope) }, err)
			if wantR == nil {
				envs = append(envs, id)
			}
		case roll < 35:
			c := model.CreateHold{RequestID: nextID(), Caller: caller, EnvelopeID: pickEnv(), Beneficiary: "b",
				Project: fmt.Sprintf("p%d", r.IntN(4)), Amount: int64(1 + r.IntN(120_000)), Policy: policy()}
			if r.IntN(4) > 0 {
				elapsed := int(m.Now().Sub(t0) / time.Hour)
				c.ExpireTime = t0.Add(time.Duration(elapsed+r.IntN(5)-1)*time.Hour + 30*time.Minute)
			}
			c.Effective = dates.next(envDated(c.EnvelopeID))
			send := func() (any, any, string) {
				got, err := l.CreateHold(ctx, ledger.CreateHold{RequestID: c.RequestID, Caller: c.Caller, EnvelopeID: c.EnvelopeID,
					Beneficiary: c.Beneficiary, Project: c.Project, Amount: c.Amount, Policy: toLedgerPolicy(c.Policy), ExpireTime: c.ExpireTime,
					Effective: c.Effective})
				id := got.Hold.ID
				if err != nil || m.HoldIDTaken(id) {
					id = "(none)"
				}
				want, wantR := m.CreateHold(c, id)
				return outcome(want.Hold, wantR), outcome(func() any { return fromHold(got.Hold) }, err), "CreateHold" + dated(c.Effective)
			}
			check(t, i, tally, send)
			requests = append(requests, send)
		case roll < 55:
			c := model.ConfirmHold{RequestID: nextID(), Caller: caller, HoldID: pickHold()}
			if h, ok := m.Hold(c.HoldID); ok == nil && r.IntN(2) == 0 {
				c.Amount = 1 + r.Int64N(h.Amount+h.Amount/10+1)
			}
			c.Effective = dates.next(holdDated(c.HoldID))
			send := func() (any, any, string) {
				got, err := l.ConfirmHold(ctx, ledger.ConfirmHold{RequestID: c.RequestID, Caller: c.Caller, HoldID: c.HoldID, Amount: c.Amount,
					Effective: c.Effective})
				id := got.Commitment.ID
				if err != nil || m.IDTaken(id) {
					id = "(none)"
				}
				want, wantR := m.ConfirmHold(c, id)
				return outcome([]any{want.Hold, want.Commitment, want.Envelope}, wantR),
					outcome(func() any {
						return []any{fromHold(got.Hold), fromCommitment(got.Commitment), fromEnvelope(got.Envelope)}
					}, err), "ConfirmHold" + dated(c.Effective)
			}
			check(t, i, tally, send)
			requests = append(requests, send)
		case roll < 63:
			c := model.CancelHold{RequestID: nextID(), Caller: caller, HoldID: pickHold(), Reason: "withdrawn"}
			c.Effective = dates.next(holdDated(c.HoldID))
			send := func() (any, any, string) {
				got, err := l.CancelHold(ctx, ledger.CancelHold{RequestID: c.RequestID, Caller: c.Caller, HoldID: c.HoldID, Reason: c.Reason,
					Effective: c.Effective})
				want, wantR := m.CancelHold(c)
				return outcome([]any{want.Hold, want.Envelope}, wantR),
					outcome(func() any { return []any{fromHold(got.Hold), fromEnvelope(got.Envelope)} }, err), "CancelHold" + dated(c.Effective)
			}
			check(t, i, tally, send)
			requests = append(requests, send)
		case roll < 70:
			c := model.Commit{RequestID: nextID(), Caller: caller, EnvelopeID: pickEnv(), Beneficiary: "b",
				Project: fmt.Sprintf("p%d", r.IntN(4)), Amount: int64(1 + r.IntN(80_000)), Policy: policy()}
			c.Effective = dates.next(envDated(c.EnvelopeID))
			got, err := l.Commit(ctx, ledger.Commit{RequestID: c.RequestID, Caller: c.Caller, EnvelopeID: c.EnvelopeID,
				Beneficiary: c.Beneficiary, Project: c.Project, Amount: c.Amount, Policy: toLedgerPolicy(c.Policy), Effective: c.Effective})
			id := got.Commitment.ID
			if err != nil || m.IDTaken(id) {
				id = "(none)"
			}
			want, wantR := m.Commit(c, id)
			compare(t, i, "Commit"+dated(c.Effective), tally, []any{want.Commitment, want.Envelope}, wantR,
				func() any { return []any{fromCommitment(got.Commitment), fromEnvelope(got.Envelope)} }, err)
		case roll < 72:
			var rules model.Rules
			if r.IntN(2) == 0 {
				bps := int64(1000 + r.IntN(9001))
				rules.MaxFundingShareBPS = &bps
			}
			if r.IntN(2) == 0 {
				pop := int64(r.IntN(10_000))
				rules.MinPopulation = &pop
			}
			c := model.SetRules{RequestID: nextID(), Caller: "admin", EnvelopeID: pickEnv(), Call: "appel", Rules: rules}
			c.EffectiveTime = ruleDate(c.EnvelopeID)
			want, wantR := m.SetRules(c)
			got, err := l.SetRules(ctx, ledger.SetRules{RequestID: c.RequestID, Caller: c.Caller, EnvelopeID: c.EnvelopeID,
				Call: c.Call, EffectiveTime: c.EffectiveTime, Rules: toLedgerRules(c.Rules)})
			kind := "SetRules" + dated(c.EffectiveTime)
			if wantR == nil && !want.AtOnce {
				kind += " kept at its date"
			}
			// Whether it is in force at once, else from when: a time of the run is at once.
			compare(t, i, kind, tally, []any{want.AtOnce, want.EffectiveFrom}, wantR, func() any {
				from := got.RuleSet.EffectiveFrom.UTC()
				if !from.Before(t0) {
					return []any{true, time.Time{}}
				}
				return []any{false, from}
			}, err)
		case roll < 82 && len(requests) > 0:
			check(t, i, tally, requests[r.IntN(len(requests))]) // a retry: the first outcome again
		case roll < 90:
			m.Advance(time.Hour)
			clock.set(m.Now())
			tally["advance clock"]++
		case roll < 97:
			want := m.Sweep()
			got, err := l.SweepExpiredHolds(ctx)
			if err != nil || got != want {
				t.Fatalf("op %d: SweepExpiredHolds = %d, %v; the model expired %d", i, got, err, want)
			}
			tally[fmt.Sprintf("sweep %t", want > 0)]++
		default:
			id := pickHold()
			want, wantR := m.Hold(id)
			got, err := l.GetHold(ctx, id)
			compare(t, i, "GetHold", tally, want, wantR, func() any { return fromHold(got) }, err)
		}
	}
	for i := range ops {
		step(i)
		if t.Failed() {
			t.Fatalf("%s", reproduce(t, seed, ops))
		}
		if i%100 == 99 || i == ops-1 {
			compareHoldState(t, l, m, envs)
		}
	}
	verify(t, l, "")
	t.Logf("outcomes:%s", tally)
}

// outcome is what a call answered, in the model's types: its result, or its refusal.
type callOutcome struct {
	Result  any
	Refusal *model.Refusal
}

func outcome(result any, err any) callOutcome {
	switch e := err.(type) {
	case *model.Refusal:
		if e != nil {
			return callOutcome{Refusal: e}
		}
		return callOutcome{Result: result}
	case error:
		if e == nil {
			return callOutcome{Result: result.(func() any)()}
		}
		var le *ledger.Error
		if errors.As(e, &le) {
			return callOutcome{Refusal: fromRefusal(le)}
		}
		return callOutcome{Refusal: &model.Refusal{Reason: model.Reason("not a ledger error: " + e.Error())}}
	case nil:
		if f, ok := result.(func() any); ok {
			return callOutcome{Result: f()}
		}
		return callOutcome{Result: result}
	}
	panic("outcome of an unknown error")
}

// check sends one request (or sends it again) and compares the ledger's answer with the model's.
func check(t *testing.T, i int, tally tally, send func() (want, got any, kind string)) {
	t.Helper()
	w, g, kind := send()
	want, got := w.(callOutcome), g.(callOutcome)
	diffOutcomes(t, i, kind, tally, want, got)
}

func compare(t *testing.T, i int, kind string, tally tally, want any, wantR *model.Refusal, got func() any, err error) {
	t.Helper()
	diffOutcomes(t, i, kind, tally, outcome(want, wantR), outcome(got, err))
}

func diffOutcomes(t *testing.T, i int, kind string, tally tally, want, got callOutcome) {
	t.Helper()
	if want.Refusal != nil && got.Refusal != nil {
		// Only the metadata the model predicts is compared.
		trimmed := &model.Refusal{Reason: got.Refusal.Reason, Metadata: map[string]string{}}
		for k := range want.Refusal.Metadata {
			if v, ok := got.Refusal.Metadata[k]; ok {
				trimmed.Metadata[k] = v
			}
		}
		got.Refusal = trimmed
		tally[kind+" "+string(want.Refusal.Reason)]++
	} else if want.Refusal == nil {
		tally[kind+" ok"]++
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("op %d: %s: the ledger differs from the model (-model +ledger):\n%s", i, kind, diff)
	}
}

func fromHold(h ledger.Hold) model.Hold {
	return model.Hold{ID: h.ID, EnvelopeID: h.EnvelopeID, Beneficiary: h.Beneficiary, Project: h.Project, Currency: h.Currency,
		Description: h.Description, Amount: h.Amount, State: model.HoldState(h.State), ExpireAt: h.ExpireAt,
		ConfirmedAmount: h.ConfirmedAmount, CommitmentID: h.CommitmentID, Reason: h.Reason,
		Policy:      model.Policy{EligibleCost: h.Policy.EligibleCost, Territory: h.Policy.Territory, Population: h.Policy.Population},
		EffectiveAt: modelTime(h.EffectiveAt)}
}

// holdDates draws the effective times of the holds test: dates of 2021, before every run, around
// a clock that moves forward through the year (as the generator's do), so that some are accepted
// and some fall before an envelope, its latest effective time or a hold; now and then one in the
// future.
type holdDates struct {
	r     *rand.Rand
	clock time.Time
}

// envelope draws an envelope's effective time: mostly a date, so that backdated holds and awards
// can be accepted on it.
func (d *holdDates) envelope() time.Time {
	if d.r.IntN(3) == 0 {
		return time.Time{}
	}
	return d.clock
}

// next draws the effective time of a hold, its confirmation or cancellation, or an award: more
// often when what it is decided on (the envelope, the hold) has only dates so far, which a date
// may follow.
func (d *holdDates) next(datedSoFar bool) time.Time {
	none := 55
	if datedSoFar {
		none = 15
	}
	switch x := d.r.IntN(100); {
	case x < none:
		return time.Time{}
	case x < 97:
		if next := d.clock.AddDate(0, 0, d.r.IntN(4)); next.Before(backdatedUntil) {
			d.clock = next
		}
		if d.r.IntN(5) == 0 {
			return d.clock.AddDate(0, 0, -d.r.IntN(20)) // perhaps before what is recorded
		}
		return d.clock
	}
	return timeFuture
}

// dated marks a kind of request that gave an effective time, for the tally.
func dated(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " (dated)"
}

// compareHoldState compares every envelope and every hold of the model with the ledger's.
func compareHoldState(t *testing.T, l *ledger.Ledger, m *model.Ledger, envs []string) {
	t.Helper()
	ctx := context.Background()
	for _, id := range envs {
		want, _ := m.Envelope(id)
		got, err := l.GetEnvelope(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, fromEnvelope(got)); diff != "" {
			t.Errorf("envelope %s (-model +ledger):\n%s", id, diff)
		}
	}
	for _, id := range m.HoldIDs() {
		want, _ := m.Hold(id)
		got, err := l.GetHold(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, fromHold(got)); diff != "" {
			t.Errorf("hold %s (-model +ledger):\n%s", id, diff)
		}
	}
}
