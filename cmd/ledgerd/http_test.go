package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/budgetledger/budgetledger/internal/testpki"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
	"github.com/budgetledger/budgetledger/server"
)

var httpLine = regexp.MustCompile(`msg="http listening" address=(\S+)`)

// runHTTPLedgerd runs ledgerd with --http-listen on a free loopback port, and returns its gRPC
// address and the base URL of its HTTP listener ("http://127.0.0.1:PORT"). Its transactions have
// the tests' timeout (testdb.TxTimeout), not the production one: a busy machine is not a failure.
func runHTTPLedgerd(t *testing.T, args ...string) (grpcAddr, base string) {
	t.Helper()
	addr, logged := runLedgerd(t, append([]string{"--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
		"--database", filepath.Join(t.TempDir(), "ledger.db")}, args...)...)
	m := httpLine.FindStringSubmatch(logged)
	if m == nil {
		t.Fatalf("ledgerd did not log its HTTP address:\n%s", logged)
	}
	return addr, strings.TrimSuffix(m[1], "/")
}

// httpGet GETs url with the bearer token (none when empty) and returns the status and the body.
func httpDo(t *testing.T, method, url, token, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		// The Connect protocol; a JSON POST without this header is taken for REST.
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Connect-Protocol-Version", "1")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, b
}

func withToken(ctx context.Context, token string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// TestHTTPEnvelopeEqualsGRPC protects issue 15's "curl of the JSON API for an envelope returns the
// same figures as grpcurl": GET /v1/envelopes/axis-1 (REST) and the Connect POST decode to the
// very message GetEnvelope returns over gRPC, after an award; the funding report likewise.
func TestHTTPEnvelopeEqualsGRPC(t *testing.T) {
	addr, base := runHTTPLedgerd(t)
	conn := dial(t, addr)
	ctx := context.Background()
	envelopes := pb.NewEnvelopeServiceClient(conn)
	for _, req := range []*pb.CreateEnvelopeRequest{
		{EnvelopeId: "fund", DisplayName: "Fonds", Allocation: 8_800_000_000, RequestId: "fund"},
		{EnvelopeId: "axis-1", Parent: "envelopes/fund", DisplayName: "Axe 1", Allocation: 3_000_000_000, RequestId: "axis-1"},
	} {
		if _, err := envelopes.CreateEnvelope(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pb.NewCommitmentServiceClient(conn).Commit(ctx, &pb.CommitRequest{Envelope: "envelopes/axis-1",
		Beneficiary: "siren:200054781", Project: "guichet", Amount: 30_000_000, RequestId: "award-1"}); err != nil {
		t.Fatal(err)
	}
	want, err := envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: "envelopes/axis-1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct{ method, path, body string }{
		{"GET", "/v1/envelopes/axis-1", ""},
		{"POST", "/budgetledger.v1.EnvelopeService/GetEnvelope", `{"name": "envelopes/axis-1"}`},
	} {
		code, hdr, body := httpDo(t, call.method, base+call.path, "", call.body)
		if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
			t.Fatalf("%s %s: %d %s %s", call.method, call.path, code, hdr.Get("Content-Type"), body)
		}
		var got pb.GetEnvelopeResponse
		if err := protojson.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s %s: %v in %s", call.method, call.path, err, body)
		}
		if !proto.Equal(&got, want) {
			t.Errorf("%s %s = %v, gRPC GetEnvelope = %v", call.method, call.path, &got, want)
		}
		if got.GetEnvelope().GetCommitted() != 30_000_000 {
			t.Errorf("%s %s: committed %d, want 30000000", call.method, call.path, got.GetEnvelope().GetCommitted())
		}
	}
	wantRep, err := pb.NewReportServiceClient(conn).GetFundingReport(ctx, &pb.GetFundingReportRequest{Envelope: "envelopes/fund"})
	if err != nil {
		t.Fatal(err)
	}
	code, _, body := httpDo(t, "GET", base+"/v1/fundingReport?envelope=envelopes/fund", "", "")
	var gotRep pb.GetFundingReportResponse
	if code != http.StatusOK || protojson.Unmarshal(body, &gotRep) != nil || !proto.Equal(&gotRep, wantRep) {
		t.Errorf("GET /v1/fundingReport: %d %s, want the gRPC report %v", code, body, wantRep)
	}
	// GetEnvelopeRules, served by the second transcoder (GetEnvelope's name is a prefix of its).
	wantRules, err := envelopes.GetEnvelopeRules(ctx, &pb.GetEnvelopeRulesRequest{Envelope: "envelopes/axis-1"})
	if err != nil {
		t.Fatal(err)
	}
	code, _, body = httpDo(t, "GET", base+"/v1/envelopeRules?envelope=envelopes/axis-1", "", "")
	var gotRules pb.GetEnvelopeRulesResponse
	err = protojson.Unmarshal(body, &gotRules)
	// The rules are those in force at the time of the call: each answer has its own.
	gotRules.GetEffectiveRules().Time, wantRules.GetEffectiveRules().Time = nil, nil
	if code != http.StatusOK || err != nil || !proto.Equal(&gotRules, wantRules) {
		t.Errorf("GET /v1/envelopeRules: %d %s, want the gRPC answer %v", code, body, wantRules)
	}
	// A request body over --max-recv-msg-size (4 MiB) is refused before it is read: 413.
	huge := `{"name": "envelopes/` + strings.Repeat("a", 5<<20) + `"}`
	if code, _, body := httpDo(t, "POST", base+"/budgetledger.v1.EnvelopeService/GetEnvelope", "", huge); code != http.StatusRequestEntityTooLarge {
		t.Errorf("a 5 MiB request: %d %.200s, want 413", code, body)
	}
	// Bad input: the same INVALID_ARGUMENT and ErrorInfo over HTTP (400) as over gRPC.
	_, err = envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: "envelopes/NOT VALID"})
	wantCode, wantReason := grpcReason(t, err)
	gotCode, gotReason := httpReason(t, base+"/v1/envelopes/NOT%20VALID", "")
	if wantCode != codes.InvalidArgument || gotCode != http.StatusBadRequest || gotReason != wantReason {
		t.Errorf("an invalid name: gRPC %v %s, HTTP %d %s; want INVALID_ARGUMENT and 400 with the same reason", wantCode, wantReason, gotCode, gotReason)
	}
}

// grpcReason is the code and the ErrorInfo reason of a gRPC error.
func grpcReason(t *testing.T, err error) (codes.Code, string) {
	t.Helper()
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			return st.Code(), info.GetReason()
		}
	}
	t.Fatalf("no ErrorInfo in %v", err)
	return 0, ""
}

// httpReason GETs url and returns the HTTP status and the ErrorInfo reason of the JSON error body
// (a google.rpc.Status in JSON, as REST routes answer).
func httpReason(t *testing.T, url, token string) (int, string) {
	t.Helper()
	code, hdr, body := httpDo(t, "GET", url, token, "")
	if !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("GET %s: %d, content type %q, want a JSON error: %s", url, code, hdr.Get("Content-Type"), body)
	}
	var st struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Type   string `json:"@type"`
			Reason string `json:"reason"`
			Domain string `json:"domain"`
		} `json:"details"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
	for _, d := range st.Details {
		if d.Type == "type.googleapis.com/google.rpc.ErrorInfo" && d.Domain == server.ErrorDomain {
			return code, d.Reason
		}
	}
	t.Fatalf("GET %s: %d, no ErrorInfo of %s in %s", url, code, server.ErrorDomain, body)
	return 0, ""
}

// TestHTTPRefusedLikeGRPC protects "an unauthenticated call to an authenticated ledgerd is refused
// the same way over both": the HTTP request goes through the gRPC server's own authentication
// (UNAUTHENTICATED → 401, with the same ErrorInfo reason), and a token of the file is let in. The
// page and the open data need a credential too, unless --public-page.
func TestHTTPRefusedLikeGRPC(t *testing.T) {
	dir := t.TempDir()
	token, line, err := server.MintToken("alice", server.RoleAuditor)
	if err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	stranger, _, _ := server.MintToken("mallory", server.RoleAdmin)
	addr, base := runHTTPLedgerd(t, "--tokens-file", tokens)
	envelopes := pb.NewEnvelopeServiceClient(dial(t, addr))
	ctx := context.Background()
	for _, tok := range []string{"", stranger} {
		callCtx := ctx
		if tok != "" {
			callCtx = withToken(ctx, tok)
		}
		_, err := envelopes.ListEnvelopes(callCtx, &pb.ListEnvelopesRequest{})
		wantCode, wantReason := grpcReason(t, err)
		gotCode, gotReason := httpReason(t, base+"/v1/envelopes", tok)
		if wantCode != codes.Unauthenticated || wantReason != "UNAUTHENTICATED" || gotCode != http.StatusUnauthorized || gotReason != wantReason {
			t.Errorf("token %q: gRPC %v %s, HTTP %d %s; want UNAUTHENTICATED both ways (HTTP 401)", tok, wantCode, wantReason, gotCode, gotReason)
		}
	}
	if _, err := envelopes.ListEnvelopes(withToken(ctx, token), &pb.ListEnvelopesRequest{}); err != nil {
		t.Fatalf("gRPC with a token of the file: %v", err)
	}
	if code, _, body := httpDo(t, "GET", base+"/v1/envelopes", token, ""); code != http.StatusOK {
		t.Errorf("HTTP with a token of the file: %d %s, want 200", code, body)
	}
	// With a token, the request reaches the handler: the page answers, and the open data answers
	// that this ledger has no such envelope (404), not that the caller is unknown (401).
	for path, withToken := range map[string]int{"/": http.StatusOK, "/opendata/subventions.csv?envelope=envelopes/none": http.StatusNotFound} {
		if code, _, _ := httpDo(t, "GET", base+path, "", ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without a credential, without --public-page: %d, want 401", path, code)
		}
		if code, _, _ := httpDo(t, "GET", base+path, token, ""); code != withToken {
			t.Errorf("GET %s with a token: %d, want %d", path, code, withToken)
		}
	}
	_, publicBase := runHTTPLedgerd(t, "--tokens-file", tokens, "--public-page")
	if code, _, _ := httpDo(t, "GET", publicBase+"/", "", ""); code != http.StatusOK {
		t.Errorf("GET / with --public-page, without a credential: %d, want 200", code)
	}
	if code, _ := httpReason(t, publicBase+"/v1/envelopes", ""); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/envelopes with --public-page, without a credential: %d, want 401 (the API keeps its authentication)", code)
	}
	// The open data is read-only, as docs/opendata.md says: another method is 405 (it reached the
	// page's router and was 404 while the route named GET).
	if code, _, body := httpDo(t, "POST", publicBase+"/opendata/subventions.csv?envelope=envelopes/none", "", ""); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /opendata/subventions.csv: %d %s, want 405", code, body)
	}
}

// TestHTTPServesNoMutation protects "mutations stay gRPC-only": CreateEnvelope and Commit over the
// Connect protocol, gRPC-Web and a REST-like POST, the audit service and the journal stream are not
// served (404), and nothing is created.
func TestHTTPServesNoMutation(t *testing.T) {
	addr, base := runHTTPLedgerd(t)
	for _, call := range []struct{ method, path, body, contentType string }{
		{"POST", "/budgetledger.v1.EnvelopeService/CreateEnvelope", `{"envelope_id": "fund", "allocation": 100, "request_id": "r1"}`, "application/json"},
		{"POST", "/budgetledger.v1.CommitmentService/Commit", `{"envelope": "envelopes/fund", "amount": 1, "request_id": "r2"}`, "application/json"},
		{"POST", "/budgetledger.v1.EnvelopeService/CreateEnvelope", "\x00\x00\x00\x00\x00", "application/grpc-web+proto"},
		{"POST", "/v1/envelopes", `{"envelope_id": "fund", "allocation": 100, "request_id": "r3"}`, "application/json"},
		{"POST", "/budgetledger.v1.AuditService/VerifyLedger", `{}`, "application/json"},
		{"POST", "/budgetledger.v1.JournalService/WatchJournalEntries", `{}`, "application/connect+json"},
	} {
		req, err := http.NewRequest(call.method, base+call.path, strings.NewReader(call.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", call.contentType)
		req.Header.Set("Connect-Protocol-Version", "1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		// Unknown to the transcoder, whose schemas hold the reads only.
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s (%s): %d %s, want 404", call.method, call.path, call.contentType, resp.StatusCode, b)
		}
	}
	res, err := pb.NewEnvelopeServiceClient(dial(t, addr)).ListEnvelopes(context.Background(), &pb.ListEnvelopesRequest{})
	if err != nil || len(res.GetEnvelopes()) != 0 {
		t.Fatalf("after the refused mutations: %v, %v; want no envelope", res.GetEnvelopes(), err)
	}
}

// TestHTTPListenBindRule protects --http-listen's exposure rule, the gRPC listener's: beyond
// loopback it needs authentication and TLS, or --insecure.
func TestHTTPListenBindRule(t *testing.T) {
	dir := t.TempDir()
	database := filepath.Join(dir, "ledger.db")
	err := realMain(context.Background(), []string{"--listen", "127.0.0.1:0", "--http-listen", "0.0.0.0:0", "--database", database}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "refusing to listen on 0.0.0.0:0 (--http-listen)") || !strings.Contains(err.Error(), "--insecure") {
		t.Errorf("--http-listen 0.0.0.0:0 without authentication and TLS: %v, want a refusal", err)
	}
	if _, err := os.Stat(database); !errors.Is(err, os.ErrNotExist) {
		t.Error("a refused configuration created the database")
	}
	_, logged := runLedgerd(t, "--listen", "127.0.0.1:0", "--http-listen", "0.0.0.0:0", "--insecure", "--database", database)
	if !strings.Contains(logged, "serving HTTP beyond loopback") {
		t.Errorf("--insecure --http-listen 0.0.0.0:0: no warning logged:\n%s", logged)
	}
}

// TestHTTPOverMutualTLS protects "same TLS certificate when given": with --tls-cert, the HTTP
// listener serves HTTPS with the gRPC listener's certificate, and a client certificate of the
// tokens file (mutual TLS) authenticates a JSON call as it does a gRPC call: the transcoded call
// carries the TLS connection's verified certificate to the same authenticator.
func TestHTTPOverMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "ledger test CA")
	certFile, keyFile := ca.Server(t).WriteFiles(t, dir, "server")
	tokens := filepath.Join(dir, "tokens")
	writeFile(t, tokens, "cert:CN=reporting reports auditor\n")
	_, base := runHTTPLedgerd(t, "--tokens-file", tokens, "--tls-cert", certFile, "--tls-key", keyFile,
		"--tls-client-ca", ca.WriteFile(t, dir))
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("the HTTP listener with --tls-cert is %s, want https", base)
	}
	get := func(certs ...tls.Certificate) (int, string) {
		tc := trusting(ca)
		tc.Certificates = certs
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		defer c.CloseIdleConnections()
		resp, err := c.Get(base + "/v1/envelopes")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(ca.Client(t, "reporting").TLS); code != http.StatusOK || !strings.Contains(body, `"envelopes"`) {
		t.Errorf("GET /v1/envelopes with a client certificate of the file: %d %s, want 200", code, body)
	}
	if code, body := get(ca.Client(t, "stranger").TLS); code != http.StatusUnauthorized || !strings.Contains(body, "UNAUTHENTICATED") {
		t.Errorf("GET /v1/envelopes with a client certificate not in the file: %d %s, want 401 UNAUTHENTICATED", code, body)
	}
	if code, _ := get(); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/envelopes without a credential: %d, want 401", code)
	}
}
