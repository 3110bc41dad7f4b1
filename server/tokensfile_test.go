package server_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/budgetledger/budgetledger/server"
)

// TestTokensFilePermissions protects the tokens file from other users: a file that its group or
// other users may write — or that sits in a folder they may write, so they could replace it — is
// refused at start and at reload (whoever writes it grants themselves any role); a file others may
// read is accepted with a warning.
func TestTokensFilePermissions(t *testing.T) {
	t.Parallel()
	_, line, err := server.MintToken("alice", server.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		fileMode os.FileMode
		dirMode  os.FileMode
		refused  bool
		warning  bool
	}{
		{name: "owner only", fileMode: 0o600, dirMode: 0o700},
		{name: "readable by others", fileMode: 0o644, dirMode: 0o755, warning: true},
		{name: "group-writable", fileMode: 0o660, dirMode: 0o700, refused: true},
		{name: "world-writable", fileMode: 0o602, dirMode: 0o700, refused: true},
		{name: "folder group-writable", fileMode: 0o600, dirMode: 0o770, refused: true},
		{name: "folder world-writable", fileMode: 0o600, dirMode: 0o1777, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "etc")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "tokens")
			if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			// Chmod, not the modes of creation, which the umask would trim.
			if err := os.Chmod(path, tc.fileMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			warning, err := server.CheckTokensFilePermissions(path)
			_, authErr := server.NewAuthenticator(path)
			if tc.refused {
				if !errors.Is(err, server.ErrTokensFileWritable) || !errors.Is(authErr, server.ErrTokensFileWritable) {
					t.Errorf("check: %v; NewAuthenticator: %v; want both refused as writable by others", err, authErr)
				}
				return
			}
			if err != nil || authErr != nil {
				t.Fatalf("check: %v; NewAuthenticator: %v; want the file accepted", err, authErr)
			}
			if tc.warning != (warning != "") || tc.warning && !strings.Contains(warning, "chmod 600") {
				t.Errorf("warning %q, want one: %v", warning, tc.warning)
			}
		})
	}
}

// TestReloadRefusesWritableTokensFile checks that a tokens file made writable by others after
// the start is refused at reload, and the credentials in force are kept.
func TestReloadRefusesWritableTokensFile(t *testing.T) {
	t.Parallel()
	path := writeTokensFile(t, server.TokenHash("blt_example")+" alice admin")
	a, err := server.NewAuthenticator(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := a.Reload(); !errors.Is(err, server.ErrTokensFileWritable) {
		t.Errorf("Reload of a world-writable file: %v, want it refused", err)
	}
}

// TestTokensFileFoundThroughLinksAndFolders protects docs/security.md's "whoever writes the file
// grants themselves any role" beyond the file and its folder: a symbolic link to a file in a
// folder others may write, a folder above the file that others may write (not sticky), and a file
// another user owns (who may make it writable) are refused; a sticky world-writable folder above
// (as /tmp, which holds the tests' own folders) is not.
func TestTokensFileFoundThroughLinksAndFolders(t *testing.T) {
	t.Parallel()
	_, line, err := server.MintToken("alice", server.RoleAdmin)
	if err != nil {
		t.Fatal(err)
	}
	// tokensIn writes a tokens file at root/rel, every folder on the way 0700, and returns its path.
	tokensIn := func(t *testing.T, root, rel string) string {
		t.Helper()
		path := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	refused := func(t *testing.T, path string) {
		t.Helper()
		if _, err := server.CheckTokensFilePermissions(path); !errors.Is(err, server.ErrTokensFileWritable) {
			t.Errorf("check of %s: %v, want it refused", path, err)
		}
		if _, err := server.NewAuthenticator(path); !errors.Is(err, server.ErrTokensFileWritable) {
			t.Errorf("NewAuthenticator(%s): %v, want it refused", path, err)
		}
	}
	t.Run("link to a folder others write", func(t *testing.T) {
		root := t.TempDir()
		target := tokensIn(t, root, "pub/tokens")
		if err := os.Chmod(filepath.Dir(target), 0o777); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(root, "safe", "tokens")
		if err := os.Mkdir(filepath.Dir(link), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		refused(t, link)
	})
	t.Run("a folder above others write", func(t *testing.T) {
		root := t.TempDir()
		path := tokensIn(t, root, "ww/sub/tokens")
		if err := os.Chmod(filepath.Join(root, "ww"), 0o777); err != nil {
			t.Fatal(err)
		}
		refused(t, path)
	})
	t.Run("a sticky folder above others write", func(t *testing.T) {
		root := t.TempDir()
		path := tokensIn(t, root, "tmp/sub/tokens")
		if err := os.Chmod(filepath.Join(root, "tmp"), 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
		if _, err := server.CheckTokensFilePermissions(path); err != nil {
			t.Errorf("check: %v, want the file accepted", err)
		}
	})
	t.Run("a file another user owns", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("only root can give a file to another user")
		}
		path := tokensIn(t, t.TempDir(), "etc/tokens")
		if err := os.Chown(path, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		refused(t, path)
	})
}
