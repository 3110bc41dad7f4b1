package core

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
	"time"
)

// The decisions are pure: these tests need no database. The seeded randomized comparison of the
// whole ledger with its reference model lives beside the ledger (TestModel*).

func testStamp() Stamp {
	n := 0
	return Stamp{At: time.Date(2021, 10, 8, 12, 0, 0, 0, time.UTC), NewID: func() string {
		n++
		return fmt.Sprintf("00000000-0000-7000-8000-%012d", n)
	}}
}

func env(id, parent string, allocation, committed int64) Envelope {
	return Envelope{ID: id, ParentID: parent, Currency: "EUR", Allocation: allocation, Committed: committed}
}

func commitOp(rid string, amount int64) *Op {
	c := &Commit{RequestID: rid, Caller: "svc", EnvelopeID: "axis-1", Beneficiary: "b", Project: "p", Amount: amount}
	return &Op{Commit: c, Fingerprint: c.Fingerprint()}
}

// TestDecideBatchIsPure protects the core's contract that a decision never changes its inputs:
// the loaded state can be reused (a transaction retry decides again from what it loaded).
func TestDecideBatchIsPure(t *testing.T) {
	c := Commitment{ID: "00000000-0000-7000-8000-000000000099", EnvelopeID: "axis-1", Amount: 500, Project: "p"}
	in := Loaded{
		Envelopes:   map[string]Envelope{"axis-1": env("axis-1", "", 1000, 500)},
		Commitments: map[string]*Commitment{c.ID: &c},
		Totals:      map[ProjectKey]int64{{"axis-1", "p"}: 500},
	}
	rel := &Release{RequestID: "r2", Caller: "svc", CommitmentID: c.ID, Amount: 200, Reason: "cheaper"}
	units := []*Unit{{EnvelopeID: "axis-1", Ops: []*Op{commitOp("r1", 300), {Release: rel, Fingerprint: rel.Fingerprint()}}}}
	before := fmt.Sprintf("%+v %+v %+v", in.Envelopes, *in.Commitments[c.ID], in.Totals)
	w, err := DecideBatch(testStamp(), units, in)
	if err != nil {
		t.Fatal(err)
	}
	if after := fmt.Sprintf("%+v %+v %+v", in.Envelopes, *in.Commitments[c.ID], in.Totals); after != before {
		t.Fatalf("DecideBatch changed its inputs:\nbefore %s\nafter  %s", before, after)
	}
	if len(w.Envelopes) != 1 || w.Envelopes[0].Committed != 600 || w.Envelopes[0].Released != 200 {
		t.Fatalf("envelope after the batch: %+v, want committed 600, released 200", w.Envelopes)
	}
	if len(w.Changed) != 1 || w.Changed[0].Released != 200 {
		t.Fatalf("released commitment: %+v", w.Changed)
	}
}

// TestDecideBatchAllOrNothing protects the all-or-nothing bulk contract: one refused item refuses
// every item with the first refusal, naming it, and nothing of the unit is written; a unit
// decided after it in the same batch sees the envelope as if the refused unit never ran.
func TestDecideBatchAllOrNothing(t *testing.T) {
	in := Loaded{Envelopes: map[string]Envelope{"axis-1": env("axis-1", "", 1000, 0)}}
	bulk := BulkCommit{RequestID: "call-1", Caller: "svc", EnvelopeID: "axis-1", AllOrNothing: true,
		Items: []BulkItem{{Beneficiary: "a", Project: "p1", Amount: 600}, {Beneficiary: "b", Project: "p2", Amount: 600}}}
	u := bulk.Unit()
	after := &Unit{EnvelopeID: "axis-1", Ops: []*Op{commitOp("r-after", 1000)}}
	w, err := DecideBatch(testStamp(), []*Unit{u, after}, in)
	if err != nil {
		t.Fatal(err)
	}
	for i, op := range u.Ops {
		if op.Outcome.Refusal == nil || op.Outcome.Refusal.Reason != ReasonInsufficientFunds || op.Outcome.Refusal.Metadata["item"] != "1" {
			t.Errorf("item %d: %+v, want INSUFFICIENT_FUNDS naming item 1", i, op.Outcome.Refusal)
		}
	}
	if after.Ops[0].Outcome.Refusal != nil {
		t.Errorf("the unit after the refused call: %v, want accepted (the call's items were undone)", after.Ops[0].Outcome.Refusal)
	}
	if len(w.NewCommitments) != 1 || len(w.Entries) != 1 || w.Envelopes[0].Committed != 1000 {
		t.Errorf("writes: %d commitments, %d entries, envelope %+v; want only the later award", len(w.NewCommitments), len(w.Entries), w.Envelopes[0])
	}
}

// TestDecideBatchReplaysPriors protects invariant 5 in the core: a request id in the request log
// gets its first outcome (or REQUEST_ID_REUSED for another payload) and writes nothing.
func TestDecideBatchReplaysPriors(t *testing.T) {
	first := commitOp("r1", 100)
	prior := Prior{Fingerprint: first.Fingerprint.Current, Outcome: Outcome{Result: []byte(`{"entry_id":"x"}`)}}
	in := Loaded{Envelopes: map[string]Envelope{"axis-1": env("axis-1", "", 1000, 100)}, Priors: map[string]Prior{first.Key(): prior}}
	same, other := commitOp("r1", 100), commitOp("r1", 101)
	w, err := DecideBatch(testStamp(), []*Unit{{EnvelopeID: "axis-1", Ops: []*Op{same}}, {EnvelopeID: "axis-1", Ops: []*Op{other}}}, in)
	if err != nil {
		t.Fatal(err)
	}
	if string(same.Outcome.Result) != `{"entry_id":"x"}` {
		t.Errorf("same payload: %+v, want the first outcome", same.Outcome)
	}
	if !errors.Is(other.Outcome.Refusal, ErrRequestIDReused) {
		t.Errorf("other payload: %+v, want REQUEST_ID_REUSED", other.Outcome)
	}
	if len(w.Entries)+len(w.Requests)+len(w.Envelopes) != 0 {
		t.Errorf("replays wrote %+v", w)
	}
}

// TestDecideBatchOneRequestIDForASingleAndABulkCall protects invariant 5 within a batch, and the
// rule that one request's failure stays its own: a single request and a bulk call sent under the
// same request id and decided in the same batch (in either order) are two requests; the second is
// refused REQUEST_ID_REUSED, as it would be in a later batch, and nothing of it is recorded. Both
// recorded under one key made the batch's write fail, and every request in it with it.
func TestDecideBatchOneRequestIDForASingleAndABulkCall(t *testing.T) {
	for _, bulkFirst := range []bool{false, true} {
		in := Loaded{Envelopes: map[string]Envelope{"axis-1": env("axis-1", "", 10_000, 0)}}
		single := commitOp("x", 100)
		bulk := BulkCommit{RequestID: "x", Caller: "svc", EnvelopeID: "axis-1",
			Items: []BulkItem{{Beneficiary: "a", Project: "p1", Amount: 200}, {Beneficiary: "b", Project: "p2", Amount: 300}}}
		call := bulk.Unit()
		other := &Unit{EnvelopeID: "axis-1", Ops: []*Op{commitOp("y", 400)}}
		units := []*Unit{{EnvelopeID: "axis-1", Ops: []*Op{single}}, call, other}
		if bulkFirst {
			units[0], units[1] = units[1], units[0]
		}
		w, err := DecideBatch(testStamp(), units, in)
		if err != nil {
			t.Fatal(err)
		}
		keys := map[string]bool{}
		for _, r := range w.Requests {
			if keys[r.Key] {
				t.Errorf("bulk first %v: two request rows under %q: the batch's write would fail", bulkFirst, r.Key)
			}
			keys[r.Key] = true
		}
		if other.Ops[0].Outcome.Refusal != nil || other.Err != nil {
			t.Errorf("bulk first %v: the unrelated award: %+v, %v; want accepted", bulkFirst, other.Ops[0].Outcome, other.Err)
		}
		committed := int64(400)
		if bulkFirst {
			for i, op := range call.Ops {
				if op.Outcome.Refusal != nil {
					t.Errorf("the bulk call first: item %d refused %v", i, op.Outcome.Refusal)
				}
			}
			if single.Outcome.Refusal == nil || !errors.Is(single.Outcome.Refusal, ErrRequestIDReused) {
				t.Errorf("the single award after the bulk call: %+v, want REQUEST_ID_REUSED", single.Outcome)
			}
			committed += 500
		} else {
			if single.Outcome.Refusal != nil {
				t.Errorf("the single award first: refused %v", single.Outcome.Refusal)
			}
			for i, op := range call.Ops {
				if op.Outcome.Refusal == nil || !errors.Is(op.Outcome.Refusal, ErrRequestIDReused) {
					t.Errorf("the bulk call after the single award: item %d %+v, want REQUEST_ID_REUSED", i, op.Outcome)
				}
			}
			committed += 100
		}
		if got := w.Envelopes[0].Committed; got != committed {
			t.Errorf("bulk first %v: committed %d, want %d (only the first of the two requests, and the unrelated one)", bulkFirst, got, committed)
		}
	}
}

// TestDecideOverflow protects the rule that every sum is checked: an award that would carry a
// balance past the int64 range is refused with AMOUNT_OVERFLOW, not wrapped.
func TestDecideOverflow(t *testing.T) {
	parent := env("fund", "", math.MaxInt64, 0)
	parent.ChildrenAllocated = 10
	child := CreateEnvelope{RequestID: "c", Caller: "a", EnvelopeID: "axis-1", ParentID: "fund", Allocation: math.MaxInt64}
	if _, _, err := DecideCreateEnvelope(testStamp(), child, nil, &parent, 1); !errors.Is(err, ErrInsufficientFunds) {
		t.Errorf("child above the parent's available: %v, want INSUFFICIENT_FUNDS", err)
	}
	a, b := env("a", "", math.MaxInt64, 0), env("b", "", math.MaxInt64, 0)
	move := MoveAllocation{RequestID: "m", Caller: "a", SourceID: "a", DestinationID: "b", Amount: 1, Reason: "x"}
	if _, _, err := DecideMoveAllocation(testStamp(), move, &a, &b); !errors.Is(err, ErrAmountOverflow) {
		t.Errorf("move onto a full root: %v, want AMOUNT_OVERFLOW", err)
	}
}

// TestDecideMoveAllocation protects the shape of moves: only parent↔child and siblings, balanced
// entries, and a refusal changes nothing.
func TestDecideMoveAllocation(t *testing.T) {
	fund, a1, a2 := env("fund", "", 1000, 0), env("axis-1", "fund", 300, 0), env("axis-2", "fund", 300, 0)
	fund.ChildrenAllocated = 600
	line := env("line", "axis-1", 100, 0)
	for _, tc := range []struct {
		src, dst Envelope
		want     error
	}{
		{fund, a1, nil}, {a1, fund, nil}, {a1, a2, nil}, {line, a2, ErrEnvelopesNotRelated}, {fund, line, ErrEnvelopesNotRelated},
	} {
		src, dst := tc.src, tc.dst
		cmd := MoveAllocation{RequestID: "m", Caller: "a", SourceID: src.ID, DestinationID: dst.ID, Amount: 50, Reason: "x"}
		res, eff, err := DecideMoveAllocation(testStamp(), cmd, &src, &dst)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) {
			t.Errorf("%s -> %s: %v, want %v", src.ID, dst.ID, err, tc.want)
			continue
		}
		if !reflect.DeepEqual(src, tc.src) || !reflect.DeepEqual(dst, tc.dst) {
			t.Errorf("%s -> %s changed its inputs", src.ID, dst.ID)
		}
		if err != nil {
			continue
		}
		if got := res.Source.Available() + res.Destination.Available(); got != src.Available()+dst.Available() {
			t.Errorf("%s -> %s: available %d after, %d before", src.ID, dst.ID, got, src.Available()+dst.Available())
		}
		if p := eff.Entries[0].Postings; len(p) != 2 || p[0].Amount+p[1].Amount != 0 {
			t.Errorf("%s -> %s: postings %+v do not balance", src.ID, dst.ID, p)
		}
	}
}

// TestCheckEffective: the backdating rule as a pure function (invariant 10 on dates): no time in
// the future, none before an envelope, no reduction before the envelope's latest effective time,
// no return before what it returns; an unset time is the recorded time and never refused.
func TestCheckEffective(t *testing.T) {
	day := func(d int) time.Time { return time.Date(2021, 1, d, 0, 0, 0, 0, time.UTC) }
	recorded := day(30)
	env := &Envelope{ID: "axis-1", EffectiveAt: day(5), LatestEffectiveAt: day(20)}
	c := &Commitment{ID: "00000000-0000-7000-8000-000000000001", EffectiveAt: day(10)}
	for _, tc := range []struct {
		name   string
		given  time.Time
		bounds []EffectiveBound
		want   Reason // "" when accepted
	}{
		{"unset: when recorded", time.Time{}, Reduces(env), ""},
		{"in the future", day(31), nil, ReasonEffectiveTimeInFuture},
		{"at the recorded time", recorded, Reduces(env), ""},
		{"a reduction before the envelope", day(4), Reduces(env), ReasonEffectiveTimeBeforeEnvelope},
		{"a reduction before the latest", day(19), Reduces(env), ReasonEffectiveTimeBeforeLatest},
		{"a reduction at the latest", day(20), Reduces(env), ""},
		{"an addition before the latest", day(6), Adds(env), ""},
		{"an addition before the envelope", day(4), Adds(env), ReasonEffectiveTimeBeforeEnvelope},
		{"a return before its commitment", day(9), Returns(env, c), ReasonEffectiveTimeBeforeCommitment},
		{"a return after its commitment, before the latest", day(11), Returns(env, c), ""},
	} {
		got, err := CheckEffective(recorded, tc.given, tc.bounds...)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want == "" && tc.given.IsZero() && !got.Equal(recorded):
			t.Errorf("%s: took effect %v, want the recorded time", tc.name, got)
		case tc.want == "" && !tc.given.IsZero() && !got.Equal(tc.given):
			t.Errorf("%s: took effect %v, want %v", tc.name, got, tc.given)
		case tc.want != "" && !errors.Is(err, &Error{Reason: tc.want}):
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
}
