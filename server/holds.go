package server

import (
	"context"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// Holds: the handlers of CommitmentService's hold RPCs (see ledger/holds.go).

func (s *commitmentService) CreateHold(ctx context.Context, req *pb.CreateHoldRequest) (*pb.CreateHoldResponse, error) {
	expire, err := givenTimeOf("expire_time", "for a hold that does not expire", req.GetExpireTime())
	if err != nil {
		return nil, toStatus(err)
	}
	effective, err := effectiveOf(req.GetEffectiveTime())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.ledger.CreateHold(ctx, ledger.CreateHold{
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
		ExpireTime: expire,
		Effective:  effective,
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CreateHoldResponse{Hold: holdPB(&res.Hold), Envelope: envelopePB(&res.Envelope),
		JournalEntry: ledger.EntryName(res.EntryID)}, nil
}

func (s *commitmentService) ConfirmHold(ctx context.Context, req *pb.ConfirmHoldRequest) (*pb.ConfirmHoldResponse, error) {
	effective, err := effectiveOf(req.GetEffectiveTime())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.ledger.ConfirmHold(ctx, ledger.ConfirmHold{
		RequestID: req.GetRequestId(),
		Caller:    callerFrom(ctx),
		HoldID:    id(req.GetHold(), "holds"),
		Amount:    req.GetAmount(),
		Effective: effective,
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ConfirmHoldResponse{Commitment: commitmentPB(&res.Commitment), Hold: holdPB(&res.Hold),
		Envelope: envelopePB(&res.Envelope), JournalEntry: ledger.EntryName(res.EntryID)}, nil
}

func (s *commitmentService) CancelHold(ctx context.Context, req *pb.CancelHoldRequest) (*pb.CancelHoldResponse, error) {
	effective, err := effectiveOf(req.GetEffectiveTime())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.ledger.CancelHold(ctx, ledger.CancelHold{
		RequestID: req.GetRequestId(),
		Caller:    callerFrom(ctx),
		HoldID:    id(req.GetHold(), "holds"),
		Reason:    req.GetReason(),
		Effective: effective,
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.CancelHoldResponse{Hold: holdPB(&res.Hold), Envelope: envelopePB(&res.Envelope),
		JournalEntry: ledger.EntryName(res.EntryID)}, nil
}

func (s *commitmentService) GetHold(ctx context.Context, req *pb.GetHoldRequest) (*pb.GetHoldResponse, error) {
	h, err := s.ledger.GetHold(ctx, id(req.GetName(), "holds"))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.GetHoldResponse{Hold: holdPB(&h)}, nil
}

func (s *commitmentService) ListHolds(ctx context.Context, req *pb.ListHoldsRequest) (*pb.ListHoldsResponse, error) {
	hs, next, err := s.ledger.ListHolds(ctx,
		ledger.HoldFilter{EnvelopeID: id(req.GetEnvelope(), "envelopes"), State: holdStates[req.GetState()]},
		ledger.Page{Size: int(req.GetPageSize()), Token: req.GetPageToken()})
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.ListHoldsResponse{NextPageToken: next}
	for i := range hs {
		out.Holds = append(out.Holds, holdPB(&hs[i]))
	}
	return out, nil
}

// holdStates maps the API's hold states to the ledger's (UNSPECIFIED: no filter).
var holdStates = map[pb.HoldState]ledger.HoldState{
	pb.HoldState_HOLD_STATE_HELD:      ledger.HoldHeld,
	pb.HoldState_HOLD_STATE_CONFIRMED: ledger.HoldConfirmed,
	pb.HoldState_HOLD_STATE_CANCELLED: ledger.HoldCancelled,
	pb.HoldState_HOLD_STATE_EXPIRED:   ledger.HoldExpired,
}

func holdStatePB(s ledger.HoldState) pb.HoldState {
	for k, v := range holdStates {
		if v == s {
			return k
		}
	}
	return pb.HoldState_HOLD_STATE_UNSPECIFIED
}

// optionalTime is t as a Timestamp, nil (unset) when t is zero.
func optionalTime(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func holdPB(h *ledger.Hold) *pb.Hold {
	out := &pb.Hold{
		Name:            ledger.HoldName(h.ID),
		Envelope:        ledger.EnvelopeName(h.EnvelopeID),
		Beneficiary:     h.Beneficiary,
		Project:         h.Project,
		CurrencyCode:    h.Currency,
		Amount:          h.Amount,
		State:           holdStatePB(h.State),
		Description:     h.Description,
		Territory:       h.Policy.Territory,
		ExpireTime:      optionalTime(h.ExpireAt),
		EffectiveTime:   optionalTime(h.EffectiveAt),
		ConfirmedAmount: h.ConfirmedAmount,
		CancelReason:    h.Reason,
		CreateTime:      timestamppb.New(h.CreatedAt),
		UpdateTime:      timestamppb.New(h.UpdatedAt),
	}
	if h.Policy.HasEligibleCost() {
		out.EligibleCost = &h.Policy.EligibleCost
	}
	if h.Policy.HasPopulation() {
		out.Population = &h.Policy.Population
	}
	if h.CommitmentID != "" {
		out.Commitment = ledger.CommitmentName(h.CommitmentID)
	}
	return out
}
