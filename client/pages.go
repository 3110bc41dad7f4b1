package client

import (
	"context"
	"iter"

	"google.golang.org/grpc/codes"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// EnvelopeFilter selects the envelopes of ListEnvelopes.
type EnvelopeFilter struct {
	Parent   string // only the direct children of this envelope; empty: every envelope
	PageSize int32  // envelopes fetched per call, up to 1000; 0 lets the server choose (50)
}

// CommitmentFilter selects the commitments of ListCommitments; empty fields do not filter.
type CommitmentFilter struct {
	Envelope    string // only the commitments of this envelope, "envelopes/{id}"
	Beneficiary string // only the commitments to this beneficiary
	PageSize    int32  // commitments fetched per call, up to 1000; 0 lets the server choose (50)
}

// JournalFilter selects the entries of ListJournalEntries; empty fields do not filter.
type JournalFilter struct {
	Envelope   string // only the entries that post to this envelope, "envelopes/{id}"
	Commitment string // only the entries that post to this commitment, "commitments/{id}"
	PageSize   int32  // entries fetched per call, up to 1000; 0 lets the server choose (50)
}

// ListEnvelopes yields the envelopes in name order, fetching pages as the loop needs them. An
// error ends the sequence: it is yielded once, with a nil envelope.
func (c *Client) ListEnvelopes(ctx context.Context, f EnvelopeFilter) iter.Seq2[*pb.Envelope, error] {
	return pages(ctx, func(ctx context.Context, token string) ([]*pb.Envelope, string, error) {
		resp, err := c.envelopes.ListEnvelopes(ctx, &pb.ListEnvelopesRequest{
			Parent: f.Parent, PageSize: f.PageSize, PageToken: token})
		return resp.GetEnvelopes(), resp.GetNextPageToken(), err
	})
}

// ListCommitments yields the commitments oldest first, fetching pages as the loop needs them. An
// error ends the sequence: it is yielded once, with a nil commitment.
func (c *Client) ListCommitments(ctx context.Context, f CommitmentFilter) iter.Seq2[*pb.Commitment, error] {
	return pages(ctx, func(ctx context.Context, token string) ([]*pb.Commitment, string, error) {
		resp, err := c.commitments.ListCommitments(ctx, &pb.ListCommitmentsRequest{
			Envelope: f.Envelope, Beneficiary: f.Beneficiary, PageSize: f.PageSize, PageToken: token})
		return resp.GetCommitments(), resp.GetNextPageToken(), err
	})
}

// ListJournalEntries yields the journal entries oldest first, fetching pages as the loop needs
// them. An error ends the sequence: it is yielded once, with a nil entry.
func (c *Client) ListJournalEntries(ctx context.Context, f JournalFilter) iter.Seq2[*pb.JournalEntry, error] {
	return pages(ctx, func(ctx context.Context, token string) ([]*pb.JournalEntry, string, error) {
		resp, err := c.journal.ListJournalEntries(ctx, &pb.ListJournalEntriesRequest{
			Envelope: f.Envelope, Commitment: f.Commitment, PageSize: f.PageSize, PageToken: token})
		return resp.GetJournalEntries(), resp.GetNextPageToken(), err
	})
}

// pages walks an AIP-158 list: it calls fetch with each next_page_token until one is empty.
func pages[T any](ctx context.Context, fetch func(ctx context.Context, token string) ([]T, string, error)) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		token := ""
		for {
			items, next, err := fetch(ctx, token)
			if err != nil {
				yield(zero, err)
				return
			}
			for _, item := range items {
				if !yield(item, nil) {
					return
				}
			}
			if next == "" {
				return
			}
			if next == token {
				// A server that hands back the token it was given would loop forever.
				yield(zero, errorf(codes.Internal, "the server returned page token %q again", token))
				return
			}
			token = next
		}
	}
}
