package server_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

// harness is a real ledgerd: a ledger on a real database behind a gRPC server on a loopback TCP
// socket, and clients connected to it.
type harness struct {
	ledger      *ledger.Ledger
	conn        *grpc.ClientConn
	envelopes   pb.EnvelopeServiceClient
	commitments pb.CommitmentServiceClient
	journal     pb.JournalServiceClient
}

func start(t *testing.T, database string) *harness {
	t.Helper()
	return startWith(t, database, ledger.Config{}, server.Config{})
}

// startWith serves a ledger opened with lcfg (its TxTimeout testdb.TxTimeout unless set).
func startWith(t *testing.T, database string, lcfg ledger.Config, scfg server.Config) *harness {
	t.Helper()
	if lcfg.TxTimeout == 0 {
		lcfg.TxTimeout = testdb.TxTimeout
	}
	l, err := ledger.Open(context.Background(), database, lcfg)
	if err != nil {
		t.Fatalf("opening ledger: %v", err)
	}
	t.Cleanup(l.Close)
	addr, _ := serve(t, l, scfg)
	conn := dialPlain(t, addr)
	return &harness{
		ledger:      l,
		conn:        conn,
		envelopes:   pb.NewEnvelopeServiceClient(conn),
		commitments: pb.NewCommitmentServiceClient(conn),
		journal:     pb.NewJournalServiceClient(conn),
	}
}

// serve serves l with scfg on a loopback TCP port until the test ends, and returns the address.
func serve(t *testing.T, l *ledger.Ledger, scfg server.Config) (string, *server.Server) {
	t.Helper()
	if scfg.Logger == nil {
		scfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := server.New(l, scfg)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(lis) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return lis.Addr().String(), srv
}

// dialPlain connects to addr without TLS, until the test ends.
func dialPlain(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// errorInfo returns the code and the ErrorInfo of a failed call, failing the test if the error
// carries no ErrorInfo in our domain, or one whose reason the contract's ErrorReason enum lacks:
// every test that meets an error checks that the contract lists it.
func errorInfo(t *testing.T, err error) (codes.Code, *errdetails.ErrorInfo) {
	t.Helper()
	if err == nil {
		t.Fatal("call succeeded, want an error")
	}
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			if info.GetDomain() != server.ErrorDomain {
				t.Errorf("ErrorInfo domain = %q, want %q", info.GetDomain(), server.ErrorDomain)
			}
			if _, ok := pb.ErrorReason_value["ERROR_REASON_"+info.GetReason()]; !ok {
				t.Errorf("ErrorInfo reason %q is not in the ErrorReason enum", info.GetReason())
			}
			return st.Code(), info
		}
	}
	t.Fatalf("error %v carries no ErrorInfo", err)
	return 0, nil
}

// badRequestFields returns the fields named by the BadRequest detail of err.
func badRequestFields(err error) []string {
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	return fields
}

// journalSize counts every journal entry, page by page.
func (h *harness) journalSize(t *testing.T) int {
	t.Helper()
	n, token := 0, ""
	for {
		resp, err := h.journal.ListJournalEntries(context.Background(),
			&pb.ListJournalEntriesRequest{PageSize: 1000, PageToken: token})
		if err != nil {
			t.Fatalf("ListJournalEntries: %v", err)
		}
		n += len(resp.GetJournalEntries())
		if token = resp.GetNextPageToken(); token == "" {
			return n
		}
	}
}

// verify fails the test if the ledger's auditor finds any broken invariant.
func (h *harness) verify(t *testing.T) {
	t.Helper()
	rep, err := h.ledger.Verify(context.Background())
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	for _, d := range rep.Discrepancies {
		t.Errorf("ledger invariant broken: %s", d)
	}
}

const (
	million = 100_000_000 // one million euros, in cents
)

// buildFund creates the France Relance fund "Transformation numérique des collectivités
// territoriales": 88 M€ and its three axes of 30, 24 and 34 M€.
func (h *harness) buildFund(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	steps := []*pb.CreateEnvelopeRequest{
		{EnvelopeId: "fund", DisplayName: "Transformation numérique des collectivités territoriales", Allocation: 88 * million, RequestId: "fund"},
		{EnvelopeId: "axis-1", Parent: "envelopes/fund", DisplayName: "Axe 1 - outils numériques communs", Allocation: 30 * million, RequestId: "axis-1"},
		{EnvelopeId: "axis-2", Parent: "envelopes/fund", DisplayName: "Axe 2 - projets d'envergure", Allocation: 24 * million, RequestId: "axis-2"},
		{EnvelopeId: "axis-3", Parent: "envelopes/fund", DisplayName: "Axe 3 - projets locaux", Allocation: 34 * million, RequestId: "axis-3"},
	}
	for _, req := range steps {
		if _, err := h.envelopes.CreateEnvelope(ctx, req); err != nil {
			t.Fatalf("CreateEnvelope(%s): %v", req.GetEnvelopeId(), err)
		}
	}
}
