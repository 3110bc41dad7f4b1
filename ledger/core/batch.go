package core

import (
	"encoding/json"
	"fmt"
	"time"
)

// Group-commit batches, decided in memory. Storage loads a Batch's inputs under the envelopes'
// locks (Loaded), DecideBatch decides every operation in order, and storage writes what it
// returns (Writes) in the same transaction.

// Op is one Commit or Release, or one of the envelope-keyed operations on holds and commitments
// that share its batches (batchops.go), and its outcome once decided.
type Op struct {
	Commit  *Commit
	Release *Release
	// Others: exactly one of the fields above and these is set.
	CreateHold  *CreateHold
	ConfirmHold *ConfirmHold
	CancelHold  *CancelHold
	Payment     *CreatePayment
	Close       *CloseCommitment
	// Seen is the hold a ConfirmHold or CancelHold names as read before the batch, to route it
	// to its envelope and to know its project (neither ever changes); the decision reads the
	// hold again under the envelope's lock.
	Seen        *Hold
	Fingerprint Fingerprint

	Outcome Outcome
	// Result is the typed result of an op decided by this process (*CommitResult or
	// *ReleaseResult), so that it need not be decoded from Outcome again; nil for a replay.
	Result any
	// Err is the failure of an op that could not be decided (an internal error, not a business
	// refusal): nothing of it was recorded, and its caller may send it again.
	Err error
}

// Decode returns the op's outcome into out (a *CommitResult or *ReleaseResult), or its failure.
func (op *Op) Decode(out any) error {
	if op.Err != nil {
		return op.Err
	}
	if op.Outcome.Refusal == nil && op.Result != nil {
		switch r := op.Result.(type) {
		case *CommitResult:
			*out.(*CommitResult) = *r
			return nil
		case *ReleaseResult:
			*out.(*ReleaseResult) = *r
			return nil
		}
		if decodeOther(op.Result, out) {
			return nil
		}
	}
	return op.Outcome.Decode(out)
}

// RequestID is the op's request id (for a bulk item, "<request id> <index>").
func (op *Op) RequestID() string {
	if op.Commit != nil {
		return op.Commit.RequestID
	}
	if op.Release != nil {
		return op.Release.RequestID
	}
	id, _ := op.other()
	return id
}

// Caller is the principal that sent the op.
func (op *Op) Caller() string {
	if op.Commit != nil {
		return op.Commit.Caller
	}
	if op.Release != nil {
		return op.Release.Caller
	}
	_, caller := op.other()
	return caller
}

// Key is the request log's key of the op (see RequestKey).
func (op *Op) Key() string { return RequestKey(op.Caller(), op.RequestID()) }

// Unit is what one caller submits: one Commit or Release, or the items of one bulk award, all on
// one envelope. A unit is decided whole in one transaction; an all-or-nothing unit is accepted
// entirely or refused entirely.
type Unit struct {
	EnvelopeID   string
	Ops          []*Op
	AllOrNothing bool
	// CallID, CallCaller and CallFingerprint name a bulk call as a whole: the request log holds
	// a row for the call beside its items', so that the same request id with other items (more
	// of them, say) is refused before any item is decided.
	CallID, CallCaller string
	CallFingerprint    Fingerprint
	// Envelope is the envelope as this unit left it, once decided (nil if it does not exist).
	Envelope *Envelope
	// Replayed is the recorded outcome of a bulk call recorded as one row (migration 18), when
	// the unit is a retry of it: its ops are then not decided.
	Replayed *Outcome
	// Err is the failure of a unit that could not be decided (see Op.Err): nothing of it was
	// recorded, and the other units of its batch were decided without it.
	Err error
}

// RequestKeys lists the request log keys to look up for a batch of units (calls and ops; see
// LookupKeys).
func RequestKeys(units []*Unit) []string {
	var keys []string
	for _, u := range units {
		if u.CallID != "" {
			keys = append(keys, LookupKeys(u.CallCaller, u.CallID)...)
		}
		for _, op := range u.Ops {
			keys = append(keys, LookupKeys(op.Caller(), op.RequestID())...)
		}
	}
	return keys
}

// Loaded is what a batch's decisions read, loaded by storage inside the batch's transaction
// after the envelopes are locked.
type Loaded struct {
	// Envelopes are the envelopes the units name that exist.
	Envelopes map[string]Envelope
	// Commitments are the commitments the releases name that exist.
	Commitments map[string]*Commitment
	// Rules are the effective funding rules of each envelope found, at the batch's time.
	Rules map[string]*EffectiveRules
	// RulesAt are the effective funding rules of envelopes at the effective times awards gave
	// (RulesKeys): an award is checked against the rules in force at its effective time.
	RulesAt map[RulesKey]*EffectiveRules
	// Totals are the current totals of the projects a funding-share rule is checked for.
	Totals map[ProjectKey]int64
	// Holds are the holds the ops name that exist (HoldIDs), read under the envelopes' locks.
	Holds map[string]*Hold
	// Priors are the request log's rows for the batch's request keys (RequestKeys).
	Priors map[string]Prior
	// Broken are envelopes whose state could not be loaded whole (their chain of parents is
	// broken, say), with the reason: the units on them fail with it, and only they.
	Broken map[string]error
	// Latest are the latest effective times of the recorded payments and releases of the
	// commitments a closing names (ClosedCommitmentIDs; absent: none).
	Latest map[string]LatestMoves
}

// ClosedCommitmentIDs lists the commitments the closings of units name.
func ClosedCommitmentIDs(units []*Unit) []string {
	var ids []string
	for _, u := range units {
		for _, op := range u.Ops {
			if op.Close != nil {
				ids = append(ids, op.Close.CommitmentID)
			}
		}
	}
	return ids
}

// RulesKey names the rules of an envelope at an effective time (microseconds since the epoch).
type RulesKey struct {
	EnvelopeID string
	At         int64
}

// RulesKeys lists the envelopes and effective times of the awards of units that give an
// effective time not later than at (a later one is refused before any rule is read), each once.
func RulesKeys(units []*Unit, at time.Time) []RulesKey {
	var keys []RulesKey
	seen := map[RulesKey]bool{}
	for _, u := range units {
		for _, op := range u.Ops {
			given := op.rulesTime()
			if given.IsZero() {
				continue
			}
			t := given.UTC().Truncate(time.Microsecond)
			if t.After(at) {
				continue
			}
			k := RulesKey{u.EnvelopeID, t.UnixMicro()}
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	return keys
}

// rulesFor returns the rules an award on envelopeID that gave the effective time given (zero:
// none) is checked against.
func (in *Loaded) rulesFor(envelopeID string, given time.Time) (*EffectiveRules, error) {
	if given.IsZero() {
		return in.Rules[envelopeID], nil
	}
	r, ok := in.RulesAt[RulesKey{envelopeID, given.UTC().Truncate(time.Microsecond).UnixMicro()}]
	if !ok {
		return nil, Internal("the rules of envelope %s at %s were not loaded", envelopeID, given)
	}
	return r, nil
}

// EnvelopeIDs lists the envelopes a batch of units names, each once, in order of appearance.
func EnvelopeIDs(units []*Unit) []string {
	var ids []string
	seen := map[string]bool{}
	for _, u := range units {
		if !seen[u.EnvelopeID] {
			seen[u.EnvelopeID] = true
			ids = append(ids, u.EnvelopeID)
		}
	}
	return ids
}

// CommitmentIDs lists the commitments a batch of units releases from, pays or closes.
func CommitmentIDs(units []*Unit) []string {
	var ids []string
	for _, u := range units {
		for _, op := range u.Ops {
			switch {
			case op.Release != nil:
				ids = append(ids, op.Release.CommitmentID)
			case op.Payment != nil:
				ids = append(ids, op.Payment.CommitmentID)
			case op.Close != nil:
				ids = append(ids, op.Close.CommitmentID)
			}
		}
	}
	return ids
}

// Writes are what a batch decided, for storage to write in the same transaction.
type Writes struct {
	// Envelopes are the envelopes whose balances changed, as the batch left them.
	Envelopes []*Envelope
	// Touched are every envelope found, as the batch left them (for metrics).
	Touched        []Envelope
	NewCommitments []*Commitment
	// Changed are the commitments released from.
	Changed  []*Commitment
	Deltas   []ProjectDelta
	Entries  []Entry
	Requests []RequestRow
	// NewHolds and EndedHolds are the holds made and ended (confirmed or cancelled), Payments
	// the payments made (batchops.go). Changed holds the commitments paid or closed too.
	NewHolds   []Hold
	EndedHolds []Hold
	Payments   []Payment
}

type envState struct {
	env      Envelope
	found    bool
	accepted int
}

// batchState is what a batch has decided so far.
type batchState struct {
	st             Stamp
	in             Loaded
	envs           map[string]*envState
	entries        []Entry
	newCommitments []*Commitment
	changed        map[string]*Commitment
	changedOrder   []*Commitment
	recorded       []RequestRow
	// decidedHere are the ops decided in this batch, by request log key.
	decidedHere map[string]*Op
	// callsHere are the bulk calls decided in this batch, by request log key.
	callsHere map[string]callHere
	// deltas are the changes to project totals made by accepted awards and releases, in order.
	deltas []ProjectDelta
	// undo records what releases changed of commitments, for reset.
	undo []commitmentUndo
	// holds are the working copies of the loaded holds and of those made here, holdUndo what
	// decisions changed of them, newHolds, endedHolds and payments what to write (batchops.go).
	holds      map[string]*Hold
	holdUndo   []holdUndo
	newHolds   []Hold
	endedHolds []Hold
	payments   []Payment
}

// DecideBatch decides every op of units in order, each accepted or refused on its own (an
// all-or-nothing unit as a whole), against the loaded state. It sets each op's outcome and each
// unit's envelope, and returns what to write. A unit that cannot be decided (an error that is not
// a business refusal, or an envelope in Loaded.Broken) fails alone: its Err and its ops' are set,
// nothing of it is written, and the other units are decided as if it had not been sent. One
// request's failure stays its own.
func DecideBatch(st Stamp, units []*Unit, in Loaded) (*Writes, error) {
	b := &batchState{st: st, in: in, envs: map[string]*envState{}, changed: map[string]*Commitment{},
		decidedHere: map[string]*Op{}, callsHere: map[string]callHere{}, holds: map[string]*Hold{}}
	if b.in.Totals == nil {
		b.in.Totals = map[ProjectKey]int64{}
	} else {
		// Decisions change the totals as they go: work on a copy.
		totals := make(map[ProjectKey]int64, len(in.Totals))
		for k, v := range in.Totals {
			totals[k] = v
		}
		b.in.Totals = totals
	}
	envelopeIDs := EnvelopeIDs(units)
	for _, id := range envelopeIDs {
		env, found := in.Envelopes[id]
		b.envs[id] = &envState{env: env, found: found}
	}
	for _, u := range units {
		u.Envelope, u.Err, u.Replayed = nil, nil, nil
		for _, op := range u.Ops {
			op.Outcome, op.Result, op.Err = Outcome{}, nil, nil // the transaction may be a retry
		}
	}
	for _, u := range units {
		s := b.envs[u.EnvelopeID]
		m := b.mark(s)
		err := in.Broken[u.EnvelopeID]
		if err != nil && readsNoRules(u) {
			err = nil // as in a transaction of its own, which reads no parents for it
		}
		if err == nil {
			err = b.decideUnit(u)
		}
		if err != nil {
			b.fail(u, s, m, err)
		}
	}
	w := &Writes{NewCommitments: b.newCommitments, Changed: b.changedOrder, Deltas: b.deltas,
		Entries: b.entries, Requests: b.recorded, NewHolds: b.newHolds, EndedHolds: b.endedHolds, Payments: b.payments}
	for _, id := range envelopeIDs {
		s := b.envs[id]
		if !s.found {
			continue
		}
		w.Touched = append(w.Touched, s.env)
		if s.accepted > 0 {
			env := s.env
			w.Envelopes = append(w.Envelopes, &env)
		}
	}
	return w, nil
}

// callHere is a bulk call decided in this batch: its fingerprint, and its outcome when it is
// recorded as one row (nil: recorded a row per item).
type callHere struct {
	fingerprint Fingerprint
	outcome     *Outcome
}

// decideUnit decides one unit's ops.
func (b *batchState) decideUnit(u *Unit) error {
	s := b.envs[u.EnvelopeID]
	var callKey string
	fresh := false // a bulk call decided now, not a retry
	if u.CallID != "" {
		callKey = RequestKey(u.CallCaller, u.CallID)
		first, seen := b.callsHere[callKey]
		same := first.fingerprint == u.CallFingerprint
		if single, ok := b.decidedHere[callKey]; ok {
			// A single request decided in this batch under the call's request id: another
			// request, refused as it would be in a later batch (recording both would fail the
			// batch's write, and with it every request in it).
			seen, same = true, single.Fingerprint == u.CallFingerprint
		}
		prior, found := FindPrior(b.in.Priors, u.CallCaller, u.CallID)
		if found && prior.Err != nil {
			return prior.Err // this call alone fails
		}
		if found {
			seen, same = true, u.CallFingerprint.Matches(prior.Fingerprint)
		}
		if seen && !same {
			// The request id was used for another request: refuse the call whole, record nothing.
			for _, op := range u.Ops {
				op.Outcome = Outcome{Refusal: RequestIDReused(u.CallID)}
			}
			return nil
		}
		switch {
		case found && (prior.Outcome.Bulk != nil || prior.Outcome.Refusal != nil):
			// Recorded as one row: the call's outcome. (A call recorded before migration 18
			// has a row {"items": n} and one per item, which its ops replay below.)
			u.Replayed = &prior.Outcome
			return nil
		case !found && first.outcome != nil:
			u.Replayed = first.outcome
			return nil
		}
		fresh = !seen
	}
	m := b.mark(s)
	var failed *Error
	failedAt := -1
	for i, op := range u.Ops {
		refusal, err := b.decide(op, u.EnvelopeID)
		if err != nil {
			return err
		}
		if refusal != nil && failed == nil {
			failed, failedAt = refusal, i
		}
	}
	if u.AllOrNothing && failed != nil {
		// Undo the unit's items and refuse them all with the first refusal, naming the item.
		b.reset(s, m)
		whole := &Error{Reason: failed.Reason, Field: failed.Field,
			Message:  fmt.Sprintf("item %d: %s; no award of this call was made", failedAt, failed.Message),
			Metadata: map[string]string{"item": fmt.Sprint(failedAt)}}
		for k, v := range failed.Metadata {
			whole.Metadata[k] = v
		}
		for _, op := range u.Ops {
			op.Outcome = Outcome{Refusal: whole}
			b.decidedHere[op.Key()] = op
			b.recorded = append(b.recorded, RequestRow{op.Key(), op.Fingerprint.Current, op.Outcome})
		}
	}
	if s.found {
		snapshot := s.env
		u.Envelope = &snapshot
	}
	if fresh {
		return b.recordCall(u, callKey, m)
	}
	return nil
}

// recordCall records a bulk call decided now as one request-log row (migration 18) in place of
// its items' rows: its refusal as a whole, or its result packed by reference (PackBulk). A result
// that cannot be packed is recorded as before: a row {"items": n} for the call beside its items'.
func (b *batchState) recordCall(u *Unit, key string, m batchMark) error {
	res, _, err := bulkOutcome(u.AllOrNothing, u.Ops, u.Envelope)
	var o *Outcome
	if refusal, ok := IsRefusal(err); ok {
		o = &Outcome{Refusal: refusal}
	} else if err != nil {
		return err
	} else if BulkPackable(&res) {
		o = &Outcome{Bulk: &res}
	}
	if o == nil {
		b.recorded = append(b.recorded, RequestRow{key, u.CallFingerprint.Current,
			Outcome{Result: json.RawMessage(fmt.Sprintf(`{"items":%d}`, len(u.Ops)))}})
		b.callsHere[key] = callHere{u.CallFingerprint, nil}
		return nil
	}
	for _, r := range b.recorded[m.recordN:] {
		delete(b.decidedHere, r.Key)
	}
	b.recorded = append(b.recorded[:m.recordN], RequestRow{key, u.CallFingerprint.Current, *o})
	b.callsHere[key] = callHere{u.CallFingerprint, o}
	return nil
}

// batchMark lets a unit undo what its ops did in memory (an all-or-nothing unit with a refused
// item, or a unit that fails).
type batchMark struct {
	env                                             Envelope
	accepted, entries, newC, recordN, deltaN, undoN int
	holdUndoN, newHoldsN, endedHoldsN, paymentsN    int
}

// mark notes where the batch stands before a unit.
func (b *batchState) mark(s *envState) batchMark {
	return batchMark{s.env, s.accepted, len(b.entries), len(b.newCommitments), len(b.recorded), len(b.deltas), len(b.undo),
		len(b.holdUndo), len(b.newHolds), len(b.endedHolds), len(b.payments)}
}

// commitmentUndo is what a release changed of a commitment's working copy.
type commitmentUndo struct {
	c      *Commitment
	before Commitment
	added  bool // the release put the commitment in b.changed
}

// fail undoes a unit that could not be decided and fails its ops with err: nothing of it is
// recorded or written.
func (b *batchState) fail(u *Unit, s *envState, m batchMark, err error) {
	if _, ok := AsError(err); !ok {
		err = Internal("deciding a request on envelope %s: %w", u.EnvelopeID, err)
	}
	b.reset(s, m)
	u.Envelope, u.Err = nil, err
	for _, op := range u.Ops {
		op.Outcome, op.Result, op.Err = Outcome{}, nil, err
	}
}

func (b *batchState) reset(s *envState, m batchMark) {
	for i := len(b.undo) - 1; i >= m.undoN; i-- {
		u := b.undo[i]
		*u.c = u.before
		if u.added {
			delete(b.changed, u.c.ID)
			b.changedOrder = b.changedOrder[:len(b.changedOrder)-1]
		}
	}
	b.undo = b.undo[:m.undoN]
	for i := len(b.holdUndo) - 1; i >= m.holdUndoN; i-- {
		if u := b.holdUndo[i]; u.before == nil {
			delete(b.holds, u.id)
		} else {
			b.holds[u.id] = u.before
		}
	}
	b.holdUndo = b.holdUndo[:m.holdUndoN]
	b.newHolds, b.endedHolds, b.payments = b.newHolds[:m.newHoldsN], b.endedHolds[:m.endedHoldsN], b.payments[:m.paymentsN]
	for _, r := range b.recorded[m.recordN:] {
		delete(b.decidedHere, r.Key)
		delete(b.callsHere, r.Key)
	}
	for _, d := range b.deltas[m.deltaN:] {
		if _, ok := b.in.Totals[d.Key]; ok {
			b.in.Totals[d.Key] -= d.Amount
		}
	}
	b.deltas = b.deltas[:m.deltaN]
	s.env, s.accepted = m.env, m.accepted
	b.entries, b.newCommitments, b.recorded = b.entries[:m.entries], b.newCommitments[:m.newC], b.recorded[:m.recordN]
}

// decide decides one op in memory. It returns the refusal it recorded for a new decision (nil if
// accepted or replayed), or an error that fails the whole batch.
func (b *batchState) decide(op *Op, envelopeID string) (*Error, error) {
	s := b.envs[envelopeID]
	rid, key := op.RequestID(), op.Key()
	if prior, ok := FindPrior(b.in.Priors, op.Caller(), rid); ok {
		if prior.Err != nil {
			return nil, prior.Err // its unit alone fails
		}
		op.Outcome = prior.Replay(rid, op.Fingerprint)
		return nil, nil
	}
	if first, ok := b.decidedHere[key]; ok {
		op.Outcome = first.Outcome
		if first.Fingerprint != op.Fingerprint {
			op.Outcome = Outcome{Refusal: RequestIDReused(rid)}
		}
		return nil, nil
	}
	if call, ok := b.callsHere[key]; ok && call.fingerprint != op.Fingerprint {
		// A bulk call decided in this batch under this request id: another request (as above).
		op.Outcome = Outcome{Refusal: RequestIDReused(rid)}
		return nil, nil
	}
	at := b.st.At
	var (
		result  any
		refusal error
	)
	switch {
	case op.Commit == nil && op.Release == nil:
		// A decision on a hold or a commitment, by the same function as outside a batch.
		var err error
		if result, refusal, err = b.decideOther(op, s, envelopeID); err != nil {
			return nil, err
		}
	case !s.found:
		refusal = EnvelopeNotFound(envelopeID)
	case op.Commit != nil:
		key := ProjectKey{envelopeID, op.Commit.Project}
		// An award takes from the envelope: not before the latest effective time recorded on it.
		effective, err := CheckEffective(at, op.Commit.Effective, Reduces(&s.env)...)
		if err != nil {
			refusal = err
			break
		}
		// It is checked against the rules in force at its effective time.
		rules, err := b.in.rulesFor(envelopeID, op.Commit.Effective)
		if err != nil {
			return nil, err
		}
		if violation := CheckRules(rules, &s.env, op.Commit, b.in.Totals[key], effective); violation != nil {
			refusal = violation
			break
		}
		var r *CommitResult
		if r, refusal = applyCommit(b.st, effective, &s.env, op.Commit); refusal == nil {
			result = r
			b.newCommitments = append(b.newCommitments, &r.Commitment)
			b.entries = append(b.entries, commitEntry(op.Commit, r, at))
			b.addDelta(ProjectDelta{key, op.Commit.Amount, 1})
		}
	default:
		c, ok := b.commitment(op.Release.CommitmentID)
		if !ok || c.EnvelopeID != s.env.ID {
			refusal = CommitmentNotFound(op.Release.CommitmentID)
			break
		}
		// A release returns the commitment's money: not before the commitment took effect.
		effective, err := CheckEffective(at, op.Release.Effective, Returns(&s.env, c)...)
		if err != nil {
			refusal = err
			break
		}
		var r *ReleaseResult
		before := *c
		if r, refusal = applyRelease(b.st, effective, &s.env, c, op.Release); refusal == nil {
			result = r
			_, seen := b.changed[c.ID]
			b.undo = append(b.undo, commitmentUndo{c: c, before: before, added: !seen})
			if !seen {
				b.changed[c.ID] = c
				b.changedOrder = append(b.changedOrder, c)
			}
			b.entries = append(b.entries, releaseEntry(op.Release, r, at))
			b.addDelta(ProjectDelta{ProjectKey{c.EnvelopeID, c.Project}, -op.Release.Amount, 0})
		}
	}
	var refused *Error
	if refusal != nil {
		e, ok := IsRefusal(refusal)
		if !ok {
			return nil, refusal
		}
		op.Outcome, refused = Outcome{Refusal: e}, e
	} else {
		s.accepted++
		outcome, err := NewOutcome(result)
		if err != nil {
			return nil, err
		}
		op.Outcome, op.Result = outcome, result
	}
	b.decidedHere[key] = op
	b.recorded = append(b.recorded, RequestRow{key, op.Fingerprint.Current, op.Outcome})
	return refused, nil
}

// commitment returns the batch's working copy of a loaded commitment: releases change it in
// memory, and the loaded state is left as it was given.
func (b *batchState) commitment(id string) (*Commitment, bool) {
	if c, ok := b.changed[id]; ok {
		return c, true
	}
	c, ok := b.in.Commitments[id]
	if !ok {
		return nil, false
	}
	cp := *c
	return &cp, true
}

// addDelta records a change of a project total, and applies it to the totals being checked.
func (b *batchState) addDelta(d ProjectDelta) {
	b.deltas = append(b.deltas, d)
	if _, ok := b.in.Totals[d.Key]; ok {
		b.in.Totals[d.Key] += d.Amount
	}
}

// applyCommit decides one award against the envelope's in-memory balances.
func applyCommit(st Stamp, effective time.Time, env *Envelope, cmd *Commit) (*CommitResult, error) {
	if env.Available() < cmd.Amount {
		return nil, insufficientFunds(env, cmd.Amount)
	}
	committed, err := AddAmount("the envelope's committed amount", env.Committed, cmd.Amount)
	if err != nil {
		return nil, err
	}
	env.Committed = committed
	env.CommitmentCount++
	env.Touch(st.At, effective)
	c := Commitment{ID: st.NewID(), EnvelopeID: env.ID, Beneficiary: cmd.Beneficiary, Project: cmd.Project,
		Currency: env.Currency, Amount: cmd.Amount, Description: cmd.Description, CreatedAt: st.At, UpdatedAt: st.At,
		EffectiveAt:  effective,
		EligibleCost: cmd.EligibleCost, Territory: cmd.Territory, Population: cmd.Population, Publication: cmd.Publication}
	return &CommitResult{Commitment: c, Envelope: *env, EntryID: st.NewID()}, nil
}

// applyRelease decides one release against the in-memory commitment and envelope.
func applyRelease(st Stamp, effective time.Time, env *Envelope, c *Commitment, cmd *Release) (*ReleaseResult, error) {
	if refusal := releaseRefusal(c, cmd.Amount); refusal != nil {
		return nil, refusal // closed, or paid (payment.go)
	}
	if c.Remaining() < cmd.Amount {
		return nil, &Error{Reason: ReasonReleaseExceedsRemaining,
			Message: fmt.Sprintf("commitment %q holds %d, %d requested", CommitmentName(c.ID), c.Remaining(), cmd.Amount),
			Metadata: map[string]string{"commitment": CommitmentName(c.ID),
				"remaining": fmt.Sprint(c.Remaining()), "requested": fmt.Sprint(cmd.Amount)}}
	}
	released, err := AddAmount("the envelope's released amount", env.Released, cmd.Amount)
	if err != nil {
		return nil, err
	}
	c.Released += cmd.Amount
	c.UpdatedAt = st.At
	env.Committed -= cmd.Amount
	env.Released = released
	env.Touch(st.At, effective)
	return &ReleaseResult{Commitment: *c, Envelope: *env, EntryID: st.NewID(), EffectiveTime: effective}, nil
}

func commitEntry(cmd *Commit, r *CommitResult, at time.Time) Entry {
	return Entry{ID: r.EntryID, Kind: KindCommitted, Currency: r.Commitment.Currency, Caller: cmd.Caller,
		RequestID: cmd.RequestID, Memo: cmd.Description, CreatedAt: at, EffectiveAt: r.Commitment.EffectiveAt,
		Postings: []Posting{{EnvelopeName(r.Envelope.ID), -cmd.Amount}, {CommitmentName(r.Commitment.ID), cmd.Amount}}}
}

func releaseEntry(cmd *Release, r *ReleaseResult, at time.Time) Entry {
	return Entry{ID: r.EntryID, Kind: KindReleased, Currency: r.Commitment.Currency, Caller: cmd.Caller,
		RequestID: cmd.RequestID, Memo: cmd.Reason, CreatedAt: at, EffectiveAt: r.EffectiveTime,
		Postings: []Posting{{CommitmentName(r.Commitment.ID), -cmd.Amount}, {EnvelopeName(r.Envelope.ID), cmd.Amount}}}
}
