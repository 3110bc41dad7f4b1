package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"

	"connectrpc.com/connect"
	"connectrpc.com/vanguard"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/budgetledger/budgetledger/ledger/core"
	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// This file serves the read RPCs as JSON over HTTP (issue 15 §3), through connectrpc.com/vanguard
// transcoding requests into gRPC calls of this very server (grpc.Server.ServeHTTP): the calls go
// through the same interceptors as over gRPC (authentication and the role table, rate limit,
// validation, recovery, logging), and their errors carry the same ErrorInfo reasons. See
// docs/http.md.

// HTTPRoute is one read RPC served over HTTP: its REST route, besides its Connect path
// (POST /budgetledger.v1.EnvelopeService/GetEnvelope, with a JSON body).
type HTTPRoute struct {
	Method string // the RPC's full method, "/budgetledger.v1.EnvelopeService/GetEnvelope"
	Path   string // the GET route, with google.api.http's path template syntax
}

// HTTPRoutes are the RPCs served over HTTP, and only those: the reads. Mutations, streams and the
// audit service stay gRPC-only (a mutation over HTTP would need CSRF protection and idempotency
// rules of its own; the journal's stream and VerifyLedger are long-running). The REST paths are
// HTTP rules given to vanguard here rather than google.api.http options in the .proto files, so
// that the API contract (frozen, checked by buf breaking) is unchanged.
var HTTPRoutes = []HTTPRoute{
	{pb.EnvelopeService_GetEnvelope_FullMethodName, "/v1/{name=envelopes/*}"},
	{pb.EnvelopeService_ListEnvelopes_FullMethodName, "/v1/envelopes"},
	{pb.EnvelopeService_GetEnvelopeRules_FullMethodName, "/v1/envelopeRules"},
	{pb.CommitmentService_GetCommitment_FullMethodName, "/v1/{name=commitments/*}"},
	{pb.CommitmentService_ListCommitments_FullMethodName, "/v1/commitments"},
	{pb.CommitmentService_ListPayments_FullMethodName, "/v1/payments"},
	{pb.CommitmentService_GetHold_FullMethodName, "/v1/{name=holds/*}"},
	{pb.CommitmentService_ListHolds_FullMethodName, "/v1/holds"},
	{pb.JournalService_ListJournalEntries_FullMethodName, "/v1/journalEntries"},
	{pb.JournalService_GetCheckpoint_FullMethodName, "/v1/checkpoint"},
	{pb.JournalService_GetInclusionProof_FullMethodName, "/v1/checkpoint:inclusionProof"},
	{pb.JournalService_GetConsistencyProof_FullMethodName, "/v1/checkpoint:consistencyProof"},
	{pb.ReportService_GetFundingReport_FullMethodName, "/v1/fundingReport"},
}

// httpServed reports whether method is one of HTTPRoutes.
func httpServed(method string) bool {
	return slices.ContainsFunc(HTTPRoutes, func(r HTTPRoute) bool { return r.Method == method })
}

// HTTPHandler serves the read RPCs of HTTPRoutes as JSON over HTTP: REST (GET /v1/envelopes/fund,
// query parameters for the other request fields, errors as a google.rpc.Status in JSON) and the
// Connect protocol (POST /budgetledger.v1.EnvelopeService/GetEnvelope with a JSON body). No other
// method is known to the transcoder (its schemas hold the reads only: a mutation's path is 404),
// and readOnlyHandler stops any other before the gRPC server (501).
func (s *Server) HTTPHandler() (http.Handler, error) {
	// vanguard v0.4.0 applies a rule to every method whose name starts with the rule's selector,
	// so that GetEnvelope's rule would also go to GetEnvelopeRules: the methods are split into
	// transcoders in which no name is a prefix of another's, each passing what it does not know
	// to the next.
	var groups [][]HTTPRoute
	for _, r := range HTTPRoutes {
		placed := false
		for i, g := range groups {
			if !slices.ContainsFunc(g, func(o HTTPRoute) bool {
				return strings.HasPrefix(o.Method, r.Method) || strings.HasPrefix(r.Method, o.Method)
			}) {
				groups[i], placed = append(g, r), true
				break
			}
		}
		if !placed {
			groups = append(groups, []HTTPRoute{r})
		}
	}
	readOnly := readOnlyHandler{s.grpc}
	var next http.Handler = http.NotFoundHandler()
	for i := len(groups) - 1; i >= 0; i-- {
		t, err := transcoder(groups[i], readOnly, next, int64(s.cfg.MaxRecvMsgSize))
		if err != nil {
			return nil, err
		}
		next = t
	}
	// A request body is bounded as a gRPC request is (Config.MaxRecvMsgSize), before the
	// transcoder buffers it; answers as gRPC's are (every valid answer fits).
	limit := int64(s.cfg.MaxRecvMsgSize)
	api := next
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A caller the tokens file does not know is refused before anything it sent is read: its
		// request goes on without its input, and the interceptors refuse it (UNAUTHENTICATED, 401),
		// logged and counted, in the caller's protocol, as any refusal.
		if s.cfg.Auth != nil {
			if _, _, err := s.cfg.Auth.AuthenticateHTTP(r); err != nil {
				r = withoutInput(r)
			}
		}
		tooLarge := func() {
			s.log.InfoContext(r.Context(), "http request refused", "path", truncate(r.URL.Path, 200),
				"http.status", http.StatusRequestEntityTooLarge, "message", "request body over --max-recv-msg-size")
			http.Error(w, fmt.Sprintf("request body over the limit of %d bytes (--max-recv-msg-size)", limit), http.StatusRequestEntityTooLarge)
		}
		if r.ContentLength > limit {
			tooLarge()
			return
		}
		if r.ContentLength < 0 { // a body without a length (chunked): read up to the limit
			body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
			if int64(len(body)) > limit {
				tooLarge()
				return
			}
			if err != nil {
				http.Error(w, "the request body could not be read", http.StatusBadRequest)
				return
			}
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		call := &httpCall{}
		r = r.WithContext(context.WithValue(r.Context(), httpCallKey{}, call))
		// The transcoder rewrites the request it is given into a gRPC call: the error is
		// answered to the request as it came.
		e := &transcoderErrors{ResponseWriter: w, reached: &call.reached, request: r.Clone(r.Context())}
		api.ServeHTTP(e, r)
		e.finish(s.log)
	}), nil
}

// withoutInput is r without the input a call reads (its body and query): an empty JSON object
// for a POST, an empty message for a Connect GET.
func withoutInput(r *http.Request) *http.Request {
	r = r.Clone(r.Context())
	q := r.URL.Query()
	kept := url.Values{}
	for _, k := range []string{"connect", "encoding", "base64"} { // (not its compression: the input goes)
		if v, ok := q[k]; ok {
			kept[k] = v
		}
	}
	if q.Has("message") {
		kept.Set("message", "{}")
	}
	r.URL.RawQuery = kept.Encode()
	body := ""
	contentType := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(contentType, "application/grpc-web"):
		// One frame holding an empty message ("{}" in JSON): a body without one would fail in
		// grpc-go ("received no request message") before the interceptors refuse the call.
		payload := ""
		if strings.Contains(contentType, "json") {
			payload = "{}"
		}
		body = "\x00\x00\x00\x00" + string(rune(len(payload))) + payload
	case r.Method == http.MethodPost && strings.Contains(contentType, "json"):
		body = "{}"
	}
	r.Body, r.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
	for _, h := range []string{"Content-Encoding", "Connect-Content-Encoding", "Grpc-Encoding"} {
		r.Header.Del(h)
	}
	return r
}

// httpCall is what the HTTP layer and the interceptors of one of its calls share, through the
// call's context (httpCallKey; grpc-go's ServeHTTP keeps the request's context): whether the call
// reached the interceptors (markReached; read by the HTTP layer as the transcoder answers), and
// the principal requirePrincipal admitted, for the logging interceptor outside it, whose context
// it cannot change (written and read on the goroutine that runs the chain).
type httpCall struct {
	reached   atomic.Bool
	principal string
}

type httpCallKey struct{}

// httpCallOf is the httpCall of a call through the HTTP transcoder, nil for a gRPC call.
func httpCallOf(ctx context.Context) *httpCall {
	c, _ := ctx.Value(httpCallKey{}).(*httpCall)
	return c
}

// markReached records that an HTTP request's call reached the interceptors.
func markReached(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if c := httpCallOf(ctx); c != nil {
		c.reached.Store(true)
	}
	return handler(ctx, req)
}

// transcoderErrors holds back an error that the transcoder answered on its own, for a request
// that never reached the gRPC server: it could not read the request (malformed JSON, an unknown
// query parameter or field, a value of the wrong type). The transcoder answers some of those 500
// (UNKNOWN), and none with an ErrorInfo; finish answers them INVALID_ARGUMENT (400) with the
// ErrorInfo of a field that breaks a rule, in the caller's protocol, and logs them.
type transcoderErrors struct {
	http.ResponseWriter
	reached *atomic.Bool
	request *http.Request // as it came
	held    int           // the status held back (0: none)
	body    bytes.Buffer
}

func (e *transcoderErrors) WriteHeader(code int) {
	if e.held == 0 && !e.reached.Load() && (code == http.StatusBadRequest || code == http.StatusInternalServerError) {
		e.held = code
		return
	}
	e.ResponseWriter.WriteHeader(code)
}

func (e *transcoderErrors) Write(b []byte) (int, error) {
	if e.held != 0 {
		return e.body.Write(b)
	}
	return e.ResponseWriter.Write(b)
}

func (e *transcoderErrors) Flush() {
	if f, ok := e.ResponseWriter.(http.Flusher); ok && e.held == 0 {
		f.Flush()
	}
}

func (e *transcoderErrors) finish(log *slog.Logger) {
	if e.held == 0 {
		return
	}
	r := e.request
	// Only what the transcoder could not read is rewritten (INVALID_ARGUMENT as it is, or UNKNOWN:
	// REST's numeric code, the Connect protocol's name); any other answer goes as it came.
	var said struct {
		Code    json.RawMessage
		Message string
	}
	_ = json.Unmarshal(e.body.Bytes(), &said)
	switch string(said.Code) {
	case "2", "3", `"unknown"`, `"invalid_argument"`:
	default:
		e.ResponseWriter.WriteHeader(e.held)
		_, _ = e.ResponseWriter.Write(e.body.Bytes())
		return
	}
	msg := "the request could not be read"
	if said.Message != "" {
		// protobuf-go's messages start "proto:" with a no-break space (its mark that their wording
		// may change): the caller reads what was wrong, not whose parser said it.
		detail := strings.TrimPrefix(strings.ReplaceAll(said.Message, "\u00a0", " "), "proto: ")
		msg += ": " + core.ShowHidden(detail)
	}
	log.Info("http request refused", "path", truncate(r.URL.Path, 200), "http.status", http.StatusBadRequest,
		"grpc.code", codes.InvalidArgument.String(), "reason", "INVALID_ARGUMENT", "message", msg)
	info := &errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT", Domain: ErrorDomain}
	h := e.ResponseWriter.Header()
	for k := range h {
		delete(h, k) // the held response's headers (its length, its type)
	}
	if !strings.HasPrefix(r.URL.Path, "/v1/") {
		// Connect (or gRPC-Web): its own error format.
		cerr := connect.NewError(connect.CodeInvalidArgument, errors.New(msg))
		if d, err := connect.NewErrorDetail(info); err == nil {
			cerr.AddDetail(d)
		}
		if ew := connect.NewErrorWriter(); ew.IsSupported(r) {
			_ = ew.Write(e.ResponseWriter, r, cerr)
			return
		}
	}
	st, _ := status.New(codes.InvalidArgument, msg).WithDetails(info)
	body, err := protojson.Marshal(st.Proto())
	if err != nil {
		body = []byte(`{"code":3}`)
	}
	h.Set("Content-Type", "application/json")
	e.ResponseWriter.WriteHeader(http.StatusBadRequest)
	_, _ = e.ResponseWriter.Write(body)
}

// transcoder serves routes, and passes other requests to unknown.
func transcoder(routes []HTTPRoute, target http.Handler, unknown http.Handler, maxMsg int64) (http.Handler, error) {
	byService := map[string][]string{}
	var order []string
	rules := make([]*annotations.HttpRule, 0, len(routes))
	for _, r := range routes {
		service, method, _ := strings.Cut(strings.TrimPrefix(r.Method, "/"), "/")
		if byService[service] == nil {
			order = append(order, service)
		}
		byService[service] = append(byService[service], method)
		rules = append(rules, &annotations.HttpRule{
			Selector: service + "." + method,
			Pattern:  &annotations.HttpRule_Get{Get: r.Path},
		})
	}
	services := make([]*vanguard.Service, 0, len(order))
	for i, name := range order {
		schema, err := readSchema(name, byService[name], i)
		if err != nil {
			return nil, err
		}
		services = append(services, vanguard.NewServiceWithSchema(schema, target,
			vanguard.WithTargetProtocols(vanguard.ProtocolGRPC), vanguard.WithTargetCodecs(vanguard.CodecProto),
			// The transcoder decompresses a gzip body itself (and compresses an answer for a
			// caller that accepts gzip): the gRPC server registers no compressor, and a body
			// passed on compressed was refused there (501).
			vanguard.WithNoTargetCompression(),
			vanguard.WithMaxMessageBufferBytes(pb.MaxResponseSize)))
	}
	return vanguard.NewTranscoder(services, vanguard.WithRules(rules...), vanguard.WithUnknownHandler(unknown),
		vanguard.WithCompression(vanguard.CompressionGzip,
			func() connect.Compressor { return gzip.NewWriter(io.Discard) },
			func() connect.Decompressor { return &boundedGunzip{limit: maxMsg} }))
}

// boundedGunzip decompresses a gzip request body up to limit bytes (--max-recv-msg-size, the bound
// of a body sent uncompressed): the transcoder's own decompressor has no bound, and a few
// kilobytes of gzip can stand for gigabytes.
type boundedGunzip struct {
	r     gzip.Reader
	limit int64
	n     int64
}

// errGunzipTooLarge is answered RESOURCE_EXHAUSTED (a connect.Error: the transcoder answers it as
// it is), as a gRPC message over the limit is.
var errGunzipTooLarge = func(limit int64) error {
	return connect.NewError(connect.CodeResourceExhausted,
		fmt.Errorf("request body over the limit of %d bytes once decompressed (--max-recv-msg-size)", limit))
}

func (d *boundedGunzip) Reset(src io.Reader) error { d.n = 0; return d.r.Reset(src) }
func (d *boundedGunzip) Close() error              { return d.r.Close() }
func (d *boundedGunzip) Read(p []byte) (int, error) {
	if d.n > d.limit {
		return 0, errGunzipTooLarge(d.limit)
	}
	n, err := d.r.Read(p)
	if d.n += int64(n); d.n > d.limit {
		return 0, errGunzipTooLarge(d.limit)
	}
	return n, err
}

// readSchema is the service name with only the methods given: a file of its own that declares the
// service again, over the request and response messages of the generated code (so that the
// transcoder decodes into the generated types).
func readSchema(name string, methods []string, n int) (protoreflect.ServiceDescriptor, error) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		return nil, err
	}
	full, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("%s is not a service", name)
	}
	svc := &descriptorpb.ServiceDescriptorProto{Name: proto.String(string(full.Name()))}
	deps := map[string]bool{}
	for _, m := range methods {
		md := full.Methods().ByName(protoreflect.Name(m))
		if md == nil || md.IsStreamingClient() || md.IsStreamingServer() {
			return nil, fmt.Errorf("%s/%s is not a unary method of the service", name, m)
		}
		svc.Method = append(svc.Method, &descriptorpb.MethodDescriptorProto{Name: proto.String(m),
			InputType: proto.String("." + string(md.Input().FullName())), OutputType: proto.String("." + string(md.Output().FullName()))})
		deps[md.Input().ParentFile().Path()] = true
		deps[md.Output().ParentFile().Path()] = true
	}
	file := &descriptorpb.FileDescriptorProto{
		Name:    proto.String(fmt.Sprintf("budgetledger/v1/http_reads_%d_%s.proto", n, full.Name())),
		Package: proto.String(string(full.ParentFile().Package())),
		Syntax:  proto.String("proto3"),
		Service: []*descriptorpb.ServiceDescriptorProto{svc},
	}
	for dep := range deps {
		file.Dependency = append(file.Dependency, dep)
	}
	slices.Sort(file.Dependency)
	fd, err := protodesc.NewFile(file, protoregistry.GlobalFiles)
	if err != nil {
		return nil, err
	}
	return fd.Services().Get(0), nil
}

// readOnlyHandler passes to the gRPC server the calls of HTTPRoutes only: the transcoder knows
// every method of the services (their schema), so a mutation is stopped here, after transcoding
// and whatever protocol it came in (REST, Connect, gRPC-Web or gRPC), before any interceptor.
type readOnlyHandler struct{ next http.Handler }

func (h readOnlyHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !httpServed(r.URL.Path) {
		// A trailers-only gRPC response, which the transcoder turns into the caller's protocol.
		st := status.New(codes.Unimplemented, "served over gRPC only: "+r.URL.Path)
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "12")
		w.Header().Set("Grpc-Message", st.Message())
		w.WriteHeader(http.StatusOK)
		return
	}
	h.next.ServeHTTP(w, r)
}
