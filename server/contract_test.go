package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

// TestPageSizeAboveMaximumIsCoerced: AIP-158. A page_size above the maximum of 1000 is served as
// 1000, not refused; the rest comes with the next page.
func TestPageSizeAboveMaximumIsCoerced(t *testing.T) {
	t.Parallel()
	// 1001 awards in one transaction: more time than the default 5 s under the race detector on
	// 2 cores; the timeout is not what this test is about.
	h := startWith(t, testdb.SQLite(t), ledger.Config{TxTimeout: 2 * time.Minute}, server.Config{})
	h.buildFund(t)
	ctx := context.Background()
	items := make([]*pb.BatchCommitItem, 1001)
	for i := range items {
		items[i] = &pb.BatchCommitItem{Beneficiary: fmt.Sprintf("commune:%05d", i), Project: fmt.Sprintf("p%04d", i), Amount: 100}
	}
	if _, err := h.commitments.BatchCommit(ctx, &pb.BatchCommitRequest{Envelope: "envelopes/axis-3", Items: items,
		AllOrNothing: true, RequestId: "committee"}); err != nil {
		t.Fatal(err)
	}
	first, err := h.commitments.ListCommitments(ctx, &pb.ListCommitmentsRequest{PageSize: 5000})
	if err != nil {
		t.Fatalf("ListCommitments(page_size 5000): %v", err)
	}
	if got := len(first.GetCommitments()); got != 1000 || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %d commitments, next page %q; want 1000 and a token", got, first.GetNextPageToken())
	}
	rest, err := h.commitments.ListCommitments(ctx, &pb.ListCommitmentsRequest{PageSize: 5000, PageToken: first.GetNextPageToken()})
	if err != nil || len(rest.GetCommitments()) != 1 || rest.GetNextPageToken() != "" {
		t.Fatalf("second page: %v, %d commitments, next page %q; want 1 and no token", err, len(rest.GetCommitments()), rest.GetNextPageToken())
	}
	if _, err := h.envelopes.ListEnvelopes(ctx, &pb.ListEnvelopesRequest{PageSize: 1 << 30}); err != nil {
		t.Errorf("ListEnvelopes(page_size 2^30): %v", err)
	}
	if _, err := h.journal.ListJournalEntries(ctx, &pb.ListJournalEntriesRequest{PageSize: 1001}); err != nil {
		t.Errorf("ListJournalEntries(page_size 1001): %v", err)
	}
}

// TestFundingReportPages: the report's envelopes, a list that grows with the ledger, come a page
// at a time; the pages, put together, are the whole report, and every page is computed as of the
// first page's time, so an award made between two pages changes none of them.
func TestFundingReportPages(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	h.buildFund(t)
	ctx := context.Background()
	for _, id := range []string{"line-a", "line-b", "line-c"} {
		if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: id, Parent: "envelopes/axis-1",
			Allocation: million, RequestId: id}); err != nil {
			t.Fatal(err)
		}
	}
	reports := pb.NewReportServiceClient(h.conn)
	whole, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund"})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(whole.GetEnvelopes()); n != 7 || whole.GetNextPageToken() != "" {
		t.Fatalf("the report without page_size has %d envelopes and next page %q; want all 7 and no token", n, whole.GetNextPageToken())
	}
	var pages []*pb.EnvelopeReport
	req := &pb.GetFundingReportRequest{Envelope: "envelopes/fund", PageSize: 3}
	for n := 0; ; n++ {
		page, err := reports.GetFundingReport(ctx, req)
		if err != nil {
			t.Fatalf("page %d: %v", n, err)
		}
		if len(page.GetEnvelopes()) > 3 {
			t.Fatalf("page %d has %d envelopes, want at most 3", n, len(page.GetEnvelopes()))
		}
		if !proto.Equal(page.GetAsOfTime(), whole.GetAsOfTime()) {
			t.Errorf("page %d is as of %v, the report as of %v", n, page.GetAsOfTime().AsTime(), whole.GetAsOfTime().AsTime())
		}
		pages = append(pages, page.GetEnvelopes()...)
		if page.GetNextPageToken() == "" {
			break
		}
		if n == 0 {
			// An award between pages: the next pages stay as of the first page's time.
			if _, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/line-c", Beneficiary: "b",
				Project: "between-pages", Amount: 1000, RequestId: "between-pages"}); err != nil {
				t.Fatal(err)
			}
		}
		req.PageToken = page.GetNextPageToken()
	}
	if diff := cmp.Diff(whole.GetEnvelopes(), pages, protocmp.Transform()); diff != "" {
		t.Errorf("the pages (+) differ from the whole report (-):\n%s", diff)
	}
}

// TestEnvelopeRulesPages: an envelope's rule sets, one more at every SetEnvelopeRules, come a page
// at a time, oldest effective time first, each once; every page carries the effective rules.
func TestEnvelopeRulesPages(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	h.buildFund(t)
	ctx := context.Background()
	base := time.Now().Add(24 * time.Hour).UTC().Truncate(time.Second)
	// Effective times out of recording order: the listing's order is not the recording order.
	for i, days := range []int{3, 1, 4, 2, 5} {
		if _, err := h.envelopes.SetEnvelopeRules(ctx, &pb.SetEnvelopeRulesRequest{Envelope: "envelopes/axis-2",
			Call: fmt.Sprintf("appel-%d", i), Rules: &pb.FundingRules{MaxFundingShareBps: proto.Int64(int64(1000 * (i + 1)))},
			EffectiveTime: timestamppb.New(base.Add(time.Duration(days) * 24 * time.Hour)), RequestId: fmt.Sprintf("rules-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	whole, err := h.envelopes.GetEnvelopeRules(ctx, &pb.GetEnvelopeRulesRequest{Envelope: "envelopes/axis-2"})
	if err != nil || len(whole.GetRuleSets()) != 5 || whole.GetNextPageToken() != "" {
		t.Fatalf("GetEnvelopeRules without page_size: %v, %d rule sets, next page %q; want all 5", err, len(whole.GetRuleSets()), whole.GetNextPageToken())
	}
	var sets []*pb.RuleSet
	req := &pb.GetEnvelopeRulesRequest{Envelope: "envelopes/axis-2", PageSize: 2}
	for {
		page, err := h.envelopes.GetEnvelopeRules(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if len(page.GetRuleSets()) > 2 || page.GetEffectiveRules() == nil {
			t.Fatalf("a page of %d rule sets, effective rules %v; want at most 2, and the effective rules", len(page.GetRuleSets()), page.GetEffectiveRules())
		}
		sets = append(sets, page.GetRuleSets()...)
		if page.GetNextPageToken() == "" {
			break
		}
		req.PageToken = page.GetNextPageToken()
	}
	if diff := cmp.Diff(whole.GetRuleSets(), sets, protocmp.Transform()); diff != "" {
		t.Errorf("the pages (+) differ from the whole list (-):\n%s", diff)
	}
	for i := 1; i < len(sets); i++ {
		if !sets[i-1].GetEffectiveTime().AsTime().Before(sets[i].GetEffectiveTime().AsTime()) {
			t.Errorf("rule sets %d and %d are not in effective time order", i-1, i)
		}
	}
}

// TestPolicyFiguresGivenAsZeroDifferFromMissing: issue 16, item 9. eligible_cost and population
// are `optional`: not given, an award that a rule needs them for is refused as missing them (as
// before); given as 0, the rule checks the 0 like any figure. Commit and BatchCommit agree, and a
// request id sent once without a figure and once with 0 names two different requests.
func TestPolicyFiguresGivenAsZeroDifferFromMissing(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	h.buildFund(t)
	ctx := context.Background()
	for env, rules := range map[string]*pb.FundingRules{
		"envelopes/axis-1": {MaxFundingShareBps: proto.Int64(5000)},
		"envelopes/axis-2": {MinPopulation: proto.Int64(300_000)},
	} {
		if _, err := h.envelopes.SetEnvelopeRules(ctx, &pb.SetEnvelopeRulesRequest{Envelope: env, Call: "appel-1",
			Rules: rules, RequestId: "rules-" + env}); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name     string
		envelope string
		cost     *int64
		pop      *int64
		want     map[string]string // metadata of the POLICY_VIOLATION
	}{
		{"eligible cost not given", "envelopes/axis-1", nil, nil, map[string]string{"rule": "max_funding_share", "missing": "eligible_cost"}},
		{"eligible cost given as 0", "envelopes/axis-1", proto.Int64(0), nil, map[string]string{"rule": "max_funding_share", "missing": "", "eligible_cost": "0", "max_award": "0"}},
		{"population not given", "envelopes/axis-2", nil, nil, map[string]string{"rule": "min_population", "missing": "population"}},
		{"population given as 0", "envelopes/axis-2", nil, proto.Int64(0), map[string]string{"rule": "min_population", "missing": "", "population": "0"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			check := func(what, reason, message string, md map[string]string) {
				t.Helper()
				if reason != "POLICY_VIOLATION" {
					t.Fatalf("%s: reason %s (%s), want POLICY_VIOLATION", what, reason, message)
				}
				for k, v := range tc.want {
					if md[k] != v {
						t.Errorf("%s: metadata %s = %q, want %q (all: %v)", what, k, md[k], v, md)
					}
				}
			}
			_, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: tc.envelope, Beneficiary: "b", Project: "p",
				Amount: 1000, EligibleCost: tc.cost, Population: tc.pop, RequestId: fmt.Sprintf("commit-%d", i)})
			code, info := errorInfo(t, err)
			if code != codes.FailedPrecondition {
				t.Fatalf("Commit: %v, want FAILED_PRECONDITION", err)
			}
			check("Commit", info.GetReason(), err.Error(), info.GetMetadata())
			batch, err := h.commitments.BatchCommit(ctx, &pb.BatchCommitRequest{Envelope: tc.envelope, RequestId: fmt.Sprintf("batch-%d", i),
				Items: []*pb.BatchCommitItem{{Beneficiary: "b", Project: "p", Amount: 1000, EligibleCost: tc.cost, Population: tc.pop}}})
			if err != nil || len(batch.GetResults()) != 1 || batch.GetResults()[0].GetRefusal() == nil {
				t.Fatalf("BatchCommit: %v, %v; want one refused item", err, batch)
			}
			r := batch.GetResults()[0].GetRefusal()
			check("BatchCommit", r.GetReason(), r.GetMessage(), r.GetMetadata())
		})
	}
	// The same request id, without the figure and then with 0: two different requests.
	if _, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-2", Beneficiary: "b", Project: "p",
		Amount: 1000, Population: proto.Int64(0), RequestId: "commit-2"}); err == nil {
		t.Fatal("population 0 under the request id of a request without population succeeded")
	} else if _, info := errorInfo(t, err); info.GetReason() != "REQUEST_ID_REUSED" {
		t.Errorf("population 0 under the request id of a request without population: %s, want REQUEST_ID_REUSED", info.GetReason())
	}
	// Where no rule needs it, a figure given as 0 is accepted and kept as 0.
	res, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-3", Beneficiary: "b", Project: "p",
		Amount: 1000, EligibleCost: proto.Int64(0), Population: proto.Int64(0), RequestId: "no-rule"})
	if err != nil || res.GetCommitment().GetEligibleCost() != 0 || res.GetCommitment().GetPopulation() != 0 {
		t.Errorf("Commit with figures of 0 on an envelope without rules: %v, %v", err, res.GetCommitment())
	}
}
