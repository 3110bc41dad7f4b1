package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/budgetledger/budgetledger/internal/seed"
	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger/opendata"
	"github.com/budgetledger/budgetledger/ledger/opendata/scdltest"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// export is what an ExportSubventions stream carried.
type export struct {
	csv           []byte
	unpublishable []*pb.UnpublishableAward
	summary       *pb.ExportSubventionsSummary
}

// exportSCDL calls ExportSubventions and returns the CSV (the pieces put together), the
// unpublishable awards and the summary; it fails the test when the messages come out of order
// (CSV, unpublishable awards, summary), a piece is larger than 64 KiB or a batch than 1000
// awards, or the stream ends without a summary.
func exportSCDL(t *testing.T, conn *grpc.ClientConn, req *pb.ExportSubventionsRequest) (export, error) {
	t.Helper()
	stream, err := pb.NewReportServiceClient(conn).ExportSubventions(context.Background(), req)
	if err != nil {
		return export{}, err
	}
	var (
		out export
		buf bytes.Buffer
	)
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return export{}, err
		}
		if out.summary != nil {
			t.Fatalf("a message after the summary: %v", msg)
		}
		switch c := msg.GetContent().(type) {
		case *pb.ExportSubventionsResponse_CsvData:
			if len(c.CsvData) > 64<<10 || out.unpublishable != nil {
				t.Fatalf("a piece of %d bytes (at most 64 KiB), after %d unpublishable awards (none)", len(c.CsvData), len(out.unpublishable))
			}
			buf.Write(c.CsvData)
		case *pb.ExportSubventionsResponse_UnpublishableAwards:
			if n := len(c.UnpublishableAwards.GetAwards()); n == 0 || n > 1000 {
				t.Fatalf("a batch of %d unpublishable awards, want 1 to 1000", n)
			}
			out.unpublishable = append(out.unpublishable, c.UnpublishableAwards.GetAwards()...)
		case *pb.ExportSubventionsResponse_Summary:
			out.summary = c.Summary
		default:
			t.Fatalf("an empty message: %v", msg)
		}
	}
	if out.summary == nil {
		t.Fatal("the stream ended without a summary")
	}
	if int(out.summary.GetUnpublishableCount()) != len(out.unpublishable) {
		t.Errorf("the summary counts %d unpublishable awards, the stream carried %d", out.summary.GetUnpublishableCount(), len(out.unpublishable))
	}
	out.csv = buf.Bytes()
	return out, nil
}

// summaryOf is the summary as package opendata has it, for scdltest.CheckAmounts.
func summaryOf(e export) opendata.Summary {
	s := e.summary
	out := opendata.Summary{Total: s.GetTotalAmount(), Published: int(s.GetPublishedCount()),
		PublishedAmount: s.GetPublishedAmount(), UnpublishableAmount: s.GetUnpublishableAmount()}
	for _, u := range e.unpublishable {
		out.Unpublishable = append(out.Unpublishable, opendata.Unpublishable{Commitment: u.GetCommitment(),
			Envelope: u.GetEnvelope(), Amount: u.GetAmount()})
	}
	return out
}

// checkExport checks an export's file against every rule of the schema and its amounts to the
// cent: the rows against the summary, and the summary's total against the funding report's
// committed total of the envelope as of the same time. It returns the rows (header first).
func checkExport(t *testing.T, conn *grpc.ClientConn, req *pb.ExportSubventionsRequest) ([]map[string]string, *pb.ExportSubventionsSummary) {
	t.Helper()
	e, err := exportSCDL(t, conn, req)
	if err != nil {
		t.Fatalf("ExportSubventions(%v): %v", req, err)
	}
	sum := e.summary
	rows, problems := scdltest.CheckRules(e.csv)
	for _, p := range problems {
		t.Errorf("export %v: %s", req, p)
	}
	if err := scdltest.CheckAmounts(e.csv, summaryOf(e)); err != nil {
		t.Errorf("export %v: %v", req, err)
	}
	for _, u := range e.unpublishable {
		if len(u.GetProblems()) == 0 || u.GetCommitment() == "" || u.GetEnvelope() == "" {
			t.Errorf("export %v: an unpublishable award without its name or problems: %v", req, u)
		}
	}
	rep, err := pb.NewReportServiceClient(conn).GetFundingReport(context.Background(),
		&pb.GetFundingReportRequest{Envelope: req.GetEnvelope(), AsOfTime: req.GetAsOfTime()})
	if err != nil {
		t.Fatal(err)
	}
	if committed := rep.GetEnvelopes()[0].GetTotal().GetCommitted(); sum.GetTotalAmount() != committed {
		t.Errorf("export %v: total %d, the funding report's committed %d", req, sum.GetTotalAmount(), committed)
	}
	if req.GetAsOfTime() != nil && !sum.GetAsOfTime().AsTime().Equal(req.GetAsOfTime().AsTime()) {
		t.Errorf("export %v: as of %v", req, sum.GetAsOfTime().AsTime())
	}
	return rows, sum
}

// checkSeedExport exports the France Relance replay at its year ends (TestFranceRelanceWithDates
// calls it once the replay is recorded) and checks every column rule and the amounts to the cent
// against the funding report; that awards without payments by the date are unpublishable unless
// the payment columns are given; and that conditionsVersement and datesPeriodeVersement follow
// the payments made by the date: the 30 % advance of March 2022 alone is "unique", the advance
// and the balance (or the last payment) "échelonné" over their dates; montant is net of what a
// closing returned.
func checkSeedExport(t *testing.T, h *harness, awards map[string][]*pb.Commitment) {
	t.Helper()
	fund := "envelopes/fund"
	byObjet := func(rows []map[string]string) map[string]map[string]string {
		out := map[string]map[string]string{}
		for _, r := range rows[1:] {
			out[r["objet"]] = r
		}
		return out
	}
	// 31 December 2021: 1,025 awards, none paid yet. Without payment columns, none can be
	// published; given them, all those with their publication fields (44 + 75 + 500) are.
	_, sum := checkExport(t, h.conn, &pb.ExportSubventionsRequest{Envelope: fund, AsOfTime: date(2021, 12, 31)})
	if sum.GetPublishedCount() != 0 || sum.GetUnpublishableCount() != 1025 {
		t.Errorf("as of 2021-12-31: %d published, %d not; want 0 and 1025", sum.GetPublishedCount(), sum.GetUnpublishableCount())
	}
	rows, sum := checkExport(t, h.conn, &pb.ExportSubventionsRequest{Envelope: fund, AsOfTime: date(2021, 12, 31),
		PaymentTerms: "échelonné", PaymentPeriod: "2022-01-01/2024-12-31"})
	if sum.GetPublishedCount() != 619 || sum.GetUnpublishableCount() != 406 {
		t.Errorf("as of 2021-12-31 with payment columns: %d published, %d not; want 619 and 406 (104 FranceConnect, 300 confirmed files, 2 single awards)",
			sum.GetPublishedCount(), sum.GetUnpublishableCount())
	}
	if r := byObjet(rows)["Projet a3-p000"]; r["dateConvention"] != "2021-05-06" || r["idAttribuant"] != seed.GrantingBodySIRET ||
		r["dispositifAide"] != "Transformation numérique des collectivités territoriales" || r["nomBeneficiaire"] != "Collectivité a3-000" {
		t.Errorf("as of 2021-12-31, a3-p000: %v", r)
	}
	// 31 December 2022: the advance paid on axis 1's 44 awards and axis 3's first 100.
	rows, sum = checkExport(t, h.conn, &pb.ExportSubventionsRequest{Envelope: fund, AsOfTime: date(2022, 12, 31)})
	if sum.GetPublishedCount() != 144 {
		t.Errorf("as of 2022-12-31: %d published, want 144", sum.GetPublishedCount())
	}
	for _, r := range rows[1:] {
		if r["conditionsVersement"] != "unique" || r["datesPeriodeVersement"] != "2022-03-15" {
			t.Errorf("as of 2022-12-31, one payment: %v", r)
		}
	}
	// 31 December 2024: advance and balance, or advance, last payment and closing.
	rows, sum = checkExport(t, h.conn, &pb.ExportSubventionsRequest{Envelope: fund, AsOfTime: date(2024, 12, 31)})
	if sum.GetPublishedCount() != 144 {
		t.Errorf("as of 2024-12-31: %d published, want 144", sum.GetPublishedCount())
	}
	got := byObjet(rows)
	for i, c := range awards["axis-1"][:44] {
		r := got[fmt.Sprintf("Projet a1-p%03d", i)]
		advance := c.GetAmount() * 3 / 10
		rest := c.GetAmount() - advance
		want, period := c.GetAmount(), "2022-03-15/2023-06-30"
		if i%2 == 1 {
			want, period = advance+rest/2, "2022-03-15/2024-06-30"
		}
		if r["montant"] != opendata.Euros(want) || r["conditionsVersement"] != "échelonné" || r["datesPeriodeVersement"] != period ||
			r["dateConvention"] != "2021-03-11" {
			t.Errorf("as of 2024-12-31, a1-p%03d: %v; want montant %s, échelonné over %s", i, r, opendata.Euros(want), period)
		}
	}
	// A subtree: axis 3 alone, under the fund's granting body.
	rows, _ = checkExport(t, h.conn, &pb.ExportSubventionsRequest{Envelope: "envelopes/axis-3", AsOfTime: date(2024, 12, 31)})
	if len(rows) != 101 || rows[1]["nomAttribuant"] != seed.GrantingBody {
		t.Errorf("axis 3 as of 2024-12-31: %d rows, first %v; want 100 under the fund's granting body", len(rows)-1, rows[1])
	}
}

// TestExportSubventions protects the RPC's contract over real gRPC on every engine: the CSV
// streamed is the golden file of the small programme, byte for byte, and the summary lists its
// unpublishable awards; bad input is refused with a precise status and reason before anything is
// sent, and the ledger is unchanged by it.
func TestExportSubventions(t *testing.T) {
	t.Parallel()
	testdb.Each(t, func(t *testing.T, database string) {
		h := start(t, database)
		scdltest.Build(t, h.ledger)
		asOf := timestamppb.New(mustEndOfDay(t, "2022-12-31"))
		e, err := exportSCDL(t, h.conn, &pb.ExportSubventionsRequest{Envelope: "envelopes/programme", AsOfTime: asOf})
		if err != nil {
			t.Fatal(err)
		}
		data, sum := e.csv, e.summary
		want, err := os.ReadFile(filepath.Join("..", "ledger", "opendata", "testdata", "programme.csv"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, want) {
			t.Errorf("the RPC's CSV differs from the golden file:\n%s", data)
		}
		if sum.GetPublishedCount() != 3 || sum.GetUnpublishableCount() != 2 || len(e.unpublishable) != 2 {
			t.Errorf("summary %v, want 3 published and 2 unpublishable", sum)
		}
		checkExport(t, h.conn, &pb.ExportSubventionsRequest{Envelope: "envelopes/programme", AsOfTime: asOf})

		before, err := h.journal.ListJournalEntries(context.Background(), &pb.ListJournalEntriesRequest{PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name   string
			req    *pb.ExportSubventionsRequest
			code   codes.Code
			reason string
		}{
			{"no envelope", &pb.ExportSubventionsRequest{}, codes.InvalidArgument, "INVALID_ARGUMENT"},
			{"a malformed name", &pb.ExportSubventionsRequest{Envelope: "programme"}, codes.InvalidArgument, "INVALID_ARGUMENT"},
			{"an unknown envelope", &pb.ExportSubventionsRequest{Envelope: "envelopes/nowhere"}, codes.NotFound, "ENVELOPE_NOT_FOUND"},
			{"before the programme", &pb.ExportSubventionsRequest{Envelope: "envelopes/programme", AsOfTime: date(2020, 12, 31)},
				codes.NotFound, "ENVELOPE_NOT_FOUND"},
			{"a date beyond 9999", &pb.ExportSubventionsRequest{Envelope: "envelopes/programme",
				AsOfTime: &timestamppb.Timestamp{Seconds: 253402300800}}, codes.InvalidArgument, "INVALID_ARGUMENT"},
			{"a nature the schema lacks", &pb.ExportSubventionsRequest{Envelope: "envelopes/programme", Nature: "subvention"},
				codes.InvalidArgument, "INVALID_ARGUMENT"},
			{"a nature twice", &pb.ExportSubventionsRequest{Envelope: "envelopes/programme", Nature: "aide en nature;aide en nature"},
				codes.InvalidArgument, "INVALID_ARGUMENT"},
			{"payment terms the schema lacks", &pb.ExportSubventionsRequest{Envelope: "envelopes/programme", PaymentTerms: "mensuel"},
				codes.InvalidArgument, "INVALID_ARGUMENT"},
			{"a period that is not one", &pb.ExportSubventionsRequest{Envelope: "envelopes/programme", PaymentPeriod: "2023"},
				codes.InvalidArgument, "INVALID_ARGUMENT"},
			{"a date that does not exist", &pb.ExportSubventionsRequest{Envelope: "envelopes/programme", PaymentPeriod: "2023-02-30"},
				codes.InvalidArgument, "INVALID_ARGUMENT"},
		} {
			data, _, err := exportSCDLRaw(h.conn, tc.req)
			if code, info := errorInfo(t, err); code != tc.code || info.GetReason() != tc.reason {
				t.Errorf("%s: %v %s, want %v %s", tc.name, code, info.GetReason(), tc.code, tc.reason)
			}
			if len(data) != 0 {
				t.Errorf("%s: %d bytes of CSV sent before the refusal", tc.name, len(data))
			}
		}
		after, err := h.journal.ListJournalEntries(context.Background(), &pb.ListJournalEntriesRequest{PageSize: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if len(after.GetJournalEntries()) != len(before.GetJournalEntries()) {
			t.Errorf("the journal grew from %d to %d entries", len(before.GetJournalEntries()), len(after.GetJournalEntries()))
		}
	})
}

// exportSCDLRaw reads an ExportSubventions stream to its end without judging it: the CSV
// received and the error that ended it (nil at a clean end).
func exportSCDLRaw(conn *grpc.ClientConn, req *pb.ExportSubventionsRequest) ([]byte, *pb.ExportSubventionsSummary, error) {
	stream, err := pb.NewReportServiceClient(conn).ExportSubventions(context.Background(), req)
	if err != nil {
		return nil, nil, err
	}
	var buf bytes.Buffer
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return buf.Bytes(), nil, nil
		}
		if err != nil {
			return buf.Bytes(), nil, err
		}
		buf.Write(msg.GetCsvData())
	}
}

func mustEndOfDay(t *testing.T, date string) time.Time {
	t.Helper()
	d, err := opendata.EndOfDay(date)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
