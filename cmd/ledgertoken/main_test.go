package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/server"
)

// TestMintsTokenAndLine checks that ledgertoken prints a fresh token and the tokens file line of
// its hash (not the token), and that ledgerd's parser accepts the line.
func TestMintsTokenAndLine(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := realMain([]string{"--name", "alice", "--role", "admin"}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("stdout = %q, want the token and the line", out.String())
	}
	token, line := lines[0], lines[1]
	if !strings.HasPrefix(token, server.TokenPrefix) || len(token) < 40 {
		t.Errorf("token %q: want %s and 256 random bits", token, server.TokenPrefix)
	}
	if want := server.TokenHash(token) + " alice admin"; line != want {
		t.Errorf("line = %q, want %q", line, want)
	}
	if strings.Contains(line, token) || strings.Contains(errOut.String(), token) {
		t.Error("the token is somewhere else than on the first line of stdout")
	}
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte(line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := server.NewAuthenticator(file); err != nil {
		t.Errorf("ledgerd refuses the line: %v", err)
	}

	var again bytes.Buffer
	if err := realMain([]string{"--name", "alice", "--role", "admin"}, &again, &errOut); err != nil {
		t.Fatal(err)
	}
	if strings.Split(again.String(), "\n")[0] == token {
		t.Error("two runs minted the same token")
	}
}

// TestAppends checks --append: the line goes to the file (created 0600, a missing final newline
// mended), only the token to stdout.
func TestAppends(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	var tokens []string
	for i, role := range []string{"service", "auditor"} {
		if i == 1 { // a file edited by hand, without its final newline
			f, err := os.OpenFile(file, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteString("# added by hand")
			f.Close()
		}
		var out bytes.Buffer
		if err := realMain([]string{"--name", "svc-" + role, "--role", role, "--append", file}, &out, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		tokens = append(tokens, strings.TrimSpace(out.String()))
	}
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("tokens file mode %v, want 0600", st.Mode().Perm())
	}
	content, _ := os.ReadFile(file)
	a, err := server.NewAuthenticator(file)
	if err != nil {
		t.Fatalf("ledgerd refuses the file:\n%s\n%v", content, err)
	}
	if n, _ := a.Counts(); n != 2 {
		t.Errorf("the file holds %d tokens, want 2:\n%s", n, content)
	}
	for _, tok := range tokens {
		if !strings.HasPrefix(tok, server.TokenPrefix) || strings.Contains(string(content), tok) {
			t.Errorf("stdout %q: want only the token, and the token not in the file", tok)
		}
	}
}

// TestRejectsBadPrincipal checks the refusals of names and roles ledgerd would not accept.
func TestRejectsBadPrincipal(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--name", "alice"}, "--name and --role are required"},
		{[]string{"--role", "admin"}, "--name and --role are required"},
		{[]string{"--name", "alice", "--role", "root"}, "none of service, admin, auditor"},
		{[]string{"--name", "al ice", "--role", "admin"}, "a principal name has only"},
		{[]string{"--name", "anonymous", "--role", "admin"}, "anonymous"},
		{[]string{"--name", "alice", "--role", "admin", "extra"}, "unexpected argument"},
	} {
		var out bytes.Buffer
		err := realMain(tc.args, &out, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ledgertoken %v: %v, want an error with %q", tc.args, err, tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("ledgertoken %v printed %q", tc.args, out.String())
		}
	}
}

// TestAppendKeepsOneRolePerPrincipal protects the tokens file from --append: a second token for a
// principal with the same role is added (to rotate tokens), one with another role is refused with
// nothing written — ledgerd would refuse the whole file at its next start — and so is an append
// to a file ledgerd already refuses.
func TestAppendKeepsOneRolePerPrincipal(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	appendAs := func(role string) error {
		return realMain([]string{"--name", "alice", "--role", role, "--append", file}, &bytes.Buffer{}, &bytes.Buffer{})
	}
	for range 2 {
		if err := appendAs("admin"); err != nil {
			t.Fatalf("alice as admin: %v", err)
		}
	}
	before, _ := os.ReadFile(file)
	err := appendAs("service")
	if err == nil || !strings.Contains(err.Error(), "already has role admin") {
		t.Errorf("alice as service after admin: %v, want a refusal naming her role", err)
	}
	after, _ := os.ReadFile(file)
	if !bytes.Equal(before, after) {
		t.Errorf("the refused append changed the file:\n%s", after)
	}
	a, err := server.NewAuthenticator(file)
	if err != nil {
		t.Fatalf("ledgerd refuses the file: %v", err)
	}
	if n, _ := a.Counts(); n != 2 {
		t.Errorf("the file holds %d tokens, want alice's 2", n)
	}
	if err := os.WriteFile(file, []byte("sha256:beef bob admin\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := appendAs("admin"); err == nil || !strings.Contains(err.Error(), "nothing appended") {
		t.Errorf("append to a broken file: %v, want a refusal", err)
	}
}

// TestAppendRefusesAFileLedgerdRefuses protects docs/security.md: --append writes nothing to a
// tokens file that ledgerd would refuse for its permissions (writable by group or others), where
// it used to append a line the server then refused to read.
func TestAppendRefusesAFileLedgerdRefuses(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# tokens\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(file, 0o622); err != nil {
		t.Fatal(err)
	}
	err := realMain([]string{"--name", "svc", "--role", "service", "--append", file}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, server.ErrTokensFileWritable) {
		t.Fatalf("--append to a file others may write: %v, want %v", err, server.ErrTokensFileWritable)
	}
	if content, _ := os.ReadFile(file); string(content) != "# tokens\n" {
		t.Errorf("the file changed:\n%s", content)
	}
	// A new file in a folder others may write is refused too, and not left behind.
	pub := filepath.Join(t.TempDir(), "pub")
	if err := os.Mkdir(pub, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(pub, 0o777); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(pub, "tokens")
	err = realMain([]string{"--name", "svc", "--role", "service", "--append", fresh}, &bytes.Buffer{}, &bytes.Buffer{})
	if !errors.Is(err, server.ErrTokensFileWritable) {
		t.Errorf("--append to a new file in a folder others may write: %v, want %v", err, server.ErrTokensFileWritable)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("the refused new file is left behind: %v", err)
	}
}

// TestAppendAsRootToTheServicesFile: root appending to the tokens file of ledgerd's own user
// (mode 0600, owned by that user, as a deployment keeps it) is not refused for its owner:
// ledgertoken cannot tell which user will read the file, and ledgerd checks the owner itself.
func TestAppendAsRootToTheServicesFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root can give a file to another user")
	}
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte("# tokens\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(file, 999, 999); err != nil {
		t.Fatal(err)
	}
	if err := realMain([]string{"--name", "svc", "--role", "service", "--append", file}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatalf("--append as root to a file of the service's user: %v", err)
	}
	if content, _ := os.ReadFile(file); !bytes.Contains(content, []byte(" svc service")) {
		t.Errorf("the line was not appended:\n%s", content)
	}
}
