package server

import (
	"net/http"
	"net/http/httptest"
	"testing"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestReadOnlyHandlerStopsMutations protects the second guard of "mutations stay gRPC-only": behind
// the transcoders (whose schemas already hold the reads only), a call of any method outside
// HTTPRoutes is answered UNIMPLEMENTED and never reaches the gRPC server; the reads pass.
func TestReadOnlyHandlerStopsMutations(t *testing.T) {
	var reached []string
	h := readOnlyHandler{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = append(reached, r.URL.Path) })}
	for _, m := range []string{pb.EnvelopeService_CreateEnvelope_FullMethodName, pb.CommitmentService_Commit_FullMethodName,
		pb.CommitmentService_CreatePayment_FullMethodName, pb.AuditService_VerifyLedger_FullMethodName,
		pb.JournalService_WatchJournalEntries_FullMethodName, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("POST", m, nil))
		if rec.Header().Get("Grpc-Status") != "12" {
			t.Errorf("%s: grpc-status %q, want 12 (UNIMPLEMENTED)", m, rec.Header().Get("Grpc-Status"))
		}
	}
	if len(reached) != 0 {
		t.Errorf("mutations reached the gRPC server: %v", reached)
	}
	for _, r := range HTTPRoutes {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("POST", r.Method, nil))
	}
	if len(reached) != len(HTTPRoutes) {
		t.Errorf("%d of the %d reads reached the gRPC server", len(reached), len(HTTPRoutes))
	}
	// Every route is a read that every role may call.
	for _, r := range HTTPRoutes {
		if roles, ok := AllowedRoles(r.Method); !ok || len(roles) != len(Roles) {
			t.Errorf("%s is served over HTTP but not open to every role: %v", r.Method, roles)
		}
	}
}
