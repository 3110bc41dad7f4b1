package server

import (
	"context"
	"path/filepath"
	"testing"

	"buf.build/go/protovalidate"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// fuzzRPC is one RPC as the fuzz target drives it: a fresh request message, and the handler.
type fuzzRPC struct {
	method string
	newReq func() proto.Message
	call   func(ctx context.Context, req proto.Message) (any, error)
}

func fuzzRPCs(l *ledger.Ledger) []fuzzRPC {
	env, com, jnl := &envelopeService{ledger: l}, &commitmentService{ledger: l}, &journalService{ledger: l}
	return []fuzzRPC{
		{pb.CommitmentService_Commit_FullMethodName, func() proto.Message { return &pb.CommitRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) { return com.Commit(ctx, r.(*pb.CommitRequest)) }},
		{pb.CommitmentService_BatchCommit_FullMethodName, func() proto.Message { return &pb.BatchCommitRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return com.BatchCommit(ctx, r.(*pb.BatchCommitRequest))
			}},
		{pb.CommitmentService_Release_FullMethodName, func() proto.Message { return &pb.ReleaseRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return com.Release(ctx, r.(*pb.ReleaseRequest))
			}},
		{pb.EnvelopeService_CreateEnvelope_FullMethodName, func() proto.Message { return &pb.CreateEnvelopeRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return env.CreateEnvelope(ctx, r.(*pb.CreateEnvelopeRequest))
			}},
		{pb.EnvelopeService_MoveAllocation_FullMethodName, func() proto.Message { return &pb.MoveAllocationRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return env.MoveAllocation(ctx, r.(*pb.MoveAllocationRequest))
			}},
		{pb.EnvelopeService_GetEnvelope_FullMethodName, func() proto.Message { return &pb.GetEnvelopeRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return env.GetEnvelope(ctx, r.(*pb.GetEnvelopeRequest))
			}},
		{pb.EnvelopeService_ListEnvelopes_FullMethodName, func() proto.Message { return &pb.ListEnvelopesRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return env.ListEnvelopes(ctx, r.(*pb.ListEnvelopesRequest))
			}},
		{pb.CommitmentService_GetCommitment_FullMethodName, func() proto.Message { return &pb.GetCommitmentRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return com.GetCommitment(ctx, r.(*pb.GetCommitmentRequest))
			}},
		{pb.CommitmentService_ListCommitments_FullMethodName, func() proto.Message { return &pb.ListCommitmentsRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return com.ListCommitments(ctx, r.(*pb.ListCommitmentsRequest))
			}},
		{pb.JournalService_ListJournalEntries_FullMethodName, func() proto.Message { return &pb.ListJournalEntriesRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return jnl.ListJournalEntries(ctx, r.(*pb.ListJournalEntriesRequest))
			}},
		{pb.CommitmentService_CreatePayment_FullMethodName, func() proto.Message { return &pb.CreatePaymentRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return com.CreatePayment(ctx, r.(*pb.CreatePaymentRequest))
			}},
		{pb.CommitmentService_ListPayments_FullMethodName, func() proto.Message { return &pb.ListPaymentsRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return com.ListPayments(ctx, r.(*pb.ListPaymentsRequest))
			}},
		{pb.CommitmentService_CloseCommitment_FullMethodName, func() proto.Message { return &pb.CloseCommitmentRequest{} },
			func(ctx context.Context, r proto.Message) (any, error) {
				return com.CloseCommitment(ctx, r.(*pb.CloseCommitmentRequest))
			}},
	}
}

// FuzzRequestValidation feeds arbitrary bytes, decoded as the request of one of the ledger's RPCs,
// through the validation interceptor and the real handler, whose mapping to a ledger command and
// the ledger's own validation run in memory: the call's context is cancelled, so the first
// database statement fails at once and nothing is read or written. It protects the boundary
// between the API and the ledger:
//
//   - no input makes the interceptor, the mapping or the ledger's validation panic;
//   - a request refused by the .proto rules gets INVALID_ARGUMENT with an ErrorInfo (reason
//     INVALID_ARGUMENT) and a BadRequest, and never reaches the handler;
//   - a request accepted by the .proto rules maps to a ledger command that the ledger accepts
//     too (it reaches the database, here CANCELLED), or that the ledger refuses on a field with
//     INVALID_ARGUMENT or INVALID_PAGE_TOKEN, an ErrorInfo and a BadRequest naming the field;
//   - nothing else comes out: never INTERNAL, never a status without an ErrorInfo.
func FuzzRequestValidation(f *testing.F) {
	seeds := []proto.Message{
		&pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016", Project: "guichet", Amount: 30_000_000, RequestId: "award-1"},
		&pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 1, Description: "line\nbreak", RequestId: "r"},
		&pb.CommitRequest{Envelope: "envelopes/Axis", Beneficiary: "", Project: "p", Amount: -1, RequestId: "has space"},
		&pb.BatchCommitRequest{Envelope: "envelopes/axis-3", RequestId: "committee", AllOrNothing: true, Items: []*pb.BatchCommitItem{
			{Beneficiary: "commune:29019", Project: "ecole", Amount: 1_940_000}, {Beneficiary: "commune:35238", Project: "portail", Amount: 0}}},
		&pb.ReleaseRequest{Commitment: "commitments/0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e", Amount: 5, Reason: "cheaper", RequestId: "rel-1"},
		&pb.ReleaseRequest{Commitment: "commitments/------------------------------------", Amount: 5, Reason: "x", RequestId: "rel-2"},
		&pb.CreateEnvelopeRequest{EnvelopeId: "fund", DisplayName: "Transformation numérique", Allocation: 8_800_000_000, RequestId: "fund"},
		&pb.CreateEnvelopeRequest{EnvelopeId: "axis-1", Parent: "envelopes/fund", CurrencyCode: "EUR", Allocation: 1, RequestId: "a"},
		&pb.MoveAllocationRequest{Source: "envelopes/axis-3", Destination: "envelopes/axis-2", Amount: 100, Reason: "rebalancing", RequestId: "move-1"},
		&pb.MoveAllocationRequest{Source: "envelopes/axis-3", Destination: "envelopes/axis-3", Amount: 100, Reason: "self", RequestId: "move-2"},
		&pb.GetEnvelopeRequest{Name: "envelopes/axis-1"},
		&pb.ListEnvelopesRequest{Parent: "envelopes/fund", PageSize: 10, PageToken: "eyJ2IjoxLCJhIjoieCIsImYiOiIifQ"},
		&pb.GetCommitmentRequest{Name: "commitments/0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e"},
		&pb.ListCommitmentsRequest{Envelope: "envelopes/axis-1", Beneficiary: "siren:1", PageToken: "garbage"},
		&pb.ListJournalEntriesRequest{Commitment: "commitments/0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e", PageSize: 1000},
		&pb.CreatePaymentRequest{Parent: "commitments/0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e", Amount: 7_500_000, RequestId: "advance-1"},
		&pb.ListPaymentsRequest{Parent: "commitments/0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e", PageSize: 5000},
		&pb.CloseCommitmentRequest{Commitment: "commitments/0190f7a2-8f7b-7c1d-9b1e-3f4a5b6c7d8e", Reason: "completed", RequestId: "close-1"},
		&pb.CommitRequest{Envelope: "envelopes/axis-1", Beneficiary: "b", Project: "p", Amount: 1, RequestId: "pub",
			BeneficiarySiret: "21690123100012", BeneficiaryRna: "W691234567", Purpose: "objet"},
		&pb.CreateEnvelopeRequest{EnvelopeId: "axis-9", Parent: "envelopes/fund", Allocation: 1, RequestId: "gb",
			GrantingBodyName: "ANCT", GrantingBodySiret: "13001853500042"},
	}
	for _, seed := range seeds {
		raw, err := proto.Marshal(seed)
		if err != nil {
			f.Fatal(err)
		}
		for i, rpc := range fuzzRPCs(nil) {
			if rpc.newReq().ProtoReflect().Descriptor() == seed.ProtoReflect().Descriptor() {
				f.Add(uint8(i), raw)
			}
		}
	}
	l, err := ledger.Open(context.Background(), filepath.Join(f.TempDir(), "ledger.db"), ledger.Config{DisableBatching: true, TxTimeout: testdb.TxTimeout})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(l.Close)
	validator, err := protovalidate.New()
	if err != nil {
		f.Fatal(err)
	}
	intercept := validationInterceptor(validator)
	rpcs := fuzzRPCs(l)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		rpc := rpcs[int(which)%len(rpcs)]
		req := rpc.newReq()
		if err := proto.Unmarshal(data, req); err != nil {
			return // grpc-go refuses such bytes before any of our code runs (see TestBadInput)
		}
		validErr := validator.Validate(req)
		reached := false
		_, err := intercept(cancelled, req, &grpc.UnaryServerInfo{FullMethod: rpc.method},
			func(ctx context.Context, req any) (any, error) {
				reached = true
				return rpc.call(ctx, req.(proto.Message))
			})
		if err == nil {
			t.Fatalf("%s(%v) succeeded with a cancelled context", rpc.method, req)
		}
		st := status.Convert(err)
		var info *errdetails.ErrorInfo
		var bad *errdetails.BadRequest
		for _, d := range st.Details() {
			switch d := d.(type) {
			case *errdetails.ErrorInfo:
				info = d
			case *errdetails.BadRequest:
				bad = d
			}
		}
		if info == nil || info.GetDomain() != ErrorDomain {
			t.Fatalf("%s(%v): %v carries no ErrorInfo of %s", rpc.method, req, err, ErrorDomain)
		}
		if validErr != nil {
			if reached || st.Code() != codes.InvalidArgument || info.GetReason() != string(ledger.ReasonInvalidArgument) ||
				len(bad.GetFieldViolations()) == 0 {
				t.Fatalf("%s(%v) breaks the .proto rules (%v) but got %v (reason %s, handler reached %v)",
					rpc.method, req, validErr, err, info.GetReason(), reached)
			}
			return
		}
		if !reached {
			t.Fatalf("%s(%v) passes the .proto rules but never reached the handler: %v", rpc.method, req, err)
		}
		switch {
		case st.Code() == codes.Canceled:
			// The ledger accepted the command and went to the database.
		case st.Code() == codes.InvalidArgument && (info.GetReason() == string(ledger.ReasonInvalidArgument) ||
			info.GetReason() == string(ledger.ReasonInvalidPageToken)):
			if len(bad.GetFieldViolations()) == 0 || bad.GetFieldViolations()[0].GetField() == "" {
				t.Fatalf("%s(%v): the ledger refused it (%v) without naming the field", rpc.method, req, err)
			}
		default:
			t.Fatalf("%s(%v) passes the .proto rules, then got %v (reason %s)", rpc.method, req, err, info.GetReason())
		}
	})
}
