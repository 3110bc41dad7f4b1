package server

import (
	"context"

	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// envelopeService implements pb.EnvelopeServiceServer over a ledger.
type envelopeService struct {
	pb.UnimplementedEnvelopeServiceServer
	ledger *ledger.Ledger
}

func (s *envelopeService) CreateEnvelope(ctx context.Context, req *pb.CreateEnvelopeRequest) (*pb.CreateEnvelopeResponse, error) {
	effective, err := effectiveOf(req.GetEffectiveTime())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.ledger.CreateEnvelope(ctx, ledger.CreateEnvelope{
		Effective:   effective,
		RequestID:   req.GetRequestId(),
		Caller:      callerFrom(ctx),
		EnvelopeID:  req.GetEnvelopeId(),
		ParentID:    id(req.GetParent(), "envelopes"),
		DisplayName: req.GetDisplayName(),
		Currency:    req.GetCurrencyCode(),
		Allocation:  req.GetAllocation(),
		GrantingBody: ledger.GrantingBody{GrantingBodyName: req.GetGrantingBodyName(),
			GrantingBodySIRET: req.GetGrantingBodySiret()},
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CreateEnvelopeResponse{Envelope: envelopePB(&res.Envelope), Parent: envelopePB(res.Parent),
		JournalEntry: ledger.EntryName(res.EntryID)}, nil
}

func (s *envelopeService) GetEnvelope(ctx context.Context, req *pb.GetEnvelopeRequest) (*pb.GetEnvelopeResponse, error) {
	env, err := s.ledger.GetEnvelope(ctx, id(req.GetName(), "envelopes"))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GetEnvelopeResponse{Envelope: envelopePB(&env)}, nil
}

func (s *envelopeService) ListEnvelopes(ctx context.Context, req *pb.ListEnvelopesRequest) (*pb.ListEnvelopesResponse, error) {
	envs, next, err := s.ledger.ListEnvelopes(ctx, ledger.EnvelopeFilter{ParentID: id(req.GetParent(), "envelopes")},
		ledger.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListEnvelopesResponse{NextPageToken: next}
	for i := range envs {
		out.Envelopes = append(out.Envelopes, envelopePB(&envs[i]))
	}
	return out, nil
}

func (s *envelopeService) MoveAllocation(ctx context.Context, req *pb.MoveAllocationRequest) (*pb.MoveAllocationResponse, error) {
	effective, err := effectiveOf(req.GetEffectiveTime())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.ledger.MoveAllocation(ctx, ledger.MoveAllocation{
		Effective:       effective,
		RequestID:       req.GetRequestId(),
		Caller:          callerFrom(ctx),
		SourceID:        id(req.GetSource(), "envelopes"),
		DestinationID:   id(req.GetDestination(), "envelopes"),
		Amount:          req.GetAmount(),
		Reason:          req.GetReason(),
		ETag:            req.GetEtag(),
		DestinationETag: req.GetDestinationEtag(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.MoveAllocationResponse{Source: envelopePB(&res.Source), Destination: envelopePB(&res.Destination),
		JournalEntry: ledger.EntryName(res.EntryID), EffectiveTime: timeOrNil(res.EffectiveTime)}, nil
}

// commitmentService implements pb.CommitmentServiceServer over a ledger.
type commitmentService struct {
	pb.UnimplementedCommitmentServiceServer
	ledger *ledger.Ledger
}

func (s *commitmentService) Commit(ctx context.Context, req *pb.CommitRequest) (*pb.CommitResponse, error) {
	effective, err := effectiveOf(req.GetEffectiveTime())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.ledger.Commit(ctx, ledger.Commit{
		Effective:   effective,
		RequestID:   req.GetRequestId(),
		Caller:      callerFrom(ctx),
		EnvelopeID:  id(req.GetEnvelope(), "envelopes"),
		Beneficiary: req.GetBeneficiary(),
		Project:     req.GetProject(),
		Amount:      req.GetAmount(),
		Description: req.GetDescription(),
		Policy: ledger.Policy{EligibleCost: req.GetEligibleCost(), Territory: req.GetTerritory(),
			Population: req.GetPopulation(), EligibleCostGiven: req.EligibleCost != nil,
			PopulationGiven: req.Population != nil},
		Publication: publicationOf(req),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CommitResponse{Commitment: commitmentPB(&res.Commitment), Envelope: envelopePB(&res.Envelope),
		JournalEntry: ledger.EntryName(res.EntryID)}, nil
}

func (s *commitmentService) Release(ctx context.Context, req *pb.ReleaseRequest) (*pb.ReleaseResponse, error) {
	effective, err := effectiveOf(req.GetEffectiveTime())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.ledger.Release(ctx, ledger.Release{
		Effective:    effective,
		RequestID:    req.GetRequestId(),
		Caller:       callerFrom(ctx),
		CommitmentID: id(req.GetCommitment(), "commitments"),
		Amount:       req.GetAmount(),
		Reason:       req.GetReason(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ReleaseResponse{Commitment: commitmentPB(&res.Commitment), Envelope: envelopePB(&res.Envelope),
		JournalEntry: ledger.EntryName(res.EntryID), EffectiveTime: timeOrNil(res.EffectiveTime)}, nil
}

func (s *commitmentService) BatchCommit(ctx context.Context, req *pb.BatchCommitRequest) (*pb.BatchCommitResponse, error) {
	items := make([]ledger.BulkItem, len(req.GetItems()))
	for i, it := range req.GetItems() {
		items[i] = ledger.BulkItem{Beneficiary: it.GetBeneficiary(), Project: it.GetProject(),
			Amount: it.GetAmount(), Description: it.GetDescription(),
			Policy: ledger.Policy{EligibleCost: it.GetEligibleCost(), Territory: it.GetTerritory(),
				Population: it.GetPopulation(), EligibleCostGiven: it.EligibleCost != nil,
				PopulationGiven: it.Population != nil},
			Publication: publicationOf(it)}
	}
	effective, err := effectiveOf(req.GetEffectiveTime())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.ledger.BulkCommit(ctx, ledger.BulkCommit{
		Effective:    effective,
		RequestID:    req.GetRequestId(),
		Caller:       callerFrom(ctx),
		EnvelopeID:   id(req.GetEnvelope(), "envelopes"),
		Items:        items,
		AllOrNothing: req.GetAllOrNothing(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.BatchCommitResponse{Envelope: envelopePB(&res.Envelope), Results: make([]*pb.BatchCommitResult, len(res.Items)),
		AcceptedCount: int32(res.Accepted), RefusedCount: int32(res.Refused)}
	for i, it := range res.Items {
		r := &pb.BatchCommitResult{}
		if it.Commitment != nil {
			r.Commitment = commitmentPB(it.Commitment)
		} else {
			r.Refusal = &pb.ItemRefusal{Reason: string(it.Refusal.Reason), Message: it.Refusal.Message, Metadata: it.Refusal.Metadata}
		}
		out.Results[i] = r
	}
	return out, nil
}

func (s *commitmentService) GetCommitment(ctx context.Context, req *pb.GetCommitmentRequest) (*pb.GetCommitmentResponse, error) {
	c, err := s.ledger.GetCommitment(ctx, id(req.GetName(), "commitments"))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GetCommitmentResponse{Commitment: commitmentPB(&c)}, nil
}

func (s *commitmentService) ListCommitments(ctx context.Context, req *pb.ListCommitmentsRequest) (*pb.ListCommitmentsResponse, error) {
	cs, next, err := s.ledger.ListCommitments(ctx,
		ledger.CommitmentFilter{EnvelopeID: id(req.GetEnvelope(), "envelopes"), Beneficiary: req.GetBeneficiary()},
		ledger.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListCommitmentsResponse{NextPageToken: next}
	for i := range cs {
		out.Commitments = append(out.Commitments, commitmentPB(&cs[i]))
	}
	return out, nil
}

// journalService implements pb.JournalServiceServer over a ledger.
type journalService struct {
	pb.UnimplementedJournalServiceServer
	ledger *ledger.Ledger
	stop   <-chan struct{} // closed when the server shuts down (translog.go)
}

func (s *journalService) ListJournalEntries(ctx context.Context, req *pb.ListJournalEntriesRequest) (*pb.ListJournalEntriesResponse, error) {
	entries, next, err := s.ledger.ListEntries(ctx,
		ledger.EntryFilter{EnvelopeID: id(req.GetEnvelope(), "envelopes"), CommitmentID: id(req.GetCommitment(), "commitments"),
			AfterSequence: req.GetAfterSequence()},
		ledger.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListJournalEntriesResponse{NextPageToken: next}
	for i := range entries {
		out.JournalEntries = append(out.JournalEntries, entryPB(&entries[i]))
	}
	return out, nil
}

// callerFrom names the principal making the request, stored on every journal entry. Until
// authentication is configured every caller is "anonymous".
func callerFrom(ctx context.Context) string {
	if p, ok := ctx.Value(principalKey{}).(string); ok && p != "" {
		return p
	}
	return "anonymous"
}

type principalKey struct{}
