package server_test

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"

	"github.com/budgetledger/budgetledger/server"
)

// httpError is the status and the ErrorInfo reason of an HTTP error answer, in either JSON form:
// REST's google.rpc.Status ("@type" details) or the Connect protocol's (base64 "value" details).
func httpError(t *testing.T, rec *httptest.ResponseRecorder) (int, string) {
	t.Helper()
	var body struct {
		Details []struct {
			Type   string `json:"@type"`
			Reason string `json:"reason"`
			Domain string `json:"domain"`
			CType  string `json:"type"`
			Value  string `json:"value"`
		} `json:"details"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%d: not a JSON error (%v): %s", rec.Code, err, rec.Body)
	}
	for _, d := range body.Details {
		if d.Type == "type.googleapis.com/google.rpc.ErrorInfo" && d.Domain == server.ErrorDomain {
			return rec.Code, d.Reason
		}
		if d.CType == "google.rpc.ErrorInfo" {
			raw, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(d.Value, "="))
			info := &errdetails.ErrorInfo{}
			if err == nil && proto.Unmarshal(raw, info) == nil && info.GetDomain() == server.ErrorDomain {
				return rec.Code, info.GetReason()
			}
		}
	}
	return rec.Code, ""
}

// TestHTTPMalformedRequests protects README's "every error carries a google.rpc.ErrorInfo" and
// docs/http.md's "the same refusals" for requests the JSON transcoder cannot read (an unknown
// query parameter, a value of the wrong type, malformed JSON; an unknown field of a JSON body is
// ignored, as the Connect protocol does): they are INVALID_ARGUMENT (400)
// with the ErrorInfo of a field that breaks a rule, not 500 UNKNOWN, and logged. A caller the
// tokens file does not know gets 401 UNAUTHENTICATED for them, as for any request, its input
// unread. A body without a length over --max-recv-msg-size is 413, as one with a length is; a
// gzip body is read, and bounded by the same limit once decompressed.
func TestHTTPMalformedRequests(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	a := startAuth(t, server.Config{Logger: slog.New(slog.NewTextHandler(logs, nil)), MaxRecvMsgSize: 1 << 16})
	h, err := a.srv.HTTPHandler()
	if err != nil {
		t.Fatal(err)
	}
	type request struct {
		name, method, path, body string
	}
	connect := func(name, body string) request {
		return request{name, "POST", "/budgetledger.v1.EnvelopeService/ListEnvelopes", body}
	}
	malformed := []request{
		{"unknown query parameter", "GET", "/v1/envelopes?nosuch=1", ""},
		{"query value of the wrong type", "GET", "/v1/envelopes?page_size=abc", ""},
		connect("malformed JSON", `{"page_size": 5`),
		connect("JSON value of the wrong type", `{"page_size": "many"}`),
	}
	send := func(r request, token string, chunked bool) *httptest.ResponseRecorder {
		req := httptest.NewRequest(r.method, r.path, strings.NewReader(r.body))
		if r.method == "POST" {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Connect-Protocol-Version", "1")
		}
		if chunked {
			req.ContentLength = -1
			req.Body = io.NopCloser(strings.NewReader(r.body))
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	token := a.tokens[server.RoleAuditor]
	for _, r := range malformed {
		rec := send(r, token, false)
		if code, reason := httpError(t, rec); code != http.StatusBadRequest || reason != "INVALID_ARGUMENT" {
			t.Errorf("%s, with a token: %d %q, want 400 INVALID_ARGUMENT", r.name, code, reason)
		}
		// The message says what was wrong, not which parser found it (protobuf-go's "proto:" and
		// its no-break space).
		if body := rec.Body.String(); strings.Contains(body, "proto:") || strings.Contains(body, "\u00a0") {
			t.Errorf("%s: the message names the parser: %s", r.name, body)
		}
		if code, reason := httpError(t, send(r, "", false)); code != http.StatusUnauthorized || reason != "UNAUTHENTICATED" {
			t.Errorf("%s, without a credential: %d %q, want 401 UNAUTHENTICATED", r.name, code, reason)
		}
	}
	if !strings.Contains(logs.String(), `msg="http request refused"`) {
		t.Errorf("the transcoder's refusals are not logged:\n%s", logs)
	}
	// Well-formed requests still go through, and a chunked body within the limit too.
	for _, r := range []request{{"REST", "GET", "/v1/envelopes?page_size=5", ""}, connect("Connect", `{"page_size": 5}`)} {
		for _, chunked := range []bool{false, true} {
			if rec := send(r, token, chunked); rec.Code != http.StatusOK {
				t.Errorf("%s (chunked: %v): %d %s, want 200", r.name, chunked, rec.Code, rec.Body)
			}
		}
	}
	// A gzip body is read (the transcoder decompresses it: the gRPC side takes no compression),
	// and answered as the same body uncompressed; a caller the tokens file does not know gets 401
	// for it, as for any request. Decompressed, a body is bounded as one sent plain is (a few
	// kilobytes of gzip can stand for gigabytes).
	gzipped := func(body, encoding, token string) *httptest.ResponseRecorder {
		var gz bytes.Buffer
		zw := gzip.NewWriter(&gz)
		zw.Write([]byte(body))
		zw.Close()
		req := httptest.NewRequest("POST", "/budgetledger.v1.EnvelopeService/ListEnvelopes", bytes.NewReader(gz.Bytes()))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Connect-Protocol-Version", "1")
		req.Header.Set("Content-Encoding", encoding)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	if z, plain := gzipped(`{"page_size": 5}`, "gzip", token), send(connect("Connect", `{"page_size": 5}`), token, false); z.Code != http.StatusOK || z.Body.String() != plain.Body.String() {
		t.Errorf("a gzip body: %d %s, want 200 and the answer to the same body uncompressed: %s", z.Code, z.Body, plain.Body)
	}
	if code, reason := httpError(t, gzipped(`{"page_size": 5}`, "gzip", "")); code != http.StatusUnauthorized || reason != "UNAUTHENTICATED" {
		t.Errorf("a gzip body without a credential: %d %q, want 401 UNAUTHENTICATED", code, reason)
	}
	bomb := gzipped(`{"page_token": "`+strings.Repeat("x", 1<<20)+`"}`, "gzip", token)
	if bomb.Code != http.StatusTooManyRequests || !strings.Contains(bomb.Body.String(), "once decompressed") {
		t.Errorf("a gzip body over the limit once decompressed: %d %s, want RESOURCE_EXHAUSTED from the decompression, before the whole body is held", bomb.Code, bomb.Body)
	}
	// An answer of the transcoder's own that is not about reading the request (here: a
	// compression it does not know) goes as it came, not as the caller's INVALID_ARGUMENT.
	if br := gzipped(`{"page_size": 5}`, "br", token); br.Code == http.StatusBadRequest || br.Code == http.StatusOK {
		t.Errorf("a br body: %d %s, want the transcoder's own refusal, not the caller's INVALID_ARGUMENT", br.Code, br.Body)
	}
	// gRPC-Web without a known credential: refused UNAUTHENTICATED by the interceptors, logged,
	// whatever it sent (it failed in grpc-go, INTERNAL and unlogged, when its input went).
	for _, ct := range []string{"application/grpc-web+proto", "application/grpc-web+json"} { // (the transcoder has no grpc-web-text)
		for _, credential := range []string{"", "Bearer blt_guess"} {
			before := strings.Count(logs.String(), "UNAUTHENTICATED")
			body := "\x00\x00\x00\x00\x00" // an empty ListEnvelopesRequest
			req := httptest.NewRequest("POST", "/budgetledger.v1.EnvelopeService/ListEnvelopes", strings.NewReader(body))
			req.Header.Set("Content-Type", ct)
			if credential != "" {
				req.Header.Set("Authorization", credential)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			answer := rec.Header().Get("Grpc-Status") + " " + rec.Body.String()
			if !strings.HasPrefix(answer, "16 ") && !strings.Contains(answer, "grpc-status:16") {
				t.Errorf("gRPC-Web (%s) with credential %q: %d %q, want grpc-status 16 (UNAUTHENTICATED)", ct, credential, rec.Code, answer)
			}
			if strings.Count(logs.String(), "UNAUTHENTICATED") == before {
				t.Errorf("gRPC-Web (%s) with credential %q: the refusal is not logged", ct, credential)
			}
		}
	}
	big := connect("large", `{"page_token": "`+strings.Repeat("x", 1<<17)+`"}`)
	for _, chunked := range []bool{false, true} {
		before := strings.Count(logs.String(), "http.status=413")
		if rec := send(big, token, chunked); rec.Code != http.StatusRequestEntityTooLarge {
			t.Errorf("a body over the limit (chunked: %v): %d, want 413", chunked, rec.Code)
		}
		if strings.Count(logs.String(), "http.status=413") == before {
			t.Errorf("a body over the limit (chunked: %v): the refusal is not logged", chunked)
		}
	}
}
