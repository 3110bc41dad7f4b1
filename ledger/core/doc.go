// Package core is the ledger's pure decision core: its vocabulary (envelopes, commitments,
// journal entries, funding rules), its named refusals (Error and its Reasons), amounts with
// overflow checks, request validation and fingerprints, and the decision of every operation.
//
// Every decision is a function of loaded state and a command: DecideCreateEnvelope,
// DecideMoveAllocation, DecideSetRules and DecideBatch (awards and releases, bulk calls among
// them) take what storage loaded under the transaction's locks and a Stamp (the time of the
// decision and a maker of ids), and return the result with what to write (Effects, Writes), or a
// refusal. The package does no I/O: no context, no SQL, no gRPC, no clock, no randomness of its
// own; a decision given the same inputs returns the same outputs, and it never changes its
// inputs.
//
// What it promises, given consistent loaded state: every entry it returns balances (invariant
// 1); no envelope it returns has a negative available amount (2); no commitment releases more
// than it holds (3); a request id already in the request log gets its first outcome, or
// REQUEST_ID_REUSED for another payload, and nothing new (5); a refusal changes nothing; every
// sum is checked for overflow.
package core
