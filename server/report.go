package server

import (
	"bytes"
	"context"
	"sort"
	"strconv"
	"strings"
	"time"

	"buf.build/go/protovalidate"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/opendata"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// This file serves the funding rules (EnvelopeService.SetEnvelopeRules and GetEnvelopeRules) and
// the funding report (ReportService).

func (s *envelopeService) SetEnvelopeRules(ctx context.Context, req *pb.SetEnvelopeRulesRequest) (*pb.SetEnvelopeRulesResponse, error) {
	// 0001-01-01T00:00:00Z reads as unset (at once), as it always did: refusing it now would
	// refuse the retry of a request recorded with it (the proto says so).
	effective, err := timeOf("effective_time", req.GetEffectiveTime())
	if err != nil {
		return nil, toStatus(err)
	}
	rules, err := rulesFromPB(req.GetRules())
	if err != nil {
		return nil, toStatus(err)
	}
	res, err := s.ledger.SetRules(ctx, ledger.SetRules{
		RequestID:     req.GetRequestId(),
		Caller:        callerFrom(ctx),
		EnvelopeID:    id(req.GetEnvelope(), "envelopes"),
		Call:          req.GetCall(),
		EffectiveTime: effective,
		Rules:         rules,
		ETag:          req.GetEtag(),
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.SetEnvelopeRulesResponse{RuleSet: ruleSetPB(&res.RuleSet), JournalEntry: ledger.EntryName(res.EntryID),
		Etag: res.ETag}, nil
}

func (s *envelopeService) GetEnvelopeRules(ctx context.Context, req *pb.GetEnvelopeRulesRequest) (*pb.GetEnvelopeRulesResponse, error) {
	at, err := timeOf("time", req.GetTime())
	if err != nil {
		return nil, toStatus(err)
	}
	// The token names the last rule set returned by its (effective time, id), the order of the
	// list: a rule set recorded between two pages with an earlier effective time is not returned
	// by the later page, and none is skipped or repeated.
	filter := req.GetEnvelope() + "\x00" + timeKey(req.GetTime())
	after, err := decodePageToken(req.GetPageToken(), filter)
	if err != nil {
		return nil, toStatus(err)
	}
	get := s.ledger.GetRules
	if req.GetTime() != nil {
		get = s.ledger.GetRulesAt // at exactly the time given, even 0001-01-01T00:00:00Z
	}
	res, err := get(ctx, id(req.GetEnvelope(), "envelopes"), at)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.GetEnvelopeRulesResponse{Etag: res.ETag}
	sets := res.RuleSets
	if after != "" {
		sets = sets[sort.Search(len(sets), func(i int) bool { return ruleSetKey(&sets[i]) > after }):]
	}
	if limit := pageLimit(req.GetPageSize(), maxPageSize); len(sets) > limit {
		sets = sets[:limit]
		out.NextPageToken = encodePageToken(ruleSetKey(&sets[limit-1]), filter)
	}
	for i := range sets {
		out.RuleSets = append(out.RuleSets, ruleSetPB(&sets[i]))
	}
	e := res.Effective
	eff := &pb.EffectiveRules{Time: timestamppb.New(res.At)}
	if e.MaxFundingShareSet != nil {
		eff.MaxFundingShareBps = &e.MaxFundingShareBPS
		eff.MaxFundingShareRuleSet = ledger.RuleSetName(e.MaxFundingShareSet.EnvelopeID, e.MaxFundingShareSet.ID)
	}
	if e.MinPopulationSet != nil {
		eff.MinPopulation = &e.MinPopulation
		eff.MinPopulationRuleSet = ledger.RuleSetName(e.MinPopulationSet.EnvelopeID, e.MinPopulationSet.ID)
	}
	if e.AwardWindowSet != nil {
		eff.AwardWindow = windowPB(e.AwardWindow)
		eff.AwardWindowRuleSet = ledger.RuleSetName(e.AwardWindowSet.EnvelopeID, e.AwardWindowSet.ID)
	}
	out.EffectiveRules = eff
	return out, nil
}

// ruleSetKey orders rule sets as the ledger lists them, by effective time then id, as a string:
// the time in UTC at a fixed width (RFC 3339 with nine decimals, years 0001 to 9999), then the id.
func ruleSetKey(rs *ledger.RuleSet) string {
	return rs.EffectiveFrom.UTC().Format("2006-01-02T15:04:05.000000000Z") + " " + rs.ID
}

func rulesFromPB(r *pb.FundingRules) (ledger.Rules, error) {
	var out ledger.Rules
	if r.MaxFundingShareBps != nil {
		v := r.GetMaxFundingShareBps()
		out.MaxFundingShareBPS = &v
	}
	if r.MinPopulation != nil {
		v := r.GetMinPopulation()
		out.MinPopulation = &v
	}
	if w := r.GetAwardWindow(); w != nil {
		start, err := givenTimeOf("rules.award_window.start_time", "for a window open since always", w.GetStartTime())
		if err != nil {
			return out, err
		}
		end, err := givenTimeOf("rules.award_window.end_time", "for a window that never closes", w.GetEndTime())
		if err != nil {
			return out, err
		}
		out.AwardWindow = &ledger.Window{Start: start.UTC(), End: end.UTC()}
	}
	return out, nil
}

func windowPB(w *ledger.Window) *pb.AwardWindow {
	if w == nil {
		return nil
	}
	out := &pb.AwardWindow{}
	if !w.Start.IsZero() {
		out.StartTime = timestamppb.New(w.Start)
	}
	if !w.End.IsZero() {
		out.EndTime = timestamppb.New(w.End)
	}
	return out
}

func ruleSetPB(rs *ledger.RuleSet) *pb.RuleSet {
	rules := &pb.FundingRules{MaxFundingShareBps: rs.Rules.MaxFundingShareBPS, MinPopulation: rs.Rules.MinPopulation,
		AwardWindow: windowPB(rs.Rules.AwardWindow)}
	return &pb.RuleSet{
		Name:          ledger.RuleSetName(rs.EnvelopeID, rs.ID),
		Envelope:      ledger.EnvelopeName(rs.EnvelopeID),
		Call:          rs.Call,
		EffectiveTime: timestamppb.New(rs.EffectiveFrom),
		Rules:         rules,
		Caller:        rs.Caller,
		CreateTime:    timestamppb.New(rs.CreatedAt),
	}
}

// reportService implements pb.ReportServiceServer over a ledger.
type reportService struct {
	pb.UnimplementedReportServiceServer
	ledger *ledger.Ledger
}

func (s *reportService) GetFundingReport(ctx context.Context, req *pb.GetFundingReportRequest) (*pb.GetFundingReportResponse, error) {
	asOf, err := timeOf("as_of_time", req.GetAsOfTime())
	if err != nil {
		return nil, toStatus(err)
	}
	// Every page of one report is computed as of the same time, the first page's, which the token
	// carries with the number of envelopes already returned: the report as of a time does not
	// change, so the pages neither skip nor repeat an envelope.
	knownAt, err := timeOf("known_at_time", req.GetKnownAtTime())
	if err != nil {
		return nil, toStatus(err)
	}
	// The filter of a report without known_at_time is the one tokens had before it existed.
	filter := req.GetEnvelope() + "\x00" + timeKey(req.GetAsOfTime())
	if req.GetKnownAtTime() != nil {
		filter += "\x00" + timeKey(req.GetKnownAtTime())
	}
	after, err := decodePageToken(req.GetPageToken(), filter)
	if err != nil {
		return nil, toStatus(err)
	}
	// As of exactly the times given, even 0001-01-01T00:00:00Z (the zero time).
	var asOfP, knownP *time.Time
	if req.GetAsOfTime() != nil {
		asOfP = &asOf
	}
	if req.GetKnownAtTime() != nil {
		knownP = &knownAt
	}
	offset := 0
	if after != "" {
		var (
			ok     bool
			pinned *time.Time
		)
		if offset, asOf, pinned, ok = parseReportKey(after); !ok {
			return nil, toStatus(&ledger.Error{Reason: ledger.ReasonInvalidPageToken, Field: "page_token",
				Message: "page_token was not returned by a previous call with the same filters"})
		}
		asOfP = &asOf
		if pinned != nil {
			knownP = pinned
		}
	}
	rep, err := s.ledger.ReportKnown(ctx, id(req.GetEnvelope(), "envelopes"), asOfP, knownP)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.GetFundingReportResponse{AsOfTime: reportTime(req.GetAsOfTime(), rep.AsOf), KnownAtTime: reportTime(req.GetKnownAtTime(), rep.KnownAt)}
	lines := rep.Lines[min(offset, len(rep.Lines)):]
	if limit := pageLimit(req.GetPageSize(), maxPageSize); len(lines) > limit {
		lines = lines[:limit]
		// Every page is computed as of the first one's effective date and recorded horizon.
		out.NextPageToken = encodePageToken(reportKey(offset+limit, rep.AsOf, rep.KnownAt), filter)
	}
	for _, l := range lines {
		parent := ""
		if l.ParentID != "" {
			parent = ledger.EnvelopeName(l.ParentID)
		}
		out.Envelopes = append(out.Envelopes, &pb.EnvelopeReport{
			Envelope: ledger.EnvelopeName(l.EnvelopeID), Parent: parent, DisplayName: l.DisplayName,
			CurrencyCode: l.Currency, Depth: int32(l.Depth), Own: figuresPB(l.Own), Total: figuresPB(l.Total),
		})
	}
	return out, nil
}

// timeKey is a time of a request as part of a page token's filters; "" when unset.
func timeKey(ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	return ts.AsTime().Format(time.RFC3339Nano)
}

// reportKey is the position of a page of a report: how many envelopes came before it, and the
// report's time.
func reportKey(offset int, asOf, knownAt time.Time) string {
	return strconv.Itoa(offset) + "@" + asOf.UTC().Format(time.RFC3339Nano) + "@" + knownAt.UTC().Format(time.RFC3339Nano)
}

// parseReportKey reads a report's page key: its offset, effective date and recorded horizon
// (nil in a key made before known_at_time existed).
func parseReportKey(key string) (offset int, asOf time.Time, knownAt *time.Time, ok bool) {
	n, rest, found := strings.Cut(key, "@")
	offset, err := strconv.Atoi(n)
	if !found || err != nil || offset <= 0 {
		return 0, time.Time{}, nil, false
	}
	at, known, hasKnown := strings.Cut(rest, "@")
	if asOf, err = time.Parse(time.RFC3339Nano, at); err != nil {
		return 0, time.Time{}, nil, false
	}
	if hasKnown {
		k, err := time.Parse(time.RFC3339Nano, known)
		if err != nil {
			return 0, time.Time{}, nil, false
		}
		knownAt = &k
	}
	return offset, asOf, knownAt, true
}

func figuresPB(f ledger.Figures) *pb.ReportFigures {
	return &pb.ReportFigures{Allocation: f.Allocation, Awarded: f.Awarded, Committed: f.Committed,
		Released: f.Released, Available: f.Available, AwardCount: f.AwardCount, BeneficiaryCount: f.BeneficiaryCount,
		Paid: f.Paid, RemainingToPay: f.RemainingToPay, Held: f.Held}
}

// exportChunk is the most CSV bytes one message of ExportSubventions carries, and
// exportUnpublishableBatch the most unpublishable awards (about 1 KB each at most).
const (
	exportChunk              = 64 << 10
	exportUnpublishableBatch = 1000
)

// ExportSubventions streams the SCDL CSV of an envelope's awards (package opendata) in pieces of
// at most exportChunk bytes, then the awards that cannot be published in batches, then the
// summary. The export is read in one snapshot before the
// first message, so that a refusal (a bad option, an unknown envelope) comes as the call's
// status and never after part of a file.
func (s *reportService) ExportSubventions(req *pb.ExportSubventionsRequest, stream grpc.ServerStreamingServer[pb.ExportSubventionsResponse]) error {
	// The validation interceptor sees unary calls only.
	if err := protovalidate.Validate(req); err != nil {
		return validationStatus(err)
	}
	asOf, err := timeOf("as_of_time", req.GetAsOfTime())
	if err != nil {
		return toStatus(err)
	}
	var asOfP *time.Time
	if req.GetAsOfTime() != nil {
		asOfP = &asOf // as of exactly the time given, even 0001-01-01T00:00:00Z
	}
	opt := opendata.Options{Nature: req.GetNature(), NotificationUE: req.GetEuNotified(), DispositifAide: req.GetAidScheme(),
		ConditionsVersement: req.GetPaymentTerms(), PaymentPeriod: req.GetPaymentPeriod()}
	var csv bytes.Buffer
	sum, err := opendata.Export(stream.Context(), s.ledger, id(req.GetEnvelope(), "envelopes"), asOfP, opt, &csv)
	if err != nil {
		return toStatus(err)
	}
	for data := csv.Bytes(); len(data) > 0; {
		n := min(len(data), exportChunk)
		if err := stream.Send(&pb.ExportSubventionsResponse{Content: &pb.ExportSubventionsResponse_CsvData{CsvData: data[:n]}}); err != nil {
			return err
		}
		data = data[n:]
	}
	// The unpublishable awards in batches, each message well under gRPC's default 4 MiB.
	for list := sum.Unpublishable; len(list) > 0; {
		batch := &pb.UnpublishableAwards{}
		for _, u := range list[:min(len(list), exportUnpublishableBatch)] {
			a := &pb.UnpublishableAward{Commitment: u.Commitment, Envelope: u.Envelope, Amount: u.Amount}
			for _, p := range u.Problems {
				a.Problems = append(a.Problems, &pb.ColumnProblem{Column: p.Column, Reason: p.Reason})
			}
			batch.Awards = append(batch.Awards, a)
		}
		list = list[len(batch.Awards):]
		if err := stream.Send(&pb.ExportSubventionsResponse{Content: &pb.ExportSubventionsResponse_UnpublishableAwards{UnpublishableAwards: batch}}); err != nil {
			return err
		}
	}
	out := &pb.ExportSubventionsSummary{AsOfTime: timestamppb.New(sum.AsOf), TotalAmount: sum.Total,
		PublishedCount: int64(sum.Published), PublishedAmount: sum.PublishedAmount, UnpublishableAmount: sum.UnpublishableAmount,
		UnpublishableCount: int64(len(sum.Unpublishable))}
	return stream.Send(&pb.ExportSubventionsResponse{Content: &pb.ExportSubventionsResponse_Summary{Summary: out}})
}

// reportTime is a report's time t as answered: the time asked (even 0001-01-01T00:00:00Z), or else
// the latest time of the entries counted, unset when none was.
func reportTime(asked *timestamppb.Timestamp, t time.Time) *timestamppb.Timestamp {
	if asked == nil && t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}
