package core

import (
	"testing"
)

// TestDecideBatchIsolatesAFailingUnit protects "one request's failure stays its own": a unit that
// cannot be decided (here, on an envelope whose chain of parents could not be loaded) fails alone
// with INTERNAL and nothing of it is recorded (its caller may send it again), while the units
// batched with it, before and after, are decided and recorded as if it had not been sent.
func TestDecideBatchIsolatesAFailingUnit(t *testing.T) {
	in := Loaded{
		Envelopes: map[string]Envelope{"axis-1": env("axis-1", "", 1000, 0), "deep": env("deep", "deeper", 1000, 0)},
		Broken:    map[string]error{"deep": Internal("envelope deep has a cycle of parents")},
	}
	before, after := commitOp("r1", 100), commitOp("r3", 200)
	onDeep := &Commit{RequestID: "r2", Caller: "svc", EnvelopeID: "deep", Beneficiary: "b", Project: "p", Amount: 10}
	bulk := (&BulkCommit{RequestID: "r4", Caller: "svc", EnvelopeID: "deep",
		Items: []BulkItem{{Beneficiary: "b", Project: "p", Amount: 1}, {Beneficiary: "c", Project: "q", Amount: 2}}}).Unit()
	deepOp := &Op{Commit: onDeep, Fingerprint: onDeep.Fingerprint()}
	units := []*Unit{
		{EnvelopeID: "axis-1", Ops: []*Op{before}},
		{EnvelopeID: "deep", Ops: []*Op{deepOp}},
		bulk,
		{EnvelopeID: "axis-1", Ops: []*Op{after}},
	}
	w, err := DecideBatch(testStamp(), units, in)
	if err != nil {
		t.Fatalf("the batch failed as a whole: %v", err)
	}
	for _, op := range []*Op{before, after} {
		if op.Err != nil || op.Outcome.Refusal != nil || op.Result == nil {
			t.Errorf("%s batched with a failing request: err %v, outcome %+v; want accepted", op.RequestID(), op.Err, op.Outcome)
		}
	}
	for _, u := range units[1:3] {
		if e, ok := AsError(u.Err); !ok || e.Reason != ReasonInternal {
			t.Errorf("unit on the broken envelope: err %v, want INTERNAL", u.Err)
		}
		for _, op := range u.Ops {
			var res CommitResult
			if err := op.Decode(&res); err != u.Err {
				t.Errorf("%s decodes to %v, want the unit's failure", op.RequestID(), err)
			}
		}
	}
	if _, _, err := (&BulkCommit{}).BulkResult(bulk); err != bulk.Err {
		t.Errorf("the failed bulk call's result: %v, want its failure", err)
	}
	var keys []string
	for _, r := range w.Requests {
		keys = append(keys, r.Key)
	}
	if want := []string{RequestKey("svc", "r1"), RequestKey("svc", "r3")}; len(keys) != 2 || keys[0] != want[0] || keys[1] != want[1] {
		t.Errorf("request log rows %q, want only %q (nothing of the failed requests)", keys, want)
	}
	if len(w.Entries) != 2 || len(w.NewCommitments) != 2 || len(w.Envelopes) != 1 || w.Envelopes[0].Committed != 300 {
		t.Errorf("writes: %d entries, %d commitments, envelopes %+v; want the two good awards on axis-1", len(w.Entries), len(w.NewCommitments), w.Envelopes)
	}
}

// TestDecideBatchFailedReleaseIsUndone protects the same isolation when the failing unit comes
// after a release in the same batch: the failure undoes nothing of the release before it, and a
// failing unit's own release (undone by reset) leaves the commitment as loaded.
func TestDecideBatchFailedReleaseIsUndone(t *testing.T) {
	c := Commitment{ID: "00000000-0000-7000-8000-000000000099", EnvelopeID: "axis-1", Amount: 500, Project: "p"}
	in := Loaded{
		Envelopes:   map[string]Envelope{"axis-1": env("axis-1", "", 1000, 500)},
		Commitments: map[string]*Commitment{c.ID: &c},
	}
	rel := &Release{RequestID: "r1", Caller: "svc", CommitmentID: c.ID, Amount: 200, Reason: "cheaper"}
	b := &batchState{st: testStamp(), in: in, envs: map[string]*envState{"axis-1": {env: in.Envelopes["axis-1"], found: true}},
		changed: map[string]*Commitment{}, decidedHere: map[string]*Op{}, callsHere: map[string]callHere{}}
	b.in.Totals = map[ProjectKey]int64{}
	s := b.envs["axis-1"]
	m := b.mark(s)
	u := &Unit{EnvelopeID: "axis-1", Ops: []*Op{{Release: rel, Fingerprint: rel.Fingerprint()}}}
	if err := b.decideUnit(u); err != nil {
		t.Fatal(err)
	}
	if b.changed[c.ID].Released != 200 {
		t.Fatalf("the release did not apply: %+v", b.changed[c.ID])
	}
	b.fail(u, s, m, Internal("injected"))
	if len(b.changed) != 0 || len(b.changedOrder) != 0 || len(b.recorded) != 0 || len(b.entries) != 0 || s.env.Committed != 500 || s.env.Released != 0 {
		t.Errorf("after the unit failed: changed %v, recorded %d, entries %d, envelope %+v; want the batch as before it",
			b.changed, len(b.recorded), len(b.entries), s.env)
	}
	if u.Ops[0].Err == nil || u.Ops[0].Outcome.Result != nil {
		t.Errorf("failed op: %+v", u.Ops[0])
	}
}

// TestEnvelopeDepthLimit protects the bound on envelope trees: a child of an envelope at level
// MaxEnvelopeDepth is refused with ENVELOPE_TOO_DEEP; one level less is accepted.
func TestEnvelopeDepthLimit(t *testing.T) {
	parent := env("line", "axis", 1000, 0)
	child := CreateEnvelope{RequestID: "r", Caller: "admin", EnvelopeID: "sub", ParentID: "line", Allocation: 10}
	if _, _, err := DecideCreateEnvelope(testStamp(), child, nil, &parent, MaxEnvelopeDepth-1); err != nil {
		t.Errorf("a child at level %d: %v, want it created", MaxEnvelopeDepth, err)
	}
	_, _, err := DecideCreateEnvelope(testStamp(), child, nil, &parent, MaxEnvelopeDepth)
	if e, ok := IsRefusal(err); !ok || e.Reason != ReasonEnvelopeTooDeep {
		t.Errorf("a child at level %d: %v, want the refusal ENVELOPE_TOO_DEEP", MaxEnvelopeDepth+1, err)
	}
}
