package server_test

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/budgetledger/budgetledger/server"
)

// TestUnknownMethodsCarryErrorInfo protects README's "every error carries a google.rpc.ErrorInfo"
// for a call of a method or service the server does not have: UNIMPLEMENTED with reason
// METHOD_NOT_FOUND naming the method, and a log line, as any refusal. With a tokens file, the
// role table refuses it first (PERMISSION_DENIED, with its ErrorInfo): a principal learns nothing
// of which methods exist beyond those it may call.
func TestUnknownMethodsCarryErrorInfo(t *testing.T) {
	t.Parallel()
	logs := &lockedBuffer{}
	addr, _ := serveLedger(t, server.Config{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	// A rate limit counts what it refuses, unknown methods too.
	reg := prometheus.NewRegistry()
	limitedAddr, _ := serveLedger(t, server.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: reg, RateLimit: 0.001, RateBurst: 1})
	limited := dialPlain(t, limitedAddr)
	conn := dialPlain(t, addr)
	a := startAuth(t, server.Config{})
	authConn := dialPlain(t, a.addr)
	ctx := context.Background()
	for _, method := range []string{"/budgetledger.v1.EnvelopeService/Nope", "/nope.v1.Service/Call"} {
		err := conn.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
		code, info := errorInfo(t, err)
		if code != codes.Unimplemented || info.GetReason() != "METHOD_NOT_FOUND" || info.GetMetadata()["method"] != method {
			t.Errorf("%s: %v (ErrorInfo %v), want UNIMPLEMENTED METHOD_NOT_FOUND naming the method", method, err, info)
		}
		if !strings.Contains(logs.String(), method) {
			t.Errorf("%s: no log line names the call:\n%s", method, logs)
		}
		// Past the rate limit's burst, refused and counted; the name is no metric label.
		for range 2 {
			_ = limited.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{})
		}
		if err := limited.Invoke(ctx, method, &emptypb.Empty{}, &emptypb.Empty{}); status.Code(err) != codes.ResourceExhausted {
			t.Errorf("%s past the rate limit: %v, want RESOURCE_EXHAUSTED", method, err)
		}
		err = authConn.Invoke(bearer(ctx, a.tokens[server.RoleAdmin]), method, &emptypb.Empty{}, &emptypb.Empty{})
		if code, info := errorInfo(t, err); code != codes.PermissionDenied || info.GetReason() != "PERMISSION_DENIED" {
			t.Errorf("%s with a tokens file: %v, want PERMISSION_DENIED", method, err)
		}
	}
	// A name of the caller's choosing is cut short in the log, which says it at INFO, not ERROR,
	// and never becomes a metric label.
	long := "/" + strings.Repeat("x", 5000) + ".v1.S/M"
	_ = conn.Invoke(ctx, long, &emptypb.Empty{}, &emptypb.Empty{})
	for _, line := range strings.Split(logs.String(), "\n") {
		if strings.Contains(line, "xxxxx") && (len(line) > 1000 || strings.Contains(line, "level=ERROR")) {
			t.Errorf("an unknown method's log line is %d bytes long, or an ERROR: %.300s", len(line), line)
		}
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.Contains(l.GetValue(), "Nope") || strings.Contains(l.GetValue(), "nope") || strings.Contains(l.GetValue(), "xxxxx") {
					t.Errorf("metric %s has the caller's method name as label %s=%q", f.GetName(), l.GetName(), l.GetValue())
				}
			}
		}
	}
}
