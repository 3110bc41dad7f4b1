// Package client is the Go client of the budget ledger's gRPC API (budgetledger.v1).
//
// Dial a server, then award, release and read:
//
//	c, err := client.Dial(ctx, "ledger.internal:50051", client.WithToken(token))
//	...
//	defer c.Close()
//	resp, err := c.Commit(ctx, client.CommitParams{
//		Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016",
//		Project: "guichet-numerique", Amount: 30_000_000, // 300,000 € in cents
//	})
//
// # Retries and request ids
//
// Every mutation carries a request id (AIP-155). The server decides a request id once: the same
// request sent again returns the first outcome — the same commitment, the same journal entry —
// and posts nothing. That is what makes retrying a mutation safe, even when the first attempt
// was recorded and only its answer was lost.
//
// The typed methods (Commit, Release, CreateEnvelope, MoveAllocation) take the request id from
// their params, or make a UUIDv7 once per call when it is empty; every retry of that call sends
// the same id. To be able to ask again after your own process restarts, make the id yourself
// (NewRequestID), store it with the request, and pass it in.
//
// MoveAllocationParams' ETag and DestinationETag carry the etags of the envelopes' last read
// (AIP-154): the move is made only if neither changed since, else ErrETagMismatch, with nothing
// recorded. StartVerification, GetVerification and WaitVerification run VerifyLedger's
// verification in the background and poll it (AIP-151).
//
// Calls failing with UNAVAILABLE, ABORTED (but not ETAG_MISMATCH, a stale etag, which the same
// request would meet again), or RESOURCE_EXHAUSTED for the server's rate limit (reason
// RATE_LIMITED; not for a message over a size limit) are retried (DefaultAttempts
// attempts in all by default, see WithRetry) after an exponential backoff with jitter, or after
// the delay of the google.rpc.RetryInfo the server sent with the error. Retries stop at the bound,
// or earlier when the next wait would outlast the context's deadline. Business refusals such as
// INSUFFICIENT_FUNDS are never retried: a refusal is final for its request id.
//
// # Errors
//
// Every error a call returns is an *Error holding the gRPC code and the reason and metadata of
// the google.rpc.ErrorInfo the server sent:
//
//	if errors.Is(err, client.ErrInsufficientFunds) {
//		var e *client.Error
//		errors.As(err, &e)
//		available, _ := e.Available()
//		...
//	}
//
// It still carries its gRPC status, so status.Code(err) and status.FromError(err) work.
//
// # Lists
//
// ListEnvelopes, ListCommitments and ListJournalEntries return iterators (iter.Seq2) that fetch
// pages as the loop needs them; breaking out of the loop fetches nothing more.
//
// Everything else is reachable through the generated clients (Envelopes, Commitments, Journal),
// whose calls go through the same retries and error conversion; their streams (and any other on
// Conn) through the same error conversion, without retries.
package client
