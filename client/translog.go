package client

import (
	"context"
	"errors"
	"iter"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// The transparency log and the journal stream (docs/transparency.md). Checking a checkpoint's
// signature and the proofs needs golang.org/x/mod/sumdb/note and
// github.com/transparency-dev/merkle (or the main module's ledger/translog package), which this
// module does not import.

// The reasons of the transparency log and the journal stream.
const (
	ReasonLogDisabled      Reason = "LOG_DISABLED"
	ReasonTreeSizeTooLarge Reason = "TREE_SIZE_TOO_LARGE"
	ReasonStreamOverflow   Reason = "STREAM_OVERFLOW"
)

// Sentinel errors of the transparency log, for errors.Is.
var (
	ErrLogDisabled      error = &sentinel{reason: ReasonLogDisabled}
	ErrTreeSizeTooLarge error = &sentinel{reason: ReasonTreeSizeTooLarge}
	ErrStreamOverflow   error = &sentinel{reason: ReasonStreamOverflow}
)

// GetCheckpoint returns the log's latest signed checkpoint (a C2SP tlog-checkpoint signed note),
// or ErrLogDisabled.
func (c *Client) GetCheckpoint(ctx context.Context) (string, error) {
	resp, err := c.journal.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	return resp.GetCheckpoint(), err
}

// LogLegacyBound returns the last journal position whose leaf the log holds without the entry's
// effective time (written before the ledger's migration 25; 0: none): to encode the leaf of an
// entry at or before it, put its create_time in the effective_at field (docs/transparency.md).
func (c *Client) LogLegacyBound(ctx context.Context) (int64, error) {
	resp, err := c.journal.GetCheckpoint(ctx, &pb.GetCheckpointRequest{})
	return resp.GetLegacyEffectiveUntil(), err
}

// GetInclusionProof returns the proof that the entry at position sequence is leaf sequence-1 of
// the tree of treeSize entries (0: the latest checkpoint's).
func (c *Client) GetInclusionProof(ctx context.Context, sequence, treeSize int64) (*pb.GetInclusionProofResponse, error) {
	return c.journal.GetInclusionProof(ctx, &pb.GetInclusionProofRequest{Sequence: sequence, TreeSize: treeSize})
}

// GetConsistencyProof returns the proof that the tree of fromSize entries is a prefix of the tree
// of toSize entries (0: the latest checkpoint's).
func (c *Client) GetConsistencyProof(ctx context.Context, fromSize, toSize int64) ([][]byte, error) {
	resp, err := c.journal.GetConsistencyProof(ctx, &pb.GetConsistencyProofRequest{FromSize: fromSize, ToSize: toSize})
	return resp.GetHashes(), err
}

// WatchFilter selects what WatchJournalEntries follows.
type WatchFilter struct {
	AfterSequence int64  // start after this position (0: from the first entry)
	Envelope      string // only the entries that post to this envelope, "envelopes/{id}"
}

// WatchJournalEntries yields the journal's entries after f.AfterSequence, in order, each once,
// then new ones as they come, until ctx ends or an error that a new stream would not cure (it is
// yielded once, with a nil entry). A stream ended by STREAM_OVERFLOW or UNAVAILABLE (a server
// shutting down, a connection lost) is opened again after the last entry yielded, with a backoff
// for UNAVAILABLE.
func (c *Client) WatchJournalEntries(ctx context.Context, f WatchFilter) iter.Seq2[*pb.JournalEntry, error] {
	return func(yield func(*pb.JournalEntry, error) bool) {
		after := f.AfterSequence
		backoff := 50 * time.Millisecond
		for {
			sctx, cancel := context.WithCancel(ctx)
			stream, err := c.journal.WatchJournalEntries(sctx, &pb.WatchJournalEntriesRequest{AfterSequence: after, Envelope: f.Envelope})
			for err == nil {
				var resp *pb.WatchJournalEntriesResponse
				if resp, err = stream.Recv(); err != nil {
					break
				}
				backoff = 50 * time.Millisecond
				for _, e := range resp.GetJournalEntries() {
					after = e.GetSequence()
					if !yield(e, nil) {
						cancel()
						return
					}
				}
			}
			cancel()
			switch {
			case ctx.Err() != nil:
				yield(nil, contextError(ctx))
				return
			case streamOverflow(err):
			case status.Code(err) == codes.Unavailable:
				select {
				case <-ctx.Done():
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 2*time.Second)
			default:
				yield(nil, err)
				return
			}
		}
	}
}

// streamOverflow reports whether err is a STREAM_OVERFLOW.
func streamOverflow(err error) bool {
	if errors.Is(err, ErrStreamOverflow) {
		return true
	}
	st, ok := status.FromError(err)
	return ok && reasonOf(st) == ReasonStreamOverflow
}
