package server

import (
	"context"
	"errors"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// The transparency log's RPCs (issue 14, docs/transparency.md) and the journal stream.

func init() {
	// The log's refusals, in the one reason table (errors.go).
	reasonCodes[ledger.ReasonLogDisabled] = codes.FailedPrecondition
	reasonCodes[ledger.ReasonTreeSizeTooLarge] = codes.OutOfRange
	reasonCodes[ledger.ReasonStreamOverflow] = codes.ResourceExhausted
}

func (s *journalService) GetCheckpoint(ctx context.Context, _ *pb.GetCheckpointRequest) (*pb.GetCheckpointResponse, error) {
	note, err := s.ledger.Checkpoint(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	legacy, err := s.ledger.LogLegacyBound(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GetCheckpointResponse{Checkpoint: note, LegacyEffectiveUntil: legacy}, nil
}

func (s *journalService) GetInclusionProof(ctx context.Context, req *pb.GetInclusionProofRequest) (*pb.GetInclusionProofResponse, error) {
	p, err := s.ledger.GetInclusionProof(ctx, req.GetSequence(), req.GetTreeSize())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GetInclusionProofResponse{LeafIndex: int64(p.LeafIndex), TreeSize: int64(p.TreeSize), Leaf: p.Leaf, Hashes: p.Hashes}, nil
}

func (s *journalService) GetConsistencyProof(ctx context.Context, req *pb.GetConsistencyProofRequest) (*pb.GetConsistencyProofResponse, error) {
	hashes, err := s.ledger.GetConsistencyProof(ctx, req.GetFromSize(), req.GetToSize())
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GetConsistencyProofResponse{Hashes: hashes}, nil
}

// WatchJournalEntries streams the journal. Each message passes the guard (guard.go): the caller's
// credential and rate limit are checked again at every Send, and a revoked credential cancels
// the stream's context, which ends the ledger's watch.
func (s *journalService) WatchJournalEntries(req *pb.WatchJournalEntriesRequest, stream grpc.ServerStreamingServer[pb.WatchJournalEntriesResponse]) error {
	// The validation interceptor sees unary calls only.
	if err := protovalidate.Validate(req); err != nil {
		return validationStatus(err)
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-s.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	// Headers at once: the client knows the stream is open before any entry comes.
	if err := stream.SendHeader(metadata.Pairs("budgetledger-stream", "open")); err != nil {
		return err
	}
	err := s.ledger.WatchJournal(ctx, req.GetAfterSequence(), ledger.WatchConfig{EnvelopeID: id(req.GetEnvelope(), "envelopes")},
		func(entries []ledger.Entry) error {
			out := &pb.WatchJournalEntriesResponse{JournalEntries: make([]*pb.JournalEntry, len(entries))}
			for i := range entries {
				out.JournalEntries[i] = entryPB(&entries[i])
			}
			return stream.Send(out)
		})
	if refusal := revocation(stream.Context()); refusal != nil {
		return refusal
	}
	select {
	case <-s.stop:
		return toStatus(&ledger.Error{Reason: ledger.ReasonStoreUnavailable,
			Message: "the server is shutting down; open a new stream, with after_sequence the last sequence received, on another server or later"})
	default:
	}
	var st interface{ GRPCStatus() *status.Status }
	if errors.As(err, &st) {
		return err // the guard's refusal of a message, or the transport's error
	}
	return toStatus(err)
}
