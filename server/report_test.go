package server_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"

	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// split returns n positive amounts, varied but deterministic, that sum to total exactly.
func split(total int64, n int) []int64 {
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

// wave is one group of awards of the first wave: how many, for how much, on which envelope.
type wave struct {
	envelope string
	prefix   string
	count    int
	total    int64
	// beneficiaries is how many distinct beneficiaries the awards go to (round robin).
	beneficiaries int
	population    int64
}

func ruleSet(bps, population *int64) *pb.FundingRules {
	return &pb.FundingRules{MaxFundingShareBps: bps, MinPopulation: population}
}

// TestFranceRelanceFirstWave replays the first wave of the France Relance fund "Transformation
// numérique des collectivités territoriales" through the gRPC API, under the first call's rules
// (a 50 % funding share; 500,000 inhabitants on axis 2's national window), checks that the
// funding report reproduces each group's count and total to the cent, per envelope and rolled up
// to the fund, then applies the second call's rules (75 %; 300,000 inhabitants) to new awards:
// one refused for the share (counting the project's earlier award), one refused for
// eligibility, and two accepted that the first call refused. It also protects the report as of a
// past time: asked after more operations for the time of the first report, it equals it.
func TestFranceRelanceFirstWave(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		h := start(t, database)
		ctx := context.Background()
		h.buildFund(t)
		// Axis 2 has two windows: the national one (large-scale projects) and FranceConnect.
		for _, req := range []*pb.CreateEnvelopeRequest{
			{EnvelopeId: "axis-2-national", Parent: "envelopes/axis-2", DisplayName: "Axe 2 - guichet national", Allocation: 23 * million, RequestId: "axis-2-national"},
			{EnvelopeId: "axis-2-franceconnect", Parent: "envelopes/axis-2", DisplayName: "Axe 2 - FranceConnect", Allocation: 1 * million, RequestId: "axis-2-franceconnect"},
		} {
			if _, err := h.envelopes.CreateEnvelope(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		reports := pb.NewReportServiceClient(h.conn)
		setRules := func(envelope, call, rid string, rules *pb.FundingRules) {
			t.Helper()
			res, err := h.envelopes.SetEnvelopeRules(ctx, &pb.SetEnvelopeRulesRequest{Envelope: envelope, Call: call,
				Rules: rules, RequestId: rid})
			if err != nil {
				t.Fatalf("SetEnvelopeRules(%s, %s): %v", envelope, call, err)
			}
			if res.GetRuleSet().GetCall() != call {
				t.Errorf("rule set call = %q, want %q", res.GetRuleSet().GetCall(), call)
			}
		}
		// The first call: the share on the fund (inherited by every axis), the threshold on the
		// national window only.
		setRules("envelopes/fund", "appel-1", "rules-appel-1-fund", ruleSet(proto.Int64(5000), nil))
		setRules("envelopes/axis-2-national", "appel-1", "rules-appel-1-national", ruleSet(nil, proto.Int64(500_000)))

		waves := []wave{
			{"axis-1", "a1", 44, 1_330_000_000, 44, 0},
			{"axis-2-national", "a2n", 75, 1_310_000_000, 75, 500_000},
			{"axis-2-franceconnect", "a2fc", 104, 52_000_000, 104, 0},
			{"axis-3", "a3", 500, 970_000_000, 480, 0},
		}
		firstAmount := map[string]int64{}
		for _, w := range waves {
			amounts := split(w.total, w.count)
			var sum int64
			req := &pb.BatchCommitRequest{Envelope: "envelopes/" + w.envelope, AllOrNothing: true, RequestId: "wave-1-" + w.envelope}
			for i, a := range amounts {
				sum += a
				it := &pb.BatchCommitItem{Beneficiary: fmt.Sprintf("%s-benef-%03d", w.prefix, i%w.beneficiaries),
					Project: fmt.Sprintf("%s-p%03d", w.prefix, i), Amount: a, EligibleCost: proto.Int64(2 * a),
					Territory: fmt.Sprintf("insee:%05d", i)}
				if w.population > 0 {
					it.Population = proto.Int64(w.population + int64(i)*1000)
				}
				req.Items = append(req.Items, it)
			}
			if sum != w.total {
				t.Fatalf("%s: amounts sum to %d, want %d", w.envelope, sum, w.total)
			}
			firstAmount[w.prefix] = amounts[0]
			res, err := h.commitments.BatchCommit(ctx, req)
			if err != nil {
				t.Fatalf("BatchCommit(%s): %v", w.envelope, err)
			}
			if int(res.GetAcceptedCount()) != w.count {
				t.Fatalf("%s: %d accepted, want %d", w.envelope, res.GetAcceptedCount(), w.count)
			}
		}

		// The report reproduces every group, and rolls up to the axes and the fund.
		r1, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund"})
		if err != nil {
			t.Fatal(err)
		}
		lines := map[string]*pb.EnvelopeReport{}
		for _, l := range r1.GetEnvelopes() {
			lines[l.GetEnvelope()] = l
		}
		wantTotal := map[string][3]int64{ // awarded, awards, beneficiaries
			"envelopes/axis-1":               {1_330_000_000, 44, 44},
			"envelopes/axis-2-national":      {1_310_000_000, 75, 75},
			"envelopes/axis-2-franceconnect": {52_000_000, 104, 104},
			"envelopes/axis-2":               {1_362_000_000, 179, 179},
			"envelopes/axis-3":               {970_000_000, 500, 480},
			"envelopes/fund":                 {3_662_000_000, 723, 703},
		}
		for name, want := range wantTotal {
			tot := lines[name].GetTotal()
			got := [3]int64{tot.GetAwarded(), tot.GetAwardCount(), tot.GetBeneficiaryCount()}
			if got != want {
				t.Errorf("%s: awarded, awards, beneficiaries = %v, want %v", name, got, want)
			}
			if tot.GetCommitted() != want[0] || tot.GetReleased() != 0 {
				t.Errorf("%s: committed %d released %d, want %d and 0", name, tot.GetCommitted(), tot.GetReleased(), want[0])
			}
		}
		if f := lines["envelopes/fund"]; f.GetTotal().GetAllocation() != 8_800_000_000 ||
			f.GetTotal().GetAvailable() != 8_800_000_000-3_662_000_000 || f.GetOwn().GetAwardCount() != 0 {
			t.Errorf("fund line = %v", f)
		}
		if got := lines["envelopes/axis-2"]; got.GetOwn().GetAllocation() != 24*million || got.GetOwn().GetAvailable() != 0 ||
			got.GetTotal().GetAvailable() != 24*million-1_362_000_000 || got.GetDepth() != 1 {
			t.Errorf("axis-2 line = %v", got)
		}
		// The report, computed from the journal, agrees with the stored balances.
		for name, l := range lines {
			env, err := h.envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: name})
			if err != nil {
				t.Fatal(err)
			}
			e := env.GetEnvelope()
			own := l.GetOwn()
			if own.GetAllocation() != e.GetAllocation() || own.GetCommitted() != e.GetCommitted() ||
				own.GetAvailable() != e.GetAvailable() || own.GetAwardCount() != e.GetCommitmentCount() {
				t.Errorf("%s: report %v, envelope %v", name, own, e)
			}
		}

		commit := func(envelope, project, rid string, amount, cost, population int64) (*pb.CommitResponse, error) {
			return h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: envelope, Beneficiary: "siren:" + project,
				Project: project, Amount: amount, EligibleCost: givenIfNonZero(cost), Territory: "insee:" + project,
				Population: givenIfNonZero(population), RequestId: rid})
		}
		policy := func(err error, want map[string]string) {
			t.Helper()
			code, info := errorInfo(t, err)
			if code != codes.FailedPrecondition || info.GetReason() != "POLICY_VIOLATION" {
				t.Fatalf("got %v %s, want FAILED_PRECONDITION POLICY_VIOLATION", code, info.GetReason())
			}
			for k, v := range want {
				if got := info.GetMetadata()[k]; got != v {
					t.Errorf("metadata %s = %q, want %q (all: %v)", k, got, v, info.GetMetadata())
				}
			}
		}
		// Under the first call: 70 % of a project's cost, and a metropolis of 400,000 inhabitants
		// on the national window, are refused.
		_, err = commit("envelopes/axis-1", "outil-70", "call-1-share", 70_000_000, 100_000_000, 0)
		policy(err, map[string]string{"rule": "max_funding_share", "max_bps": "5000", "max_award": "50000000",
			"requested": "70000000", "eligible_cost": "100000000", "already_awarded": "0", "call": "appel-1"})
		_, err = commit("envelopes/axis-2-national", "metropole-400k", "call-1-threshold", 500_000_000, 1_000_000_000, 400_000)
		policy(err, map[string]string{"rule": "min_population", "min_population": "500000", "population": "400000"})
		// An award without the eligible cost the share rule needs is refused too.
		_, err = commit("envelopes/axis-3", "no-cost", "call-1-no-cost", 1_000_000, 0, 0)
		policy(err, map[string]string{"rule": "max_funding_share", "missing": "eligible_cost"})

		// The second call.
		setRules("envelopes/fund", "appel-2", "rules-appel-2-fund", ruleSet(proto.Int64(7500), nil))
		setRules("envelopes/axis-2-national", "appel-2", "rules-appel-2-national", ruleSet(nil, proto.Int64(300_000)))
		eff, err := h.envelopes.GetEnvelopeRules(ctx, &pb.GetEnvelopeRulesRequest{Envelope: "envelopes/axis-2-national"})
		if err != nil {
			t.Fatal(err)
		}
		if e := eff.GetEffectiveRules(); e.GetMaxFundingShareBps() != 7500 || e.GetMinPopulation() != 300_000 || len(eff.GetRuleSets()) != 2 {
			t.Errorf("effective rules of the national window = %v, own rule sets %d", e, len(eff.GetRuleSets()))
		}

		// Refused for the share: a1-p000 already holds A (cost 2A); 75 % allows 1.5 A in all.
		a := firstAmount["a1"]
		_, err = commit("envelopes/axis-1", "a1-p000", "call-2-share", a/2+1, 2*a, 0)
		policy(err, map[string]string{"rule": "max_funding_share", "max_bps": "7500", "call": "appel-2",
			"already_awarded": strconv.FormatInt(a, 10), "requested": strconv.FormatInt(a/2+1, 10),
			"eligible_cost": strconv.FormatInt(2*a, 10), "max_award": strconv.FormatInt(2*a*3/4, 10)})
		// Refused for eligibility: 250,000 inhabitants.
		_, err = commit("envelopes/axis-2-national", "agglo-250k", "call-2-threshold", 100_000_000, 200_000_000, 250_000)
		policy(err, map[string]string{"rule": "min_population", "min_population": "300000", "population": "250000",
			"territory": "insee:agglo-250k"})
		// Accepted now, refused under the first call: 70 % of the cost, and 400,000 inhabitants.
		if _, err := commit("envelopes/axis-1", "outil-70", "call-2-share-ok", 70_000_000, 100_000_000, 0); err != nil {
			t.Errorf("70 %% share under the second call: %v", err)
		}
		if _, err := commit("envelopes/axis-2-national", "metropole-400k", "call-2-threshold-ok", 500_000_000, 1_000_000_000, 400_000); err != nil {
			t.Errorf("400,000 inhabitants under the second call: %v", err)
		}
		// A release reduces the project's total: after releasing 1,000 cents of a1-p001, it may
		// receive up to 75 % of its cost counting what it still holds.
		b := firstAmount["a1"] // a1-p001's amount differs; read it back
		list, err := h.commitments.ListCommitments(ctx, &pb.ListCommitmentsRequest{Envelope: "envelopes/axis-1", PageSize: 2})
		if err != nil {
			t.Fatal(err)
		}
		c1 := list.GetCommitments()[1]
		b = c1.GetAmount()
		if _, err := h.commitments.Release(ctx, &pb.ReleaseRequest{Commitment: c1.GetName(), Amount: 1000,
			Reason: "cost lower than planned", RequestId: "release-a1-p001"}); err != nil {
			t.Fatal(err)
		}
		if _, err := commit("envelopes/axis-1", c1.GetProject(), "call-2-top-up", b/2+1000, 2*b, 0); err != nil {
			t.Errorf("top-up to exactly 75 %% after a release: %v", err)
		}

		// The report as of the first report's time (an effective date: nothing was backdated
		// here), as known then, equals the first report; as of that date as known now, it
		// differs only by its recorded horizon.
		r2, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund", AsOfTime: r1.GetAsOfTime(),
			KnownAtTime: r1.GetKnownAtTime()})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r1, r2, protocmp.Transform()); diff != "" {
			t.Errorf("report as of %v differs from the report taken then (-then +as of):\n%s", r1.GetAsOfTime().AsTime(), diff)
		}
		r2, err = reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund", AsOfTime: r1.GetAsOfTime()})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(r1, r2, protocmp.Transform(), protocmp.IgnoreFields(&pb.GetFundingReportResponse{}, "known_at_time")); diff != "" {
			t.Errorf("report as of %v differs from the report taken then (-then +as of):\n%s", r1.GetAsOfTime().AsTime(), diff)
		}
		now, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund"})
		if err != nil {
			t.Fatal(err)
		}
		fund := now.GetEnvelopes()[0].GetTotal()
		wantAwarded := int64(3_662_000_000 + 70_000_000 + 500_000_000 + b/2 + 1000)
		if fund.GetAwarded() != wantAwarded || fund.GetAwardCount() != 726 || fund.GetReleased() != 1000 ||
			fund.GetCommitted() != wantAwarded-1000 {
			t.Errorf("fund now = %v, want awarded %d in 726 awards, 1000 released", fund, wantAwarded)
		}

		// Rule changes are in the journal, without postings.
		entries, err := h.journal.ListJournalEntries(ctx, &pb.ListJournalEntriesRequest{Envelope: "", PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		changes := 0
		for _, e := range entries.GetJournalEntries() {
			if e.GetKind() == pb.EntryKind_ENTRY_KIND_RULES_CHANGED {
				changes++
				if len(e.GetPostings()) != 0 {
					t.Errorf("rule change %s has postings", e.GetName())
				}
			}
		}
		if changes != 4 {
			t.Errorf("%d rule changes in the journal, want 4", changes)
		}
		h.verify(t)
	})
}

// givenIfNonZero is v as an optional field: unset when 0, as a client that does not know the
// figure sends it.
func givenIfNonZero(v int64) *int64 {
	if v == 0 {
		return nil
	}
	return &v
}
