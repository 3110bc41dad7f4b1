package model_test

// The harness of the model tests: one operation type that can be sent to the real ledger (do) and
// to the model (expect), the ledger's answer translated into the model's types (answer), and the
// comparison of the two (diffAnswers). The sequential and concurrent tests, and the
// linearizability checker, are built from these.

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/budgetledger/budgetledger/internal/model"
	"github.com/budgetledger/budgetledger/ledger"
)

// op is one call of the ledger's public API.
type op struct {
	create        *model.CreateEnvelope
	move          *model.MoveAllocation
	rules         *model.SetRules
	commit        *model.Commit
	release       *model.Release
	bulk          *model.BulkCommit
	pay           *model.CreatePayment
	close         *model.CloseCommitment
	getEnvelope   string
	getCommitment string

	// partition names the independent part of the ledger the op touches (concurrent test).
	partition string
	// etag, for a move or a rule change, says which etags it carries (sequential test); shared
	// by the op's retries.
	etag *etagUse
}

// etagKind is where an op's etags come from (AIP-154).
type etagKind int

const (
	etagCurrent    etagKind = iota // read just before the op is sent
	etagRemembered                 // read earlier in the run (stale if the envelope changed since)
	etagBogus                      // never an etag of anything
)

// etagUse is an op's etags: the ledger's (real, realDst), and the model's, which resolveETags
// writes into the op's model command. They are resolved once, when the op is first sent.
type etagUse struct {
	kind          etagKind
	resolved      bool
	real, realDst string
}

// etagPair is an etag of the ledger and the model's read at the same point of a run.
type etagPair struct{ real, model string }

// resolveETags gives o its etags, reading the ledger and the model side by side; seen keeps every
// pair read, for etagRemembered.
func resolveETags(ctx context.Context, l *ledger.Ledger, m *model.Ledger, o op, seen map[string]etagPair) {
	u := o.etag
	if u == nil || u.resolved {
		return
	}
	u.resolved = true
	get := func(key string, read func() (string, string, bool)) (string, string) {
		if u.kind == etagBogus {
			return "bogus", "bogus"
		}
		if p, ok := seen[key]; ok && u.kind == etagRemembered {
			return p.real, p.model
		}
		real, mod, ok := read()
		if !ok {
			return "", "" // no such envelope: nothing to check
		}
		seen[key] = etagPair{real, mod}
		return real, mod
	}
	envelope := func(id string) func() (string, string, bool) {
		return func() (string, string, bool) {
			env, err := l.GetEnvelope(ctx, id)
			return ledger.EnvelopeETag(env), m.ETag(id), err == nil
		}
	}
	switch {
	case o.move != nil:
		u.real, o.move.ETag = get("envelope "+o.move.SourceID, envelope(o.move.SourceID))
		u.realDst, o.move.DestinationETag = get("envelope "+o.move.DestinationID, envelope(o.move.DestinationID))
	case o.rules != nil:
		id := o.rules.EnvelopeID
		u.real, o.rules.ETag = get("rules "+id, func() (string, string, bool) {
			r, err := l.GetRules(ctx, id, time.Time{})
			return r.ETag, m.RulesETag(id), err == nil
		})
	}
}

// realETags are the ledger's etags of o (none when it carries none).
func (o op) realETags() (string, string) {
	if o.etag == nil {
		return "", ""
	}
	return o.etag.real, o.etag.realDst
}

func (o op) requestID() string {
	switch {
	case o.create != nil:
		return o.create.RequestID
	case o.move != nil:
		return o.move.RequestID
	case o.rules != nil:
		return o.rules.RequestID
	case o.commit != nil:
		return o.commit.RequestID
	case o.release != nil:
		return o.release.RequestID
	case o.bulk != nil:
		return o.bulk.RequestID
	case o.pay != nil:
		return o.pay.RequestID
	case o.close != nil:
		return o.close.RequestID
	}
	return ""
}

// caller returns the principal that sends o.
func (o op) caller() string {
	switch {
	case o.create != nil:
		return o.create.Caller
	case o.move != nil:
		return o.move.Caller
	case o.rules != nil:
		return o.rules.Caller
	case o.commit != nil:
		return o.commit.Caller
	case o.release != nil:
		return o.release.Caller
	case o.bulk != nil:
		return o.bulk.Caller
	case o.pay != nil:
		return o.pay.Caller
	case o.close != nil:
		return o.close.Caller
	}
	return ""
}

// withRequestID returns a copy of o under another request id.
func (o op) withRequestID(id string) op {
	switch {
	case o.create != nil:
		c := *o.create
		c.RequestID = id
		o.create = &c
	case o.move != nil:
		c := *o.move
		c.RequestID = id
		o.move = &c
	case o.rules != nil:
		c := *o.rules
		c.RequestID = id
		o.rules = &c
	case o.commit != nil:
		c := *o.commit
		c.RequestID = id
		o.commit = &c
	case o.release != nil:
		c := *o.release
		c.RequestID = id
		o.release = &c
	case o.bulk != nil:
		c := *o.bulk
		c.RequestID = id
		o.bulk = &c
	case o.pay != nil:
		c := *o.pay
		c.RequestID = id
		o.pay = &c
	case o.close != nil:
		c := *o.close
		c.RequestID = id
		o.close = &c
	}
	return o
}

// withCaller returns a copy of o sent by another caller (same request id).
func (o op) withCaller(caller string) op {
	switch {
	case o.create != nil:
		c := *o.create
		c.Caller = caller
		o.create = &c
	case o.move != nil:
		c := *o.move
		c.Caller = caller
		o.move = &c
	case o.rules != nil:
		c := *o.rules
		c.Caller = caller
		o.rules = &c
	case o.commit != nil:
		c := *o.commit
		c.Caller = caller
		o.commit = &c
	case o.release != nil:
		c := *o.release
		c.Caller = caller
		o.release = &c
	case o.bulk != nil:
		c := *o.bulk
		c.Caller = caller
		o.bulk = &c
	case o.pay != nil:
		c := *o.pay
		c.Caller = caller
		o.pay = &c
	case o.close != nil:
		c := *o.close
		c.Caller = caller
		o.close = &c
	}
	return o
}

func (o op) String() string {
	switch {
	case o.create != nil:
		c := o.create
		return fmt.Sprintf("CreateEnvelope(%s caller=%s id=%s parent=%q currency=%q allocation=%d%s)", c.RequestID, c.Caller,
			c.EnvelopeID, c.ParentID, c.Currency, c.Allocation, effectiveText(c.Effective))
	case o.move != nil:
		c := o.move
		return fmt.Sprintf("MoveAllocation(%s caller=%s %s -> %s amount=%d%s etags=%q,%q)", c.RequestID, c.Caller, c.SourceID,
			c.DestinationID, c.Amount, effectiveText(c.Effective), c.ETag, c.DestinationETag)
	case o.rules != nil:
		c := o.rules
		return fmt.Sprintf("SetRules(%s caller=%s envelope=%s call=%s effective=%s rules=%s etag=%q)", c.RequestID, c.Caller,
			c.EnvelopeID, c.Call, c.EffectiveTime.Format(time.RFC3339), c.Rules, c.ETag)
	case o.commit != nil:
		c := o.commit
		ids := ""
		if c.BeneficiarySIRET != "" || c.BeneficiaryRNA != "" {
			ids = fmt.Sprintf(" siret=%q rna=%q", c.BeneficiarySIRET, c.BeneficiaryRNA)
		}
		return fmt.Sprintf("Commit(%s caller=%s envelope=%s project=%s amount=%d policy={%s}%s%s)", c.RequestID, c.Caller,
			c.EnvelopeID, c.Project, c.Amount, c.Policy.Text(), ids, effectiveText(c.Effective))
	case o.release != nil:
		c := o.release
		return fmt.Sprintf("Release(%s caller=%s commitment=%s amount=%d%s)", c.RequestID, c.Caller, c.CommitmentID, c.Amount,
			effectiveText(c.Effective))
	case o.bulk != nil:
		c := o.bulk
		s := fmt.Sprintf("BulkCommit(%s caller=%s envelope=%s all_or_nothing=%t items=[", c.RequestID, c.Caller,
			c.EnvelopeID, c.AllOrNothing)
		for i, it := range c.Items {
			if i > 0 {
				s += " "
			}
			s += fmt.Sprintf("{%s %d {%s}}", it.Project, it.Amount, it.Policy.Text())
		}
		return s + "]" + effectiveText(c.Effective) + ")"
	case o.pay != nil:
		c := o.pay
		return fmt.Sprintf("CreatePayment(%s caller=%s commitment=%s amount=%d)", c.RequestID, c.Caller, c.CommitmentID, c.Amount)
	case o.close != nil:
		c := o.close
		return fmt.Sprintf("CloseCommitment(%s caller=%s commitment=%s)", c.RequestID, c.Caller, c.CommitmentID)
	case o.getEnvelope != "":
		return "GetEnvelope(" + o.getEnvelope + ")"
	case o.getCommitment != "":
		return "GetCommitment(" + o.getCommitment + ")"
	}
	return "nothing"
}

// answer is an outcome, of the ledger or of the model, in the model's types. Exactly one of
// refusal, retryable and the results is set.
type answer struct {
	Refusal *model.Refusal
	// Retryable is the reason of a transient failure (nothing recorded; the caller retries).
	Retryable string

	Create     *model.CreateEnvelopeResult
	Move       *model.MoveAllocationResult
	Rules      *model.SetRulesResult
	Commit     *model.CommitResult
	Release    *model.ReleaseResult
	Bulk       *model.BulkCommitResult
	Pay        *model.CreatePaymentResult
	Close      *model.CloseCommitmentResult
	Envelope   *model.Envelope
	Commitment *model.Commitment

	// raw is the ledger's own result or error, for the exact comparison of replays.
	raw    any
	rawErr error
}

func (a answer) accepted() bool { return a.Refusal == nil && a.Retryable == "" }

func (a answer) String() string {
	switch {
	case a.Retryable != "":
		return "retryable " + a.Retryable
	case a.Refusal != nil:
		return "refused " + a.Refusal.Error()
	case a.Bulk != nil:
		s := fmt.Sprintf("accepted %d refused %d:", a.Bulk.Accepted, a.Bulk.Refused)
		for _, it := range a.Bulk.Items {
			if it.Refusal != nil {
				s += " " + string(it.Refusal.Reason)
			} else {
				s += " ok"
			}
		}
		return s
	}
	return "accepted"
}

// Translation of commands: model → ledger.

func toLedgerPolicy(p model.Policy) ledger.Policy {
	return ledger.Policy{EligibleCost: p.EligibleCost, Territory: p.Territory, Population: p.Population}
}

func toLedgerPublication(p model.Publication) ledger.Publication {
	return ledger.Publication{DecisionReference: p.DecisionReference, BeneficiaryLegalName: p.BeneficiaryLegalName,
		BeneficiarySIRET: p.BeneficiarySIRET, BeneficiaryRNA: p.BeneficiaryRNA, Purpose: p.Purpose}
}

func toLedgerRules(r model.Rules) ledger.Rules {
	out := ledger.Rules{MaxFundingShareBPS: r.MaxFundingShareBPS, MinPopulation: r.MinPopulation}
	if r.AwardWindow != nil {
		out.AwardWindow = &ledger.Window{Start: r.AwardWindow.Start, End: r.AwardWindow.End}
	}
	return out
}

// Translation of results: ledger → model.

// modelTime writes a ledger's effective time as the model does: a time of the run as model.Now
// (the generator backdates only to dates before backdatedUntil).
func modelTime(t time.Time) time.Time {
	if !t.Before(backdatedUntil) {
		return model.Now
	}
	return t.UTC()
}

func fromEnvelope(e ledger.Envelope) model.Envelope {
	return model.Envelope{ID: e.ID, ParentID: e.ParentID, DisplayName: e.DisplayName, Currency: e.Currency,
		Allocation: e.Allocation, Committed: e.Committed, ChildrenAllocated: e.ChildrenAllocated,
		Released: e.Released, CommitmentCount: e.CommitmentCount, Paid: e.Paid, Held: e.Held,
		EffectiveAt: modelTime(e.EffectiveAt), LatestEffectiveAt: modelTime(e.LatestEffectiveAt)}
}

func fromCommitment(c ledger.Commitment) model.Commitment {
	return model.Commitment{ID: c.ID, EnvelopeID: c.EnvelopeID, Beneficiary: c.Beneficiary, Project: c.Project,
		Currency: c.Currency, Description: c.Description, Amount: c.Amount, Released: c.Released,
		Policy:      model.Policy{EligibleCost: c.EligibleCost, Territory: c.Territory, Population: c.Population},
		EffectiveAt: modelTime(c.EffectiveAt), Paid: c.Paid, Closed: c.Closed()}
}

func fromRefusal(e *ledger.Error) *model.Refusal {
	r := &model.Refusal{Reason: model.Reason(e.Reason), Metadata: maps.Clone(e.Metadata)}
	if e.Field != "" {
		if r.Metadata == nil {
			r.Metadata = map[string]string{}
		}
		r.Metadata["field"] = e.Field // the field at fault of an INVALID_ARGUMENT
	}
	return r
}

func fromRules(r ledger.Rules) model.Rules {
	out := model.Rules{MaxFundingShareBPS: r.MaxFundingShareBPS, MinPopulation: r.MinPopulation}
	if r.AwardWindow != nil {
		out.AwardWindow = &model.Window{Start: r.AwardWindow.Start, End: r.AwardWindow.End}
	}
	return out
}

// do sends o to the ledger and returns its answer. An error that is neither a ledger refusal
// nor a transient failure is returned as err: the test fails on it.
func do(ctx context.Context, l *ledger.Ledger, o op, span model.Span) (answer, error) {
	var (
		a   answer
		err error
	)
	switch {
	case o.create != nil:
		c := o.create
		var r ledger.CreateEnvelopeResult
		r, err = l.CreateEnvelope(ctx, ledger.CreateEnvelope{RequestID: c.RequestID, Caller: c.Caller,
			EnvelopeID: c.EnvelopeID, ParentID: c.ParentID, DisplayName: c.DisplayName, Currency: c.Currency,
			Allocation: c.Allocation, Effective: c.Effective})
		if err == nil {
			res := model.CreateEnvelopeResult{Envelope: fromEnvelope(r.Envelope)}
			if r.Parent != nil {
				p := fromEnvelope(*r.Parent)
				res.Parent = &p
			}
			a.Create, a.raw = &res, r
		}
	case o.move != nil:
		c := o.move
		etag, dstETag := o.realETags()
		var r ledger.MoveAllocationResult
		r, err = l.MoveAllocation(ctx, ledger.MoveAllocation{RequestID: c.RequestID, Caller: c.Caller,
			SourceID: c.SourceID, DestinationID: c.DestinationID, Amount: c.Amount, Reason: c.Reason, Effective: c.Effective,
			ETag: etag, DestinationETag: dstETag})
		if err == nil {
			a.Move = &model.MoveAllocationResult{Source: fromEnvelope(r.Source), Destination: fromEnvelope(r.Destination)}
			a.raw = r
		}
	case o.rules != nil:
		c := o.rules
		etag, _ := o.realETags()
		var r ledger.SetRulesResult
		r, err = l.SetRules(ctx, ledger.SetRules{RequestID: c.RequestID, Caller: c.Caller, EnvelopeID: c.EnvelopeID,
			Call: c.Call, EffectiveTime: c.EffectiveTime, Rules: toLedgerRules(c.Rules), ETag: etag})
		if err == nil {
			rs := r.RuleSet
			res := model.SetRulesResult{EnvelopeID: rs.EnvelopeID, Call: rs.Call, Rules: fromRules(rs.Rules)}
			// A rule set in force at once is stamped with its decision time, within the span.
			if !rs.EffectiveFrom.Before(span.From) && rs.EffectiveFrom.Before(span.To) {
				res.AtOnce = true
			} else {
				res.EffectiveFrom = rs.EffectiveFrom.UTC()
			}
			a.Rules, a.raw = &res, r
		}
	case o.commit != nil:
		c := o.commit
		var r ledger.CommitResult
		r, err = l.Commit(ctx, ledger.Commit{RequestID: c.RequestID, Caller: c.Caller, EnvelopeID: c.EnvelopeID,
			Beneficiary: c.Beneficiary, Project: c.Project, Amount: c.Amount, Description: c.Description,
			Policy: toLedgerPolicy(c.Policy), Effective: c.Effective,
			Publication: toLedgerPublication(c.Publication)})
		if err == nil {
			a.Commit = &model.CommitResult{Commitment: fromCommitment(r.Commitment), Envelope: fromEnvelope(r.Envelope)}
			a.raw = r
		}
	case o.release != nil:
		c := o.release
		var r ledger.ReleaseResult
		r, err = l.Release(ctx, ledger.Release{RequestID: c.RequestID, Caller: c.Caller, CommitmentID: c.CommitmentID,
			Amount: c.Amount, Reason: c.Reason, Effective: c.Effective})
		if err == nil {
			a.Release = &model.ReleaseResult{Commitment: fromCommitment(r.Commitment), Envelope: fromEnvelope(r.Envelope)}
			a.raw = r
		}
	case o.bulk != nil:
		c := o.bulk
		cmd := ledger.BulkCommit{RequestID: c.RequestID, Caller: c.Caller, EnvelopeID: c.EnvelopeID,
			AllOrNothing: c.AllOrNothing, Effective: c.Effective}
		for _, it := range c.Items {
			cmd.Items = append(cmd.Items, ledger.BulkItem{Beneficiary: it.Beneficiary, Project: it.Project,
				Amount: it.Amount, Description: it.Description, Policy: toLedgerPolicy(it.Policy),
				Publication: toLedgerPublication(it.Publication)})
		}
		var r ledger.BulkCommitResult
		r, err = l.BulkCommit(ctx, cmd)
		if err == nil {
			res := model.BulkCommitResult{Accepted: r.Accepted, Refused: r.Refused, Envelope: fromEnvelope(r.Envelope)}
			for _, it := range r.Items {
				var mi model.BulkItemResult
				if it.Commitment != nil {
					com := fromCommitment(*it.Commitment)
					mi.Commitment = &com
				}
				if it.Refusal != nil {
					mi.Refusal = fromRefusal(it.Refusal)
				}
				res.Items = append(res.Items, mi)
			}
			a.Bulk, a.raw = &res, r
		}
	case o.pay != nil:
		c := o.pay
		var r ledger.CreatePaymentResult
		r, err = l.CreatePayment(ctx, ledger.CreatePayment{RequestID: c.RequestID, Caller: c.Caller, CommitmentID: c.CommitmentID,
			Amount: c.Amount, Effective: c.Effective})
		if err == nil {
			a.Pay = &model.CreatePaymentResult{Payment: model.Payment{ID: r.Payment.ID, CommitmentID: r.Payment.CommitmentID,
				Amount: r.Payment.Amount}, Commitment: fromCommitment(r.Commitment), Envelope: fromEnvelope(r.Envelope)}
			a.raw = r
		}
	case o.close != nil:
		c := o.close
		var r ledger.CloseCommitmentResult
		r, err = l.CloseCommitment(ctx, ledger.CloseCommitment{RequestID: c.RequestID, Caller: c.Caller,
			CommitmentID: c.CommitmentID, Reason: c.Reason, Effective: c.Effective})
		if err == nil {
			a.Close = &model.CloseCommitmentResult{Commitment: fromCommitment(r.Commitment), Envelope: fromEnvelope(r.Envelope),
				Returned: r.Returned}
			a.raw = r
		}
	case o.getEnvelope != "":
		var e ledger.Envelope
		e, err = l.GetEnvelope(ctx, o.getEnvelope)
		if err == nil {
			me := fromEnvelope(e)
			a.Envelope, a.raw = &me, e
		}
	case o.getCommitment != "":
		var c ledger.Commitment
		c, err = l.GetCommitment(ctx, o.getCommitment)
		if err == nil {
			mc := fromCommitment(c)
			a.Commitment, a.raw = &mc, c
		}
	default:
		return a, errors.New("empty op")
	}
	if err == nil {
		return a, nil
	}
	a.rawErr = err
	var e *ledger.Error
	switch {
	case !errors.As(err, &e):
		return a, fmt.Errorf("%s: an error that is not a ledger refusal: %w", o, err)
	case e.Retryable():
		a.Retryable = string(e.Reason)
	case e.Reason == ledger.ReasonInternal:
		return a, fmt.Errorf("%s: INTERNAL: %w (cause %v)", o, err, errors.Unwrap(err))
	default:
		a.Refusal = fromRefusal(e)
	}
	return a, nil
}

// expect decides o on the model, which it changes, and returns the model's answer. got is the
// ledger's answer, from which the model takes the names the ledger gave new commitments; a name
// already in use is not taken, so that the answers differ.
func expect(m *model.Ledger, o op, got answer) answer {
	fresh := func(id string) string { // "" lets the model make up a name that no answer has
		if m.IDTaken(id) {
			return ""
		}
		return id
	}
	var a answer
	switch {
	case o.create != nil:
		r, refusal := m.CreateEnvelope(*o.create)
		a.Create, a.Refusal = &r, refusal
	case o.move != nil:
		r, refusal := m.MoveAllocation(*o.move)
		a.Move, a.Refusal = &r, refusal
	case o.rules != nil:
		r, refusal := m.SetRules(*o.rules)
		a.Rules, a.Refusal = &r, refusal
	case o.commit != nil:
		id := ""
		if got.Commit != nil {
			id = got.Commit.Commitment.ID
		}
		if m.Requested(o.commit.Caller, o.commit.RequestID) {
			id = "" // a replay names nothing
		}
		if id = fresh(id); id == "" {
			id = "(no fresh id given)"
		}
		r, refusal := m.Commit(*o.commit, id)
		a.Commit, a.Refusal = &r, refusal
	case o.release != nil:
		r, refusal := m.Release(*o.release)
		a.Release, a.Refusal = &r, refusal
	case o.bulk != nil:
		ids := make([]string, len(o.bulk.Items))
		if got.Bulk != nil && !m.Requested(o.bulk.Caller, o.bulk.RequestID) {
			seen := map[string]bool{}
			for i, it := range got.Bulk.Items {
				if i < len(ids) && it.Commitment != nil && !seen[it.Commitment.ID] {
					seen[it.Commitment.ID] = true
					ids[i] = fresh(it.Commitment.ID)
				}
			}
		}
		r, refusal := m.BulkCommit(*o.bulk, ids)
		a.Bulk, a.Refusal = &r, refusal
	case o.pay != nil:
		id := ""
		if got.Pay != nil && !m.Requested(o.pay.Caller, o.pay.RequestID) && !m.PaymentIDTaken(got.Pay.Payment.ID) {
			id = got.Pay.Payment.ID
		}
		if id == "" {
			id = "(no fresh payment id given)"
		}
		r, refusal := m.CreatePayment(*o.pay, id)
		a.Pay, a.Refusal = &r, refusal
	case o.close != nil:
		r, refusal := m.CloseCommitment(*o.close)
		a.Close, a.Refusal = &r, refusal
	case o.getEnvelope != "":
		e, refusal := m.Envelope(o.getEnvelope)
		a.Envelope, a.Refusal = &e, refusal
	case o.getCommitment != "":
		c, refusal := m.GetCommitment(o.getCommitment)
		a.Commitment, a.Refusal = &c, refusal
	}
	if a.Refusal != nil {
		a.Create, a.Move, a.Rules, a.Commit, a.Release, a.Bulk, a.Envelope, a.Commitment = nil, nil, nil, nil, nil, nil, nil, nil
		a.Pay, a.Close = nil, nil
	}
	return a
}

// diffAnswers compares the model's answer with the ledger's: the same acceptance or the same
// refusal reason (with every metadata value the model predicts), and the same results.
func diffAnswers(want, got answer) string {
	if got.Retryable != "" {
		return "the ledger answered " + got.Retryable + ", which the model does not decide"
	}
	got = keepPredicted(want, got)
	return cmp.Diff(want, got, cmpopts.IgnoreUnexported(answer{}), cmpopts.EquateEmpty())
}

// keepPredicted drops from got's refusals the metadata the model does not predict.
func keepPredicted(want, got answer) answer {
	trim := func(w, g *model.Refusal) *model.Refusal {
		if w == nil || g == nil {
			return g
		}
		out := &model.Refusal{Reason: g.Reason, Metadata: map[string]string{}}
		for k := range w.Metadata {
			if v, ok := g.Metadata[k]; ok {
				out.Metadata[k] = v
			}
		}
		return out
	}
	got.Refusal = trim(want.Refusal, got.Refusal)
	if want.Bulk != nil && got.Bulk != nil && len(want.Bulk.Items) == len(got.Bulk.Items) {
		b := *got.Bulk
		b.Items = make([]model.BulkItemResult, len(got.Bulk.Items))
		for i, it := range got.Bulk.Items {
			it.Refusal = trim(want.Bulk.Items[i].Refusal, it.Refusal)
			b.Items[i] = it
		}
		got.Bulk = &b
	}
	return got
}

// diffReplay compares a replayed answer with the ledger's first answer to the same request,
// exactly: the same ids, times and figures (a bulk call's envelope too, since migration 18
// records a call as one row).
func diffReplay(first, again answer) string {
	if first.rawErr != nil || again.rawErr != nil {
		var e1, e2 *ledger.Error
		if !errors.As(first.rawErr, &e1) || !errors.As(again.rawErr, &e2) {
			return fmt.Sprintf("first answer %v, replay %v", first, again)
		}
		return cmp.Diff(refusalView(e1), refusalView(e2))
	}
	r1, r2 := first.raw, again.raw
	return cmp.Diff(r1, r2, cmpopts.IgnoreUnexported(ledger.Error{}))
}

func refusalView(e *ledger.Error) map[string]string {
	v := maps.Clone(e.Metadata)
	if v == nil {
		v = map[string]string{}
	}
	v["(reason)"], v["(message)"], v["(field)"] = string(e.Reason), e.Message, e.Field
	return v
}

// bulkItemRequestID is the request id under which the ledger journals item i of a bulk call.
func bulkItemRequestID(call string, i int) string { return call + " " + strconv.Itoa(i) }

// splitItemRequestID splits a journal entry's request id into the call's and the item's index
// (-1 for a request that is not a bulk item).
func splitItemRequestID(id string) (string, int) {
	call, index, ok := strings.Cut(id, " ")
	if !ok {
		return id, -1
	}
	i, err := strconv.Atoi(index)
	if err != nil {
		return id, -1
	}
	return call, i
}

// tally counts outcomes by operation and reason, to show what a run exercised.
type tally map[string]int

func newTally() tally { return tally{} }

func (t tally) add(o op, a answer) {
	kind, _, _ := strings.Cut(o.String(), "(")
	outcome := "ok"
	switch {
	case a.Retryable != "":
		outcome = a.Retryable
	case a.Refusal != nil:
		outcome = string(a.Refusal.Reason)
		if f := a.Refusal.Metadata["field"]; f != "" {
			outcome += " " + f
		}
	case a.Bulk != nil:
		for _, it := range a.Bulk.Items {
			if it.Refusal != nil {
				t[kind+" item "+string(it.Refusal.Reason)]++
			}
		}
	}
	t[kind+" "+outcome]++
	if outcome == "ok" && o.rules == nil && strings.Contains(o.String(), " effective=") {
		t[kind+" ok, backdated"]++ // the backdating rule's acceptances, beside its refusals
	}
	if outcome == "ok" && a.Rules != nil && !a.Rules.AtOnce && a.Rules.EffectiveFrom.Before(backdatedUntil.AddDate(1, 0, 0)) {
		t[kind+" ok, kept at its past date"]++ // in force from a date before the run
	}
}

func (t tally) String() string {
	keys := slices.Sorted(maps.Keys(t))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "\n  %6d %s", t[k], k)
	}
	return b.String()
}

// causes returns err with the chain of its causes spelt out (a ledger error's message hides
// the database error under it).
func causes(err error) error {
	msg := ""
	for e := err; e != nil; e = errors.Unwrap(e) {
		if msg != "" {
			msg += " <- "
		}
		msg += e.Error()
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// effectiveText writes a request's effective time, when it gives one.
func effectiveText(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return " effective=" + t.Format(time.DateOnly)
}
