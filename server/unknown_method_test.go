package server_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
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
		err = authConn.Invoke(bearer(ctx, a.tokens[server.RoleAdmin]), method, &emptypb.Empty{}, &emptypb.Empty{})
		if code, info := errorInfo(t, err); code != codes.PermissionDenied || info.GetReason() != "PERMISSION_DENIED" {
			t.Errorf("%s with a tokens file: %v, want PERMISSION_DENIED", method, err)
		}
	}
}
