package server_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/internal/seed"
	"github.com/budgetledger/budgetledger/internal/testdb"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

func date(y int, m time.Month, d int) *timestamppb.Timestamp {
	return timestamppb.New(time.Date(y, m, d, 0, 0, 0, 0, time.UTC))
}

// TestFranceRelanceWithDates replays the France Relance fund "Transformation numérique des
// collectivités territoriales" with its real dates (issue 13 §3), recorded today after the fact:
// the fund announced in January 2021 and the first call's rules; the first wave's committees of
// 2021 (axis 1: 44 projects, 13.3 M€; axis 2: 75 projects, 13.1 M€, and 104 FranceConnect
// deployments, 520 k€; axis 3: 500 projects, 9.7 M€ by 8 October 2021); 1,200 axis-3 applications
// under review as holds (issue 13 §1) filed from 1 March 2021, recorded in date order with the
// axis-3 committees, all held on 8 October 2021; the second call's rules in force from 20 September
// 2021 (75 %; 300,000 inhabitants); the selection of 15 December 2021, which confirms 300 of the
// held files (100 of them at 80 %, the rest returning to axis 3) and cancels the other 900. Reports
// as of an effective date give each group to the cent at that date, held amounts included
// (invariant 4 by date), awards are decided under the rules in force at their effective date
// (invariant 8), the README's "as of 2021-12-31" report works, and Verify finds every envelope ≥ 0
// at every effective instant (invariant 40).
func TestFranceRelanceWithDates(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		h := start(t, database)
		ctx := context.Background()
		reports := pb.NewReportServiceClient(h.conn)
		announced := date(2021, 1, 15)
		for _, req := range seed.Envelopes() {
			req.EffectiveTime = announced
			res, err := h.envelopes.CreateEnvelope(ctx, req)
			if err != nil {
				t.Fatalf("CreateEnvelope(%s): %v", req.GetEnvelopeId(), err)
			}
			if !res.GetEnvelope().GetEffectiveTime().AsTime().Equal(announced.AsTime()) {
				t.Fatalf("%s took effect %v, want %v", req.GetEnvelopeId(), res.GetEnvelope().GetEffectiveTime().AsTime(), announced.AsTime())
			}
		}
		setRules := func(envelope, call, rid string, rules *pb.FundingRules, effective *timestamppb.Timestamp) {
			t.Helper()
			res, err := h.envelopes.SetEnvelopeRules(ctx, &pb.SetEnvelopeRulesRequest{Envelope: envelope, Call: call,
				Rules: rules, RequestId: rid, EffectiveTime: effective})
			if err != nil {
				t.Fatalf("SetEnvelopeRules(%s, %s): %v", envelope, call, err)
			}
			if got := res.GetRuleSet().GetEffectiveTime().AsTime(); !got.Equal(effective.AsTime()) {
				t.Fatalf("%s on %s in force from %v, want %v", call, envelope, got, effective.AsTime())
			}
		}
		// The first call opened on 18 January 2021: 50 %, and 500,000 inhabitants on the
		// national window.
		setRules("envelopes/fund", "appel-1", "rules-appel-1-fund", ruleSet(proto.Int64(5000), nil), date(2021, 1, 18))
		setRules("envelopes/axis-2-national", "appel-1", "rules-appel-1-national", ruleSet(nil, proto.Int64(500_000)), date(2021, 1, 18))

		amounts := map[string][]int64{}
		for id, w := range seed.FirstWave {
			amounts[id] = seed.Split(w.Total, w.Count)
		}
		awards := map[string][]*pb.Commitment{} // by envelope, in the order awarded
		decide := func(c seed.Committee) {
			t.Helper()
			req := c.BatchCommit()
			res, err := h.commitments.BatchCommit(ctx, req)
			if err != nil {
				t.Fatalf("BatchCommit(%s, %v): %v", c.Envelope, c.Decided.AsTime(), err)
			}
			if int(res.GetAcceptedCount()) != c.Count {
				t.Fatalf("%s on %v: %d accepted, want %d", c.Envelope, c.Decided.AsTime(), res.GetAcceptedCount(), c.Count)
			}
			for _, r := range res.GetResults() {
				awards[c.Envelope] = append(awards[c.Envelope], r.GetCommitment())
				if !r.GetCommitment().GetEffectiveTime().AsTime().Equal(c.Decided.AsTime()) {
					t.Fatalf("award %s took effect %v, want %v", r.GetCommitment().GetName(), r.GetCommitment().GetEffectiveTime().AsTime(), c.Decided.AsTime())
				}
			}
		}

		// Axis-3 applications under review are holds (issue 13 §1): 1,200 files filed from 1 March
		// 2021, in groups of 150 at the dates below, each of 20,000.00 € and a few cents, at 50 %
		// of its eligible cost (the first call's maximum share), without expiry. A hold reduces
		// axis 3's available amount, so holds and axis-3 committees are recorded in date order,
		// and all of them before the second call's rules of 20 September 2021.
		const filesPerGroup = 150
		filed := []*timestamppb.Timestamp{date(2021, 3, 1), date(2021, 4, 1), date(2021, 5, 1), date(2021, 6, 1),
			date(2021, 7, 1), date(2021, 8, 1), date(2021, 9, 1), date(2021, 9, 15)}
		var holds []*pb.Hold // by file number
		var heldTotal int64
		file := func(group int) {
			t.Helper()
			when := filed[group]
			for i := group * filesPerGroup; i < (group+1)*filesPerGroup; i++ {
				amount := 2_000_000 + int64(i*7%100)
				res, err := h.commitments.CreateHold(ctx, &pb.CreateHoldRequest{Envelope: "envelopes/axis-3",
					Beneficiary: fmt.Sprintf("a3h-benef-%04d", i), Project: fmt.Sprintf("a3h-p%04d", i), Amount: amount,
					EligibleCost: proto.Int64(2 * amount), Territory: fmt.Sprintf("insee:%05d", 50_000+i),
					RequestId: fmt.Sprintf("file-a3h-%04d", i), EffectiveTime: when})
				if err != nil {
					t.Fatalf("CreateHold(file %d, %v): %v", i, when.AsTime(), err)
				}
				hold := res.GetHold()
				if hold.GetState() != pb.HoldState_HOLD_STATE_HELD || hold.GetAmount() != amount ||
					!hold.GetEffectiveTime().AsTime().Equal(when.AsTime()) {
					t.Fatalf("hold of file %d = %v, want %d HELD from %v", i, hold, amount, when.AsTime())
				}
				holds = append(holds, hold)
				heldTotal += amount
			}
		}
		type event struct {
			when *timestamppb.Timestamp
			do   func()
		}
		var events []event
		for _, c := range seed.Committees {
			events = append(events, event{c.Decided, func() { decide(c) }})
		}
		for g, when := range filed {
			events = append(events, event{when, func() { file(g) }})
		}
		slices.SortStableFunc(events, func(a, b event) int { return a.when.AsTime().Compare(b.when.AsTime()) })
		for _, e := range events {
			e.do()
		}
		if len(holds) != len(filed)*filesPerGroup {
			t.Fatalf("%d holds filed, want %d", len(holds), len(filed)*filesPerGroup)
		}
		sum := func(envelope string, from, to int) int64 {
			var s int64
			for _, a := range amounts[envelope][from:to] {
				s += a
			}
			return s
		}

		// The second call's rules, in force from 20 September 2021: recorded today, they keep
		// their date, since nothing recorded on the fund and its descendants (awards and holds,
		// up to 16 September) took effect after it.
		setRules("envelopes/fund", "appel-2", "rules-appel-2-fund", ruleSet(proto.Int64(7500), nil), date(2021, 9, 20))
		setRules("envelopes/axis-2-national", "appel-2", "rules-appel-2-national", ruleSet(nil, proto.Int64(300_000)), date(2021, 9, 20))
		recordedBeforeCall2, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund"})
		if err != nil {
			t.Fatal(err)
		}

		commit := func(envelope, project string, amount, cost, population int64, effective *timestamppb.Timestamp) (*pb.CommitResponse, error) {
			return h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: envelope, Beneficiary: "siren:" + project,
				Project: project, Amount: amount, EligibleCost: givenIfNonZero(cost), Territory: "insee:" + project,
				Population: givenIfNonZero(population), RequestId: fmt.Sprintf("%s-%s", project, effective.AsTime().Format(time.DateOnly)),
				EffectiveTime: effective})
		}
		refusedBy := func(err error, rule, call string) {
			t.Helper()
			code, info := errorInfo(t, err)
			if code != codes.FailedPrecondition || info.GetReason() != "POLICY_VIOLATION" ||
				info.GetMetadata()["rule"] != rule || info.GetMetadata()["call"] != call {
				t.Fatalf("got %v %s %v, want POLICY_VIOLATION of %s under %s", code, info.GetReason(), info.GetMetadata(), rule, call)
			}
		}
		// A metropolis of 400,000 inhabitants decided on 10 September 2021 falls under the first
		// call; decided on 15 October, under the second. So does 70 % of a project's cost.
		_, err = commit("envelopes/axis-2-national", "metropole-400k", 50*million/10, 100*million/10, 400_000, date(2021, 9, 10))
		refusedBy(err, "min_population", "appel-1")
		_, err = commit("envelopes/axis-1", "outil-70", 70_000_000, 100_000_000, 0, date(2021, 9, 19))
		refusedBy(err, "max_funding_share", "appel-1")
		if _, err := commit("envelopes/axis-2-national", "metropole-400k", 50*million/10, 100*million/10, 400_000, date(2021, 10, 15)); err != nil {
			t.Fatalf("the metropolis under the second call: %v", err)
		}
		outil70, err := commit("envelopes/axis-1", "outil-70", 70_000_000, 100_000_000, 0, date(2021, 10, 15))
		if err != nil {
			t.Fatalf("70 %% under the second call: %v", err)
		}
		awards["axis-1"] = append(awards["axis-1"], outil70.GetCommitment())
		// An award dated before the envelope's latest effective time (15 October) is refused: it
		// could make axis 1 negative at a past instant.
		_, err = commit("envelopes/axis-1", "late-decision", 1_000_000, 2_000_000, 0, date(2021, 10, 1))
		if code, info := errorInfo(t, err); code != codes.FailedPrecondition || info.GetReason() != "EFFECTIVE_TIME_BEFORE_LATEST" {
			t.Fatalf("an award backdated before axis 1's latest: %v %s, want EFFECTIVE_TIME_BEFORE_LATEST", code, info.GetReason())
		}

		// The selection of December 2021, effective 15 December (under the second call's rules,
		// recorded after them): of the 1,200 files still held, one in four is funded (300), one in
		// three of those at 80 % of the amount held, the rest of which returns to axis 3's
		// available amount; the other 900 are cancelled, their whole amount returned.
		selected := date(2021, 12, 15)
		axis3, err := h.envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: "envelopes/axis-3"})
		if err != nil {
			t.Fatal(err)
		}
		available := axis3.GetEnvelope().GetAvailable()
		var confirmedTotal int64
		confirmedCount := 0
		for i, hold := range holds {
			var env *pb.Envelope
			var returned int64
			if i%4 == 0 {
				amount := hold.GetAmount()
				if i%12 == 0 {
					amount = hold.GetAmount() * 8 / 10
				}
				res, err := h.commitments.ConfirmHold(ctx, &pb.ConfirmHoldRequest{Hold: hold.GetName(), Amount: amount,
					RequestId: fmt.Sprintf("selection-a3h-%04d", i), EffectiveTime: selected})
				if err != nil {
					t.Fatalf("ConfirmHold(file %d): %v", i, err)
				}
				c := res.GetCommitment()
				if c.GetAmount() != amount || res.GetHold().GetState() != pb.HoldState_HOLD_STATE_CONFIRMED ||
					res.GetHold().GetConfirmedAmount() != amount || res.GetHold().GetCommitment() != c.GetName() ||
					c.GetProject() != hold.GetProject() || !c.GetEffectiveTime().AsTime().Equal(selected.AsTime()) {
					t.Fatalf("ConfirmHold(file %d) = %v, want a commitment of %d effective %v", i, res, amount, selected.AsTime())
				}
				awards["axis-3"] = append(awards["axis-3"], c)
				confirmedTotal += amount
				confirmedCount++
				env, returned = res.GetEnvelope(), hold.GetAmount()-amount
			} else {
				res, err := h.commitments.CancelHold(ctx, &pb.CancelHoldRequest{Hold: hold.GetName(),
					Reason: "dossier non retenu par le comité de sélection", RequestId: fmt.Sprintf("selection-a3h-%04d", i),
					EffectiveTime: selected})
				if err != nil {
					t.Fatalf("CancelHold(file %d): %v", i, err)
				}
				if res.GetHold().GetState() != pb.HoldState_HOLD_STATE_CANCELLED || res.GetHold().GetCancelReason() == "" {
					t.Fatalf("CancelHold(file %d) = %v", i, res)
				}
				env, returned = res.GetEnvelope(), hold.GetAmount()
			}
			if env.GetAvailable() != available+returned {
				t.Fatalf("file %d: axis 3 available %d after the selection, want %d + %d returned", i, env.GetAvailable(), available, returned)
			}
			available = env.GetAvailable()
		}
		if confirmedCount != 300 {
			t.Fatalf("%d files funded, want 300", confirmedCount)
		}
		for state, want := range map[pb.HoldState]int{pb.HoldState_HOLD_STATE_HELD: 0, pb.HoldState_HOLD_STATE_CONFIRMED: 300,
			pb.HoldState_HOLD_STATE_CANCELLED: 900} {
			list, err := h.commitments.ListHolds(ctx, &pb.ListHoldsRequest{Envelope: "envelopes/axis-3", State: state, PageSize: 1000})
			if err != nil || len(list.GetHolds()) != want || list.GetNextPageToken() != "" {
				t.Fatalf("ListHolds(axis-3, %v): %d holds, %v; want %d", state, len(list.GetHolds()), err, want)
			}
		}

		// Payments and closings of 2022-2024 (issue 13 §2), recorded today with their dates, on
		// axis 1's 45 awards and axis 3's first 100: an advance of 30 % on 15 March 2022; the
		// balance on 30 June 2023 for every other award; for the others, a last payment of half of
		// what remained on 30 June 2024, and the closing on 30 September 2024, which returns the
		// unpaid rest to the axis (engagé, décaissé, reste à payer).
		type money struct{ committed, paid, remaining int64 }
		yearEnd := map[int]map[string]money{} // year -> envelope -> figures expected at 31 December
		for _, year := range []int{2021, 2022, 2023, 2024} {
			yearEnd[year] = map[string]money{}
		}
		pay := func(c *pb.Commitment, amount int64, when *timestamppb.Timestamp, what string) {
			t.Helper()
			res, err := h.commitments.CreatePayment(ctx, &pb.CreatePaymentRequest{Parent: c.GetName(), Amount: amount,
				EffectiveTime: when, RequestId: what + "-" + c.GetProject()})
			if err != nil {
				t.Fatalf("%s of %s: %v", what, c.GetProject(), err)
			}
			if res.GetPayment().GetAmount() != amount {
				t.Fatalf("%s of %s paid %d, want %d", what, c.GetProject(), res.GetPayment().GetAmount(), amount)
			}
		}
		for _, axis := range []string{"axis-1", "axis-3"} {
			list := awards[axis]
			if axis == "axis-3" {
				list = list[:100]
			}
			var awarded int64
			for _, c := range awards[axis] {
				awarded += c.GetAmount()
			}
			byYear := map[int]money{2021: {awarded, 0, awarded}}
			m := byYear[2021]
			for _, c := range list {
				advance := c.GetAmount() * 3 / 10
				pay(c, advance, date(2022, 3, 15), "advance")
				m.paid += advance
			}
			m.remaining = m.committed - m.paid
			byYear[2022] = m
			for i, c := range list {
				if i%2 == 0 {
					balance := c.GetAmount() - c.GetAmount()*3/10
					pay(c, balance, date(2023, 6, 30), "balance")
					m.paid += balance
				}
			}
			m.remaining = m.committed - m.paid
			byYear[2023] = m
			for i, c := range list {
				if i%2 == 1 {
					rest := c.GetAmount() - c.GetAmount()*3/10
					pay(c, rest/2, date(2024, 6, 30), "last-payment")
					m.paid += rest / 2
					res, err := h.commitments.CloseCommitment(ctx, &pb.CloseCommitmentRequest{Commitment: c.GetName(),
						Reason: "project completed below its cost", RequestId: "close-" + c.GetProject(), EffectiveTime: date(2024, 9, 30)})
					if err != nil {
						t.Fatalf("closing %s: %v", c.GetProject(), err)
					}
					if res.GetReturned() != rest-rest/2 {
						t.Fatalf("closing %s returned %d, want %d", c.GetProject(), res.GetReturned(), rest-rest/2)
					}
					m.committed -= rest - rest/2
				}
			}
			m.remaining = m.committed - m.paid
			byYear[2024] = m
			for year, f := range byYear {
				yearEnd[year]["envelopes/"+axis] = f
			}
		}
		for _, year := range []int{2021, 2022, 2023, 2024} {
			res, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund", AsOfTime: date(year, 12, 31)})
			if err != nil {
				t.Fatalf("report as of %d-12-31: %v", year, err)
			}
			got := map[string]money{}
			for _, l := range res.GetEnvelopes() {
				got[l.GetEnvelope()] = money{l.GetTotal().GetCommitted(), l.GetTotal().GetPaid(), l.GetTotal().GetRemainingToPay()}
			}
			for name, want := range yearEnd[year] {
				if got[name] != want {
					t.Errorf("as of %d-12-31, %s: committed, paid, remaining to pay = %+v, want %+v", year, name, got[name], want)
				}
			}
			// The fund rolls up its axes: axis 2 was committed and not paid.
			a1, a2, a3 := got["envelopes/axis-1"], got["envelopes/axis-2"], got["envelopes/axis-3"]
			if fund := got["envelopes/fund"]; fund != (money{a1.committed + a2.committed + a3.committed, a1.paid + a3.paid,
				a1.remaining + a2.remaining + a3.remaining}) || a2.paid != 0 {
				t.Errorf("as of %d-12-31 the fund shows %+v, not the sum of its axes %+v %+v %+v", year, fund, a1, a2, a3)
			}
		}

		type figures struct{ awarded, count int64 }
		report := func(asOf, knownAt *timestamppb.Timestamp) map[string]figures {
			t.Helper()
			res, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund", AsOfTime: asOf, KnownAtTime: knownAt})
			if err != nil {
				t.Fatalf("report as of %v known at %v: %v", asOf.AsTime(), knownAt.AsTime(), err)
			}
			if asOf != nil && !res.GetAsOfTime().AsTime().Equal(asOf.AsTime()) {
				t.Errorf("report as of %v answers as of %v", asOf.AsTime(), res.GetAsOfTime().AsTime())
			}
			out := map[string]figures{}
			for _, l := range res.GetEnvelopes() {
				tot := l.GetTotal()
				out[l.GetEnvelope()] = figures{tot.GetAwarded(), tot.GetAwardCount()}
			}
			return out
		}
		check := func(what string, got map[string]figures, want map[string]figures) {
			t.Helper()
			for name, w := range want {
				if got[name] != w {
					t.Errorf("%s: %s awarded %d in %d awards, want %d in %d", what, name, got[name].awarded, got[name].count, w.awarded, w.count)
				}
			}
		}
		axis3ByJune := sum("axis-3", 0, 200)
		check("as of 30 June 2021", report(date(2021, 6, 30), nil), map[string]figures{
			"envelopes/axis-1":               {1_330_000_000, 44},
			"envelopes/axis-2-national":      {1_310_000_000, 75},
			"envelopes/axis-2-franceconnect": {52_000_000, 104},
			"envelopes/axis-2":               {1_362_000_000, 179},
			"envelopes/axis-3":               {axis3ByJune, 200},
			"envelopes/fund":                 {1_330_000_000 + 1_362_000_000 + axis3ByJune, 423},
		})
		// 8 October 2021: 500 axis-3 projects funded for 9.7 M€, the other axes' first wave.
		firstWave := map[string]figures{
			"envelopes/axis-1":               {1_330_000_000, 44},
			"envelopes/axis-2-national":      {1_310_000_000, 75},
			"envelopes/axis-2-franceconnect": {52_000_000, 104},
			"envelopes/axis-2":               {1_362_000_000, 179},
			"envelopes/axis-3":               {970_000_000, 500},
			"envelopes/fund":                 {3_662_000_000, 723},
		}
		check("as of 8 October 2021", report(date(2021, 10, 8), nil), firstWave)
		// What holds still HELD reserve, as of a date: rolled up, the fund's is axis 3's.
		held := func(asOf *timestamppb.Timestamp) map[string]int64 {
			t.Helper()
			res, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund", AsOfTime: asOf})
			if err != nil {
				t.Fatalf("report as of %v: %v", asOf.AsTime(), err)
			}
			out := map[string]int64{}
			for _, l := range res.GetEnvelopes() {
				out[l.GetEnvelope()] = l.GetTotal().GetHeld()
			}
			return out
		}
		checkHeld := func(what string, got map[string]int64, want int64) {
			t.Helper()
			for _, name := range []string{"envelopes/axis-3", "envelopes/fund"} {
				if got[name] != want {
					t.Errorf("%s: %s held %d, want %d", what, name, got[name], want)
				}
			}
			for _, name := range []string{"envelopes/axis-1", "envelopes/axis-2"} {
				if got[name] != 0 {
					t.Errorf("%s: %s held %d, want 0", what, name, got[name])
				}
			}
		}
		// On 8 October 2021 the 1,200 files were all under review.
		checkHeld("as of 8 October 2021", held(date(2021, 10, 8)), heldTotal)
		// 31 December 2021 (the README's example): the two awards of the second call and the 300
		// files funded in December too; nothing held any more.
		check("as of 31 December 2021", report(date(2021, 12, 31), nil), map[string]figures{
			"envelopes/axis-1":          {1_330_000_000 + 70_000_000, 45},
			"envelopes/axis-2-national": {1_310_000_000 + 5*million, 76},
			"envelopes/axis-3":          {970_000_000 + confirmedTotal, 800},
			"envelopes/fund":            {3_662_000_000 + 70_000_000 + 5*million + confirmedTotal, 1025},
		})
		checkHeld("as of 31 December 2021", held(date(2021, 12, 31)), 0)
		// As the ledger knew it before the second call's awards were recorded.
		check("as of 31 December 2021, known before the second call's awards", report(date(2021, 12, 31), recordedBeforeCall2.GetKnownAtTime()), firstWave)
		// Before the fund was announced, there was no fund.
		_, err = reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund", AsOfTime: date(2020, 12, 31)})
		if code, info := errorInfo(t, err); code != codes.NotFound || info.GetReason() != "ENVELOPE_NOT_FOUND" {
			t.Fatalf("the fund as of 2020: %v %s, want ENVELOPE_NOT_FOUND", code, info.GetReason())
		}

		// The open-data export of the replay (issue 15 §1): every column rule, and the amounts to
		// the cent against the funding report, at the year ends.
		checkSeedExport(t, h, awards)

		v, err := pb.NewAuditServiceClient(h.conn).VerifyLedger(ctx, &pb.VerifyLedgerRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if len(v.GetDiscrepancies()) != 0 {
			t.Fatalf("VerifyLedger: %v", v.GetDiscrepancies())
		}
	})
}

// TestReportPagesPinBothTimes: the pages of one report are computed at the first page's
// effective date and recorded horizon, so an envelope backdated into the report's date while a
// client pages through it neither appears on a later page nor shifts one (AIP-158: no skipped or
// repeated item).
func TestReportPagesPinBothTimes(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		h := start(t, database)
		ctx := context.Background()
		reports := pb.NewReportServiceClient(h.conn)
		for _, id := range []string{"fund", "axis-a", "axis-c"} {
			req := &pb.CreateEnvelopeRequest{EnvelopeId: id, Allocation: 10 * million, RequestId: id, EffectiveTime: date(2021, 1, 15)}
			if id != "fund" {
				req.Parent, req.Allocation = "envelopes/fund", million
			}
			if _, err := h.envelopes.CreateEnvelope(ctx, req); err != nil {
				t.Fatal(err)
			}
		}
		first, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund", PageSize: 2,
			AsOfTime: date(2021, 12, 31)})
		if err != nil {
			t.Fatal(err)
		}
		// Recorded now, dated 1 February 2021: in the report as of 31 December 2021 from now on,
		// and between axis-a and axis-c in name order.
		if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "axis-b", Parent: "envelopes/fund",
			Allocation: 1, RequestId: "axis-b", EffectiveTime: date(2021, 2, 1)}); err != nil {
			t.Fatal(err)
		}
		second, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund", PageSize: 2,
			AsOfTime: date(2021, 12, 31), PageToken: first.GetNextPageToken()})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, r := range append(first.GetEnvelopes(), second.GetEnvelopes()...) {
			names = append(names, r.GetEnvelope())
		}
		if fmt.Sprint(names) != "[envelopes/fund envelopes/axis-a envelopes/axis-c]" {
			t.Errorf("pages = %v, want the report as the first page knew it", names)
		}
		if !second.GetKnownAtTime().AsTime().Equal(first.GetKnownAtTime().AsTime()) {
			t.Errorf("second page known at %v, the first at %v", second.GetKnownAtTime().AsTime(), first.GetKnownAtTime().AsTime())
		}
		// A new report, as of the same date, counts it.
		now, err := reports.GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund", AsOfTime: date(2021, 12, 31)})
		if err != nil {
			t.Fatal(err)
		}
		if len(now.GetEnvelopes()) != 4 {
			t.Errorf("the report as of 31 December 2021 now has %d envelopes, want 4", len(now.GetEnvelopes()))
		}
	})
}

// TestAwardWindowKeptToTheMicrosecond protects docs/dates.md's "every time is kept to the
// microsecond" for the bounds of an award window: a window opening at .0000005 s is kept as
// opening at the whole second, as an award's time is, so that an award sent at .0000007 s (kept
// as the whole second) is in the window. Kept to the nanosecond, the bound refused it.
func TestAwardWindowKeptToTheMicrosecond(t *testing.T) {
	t.Parallel()
	h := start(t, testdb.SQLite(t))
	ctx := context.Background()
	opens := time.Date(2021, 7, 1, 0, 0, 0, 0, time.UTC)
	if _, err := h.envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "call", Allocation: million, RequestId: "call",
		EffectiveTime: timestamppb.New(time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))}); err != nil {
		t.Fatal(err)
	}
	res, err := h.envelopes.SetEnvelopeRules(ctx, &pb.SetEnvelopeRulesRequest{Envelope: "envelopes/call", Call: "appel-1", RequestId: "window",
		Rules: &pb.FundingRules{AwardWindow: &pb.AwardWindow{StartTime: timestamppb.New(opens.Add(500))}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := res.GetRuleSet().GetRules().GetAwardWindow().GetStartTime().AsTime(); !got.Equal(opens) {
		t.Errorf("the window opens at %s, want %s (kept to the microsecond)", got.Format(time.RFC3339Nano), opens.Format(time.RFC3339Nano))
	}
	award := func(id string, at time.Time) error {
		_, err := h.commitments.Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/call", Beneficiary: "b", Project: id, Amount: 1,
			RequestId: id, EffectiveTime: timestamppb.New(at)})
		return err
	}
	if err := award("in", opens.Add(700)); err != nil {
		t.Errorf("an award at %s, in the window once kept: %v", opens.Add(700).Format(time.RFC3339Nano), err)
	}
	if err := award("before", opens.Add(-time.Microsecond)); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("an award a microsecond before the window: %v, want refused", err)
	}
}
