package main

import (
	"context"
	"io"
	"strings"
	"testing"
)

// TestRejectsBadBatchQueues checks that ledgerd refuses a group-commit queue count that is not a
// count (negative, or not a number in LEDGER_BATCH_QUEUES) before it opens anything, instead of
// silently running with the default.
func TestRejectsBadBatchQueues(t *testing.T) {
	t.Chdir(t.TempDir())
	for _, tc := range []struct {
		args []string
		env  string
		want string
	}{
		{args: []string{"--batch-queues", "-1"}, want: "--batch-queues must not be negative"},
		{args: []string{"--batch-queues", "two"}, want: "batch-queues"},
		{env: "many", want: "LEDGER_BATCH_QUEUES"},
	} {
		if tc.env != "" {
			t.Setenv("LEDGER_BATCH_QUEUES", tc.env)
		}
		err := realMain(context.Background(), append(tc.args, "--listen", "127.0.0.1:0"), io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ledgerd %v (LEDGER_BATCH_QUEUES=%q): error %v, want one mentioning %q", tc.args, tc.env, err, tc.want)
		}
	}
}
