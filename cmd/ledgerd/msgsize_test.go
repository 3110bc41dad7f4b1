package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestMessageSizeFlags checks that --max-recv-msg-size (and LEDGER_MAX_RECV_MSG_SIZE) reach the
// server: a request over the limit is refused with RESOURCE_EXHAUSTED before the ledger decides
// anything, so nothing is awarded (issue 16: size limits are the operator's, and consistent).
func TestMessageSizeFlags(t *testing.T) {
	const limit = 2048
	batch := &pb.BatchCommitRequest{Envelope: "envelopes/axis-3", RequestId: "committee"}
	for i := range 100 {
		batch.Items = append(batch.Items, &pb.BatchCommitItem{Beneficiary: fmt.Sprintf("commune:%05d", i), Project: "wifi", Amount: 1})
	}
	check := func(t *testing.T, args ...string) {
		addr, _ := runLedgerd(t, append([]string{"--listen", "127.0.0.1:0", "--database", filepath.Join(t.TempDir(), "ledger.db")}, args...)...)
		envelopes := pb.NewEnvelopeServiceClient(dial(t, addr))
		ctx := context.Background()
		if _, err := envelopes.CreateEnvelope(ctx, &pb.CreateEnvelopeRequest{EnvelopeId: "axis-3", Allocation: 1000, RequestId: "axis-3"}); err != nil {
			t.Fatal(err)
		}
		_, err := pb.NewCommitmentServiceClient(dial(t, addr)).BatchCommit(ctx, batch)
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("a BatchCommit of %d bytes over a %d-byte limit: %v, want RESOURCE_EXHAUSTED", proto.Size(batch), limit, err)
		}
		env, err := envelopes.GetEnvelope(ctx, &pb.GetEnvelopeRequest{Name: "envelopes/axis-3"})
		if err != nil || env.GetEnvelope().GetCommitmentCount() != 0 {
			t.Errorf("after the refused request: %v, %v; want no award", env.GetEnvelope(), err)
		}
	}
	t.Run("flag", func(t *testing.T) { check(t, "--max-recv-msg-size", strconv.Itoa(limit)) })
	t.Run("environment", func(t *testing.T) {
		t.Setenv("LEDGER_MAX_RECV_MSG_SIZE", strconv.Itoa(limit))
		check(t)
	})
}

// TestRejectsBadMessageSizes checks that ledgerd refuses size limits that break the promise to
// clients: a response limit below the largest response to a valid request (the work would be
// done, then reported failed), or a request limit that is not a size.
func TestRejectsBadMessageSizes(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-send-msg-size", strconv.Itoa(4 << 20)}, "--max-send-msg-size must be at least " + strconv.Itoa(pb.MaxResponseSize)},
		{[]string{"--max-recv-msg-size", "0"}, "--max-recv-msg-size"},
		{[]string{"--max-recv-msg-size", "4MiB"}, "max-recv-msg-size"},
	} {
		err := realMain(context.Background(), append(tc.args, "--listen", "127.0.0.1:0"), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ledgerd %v: error %v, want one mentioning %q", tc.args, err, tc.want)
		}
	}
}
