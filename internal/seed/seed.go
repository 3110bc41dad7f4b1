// Package seed replays the reference programme, the France Relance fund "Transformation numérique
// des collectivités territoriales", through the gRPC API: its envelopes, the first call's rules,
// the first wave's committees with their real dates (as server/dates_test.go's
// TestFranceRelanceWithDates records them), the first axis-3 applications under review as holds,
// and the payment of axis 1's awards. Tests that need a realistic ledger (the transparency page's
// browser test) replay it. Its tables (envelopes, first wave, committees, Split) are those that
// TestFranceRelanceWithDates and TestFranceRelanceFirstWave (server/) replay and check step by
// step, still written out there too: that test is being extended on another branch (the SCDL
// export's publication fields), and pointing it at these tables is left to after that merge.
package seed

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/ledger/opendata/scdltest"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// The replay's publication fields (SCDL "subventions"): the fund's granting body.
const (
	GrantingBody      = "État - France Relance (exemple)"
	GrantingBodySIRET = "13000000000013"
)

// SIRET is a valid SIRET (14 digits, Luhn) for beneficiary b of the wave whose awards are
// prefixed prefix.
func SIRET(prefix string, b int) string {
	code := map[string]int{"a1": 1, "a2n": 2, "a3": 3}[prefix]
	return scdltest.SIRET(fmt.Sprintf("2%d%011d", code, b))
}

// Million is a million euros in cents.
const Million = 100_000_000

// Date is midnight UTC of a day, as a timestamp.
func Date(y int, m time.Month, d int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
}

// Announced is when the fund and its axes took effect.
var Announced = Date(2021, 1, 15)

// Envelopes are the fund and its envelopes, parents first.
func Envelopes() []*pb.CreateEnvelopeRequest {
	return []*pb.CreateEnvelopeRequest{
		{EnvelopeId: "fund", DisplayName: "Transformation numérique des collectivités territoriales", Allocation: 88 * Million, RequestId: "fund",
			GrantingBodyName: GrantingBody, GrantingBodySiret: GrantingBodySIRET},
		{EnvelopeId: "axis-1", Parent: "envelopes/fund", DisplayName: "Axe 1 - outils numériques communs", Allocation: 30 * Million, RequestId: "axis-1"},
		{EnvelopeId: "axis-2", Parent: "envelopes/fund", DisplayName: "Axe 2 - projets d'envergure", Allocation: 24 * Million, RequestId: "axis-2"},
		{EnvelopeId: "axis-3", Parent: "envelopes/fund", DisplayName: "Axe 3 - projets locaux", Allocation: 34 * Million, RequestId: "axis-3"},
		{EnvelopeId: "axis-2-national", Parent: "envelopes/axis-2", DisplayName: "Axe 2 - guichet national", Allocation: 23 * Million, RequestId: "axis-2-national"},
		{EnvelopeId: "axis-2-franceconnect", Parent: "envelopes/axis-2", DisplayName: "Axe 2 - FranceConnect", Allocation: 1 * Million, RequestId: "axis-2-franceconnect"},
	}
}

// Wave is the first wave's awards on one envelope.
type Wave struct {
	Envelope, Prefix string
	Count            int
	Total            int64
	// Beneficiaries is how many distinct beneficiaries the awards go to (round robin).
	Beneficiaries int
	Population    int64
}

// FirstWave is the first wave by envelope: axis 1, 44 projects, 13.3 M€; axis 2, 75 projects,
// 13.1 M€, and 104 FranceConnect deployments, 520 k€; axis 3, 500 projects, 9.7 M€.
var FirstWave = map[string]Wave{
	"axis-1":               {"axis-1", "a1", 44, 1_330_000_000, 44, 0},
	"axis-2-national":      {"axis-2-national", "a2n", 75, 1_310_000_000, 75, 500_000},
	"axis-2-franceconnect": {"axis-2-franceconnect", "a2fc", 104, 52_000_000, 104, 0},
	"axis-3":               {"axis-3", "a3", 500, 970_000_000, 480, 0},
}

// Committee is one BatchCommit of the first wave, with the date of its decision.
type Committee struct {
	Envelope    string
	From, Count int // the wave's awards From..From+Count
	Decided     *timestamppb.Timestamp
}

// Committees are the first wave's decisions, in date order.
var Committees = []Committee{
	{"axis-1", 0, 44, Date(2021, 3, 11)},
	{"axis-3", 0, 200, Date(2021, 5, 6)},
	{"axis-2-national", 0, 75, Date(2021, 5, 20)},
	{"axis-2-franceconnect", 0, 104, Date(2021, 6, 10)},
	{"axis-3", 200, 200, Date(2021, 7, 8)},
	{"axis-3", 400, 100, Date(2021, 9, 16)},
}

// Split divides total into n unequal amounts that sum to it exactly.
func Split(total int64, n int) []int64 {
	base := total / int64(n)
	out := make([]int64, n)
	for i := range out {
		out[i] = base
	}
	out[0] += total - base*int64(n)
	for i := 0; i+1 < n; i += 2 {
		v := int64((i*37)%11-5) * (base / 20)
		out[i] += v
		out[i+1] -= v
	}
	return out
}

// BatchCommit is the committee's request: the wave's awards c.From..c.From+c.Count.
func (c Committee) BatchCommit() *pb.BatchCommitRequest {
	w := FirstWave[c.Envelope]
	amounts := Split(w.Total, w.Count)
	req := &pb.BatchCommitRequest{Envelope: "envelopes/" + c.Envelope, AllOrNothing: true,
		RequestId: fmt.Sprintf("wave-1-%s-%d", c.Envelope, c.From), EffectiveTime: c.Decided}
	for i := c.From; i < c.From+c.Count; i++ {
		a := amounts[i]
		it := &pb.BatchCommitItem{Beneficiary: fmt.Sprintf("%s-benef-%03d", w.Prefix, i%w.Beneficiaries),
			Project: fmt.Sprintf("%s-p%03d", w.Prefix, i), Amount: a, EligibleCost: proto.Int64(2 * a),
			Territory: fmt.Sprintf("insee:%05d", i)}
		if w.Population > 0 {
			it.Population = proto.Int64(w.Population + int64(i)*1000)
		}
		if c.Envelope != "axis-2-franceconnect" {
			// What publication needs (SCDL): the FranceConnect deployments have none, so that
			// the open-data export lists them as unpublishable.
			b := i % w.Beneficiaries
			it.DecisionReference = fmt.Sprintf("%s-%s", c.Decided.AsTime().Format(time.DateOnly), w.Prefix)
			it.BeneficiaryLegalName = fmt.Sprintf("Collectivité %s-%03d", w.Prefix, b)
			it.BeneficiarySiret = SIRET(w.Prefix, b)
			it.Purpose = fmt.Sprintf("Projet %s-p%03d", w.Prefix, i)
		}
		req.Items = append(req.Items, it)
	}
	return req
}

// HeldFiles is how many axis-3 applications under review the replay files as holds (the first
// group, filed on 1 March 2021).
const HeldFiles = 150

// PaidOn is when the replay pays axis 1's awards, in full.
var PaidOn = Date(2021, 6, 30)

// FranceRelance replays the programme on conn: the envelopes, the first call's rules, the first
// wave's committees, HeldFiles holds on axis 3 filed on 1 March 2021, and the payment in full of
// axis 1's awards on PaidOn. Everything is dated (effective_time) and recorded in date order.
func FranceRelance(ctx context.Context, conn grpc.ClientConnInterface) error {
	envelopes := pb.NewEnvelopeServiceClient(conn)
	commitments := pb.NewCommitmentServiceClient(conn)
	for _, req := range Envelopes() {
		req.EffectiveTime = Announced
		if _, err := envelopes.CreateEnvelope(ctx, req); err != nil {
			return fmt.Errorf("CreateEnvelope(%s): %w", req.GetEnvelopeId(), err)
		}
	}
	for _, r := range []*pb.SetEnvelopeRulesRequest{
		{Envelope: "envelopes/fund", Call: "appel-1", RequestId: "rules-appel-1-fund",
			Rules: &pb.FundingRules{MaxFundingShareBps: proto.Int64(5000)}},
		{Envelope: "envelopes/axis-2-national", Call: "appel-1", RequestId: "rules-appel-1-national",
			Rules: &pb.FundingRules{MinPopulation: proto.Int64(500_000)}},
	} {
		r.EffectiveTime = Date(2021, 1, 18)
		if _, err := envelopes.SetEnvelopeRules(ctx, r); err != nil {
			return fmt.Errorf("SetEnvelopeRules(%s): %w", r.GetEnvelope(), err)
		}
	}
	type event struct {
		when *timestamppb.Timestamp
		do   func() error
	}
	var events []event
	var axis1 []string
	for _, c := range Committees {
		events = append(events, event{c.Decided, func() error {
			res, err := commitments.BatchCommit(ctx, c.BatchCommit())
			if err != nil {
				return fmt.Errorf("BatchCommit(%s, %v): %w", c.Envelope, c.Decided.AsTime(), err)
			}
			if int(res.GetAcceptedCount()) != c.Count {
				return fmt.Errorf("BatchCommit(%s, %v): %d accepted of %d", c.Envelope, c.Decided.AsTime(), res.GetAcceptedCount(), c.Count)
			}
			if c.Envelope == "axis-1" {
				for _, r := range res.GetResults() {
					axis1 = append(axis1, r.GetCommitment().GetName())
				}
			}
			return nil
		}})
	}
	filed := Date(2021, 3, 1)
	events = append(events, event{filed, func() error {
		for i := range HeldFiles {
			amount := 2_000_000 + int64(i*7%100)
			if _, err := commitments.CreateHold(ctx, &pb.CreateHoldRequest{Envelope: "envelopes/axis-3",
				Beneficiary: fmt.Sprintf("a3h-benef-%04d", i), Project: fmt.Sprintf("a3h-p%04d", i), Amount: amount,
				EligibleCost: proto.Int64(2 * amount), Territory: fmt.Sprintf("insee:%05d", 50_000+i),
				RequestId: fmt.Sprintf("file-a3h-%04d", i), EffectiveTime: filed}); err != nil {
				return fmt.Errorf("CreateHold(file %d): %w", i, err)
			}
		}
		return nil
	}})
	events = append(events, event{PaidOn, func() error {
		for i, name := range axis1 {
			c, err := commitments.GetCommitment(ctx, &pb.GetCommitmentRequest{Name: name})
			if err != nil {
				return err
			}
			if _, err := commitments.CreatePayment(ctx, &pb.CreatePaymentRequest{Parent: name, Amount: c.GetCommitment().GetAmount(),
				RequestId: fmt.Sprintf("payment-a1-%03d", i), EffectiveTime: PaidOn}); err != nil {
				return fmt.Errorf("CreatePayment(%s): %w", name, err)
			}
		}
		return nil
	}})
	slices.SortStableFunc(events, func(a, b event) int { return a.when.AsTime().Compare(b.when.AsTime()) })
	for _, e := range events {
		if err := e.do(); err != nil {
			return err
		}
	}
	return nil
}
