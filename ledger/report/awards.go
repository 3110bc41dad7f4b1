package report

import (
	"cmp"
	"context"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// Award is one award (commitment) as of an effective date: the commitment as stored (its
// publication fields, beneficiary, dates) with what the journal says of it at that date. The
// commitment's own Released and Paid are its current figures; Committed, Paid and PaymentDates
// here are those as of the date.
type Award struct {
	core.Commitment
	// Committed is what the award holds as of the date: the amount awarded net of the releases
	// (and of the unpaid rest returned by a closing) that took effect by then. Summed over an
	// envelope's awards, it is the funding report's committed figure for that envelope.
	Committed int64
	// PaidAsOf is what was paid out of the award by the date (part of Committed).
	PaidAsOf int64
	// PaymentDates are the effective times of the payments made by the date, oldest first.
	PaymentDates []time.Time
}

// Awards are the awards of an envelope and its descendants as of an effective date.
type Awards struct {
	// AsOf is the effective date: the time asked, or for a current read the latest effective
	// time of the awards and payments read.
	AsOf time.Time
	// Envelope is the envelope asked for, and Root the root of its tree (the envelope itself for
	// a root): the granting body is the root's.
	Envelope, Root core.Envelope
	// Awards are in the order of their effective times, then of their recording, then of ids.
	Awards []Award
}

// ComputeAwards reads, in one consistent snapshot, the awards of the envelope rootID and its
// descendants as of the effective date *asOf (everything when nil), with the same rule as
// Compute: the envelopes, commitments, journal entries and payments that took effect at or before
// asOf count, whenever they were recorded. An envelope that did not exist at that date is
// ENVELOPE_NOT_FOUND, as in the funding report.
func ComputeAwards(ctx context.Context, db store.Engine, rootID string, asOf *time.Time) (Awards, error) {
	var out Awards
	limit := int64(math.MaxInt64)
	if asOf != nil {
		if err := core.CheckTime("as_of_time", *asOf); err != nil {
			return out, err
		}
		limit = asOf.UnixMicro()
	}
	err := db.ReadOnly(ctx, func(q store.Querier) error {
		out = Awards{}
		envelopes := map[string]core.Envelope{}
		rs, err := q.Query(ctx, store.SelectEnvelopes+" WHERE COALESCE(effective_at, created_at) <= $1", limit)
		if err != nil {
			return err
		}
		for rs.Next() {
			e, err := store.ScanEnvelope(rs)
			if err != nil {
				rs.Close()
				return err
			}
			envelopes[e.ID] = e
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		env, ok := envelopes[rootID]
		if !ok {
			return core.EnvelopeNotFound(rootID)
		}
		out.Envelope, out.Root = env, env
		for out.Root.ParentID != "" {
			p, ok := envelopes[out.Root.ParentID]
			if !ok {
				// A parent always takes effect before its children.
				return core.Internal("envelope %s's parent %s is missing", out.Root.ID, out.Root.ParentID)
			}
			out.Root = p
		}
		// The subtree: an envelope is in it when rootID is on its path to its root.
		inTree := map[string]bool{}
		var under func(id string) bool
		under = func(id string) bool {
			if v, ok := inTree[id]; ok {
				return v
			}
			e, ok := envelopes[id]
			v := ok && (id == rootID || (e.ParentID != "" && under(e.ParentID)))
			inTree[id] = v
			return v
		}

		var latest int64
		byID := map[string]*Award{}
		rs, err = q.Query(ctx, store.SelectCommitments+" WHERE COALESCE(effective_at, created_at) <= $1", limit)
		if err != nil {
			return err
		}
		for rs.Next() {
			c, err := store.ScanCommitment(rs)
			if err != nil {
				rs.Close()
				return err
			}
			if under(c.EnvelopeID) {
				out.Awards = append(out.Awards, Award{Commitment: c})
				latest = max(latest, c.EffectiveAt.UnixMicro())
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		for i := range out.Awards {
			byID[out.Awards[i].ID] = &out.Awards[i]
		}

		// What each award's account holds as of the date, and what left it as payments: the
		// account holds what remains to pay, so committed = balance + paid (as in Compute).
		rs, err = q.Query(ctx, `SELECT e.kind, COALESCE(e.effective_at, e.created_at), p.account, p.amount
			FROM journal_entries e JOIN entry_postings p ON p.entry_id = e.id
			WHERE COALESCE(e.effective_at, e.created_at) <= $1 AND p.account LIKE 'commitments/%'`, limit)
		if err != nil {
			return err
		}
		for rs.Next() {
			var (
				kind, account     string
				effective, amount int64
			)
			if err := rs.Scan(&kind, &effective, &account, &amount); err != nil {
				rs.Close()
				return err
			}
			a := byID[strings.TrimPrefix(account, "commitments/")]
			if a == nil {
				continue
			}
			latest = max(latest, effective)
			if a.Committed, err = core.AddAmount("committed", a.Committed, amount); err != nil {
				rs.Close()
				return err
			}
			if core.EntryKind(kind) == core.KindPaid {
				// A payment takes the amount out of the account, yet it stays committed.
				if a.Committed, err = core.SubAmount("committed", a.Committed, amount); err != nil {
					rs.Close()
					return err
				}
				if a.PaidAsOf, err = core.SubAmount("paid", a.PaidAsOf, amount); err != nil {
					rs.Close()
					return err
				}
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}

		rs, err = q.Query(ctx, `SELECT commitment_id, COALESCE(effective_at, created_at) FROM payments
			WHERE COALESCE(effective_at, created_at) <= $1`, limit)
		if err != nil {
			return err
		}
		for rs.Next() {
			var (
				id        string
				effective int64
			)
			if err := rs.Scan(&id, &effective); err != nil {
				rs.Close()
				return err
			}
			if a := byID[id]; a != nil {
				a.PaymentDates = append(a.PaymentDates, time.UnixMicro(effective).UTC())
			}
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return err
		}
		for i := range out.Awards {
			slices.SortFunc(out.Awards[i].PaymentDates, time.Time.Compare)
		}
		slices.SortFunc(out.Awards, func(a, b Award) int {
			return cmp.Or(a.EffectiveAt.Compare(b.EffectiveAt), a.CreatedAt.Compare(b.CreatedAt), strings.Compare(a.ID, b.ID))
		})
		if asOf != nil {
			out.AsOf = asOf.UTC().Truncate(time.Microsecond)
		} else if latest != 0 {
			out.AsOf = time.UnixMicro(latest).UTC()
		} // (nothing read: no date, rather than 1970-01-01)
		return nil
	})
	return out, err
}
