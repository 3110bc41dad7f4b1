package ledger

import (
	"context"

	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// Etags (AIP-154; see core.EnvelopeETag and core.RulesETag) are checked in the transaction that
// decides, once the envelopes are locked, so that no change can come between the check and the
// decision: on PostgreSQL and CockroachDB a transaction whose snapshot is older than a change
// committed on a row it then locks fails with a serialization error and runs again from a fresh
// snapshot; on SQLite writers take turns. A stale etag fails the transaction (core.IsRefusal does
// not record it), so nothing is written, not even the request log's row.
//
// The checks come after the envelopes are found (a missing envelope is ENVELOPE_NOT_FOUND,
// recorded like any refusal) and before any other decision.

// checkMoveETags checks a move's etags against the locked source and destination.
func checkMoveETags(cmd MoveAllocation, locked map[string]core.Envelope) error {
	src, srcOK := locked[cmd.SourceID]
	dst, dstOK := locked[cmd.DestinationID]
	if !srcOK || !dstOK {
		return nil // ENVELOPE_NOT_FOUND, decided by core
	}
	return core.FirstError(core.CheckETag(cmd.ETag, core.EnvelopeETag(src), src.ID, "the source envelope"),
		core.CheckETag(cmd.DestinationETag, core.EnvelopeETag(dst), dst.ID, "the destination envelope"))
}

// checkRulesETag counts the rule sets of a SetRules' envelope, locked, and checks the request's
// etag against them; it returns the count.
func (l *Ledger) checkRulesETag(ctx context.Context, q store.Querier, cmd SetRules, locked map[string]core.Envelope) (int64, error) {
	if _, ok := locked[cmd.EnvelopeID]; !ok {
		return 0, nil // ENVELOPE_NOT_FOUND, decided by core
	}
	count, err := store.CountRuleSets(ctx, q, cmd.EnvelopeID)
	if err != nil {
		return 0, err
	}
	return count, core.CheckETag(cmd.ETag, core.RulesETag(cmd.EnvelopeID, count), cmd.EnvelopeID, "the rule sets of envelope")
}

// EnvelopeETag is the etag of an envelope as it is (AIP-154): opaque, it changes whenever the
// envelope does.
func EnvelopeETag(e Envelope) string { return core.EnvelopeETag(e) }
