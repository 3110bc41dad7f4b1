package ledger

import (
	"context"
	"sync"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// Holds (see core/hold.go). Every decision on a hold runs in a serializable transaction that
// locks the hold's envelope: creation, confirmation and cancellation in the group-commit batch of
// that envelope, beside its awards (batch.go, core/batchops.go), or through mutate in a
// transaction of their own when batching is disabled (and for a hold not found); expiry through
// the sweeper (holdsweeper.go). A hold's envelope never changes, so its lock orders every
// decision on the hold.

// Types and names of holds.
type (
	Hold              = core.Hold
	HoldState         = core.HoldState
	CreateHold        = core.CreateHold
	CreateHoldResult  = core.CreateHoldResult
	ConfirmHold       = core.ConfirmHold
	ConfirmHoldResult = core.ConfirmHoldResult
	CancelHold        = core.CancelHold
	CancelHoldResult  = core.CancelHoldResult
	HoldFilter        = store.HoldFilter
)

// States, reasons, entry kinds and sentinels of holds.
const (
	HoldHeld                 = core.HoldHeld
	HoldConfirmed            = core.HoldConfirmed
	HoldCancelled            = core.HoldCancelled
	HoldExpired              = core.HoldExpired
	ReasonHoldNotFound       = core.ReasonHoldNotFound
	ReasonHoldExpired        = core.ReasonHoldExpired
	ReasonHoldNotHeld        = core.ReasonHoldNotHeld
	ReasonConfirmExceedsHeld = core.ReasonConfirmExceedsHeld
	KindHoldCreated          = core.KindHoldCreated
	KindHoldConfirmed        = core.KindHoldConfirmed
	KindHoldCancelled        = core.KindHoldCancelled
	KindHoldExpired          = core.KindHoldExpired
)

var (
	ErrHoldNotFound       = core.ErrHoldNotFound
	ErrHoldExpired        = core.ErrHoldExpired
	ErrHoldNotHeld        = core.ErrHoldNotHeld
	ErrConfirmExceedsHeld = core.ErrConfirmExceedsHeld
	HoldName              = core.HoldName
)

// envelopeLocks serializes, within this process, the decisions on holds of one envelope (and the
// sweeper's expiries there): they all lock the envelope's row, and on PostgreSQL concurrent
// serializable transactions waiting on one row abort each other (40001) far more often than they
// succeed. Correctness does not rest on it: the database transaction still decides, and other
// processes' transactions are retried.
type envelopeLocks struct{ m sync.Map } // envelope id -> *sync.Mutex

func (e *envelopeLocks) lock(id string) func() {
	mu, _ := e.m.LoadOrStore(id, &sync.Mutex{})
	mu.(*sync.Mutex).Lock()
	return mu.(*sync.Mutex).Unlock
}

// holdEnvelopeLock takes the in-process lock of the envelope of hold id (read outside any
// transaction: a hold never changes envelope); none when the hold does not exist.
func (l *Ledger) holdEnvelopeLock(ctx context.Context, id string) func() {
	h, err := store.FindHold(ctx, l.db.Reader(), id)
	if err != nil || h == nil {
		return func() {}
	}
	return l.holdLocks.lock(h.EnvelopeID)
}

// ruled is an envelope locked for a decision on holds, with the funding rules in force at the
// decision's time and what a project holds on it.
type ruled struct {
	st      core.Stamp
	env     *core.Envelope
	rules   *core.EffectiveRules
	already int64
}

// loadRuled locks envelope id and, if it exists, reads its rules at a stamp taken after the lock
// (stampAfter) and, when a funding-share rule is in force and the hold gives an eligible cost,
// what the project holds on the envelope. The decision must use the returned stamp's time. The
// rules are those in force at the request's effective time when it gives one (funding rules apply
// by effective date; a time after the stamp's is refused by core.CheckEffective), else at the
// stamp's.
func (l *Ledger) loadRuled(ctx context.Context, q store.Querier, id, project string, policy core.Policy, effective time.Time) (map[string]core.Envelope, ruled, error) {
	locked, err := store.LockEnvelopes(ctx, q, l.db.ForUpdate(), []string{id})
	if err != nil {
		return nil, ruled{}, err
	}
	r := ruled{st: l.stampAfter(locked), env: found(locked, id)}
	if r.env == nil {
		return locked, r, nil
	}
	rulesAt := r.st.At
	if !effective.IsZero() && effective.Before(rulesAt) {
		rulesAt = effective.UTC().Truncate(time.Microsecond)
	}
	rules, err := l.parents.EffectiveRules(ctx, q, []core.Envelope{*r.env}, rulesAt)
	if err != nil {
		return nil, ruled{}, err
	}
	r.rules = rules[id]
	if r.rules.NeedsProjectTotal() && policy.HasEligibleCost() {
		k := core.ProjectKey{EnvelopeID: id, Project: project}
		totals, err := store.LoadTotals(ctx, q, []core.ProjectKey{k})
		if err != nil {
			return nil, ruled{}, err
		}
		r.already = totals[k]
	}
	return locked, r, nil
}

// at is the decision's stamp: the time the rules were read at, with mutate's maker of ids.
func (r ruled) at(st core.Stamp) core.Stamp { return core.Stamp{At: r.st.At, NewID: st.NewID} }

// CreateHold reserves cmd.Amount of an envelope for an application under review. The funding
// rules in force now are checked as for an award of the held amount.
func (l *Ledger) CreateHold(ctx context.Context, cmd CreateHold) (CreateHoldResult, error) {
	var res CreateHoldResult
	if err := cmd.Validate(); err != nil {
		return res, err
	}
	if l.batcher != nil {
		op := &core.Op{CreateHold: &cmd, Fingerprint: cmd.Fingerprint()}
		err := l.runOp(ctx, cmd.EnvelopeID, op, &res)
		if err == nil {
			l.wakeSweeper(res.Hold.ExpireAt)
		}
		return res, err
	}
	unlock := l.holdLocks.lock(cmd.EnvelopeID)
	defer unlock()
	err := l.mutate(ctx, cmd.Caller, cmd.RequestID, cmd.Fingerprint(), &res,
		func(ctx context.Context, q store.Querier) (loaded, error) {
			locked, r, err := l.loadRuled(ctx, q, cmd.EnvelopeID, cmd.Project, cmd.Policy, cmd.Effective)
			if err != nil {
				return loaded{}, err
			}
			return loaded{locked: locked, decide: func(st core.Stamp) (any, core.Effects, error) {
				return result(core.DecideCreateHold(r.at(st), cmd, r.env, r.rules, r.already))
			}}, nil
		})
	if err == nil {
		l.wakeSweeper(res.Hold.ExpireAt)
	}
	return res, err
}

// ConfirmHold turns a hold into a commitment of cmd.Amount (0: the whole hold), returning the rest
// to the envelope at once. The funding rules in force now are checked again, for the confirmed
// amount. A hold past its expire time is refused with HOLD_EXPIRED, swept or not.
func (l *Ledger) ConfirmHold(ctx context.Context, cmd ConfirmHold) (ConfirmHoldResult, error) {
	var res ConfirmHoldResult
	if err := cmd.Validate(); err != nil {
		return res, err
	}
	if done, err := l.batchOnHold(ctx, cmd.HoldID, &core.Op{ConfirmHold: &cmd, Fingerprint: cmd.Fingerprint()}, &res); done {
		return res, err
	}
	defer l.holdEnvelopeLock(ctx, cmd.HoldID)()
	err := l.mutate(ctx, cmd.Caller, cmd.RequestID, cmd.Fingerprint(), &res,
		func(ctx context.Context, q store.Querier) (loaded, error) {
			h, locked, r, err := l.loadHold(ctx, q, cmd.HoldID, cmd.Effective)
			if err != nil {
				return loaded{}, err
			}
			return loaded{locked: locked, decide: func(st core.Stamp) (any, core.Effects, error) {
				return result(core.DecideConfirmHold(r.at(st), cmd, h, r.env, r.rules, r.already))
			}}, nil
		})
	return res, err
}

// CancelHold returns a hold's whole amount to its envelope. A hold past its expire time is
// refused with HOLD_EXPIRED: its amount returns by its expiry.
func (l *Ledger) CancelHold(ctx context.Context, cmd CancelHold) (CancelHoldResult, error) {
	var res CancelHoldResult
	if err := cmd.Validate(); err != nil {
		return res, err
	}
	if done, err := l.batchOnHold(ctx, cmd.HoldID, &core.Op{CancelHold: &cmd, Fingerprint: cmd.Fingerprint()}, &res); done {
		return res, err
	}
	defer l.holdEnvelopeLock(ctx, cmd.HoldID)()
	err := l.mutate(ctx, cmd.Caller, cmd.RequestID, cmd.Fingerprint(), &res,
		func(ctx context.Context, q store.Querier) (loaded, error) {
			h, locked, r, err := l.loadHold(ctx, q, cmd.HoldID, cmd.Effective)
			if err != nil {
				return loaded{}, err
			}
			return loaded{locked: locked, decide: func(st core.Stamp) (any, core.Effects, error) {
				return result(core.DecideCancelHold(r.at(st), cmd, h, r.env))
			}}, nil
		})
	return res, err
}

// batchOnHold routes a confirmation or cancellation of hold id through the group commit of the
// hold's envelope, remembered (holdHomes) or read first outside any transaction (a hold never
// changes envelope, project or policy; the batch reads it again under the envelope's lock). It
// reports false, having done nothing, when batching is disabled or the hold was not found: the
// request then runs in a transaction of its own, which records HOLD_NOT_FOUND after checking
// under the locks that the hold still does not exist.
func (l *Ledger) batchOnHold(ctx context.Context, id string, op *core.Op, out any) (bool, error) {
	if l.batcher == nil {
		return false, nil
	}
	h, ok := l.holdHomes.get(id)
	if ok {
		l.metrics.routed(routeHold, routeRemembered)
	} else {
		l.metrics.routed(routeHold, routeRead)
		rctx, cancel := l.txContext(ctx)
		found, err := store.FindHold(rctx, l.db.Reader(), id)
		err = l.classify(rctx, err)
		cancel()
		if err != nil {
			return true, err
		}
		if found == nil {
			return false, nil
		}
		h = holdHome(found)
		l.holdHomes.learn(id, h)
	}
	seen := *h // the op's own copy of what is remembered
	op.Seen = &seen
	return true, l.runOp(ctx, h.EnvelopeID, op, out)
}

// loadHold reads a hold (nil when it does not exist), locks its envelope, and reads the hold
// again under the lock: the first read only names the envelope, which never changes; the second
// is the state the decision is made on.
func (l *Ledger) loadHold(ctx context.Context, q store.Querier, id string, effective time.Time) (*core.Hold, map[string]core.Envelope, ruled, error) {
	h, err := store.FindHold(ctx, q, id)
	if err != nil || h == nil {
		return nil, nil, ruled{st: l.stamp()}, err
	}
	locked, r, err := l.loadRuled(ctx, q, h.EnvelopeID, h.Project, h.Policy, effective)
	if err != nil {
		return nil, nil, ruled{}, err
	}
	if h, err = store.FindHold(ctx, q, id); err != nil {
		return nil, nil, ruled{}, err
	}
	return h, locked, r, nil
}

// GetHold returns one hold as stored: a hold past its expire time that the sweeper has not yet
// reached is still HELD here, though it can no longer be confirmed.
func (l *Ledger) GetHold(ctx context.Context, id string) (Hold, error) {
	if err := core.CheckHoldID("name", id); err != nil {
		return Hold{}, err
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	h, err := store.LoadHold(ctx, l.db.Reader(), id)
	return h, l.classify(ctx, err)
}

// ListHolds returns holds oldest first, filtered by envelope and state, and the token of the next
// page.
func (l *Ledger) ListHolds(ctx context.Context, f HoldFilter, page Page) ([]Hold, string, error) {
	if f.EnvelopeID != "" {
		if err := core.CheckEnvelopeID("envelope", f.EnvelopeID); err != nil {
			return nil, "", err
		}
	}
	switch f.State {
	case "", core.HoldHeld, core.HoldConfirmed, core.HoldCancelled, core.HoldExpired:
	default:
		return nil, "", core.InvalidArgument("state", "must be HELD, CONFIRMED, CANCELLED or EXPIRED")
	}
	ctx, cancel := l.txContext(ctx)
	defer cancel()
	items, next, err := store.ListHolds(ctx, l.db.Reader(), f, page)
	return items, next, l.classify(ctx, err)
}
