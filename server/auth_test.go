package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/budgetledger/budgetledger/internal/testdb"
	"github.com/budgetledger/budgetledger/ledger"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

// authServer is a real server with authentication on: a ledger on SQLite behind a gRPC server on
// loopback TCP, and one principal and token per role.
type authServer struct {
	addr   string
	srv    *server.Server
	file   string                 // the tokens file
	tokens map[server.Role]string // the token of each role's principal
	names  map[server.Role]string
}

var roleNames = map[server.Role]string{server.RoleService: "billing", server.RoleAdmin: "alice", server.RoleAuditor: "audrey"}

// startAuth serves with scfg and a tokens file holding one token per role and the extra lines.
func startAuth(t *testing.T, scfg server.Config, extra ...string) *authServer {
	t.Helper()
	a := &authServer{tokens: map[server.Role]string{}, names: roleNames}
	lines := []string{"# test principals"}
	for _, role := range server.Roles {
		token, line, err := server.MintToken(roleNames[role], role)
		if err != nil {
			t.Fatal(err)
		}
		a.tokens[role] = token
		lines = append(lines, line)
	}
	a.file = writeTokensFile(t, append(lines, extra...)...)
	auth, err := server.NewAuthenticator(a.file)
	if err != nil {
		t.Fatal(err)
	}
	scfg.Auth = auth
	a.addr, a.srv = serveLedger(t, scfg)
	return a
}

func writeTokensFile(t *testing.T, lines ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// serveLedger serves a ledger on a fresh SQLite file with scfg on a loopback port.
func serveLedger(t *testing.T, scfg server.Config) (string, *server.Server) {
	t.Helper()
	l, err := ledger.Open(context.Background(), testdb.SQLite(t), ledger.Config{TxTimeout: testdb.TxTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Close)
	return serve(t, l, scfg)
}

// bearer adds "authorization: Bearer <token>" to the call of ctx.
func bearer(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// designRoles is DESIGN §6, written out: who may call each RPC. The server's authorization table
// must say the same.
var designRoles = map[string][]server.Role{
	"/budgetledger.v1.EnvelopeService/CreateEnvelope":                {server.RoleAdmin},
	"/budgetledger.v1.EnvelopeService/MoveAllocation":                {server.RoleAdmin},
	"/budgetledger.v1.EnvelopeService/GetEnvelope":                   server.Roles,
	"/budgetledger.v1.EnvelopeService/ListEnvelopes":                 server.Roles,
	"/budgetledger.v1.EnvelopeService/SetEnvelopeRules":              {server.RoleAdmin},
	"/budgetledger.v1.EnvelopeService/GetEnvelopeRules":              server.Roles,
	"/budgetledger.v1.ReportService/GetFundingReport":                server.Roles,
	"/budgetledger.v1.ReportService/ExportSubventions":               server.Roles, // reads what the report reads
	"/budgetledger.v1.CommitmentService/Commit":                      {server.RoleService},
	"/budgetledger.v1.CommitmentService/Release":                     {server.RoleService},
	"/budgetledger.v1.CommitmentService/BatchCommit":                 {server.RoleService},
	"/budgetledger.v1.CommitmentService/GetCommitment":               server.Roles,
	"/budgetledger.v1.CommitmentService/ListCommitments":             server.Roles,
	"/budgetledger.v1.CommitmentService/CreatePayment":               {server.RoleService},
	"/budgetledger.v1.CommitmentService/CloseCommitment":             {server.RoleService},
	"/budgetledger.v1.CommitmentService/ListPayments":                server.Roles,
	"/budgetledger.v1.CommitmentService/CreateHold":                  {server.RoleService},
	"/budgetledger.v1.CommitmentService/ConfirmHold":                 {server.RoleService},
	"/budgetledger.v1.CommitmentService/CancelHold":                  {server.RoleService},
	"/budgetledger.v1.CommitmentService/GetHold":                     server.Roles,
	"/budgetledger.v1.CommitmentService/ListHolds":                   server.Roles,
	"/budgetledger.v1.JournalService/ListJournalEntries":             server.Roles,
	"/budgetledger.v1.JournalService/GetCheckpoint":                  server.Roles,
	"/budgetledger.v1.JournalService/GetInclusionProof":              server.Roles,
	"/budgetledger.v1.JournalService/GetConsistencyProof":            server.Roles,
	"/budgetledger.v1.JournalService/WatchJournalEntries":            server.Roles,
	"/budgetledger.v1.AuditService/VerifyLedger":                     {server.RoleAuditor, server.RoleAdmin},
	"/budgetledger.v1.AuditService/StartVerification":                {server.RoleAuditor, server.RoleAdmin},
	"/budgetledger.v1.AuditService/GetVerification":                  {server.RoleAuditor, server.RoleAdmin},
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo":      server.Roles,
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": server.Roles,
}

// invoke calls method with an empty request, over a real connection, whatever its kind.
func invoke(ctx context.Context, conn *grpc.ClientConn, m protoreflect.MethodDescriptor) error {
	full := fmt.Sprintf("/%s/%s", m.Parent().FullName(), m.Name())
	req := dynamicpb.NewMessage(m.Input())
	if !m.IsStreamingClient() && !m.IsStreamingServer() {
		return conn.Invoke(ctx, full, req, dynamicpb.NewMessage(m.Output()))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ClientStreams: m.IsStreamingClient(), ServerStreams: m.IsStreamingServer()}, full)
	if err != nil {
		return err
	}
	if err := stream.SendMsg(req); err != nil && err != io.EOF {
		return err
	}
	if err := stream.CloseSend(); err != nil {
		return err
	}
	// A stream that may wait for messages (WatchJournalEntries) sends its headers once the call
	// is admitted: that is the answer; a refused call ends without them.
	if md, err := stream.Header(); err != nil {
		return err
	} else if md != nil && m.IsStreamingServer() && len(md.Get("budgetledger-stream")) > 0 {
		return nil
	}
	return stream.RecvMsg(dynamicpb.NewMessage(m.Output()))
}

// TestAuthorizationEveryRPC walks every RPC of every service of budgetledger.v1, as the
// descriptors list them (so that an RPC added to the .proto files is walked at once), and calls
// it for real as each role, without a credential and with an unknown token. It protects the
// authorization table: an RPC without an entry, an entry that differs from DESIGN §6, or a role
// let through (or kept out) against the table fails here.
func TestAuthorizationEveryRPC(t *testing.T) {
	t.Parallel()
	a := startAuth(t, server.Config{})
	conn := dialPlain(t, a.addr)
	stranger, _, err := server.MintToken("mallory", server.RoleAdmin) // never written to the file
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	walked := 0
	protoregistry.GlobalFiles.RangeFilesByPackage("budgetledger.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			svc := fd.Services().Get(i)
			for j := range svc.Methods().Len() {
				m := svc.Methods().Get(j)
				full := fmt.Sprintf("/%s/%s", svc.FullName(), m.Name())
				walked++
				t.Run(string(svc.Name())+"."+string(m.Name()), func(t *testing.T) {
					table, ok := server.AllowedRoles(full)
					if !ok {
						t.Errorf("%s has no entry in the authorization table (server/auth.go): every caller is refused", full)
					}
					want, ok := designRoles[full]
					if !ok {
						t.Errorf("%s is not in designRoles: decide who may call it (DESIGN §6) and add it here and to the table", full)
						want = table
					} else if !sameRoles(table, want) {
						t.Errorf("%s: the table allows %v, DESIGN §6 says %v", full, table, want)
					}
					for _, role := range server.Roles {
						err := invoke(bearer(ctx, a.tokens[role]), conn, m)
						code := status.Code(err)
						if slices.Contains(want, role) {
							if code == codes.PermissionDenied || code == codes.Unauthenticated {
								t.Errorf("%s as %s: %v, want it allowed", full, role, err)
							}
							continue
						}
						if code != codes.PermissionDenied {
							t.Errorf("%s as %s: %v, want PERMISSION_DENIED", full, role, err)
						} else if _, info := errorInfo(t, err); info.GetReason() != "PERMISSION_DENIED" {
							t.Errorf("%s as %s: reason %q, want PERMISSION_DENIED", full, role, info.GetReason())
						}
					}
					for what, callCtx := range map[string]context.Context{"no credential": ctx, "an unknown token": bearer(ctx, stranger)} {
						err := invoke(callCtx, conn, m)
						if status.Code(err) != codes.Unauthenticated {
							t.Errorf("%s with %s: %v, want UNAUTHENTICATED", full, what, err)
						} else if _, info := errorInfo(t, err); info.GetReason() != "UNAUTHENTICATED" {
							t.Errorf("%s with %s: reason %q, want UNAUTHENTICATED", full, what, info.GetReason())
						}
					}
				})
			}
		}
		return true
	})
	if walked < 10 {
		t.Fatalf("walked %d RPCs of budgetledger.v1; the descriptors are not all registered", walked)
	}
}

func sameRoles(a, b []server.Role) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestHealthOpenReflectionGuarded checks that health checks (Check and Watch) answer without a
// credential, for load balancers, while server reflection wants one, of any role.
func TestHealthOpenReflectionGuarded(t *testing.T) {
	t.Parallel()
	a := startAuth(t, server.Config{RateLimit: 0.001, RateBurst: 1}) // health checks are not limited either
	conn := dialPlain(t, a.addr)
	ctx := context.Background()
	hc := healthpb.NewHealthClient(conn)
	for range 3 {
		if resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health check without credential = %v, %v; want SERVING", resp.GetStatus(), err)
		}
	}
	watch, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "budgetledger.v1.CommitmentService"})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health watch without credential = %v, %v; want SERVING", resp.GetStatus(), err)
	}

	listServices := func(ctx context.Context) ([]string, error) {
		stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
		if err != nil {
			return nil, err
		}
		// A server that refuses the stream may end it before the request is sent: Send then
		// answers io.EOF, and the stream's status comes from Recv (grpc.ClientStream's contract).
		if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		resp, err := stream.Recv()
		if err != nil {
			return nil, err
		}
		var names []string
		for _, s := range resp.GetListServicesResponse().GetService() {
			names = append(names, s.GetName())
		}
		return names, nil
	}
	if names, err := listServices(ctx); status.Code(err) != codes.Unauthenticated {
		t.Errorf("reflection without credential = %v, %v; want UNAUTHENTICATED", names, err)
	}
	names, err := listServices(bearer(ctx, a.tokens[server.RoleAuditor]))
	if err != nil || !slices.Contains(names, "budgetledger.v1.CommitmentService") {
		t.Errorf("reflection as auditor = %v, %v; want the services listed", names, err)
	}
}

// TestJournalRecordsPrincipal checks that every journal entry names the principal that made it:
// the admin who created the envelope, the service that made the award.
func TestJournalRecordsPrincipal(t *testing.T) {
	t.Parallel()
	a := startAuth(t, server.Config{})
	conn := dialPlain(t, a.addr)
	ctx := context.Background()
	if _, err := pb.NewEnvelopeServiceClient(conn).CreateEnvelope(bearer(ctx, a.tokens[server.RoleAdmin]),
		&pb.CreateEnvelopeRequest{EnvelopeId: "axis-1", Allocation: 30 * million, RequestId: "axis-1"}); err != nil {
		t.Fatal(err)
	}
	award, err := pb.NewCommitmentServiceClient(conn).Commit(bearer(ctx, a.tokens[server.RoleService]), &pb.CommitRequest{
		Envelope: "envelopes/axis-1", Beneficiary: "siren:217500016", Project: "guichet-numerique", Amount: 250_000_00, RequestId: "award-1"})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := pb.NewJournalServiceClient(conn).ListJournalEntries(bearer(ctx, a.tokens[server.RoleAuditor]),
		&pb.ListJournalEntriesRequest{Envelope: "envelopes/axis-1"})
	if err != nil {
		t.Fatal(err)
	}
	callers := map[string]string{}
	for _, e := range resp.GetJournalEntries() {
		callers[e.GetName()] = e.GetCaller()
	}
	if got := callers[award.GetJournalEntry()]; got != "billing" {
		t.Errorf("the award's entry has caller %q, want billing (the service token's principal); entries: %v", got, callers)
	}
	if len(callers) != 2 {
		t.Fatalf("journal of axis-1 = %v, want the creation and the award", callers)
	}
	for name, caller := range callers {
		if name != award.GetJournalEntry() && caller != "alice" {
			t.Errorf("the creation's entry has caller %q, want alice", caller)
		}
	}
}

// TestUnaryInterceptorsSeePrincipal checks that Config.UnaryInterceptors run inside
// authentication: they see the principal, and a refused call never reaches them.
func TestUnaryInterceptorsSeePrincipal(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	record := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		name, role, ok := server.PrincipalFrom(ctx)
		mu.Lock()
		seen = append(seen, fmt.Sprintf("%s %s %v", name, role, ok))
		mu.Unlock()
		return handler(ctx, req)
	}
	a := startAuth(t, server.Config{UnaryInterceptors: []grpc.UnaryServerInterceptor{record}})
	envelopes := pb.NewEnvelopeServiceClient(dialPlain(t, a.addr))
	ctx := context.Background()
	if _, err := envelopes.ListEnvelopes(bearer(ctx, a.tokens[server.RoleAuditor]), &pb.ListEnvelopesRequest{}); err != nil {
		t.Fatal(err)
	}
	if _, err := envelopes.CreateEnvelope(bearer(ctx, a.tokens[server.RoleAuditor]),
		&pb.CreateEnvelopeRequest{EnvelopeId: "x", Allocation: 1, RequestId: "x"}); status.Code(err) != codes.PermissionDenied {
		t.Fatalf("CreateEnvelope as auditor: %v, want PERMISSION_DENIED", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []string{"audrey auditor true"}; !slices.Equal(seen, want) {
		t.Errorf("the extra interceptor saw %q, want %q", seen, want)
	}
}

// TestRateLimitPerPrincipal checks the per-principal limit: past its burst a principal gets
// RESOURCE_EXHAUSTED with a RetryInfo and the reason RATE_LIMITED, while another principal is
// still served.
func TestRateLimitPerPrincipal(t *testing.T) {
	t.Parallel()
	a := startAuth(t, server.Config{RateLimit: 0.001, RateBurst: 2}) // a token every 1,000 s: none comes back during the test
	envelopes := pb.NewEnvelopeServiceClient(dialPlain(t, a.addr))
	ctx := context.Background()
	auditor := bearer(ctx, a.tokens[server.RoleAuditor])
	for i := range 2 {
		if _, err := envelopes.ListEnvelopes(auditor, &pb.ListEnvelopesRequest{}); err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
	}
	_, err := envelopes.ListEnvelopes(auditor, &pb.ListEnvelopesRequest{})
	checkRateLimited(t, err, "audrey")
	if _, err := envelopes.ListEnvelopes(bearer(ctx, a.tokens[server.RoleAdmin]), &pb.ListEnvelopesRequest{}); err != nil {
		t.Errorf("another principal was limited too: %v", err)
	}
}

// TestRateLimitWithoutAuthentication checks that without authentication every caller shares the
// bucket of "anonymous".
func TestRateLimitWithoutAuthentication(t *testing.T) {
	t.Parallel()
	addr, _ := serveLedger(t, server.Config{RateLimit: 0.001, RateBurst: 1})
	envelopes := pb.NewEnvelopeServiceClient(dialPlain(t, addr))
	if _, err := envelopes.ListEnvelopes(context.Background(), &pb.ListEnvelopesRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := pb.NewEnvelopeServiceClient(dialPlain(t, addr)).ListEnvelopes(context.Background(), &pb.ListEnvelopesRequest{})
	checkRateLimited(t, err, "anonymous")
}

func checkRateLimited(t *testing.T, err error, principal string) {
	t.Helper()
	code, info := errorInfo(t, err)
	if code != codes.ResourceExhausted || info.GetReason() != server.ReasonRateLimited || info.GetMetadata()["principal"] != principal {
		t.Errorf("over the limit: %v, reason %q, metadata %v; want RESOURCE_EXHAUSTED RATE_LIMITED for %s",
			code, info.GetReason(), info.GetMetadata(), principal)
	}
	var delay time.Duration
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			delay = ri.GetRetryDelay().AsDuration()
		}
	}
	// A token takes 1,000 s; the bucket emptied moments ago.
	if delay < 900*time.Second || delay > 1000*time.Second {
		t.Errorf("RetryInfo delay = %v, want the rest of the 1,000 s a token takes", delay)
	}
}

// lockedBuffer is a log destination shared by the server's goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNoTokenInLogsOrErrors makes authenticated, refused and malformed calls with the server
// logging everything (DEBUG), and checks that no token appears in the log, in an error sent to
// the client, or in the error of a tokens file holding a token by mistake in place of its hash.
func TestNoTokenInLogsOrErrors(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	a := startAuth(t, server.Config{Logger: logger, RateLimit: 0.01, RateBurst: 3})
	conn := dialPlain(t, a.addr)
	envelopes := pb.NewEnvelopeServiceClient(conn)
	ctx := context.Background()
	stranger, _, err := server.MintToken("mallory", server.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{stranger, a.tokens[server.RoleAdmin], a.tokens[server.RoleAuditor], a.tokens[server.RoleService]}
	// Parts of tokens too: a log that cut a token short still leaks most of it.
	for _, s := range slices.Clone(secrets) {
		secrets = append(secrets, strings.TrimPrefix(s, server.TokenPrefix)[:16])
	}
	calls := []context.Context{
		bearer(ctx, a.tokens[server.RoleAdmin]),                                   // accepted
		bearer(ctx, a.tokens[server.RoleAuditor]),                                 // refused: PERMISSION_DENIED
		bearer(ctx, stranger),                                                     // unknown token
		bearer(ctx, a.tokens[server.RoleAdmin]+"x"),                               // wrong token
		metadata.AppendToOutgoingContext(ctx, "authorization", "Basic "+stranger), // wrong scheme
		metadata.AppendToOutgoingContext(ctx, "authorization", stranger),          // no scheme
		metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+a.tokens[server.RoleAdmin], "authorization", "Bearer "+stranger), // two
	}
	var replies []string
	for i, callCtx := range calls {
		_, err := envelopes.CreateEnvelope(callCtx, &pb.CreateEnvelopeRequest{
			EnvelopeId: fmt.Sprintf("e%d", i), Allocation: 1, RequestId: fmt.Sprintf("r%d", i)})
		if i == 0 && err != nil {
			t.Fatalf("the admin's call failed: %v", err)
		}
		if i > 0 && err == nil {
			t.Errorf("call %d succeeded, want a refusal", i)
		}
		if err != nil {
			replies = append(replies, err.Error())
		}
	}
	// Past the burst of the admin: a rate-limit refusal.
	for range 4 {
		if _, err := envelopes.ListEnvelopes(bearer(ctx, a.tokens[server.RoleAdmin]), &pb.ListEnvelopesRequest{}); err != nil {
			replies = append(replies, err.Error())
		}
	}
	// A token pasted into the tokens file in place of its hash.
	if err := os.WriteFile(a.file, []byte(stranger+" mallory admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.Reload(); err == nil {
		t.Error("Reload accepted a raw token in place of a hash")
	} else {
		replies = append(replies, err.Error())
	}

	log := logs.String()
	for _, want := range []string{"principal=alice", "principal=audrey", "code=Unauthenticated", "code=ResourceExhausted"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log has no %q: the calls were not all logged, so this test proves nothing\n%s", want, log)
		}
	}
	leaked := false
	for i, secret := range secrets {
		if strings.Contains(log, secret) {
			t.Errorf("secret %d (a token or a part of one) is in the log", i)
			leaked = true
		}
		for _, r := range replies {
			if strings.Contains(r, secret) {
				t.Errorf("secret %d (a token or a part of one) is in an error: %s", i, r)
			}
		}
	}
	if leaked {
		t.Logf("the log:\n%s", log)
	}
}

// TestHTTPCallsLogTheirPrincipal protects docs/security.md's "the principal is recorded ... on the
// log line of every call" for calls through the JSON-over-HTTP transcoder: no tap sees them, and
// their principal is found inside the chain, after the logging interceptor took its context.
func TestHTTPCallsLogTheirPrincipal(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	a := startAuth(t, server.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	h, err := a.srv.HTTPHandler()
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/v1/envelopes", nil)
	req.Header.Set("Authorization", "Bearer "+a.tokens[server.RoleAuditor])
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET /v1/envelopes with the auditor's token: %d %s", rec.Code, rec.Body)
	}
	var line string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, "finished call") && strings.Contains(l, "grpc.method=ListEnvelopes") {
			line = l
		}
	}
	if line == "" {
		t.Fatalf("no log line for the call:\n%s", logs.String())
	}
	if want := "principal=" + a.names[server.RoleAuditor]; !strings.Contains(line, want) {
		t.Errorf("the call's log line has no %s:\n%s", want, line)
	}
}

// TestReload checks that Reload takes a new tokens file in (a token added, one revoked) and that
// a broken file leaves the credentials in force untouched.
func TestReload(t *testing.T) {
	t.Parallel()
	a := startAuth(t, server.Config{})
	envelopes := pb.NewEnvelopeServiceClient(dialPlain(t, a.addr))
	ctx := context.Background()
	list := func(token string) error {
		_, err := envelopes.ListEnvelopes(bearer(ctx, token), &pb.ListEnvelopesRequest{})
		return err
	}
	bob, bobLine, err := server.MintToken("bob", server.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	if err := list(bob); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("bob before reload: %v, want UNAUTHENTICATED", err)
	}
	// alice's token is revoked, bob's added.
	if err := os.WriteFile(a.file, []byte(bobLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := list(bob); err != nil {
		t.Errorf("bob after reload: %v", err)
	}
	if err := list(a.tokens[server.RoleAdmin]); status.Code(err) != codes.Unauthenticated {
		t.Errorf("alice's revoked token after reload: %v, want UNAUTHENTICATED", err)
	}
	if err := os.WriteFile(a.file, []byte("sha256:beef bob auditor\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := a.srv.Reload(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("Reload of a broken file: %v, want an error naming line 1", err)
	}
	if err := list(bob); err != nil {
		t.Errorf("a broken file dropped the credentials in force: %v", err)
	}
	// An emptied file (a truncation, a botched edit) would shut every caller out: it is refused
	// as a broken one is, and bob keeps his access.
	for _, empty := range []string{"", "# every line commented out\n# " + bobLine + "\n"} {
		if err := os.WriteFile(a.file, []byte(empty), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := a.srv.Reload(); err == nil || !strings.Contains(err.Error(), "holds no credentials") {
			t.Errorf("Reload of a file with no credentials (%q): %v, want it refused", empty, err)
		}
		if err := list(bob); err != nil {
			t.Errorf("a file with no credentials dropped the credentials in force: %v", err)
		}
	}
}

// TestTokensFileFormat checks what the tokens file accepts, and that each mistake is refused
// with the line and what is wrong.
func TestTokensFileFormat(t *testing.T) {
	t.Parallel()
	hash := server.TokenHash("blt_example")
	good := strings.Join([]string{
		"# principals of the ledger",
		"",
		"   " + hash + "   alice   admin   # trailing comment",
		server.TokenHash("blt_other") + "\talice\tadmin",
		"cert:CN=Billing Service  billing service",
		"cert:URI=spiffe://ledger.test/ns/prod/sa/reports#frag reports auditor",
	}, "\n")
	if a, err := server.NewAuthenticator(writeTokensFile(t, good)); err != nil {
		t.Errorf("a good file was refused: %v", err)
	} else if tokens, certs := a.Counts(); tokens != 2 || certs != 2 {
		t.Errorf("counts = %d tokens, %d certificates; want 2 and 2", tokens, certs)
	}
	bad := []struct{ file, want string }{
		{"alice admin", "line 1: want a credential, a principal name and a role"},
		{"# x\n" + hash + " alice root", "line 2: the role"},
		{"sha256:abc alice admin", "line 1: a token's hash is sha256: and 64 hex digits"},
		{"blt_rawtoken alice admin", "line 1: a credential starts with sha256:"},
		{"cert:O=acme billing service", "line 1: a certificate identity is cert:CN="},
		{"cert:CN= billing service", "line 1: a certificate identity"},
		{hash + " alice admin\n" + hash + " bob admin", "line 2: the same token hash"},
		{"cert:CN=Billing Service a service\ncert:CN=Billing Service b service", "line 2: the same certificate identity is on an earlier line (line 1)"},
		{hash + " alice admin\ncert:CN=alice alice service", "line 2: the principal has role service here and admin on line 1"},
		{hash + " anonymous admin", `line 1: "anonymous"`},
		// The sweeper's caller: its entries and its request-log keys are the ledger's own.
		{hash + " ledger:hold-expiry service", `line 1: principal names beginning with "ledger:"`},
		{"cert:CN=sweeper ledger:sweeper service", `line 1: principal names beginning with "ledger:"`},
		{hash + " al!ce admin", "line 1: a principal name has only"},
	}
	for _, tc := range bad {
		_, err := server.NewAuthenticator(writeTokensFile(t, tc.file))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("file %q: error %v, want one with %q", tc.file, err, tc.want)
		}
		// docs/security.md: errors about the tokens file name the line, never its credential.
		if err != nil && strings.Contains(err.Error(), "Billing") {
			t.Errorf("file %q: error %v quotes the credential", tc.file, err)
		}
	}
	for _, empty := range []string{"", "\n# a comment\n"} {
		if _, err := server.NewAuthenticator(writeTokensFile(t, empty)); err == nil || !strings.Contains(err.Error(), "holds no credentials") {
			t.Errorf("file %q: %v, want it refused as holding no credentials", empty, err)
		}
	}
	if _, err := server.NewAuthenticator(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing tokens file was accepted")
	}
}
