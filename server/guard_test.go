package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

// refusedCount reads grpc_server_refused_calls_total for one method and reason.
func refusedCount(t *testing.T, reg *prometheus.Registry, method, reason string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "grpc_server_refused_calls_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["grpc_method"] == method && labels["reason"] == reason {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// TestCredentialCheckedBeforeTheBody protects "no work before authentication": a call without a
// credential is refused from its headers, before grpc-go decodes its body, so a body that cannot
// be decoded (invalid UTF-8 in a string field) is UNAUTHENTICATED — not the INVALID_ARGUMENT of a
// failed decoding — and the refusal is logged and counted.
func TestCredentialCheckedBeforeTheBody(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	reg := prometheus.NewRegistry()
	a := startAuth(t, server.Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), Registerer: reg})
	conn := dialPlain(t, a.addr)
	ctx := context.Background()
	body := wire(nil).str(1, "bad-\xff-utf8").varint(4, 100).str(5, "r1") // CreateEnvelope: envelope_id, allocation, request_id
	err := invokeRaw(ctx, conn, pb.EnvelopeService_CreateEnvelope_FullMethodName, body)
	code, info := errorInfo(t, err)
	if code != codes.Unauthenticated || info.GetReason() != "UNAUTHENTICATED" {
		t.Fatalf("unauthenticated call with an undecodable body: %v (reason %q), want UNAUTHENTICATED", err, info.GetReason())
	}
	// A role refused is counted under its own reason.
	if _, err := pb.NewEnvelopeServiceClient(conn).CreateEnvelope(bearer(ctx, a.tokens[server.RoleAuditor]),
		&pb.CreateEnvelopeRequest{EnvelopeId: "x", Allocation: 1, RequestId: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("CreateEnvelope as auditor: %v, want PERMISSION_DENIED", err)
	}
	// A method the server does not serve is counted as "unknown", whatever its name.
	if err := invokeRaw(ctx, conn, "/made.up/Method", nil); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("unknown method without credential: %v, want UNAUTHENTICATED", err)
	}
	if n := refusedCount(t, reg, "CreateEnvelope", "UNAUTHENTICATED"); n != 1 {
		t.Errorf("refused calls counted for CreateEnvelope/UNAUTHENTICATED = %v, want 1", n)
	}
	if n := refusedCount(t, reg, "CreateEnvelope", "PERMISSION_DENIED"); n != 1 {
		t.Errorf("refused calls counted for CreateEnvelope/PERMISSION_DENIED = %v, want 1", n)
	}
	if n := refusedCount(t, reg, "unknown", "UNAUTHENTICATED"); n != 1 {
		t.Errorf("refused calls counted for an unknown method = %v, want 1", n)
	}
	log := logs.String()
	for _, want := range []string{
		`msg="call refused" grpc.service=budgetledger.v1.EnvelopeService grpc.method=CreateEnvelope grpc.code=Unauthenticated reason=UNAUTHENTICATED`,
		`grpc.code=PermissionDenied reason=PERMISSION_DENIED`,
		`grpc.method_sent=/made.up/Method`,
	} {
		if !strings.Contains(log, want) {
			t.Errorf("the log has no %q:\n%s", want, log)
		}
	}
}

// reflectionStream opens a server reflection stream and returns a function that makes one
// request on it (list the services).
func reflectionStream(t *testing.T, ctx context.Context, a *authServer) (reflectionpb.ServerReflection_ServerReflectionInfoClient, func() error) {
	t.Helper()
	stream, err := reflectionpb.NewServerReflectionClient(dialPlain(t, a.addr)).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream, func() error {
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && err != io.EOF {
			return err
		}
		_, err := stream.Recv()
		return err
	}
}

// TestRateLimitPerStreamMessage protects the rate limit on long-lived streams: every request
// message on a stream is a call, so many reflection requests on one stream hit the limit as many
// calls would, and the stream ends RESOURCE_EXHAUSTED with the RATE_LIMITED reason.
func TestRateLimitPerStreamMessage(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	a := startAuth(t, server.Config{RateLimit: 0.001, RateBurst: 5, Registerer: reg}) // a token every 1,000 s
	_, call := reflectionStream(t, bearer(context.Background(), a.tokens[server.RoleAuditor]), a)
	var err error
	n := 0
	for ; n < 300 && err == nil; n++ {
		err = call()
	}
	if err == nil {
		t.Fatalf("300 reflection requests on one stream all passed a limit of 5 calls at once")
	}
	if n != 6 {
		t.Errorf("the stream was refused at request %d, want 6 (a burst of 5, and no token back within the test)", n)
	}
	checkRateLimited(t, err, "audrey")
	if got := refusedCount(t, reg, "ServerReflectionInfo", server.ReasonRateLimited); got != 1 {
		t.Errorf("rate-limited stream messages counted = %v, want 1", got)
	}
}

// TestRevokedTokenEndsOpenStream protects revocation on long-lived streams: once a reload of the
// tokens file drops a stream's token, the stream's next request is refused UNAUTHENTICATED (and
// the stream ends), while a stream whose token is kept goes on.
func TestRevokedTokenEndsOpenStream(t *testing.T) {
	t.Parallel()
	a := startAuth(t, server.Config{})
	ctx := context.Background()
	_, revoked := reflectionStream(t, bearer(ctx, a.tokens[server.RoleAuditor]), a)
	_, kept := reflectionStream(t, bearer(ctx, a.tokens[server.RoleService]), a)
	for _, call := range []func() error{revoked, kept} {
		if err := call(); err != nil {
			t.Fatalf("reflection before revocation: %v", err)
		}
	}
	// Revoke every token but the service's.
	var keep string
	for _, line := range strings.Split(readFile(t, a.file), "\n") {
		if strings.HasSuffix(line, " service") {
			keep = line + "\n"
		}
	}
	if err := os.WriteFile(a.file, []byte(keep), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	err := revoked()
	if code, info := errorInfo(t, err); code != codes.Unauthenticated || info.GetReason() != "UNAUTHENTICATED" {
		t.Errorf("a request on a stream whose token was revoked: %v, want UNAUTHENTICATED", err)
	}
	if err := kept(); err != nil {
		t.Errorf("a request on a stream whose token was kept: %v", err)
	}
	// Health watches need no credential and are not touched by a reload.
	watch, err := healthpb.NewHealthClient(dialPlain(t, a.addr)).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := watch.Recv(); err != nil {
		t.Errorf("health watch: %v", err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInternalErrorLoggedNotSent protects the rule of INTERNAL replies: the cause (here, a table
// the ledger needs was dropped behind its back) is in the server's log, with the method and the
// request id, and nowhere in the reply, which is "internal error" and an ErrorInfo.
func TestInternalErrorLoggedNotSent(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	database := testdb.SQLite(t)
	l, err := ledger.Open(context.Background(), database, ledger.Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	addr, _ := serve(t, l, server.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	envelopes := pb.NewEnvelopeServiceClient(dialPlain(t, addr))
	ctx := context.Background()
	if _, err := envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "fund", Allocation: 100, RequestId: "create-fund"}); err != nil {
		t.Fatal(err)
	}
	tamper(t, database, "ALTER TABLE envelopes RENAME TO envelopes_hidden_by_the_test")
	_, err = envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "axis-1", Parent: "envelopes/fund", Allocation: 10, RequestId: "req-internal-7"})
	code, info := errorInfo(t, err)
	if code != codes.Internal || info.GetReason() != "INTERNAL" {
		t.Fatalf("CreateEnvelope on a broken database: %v, want INTERNAL (reason INTERNAL)", err)
	}
	if msg := status.Convert(err).Message(); msg != "internal error" {
		t.Errorf("the reply says %q, want only \"internal error\"", msg)
	}
	if strings.Contains(fmt.Sprint(err), "envelopes") {
		t.Errorf("the reply names the cause: %v", err)
	}
	var line string
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, `msg="internal error"`) {
			line = l
		}
	}
	for _, want := range []string{"grpc.method=/budgetledger.v1.EnvelopeService/CreateEnvelope", "request_id=req-internal-7", "envelopes"} {
		if !strings.Contains(line, want) {
			t.Errorf("the log line of the internal error has no %q: %q\nlog:\n%s", want, line, logs.String())
		}
	}
}
