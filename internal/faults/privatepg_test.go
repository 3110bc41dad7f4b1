//go:build faults

package faults

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// privatePostgres is a PostgreSQL server of the test's own: initdb into a temporary directory,
// its own port on 127.0.0.1, so that stopping it disturbs no other test. As root, its commands
// run as the postgres user (initdb and postgres refuse to run as root).
type privatePostgres struct {
	t       *testing.T
	bin     string // directory of initdb, pg_ctl
	dir     string // owned by the server's user
	data    string
	port    int
	url     string
	asOwner func(name string, args ...string) *exec.Cmd
}

// startPrivatePostgres initialises and starts a server; it is stopped and removed when the test
// ends. Without PostgreSQL's server binaries the test is skipped, or fails with CI=true.
func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bin := postgresBinaries()
	if bin == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("no PostgreSQL server binaries (initdb, pg_ctl) under /usr/lib/postgresql/*/bin or on PATH")
		}
		t.Skip("no PostgreSQL server binaries (initdb, pg_ctl); skipping")
	}
	p := &privatePostgres{t: t, bin: bin, asOwner: exec.Command}
	dir, err := os.MkdirTemp("", "faults-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir, p.data = dir, filepath.Join(dir, "data")
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Geteuid() == 0 {
		owner, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(owner.Uid)
		gid, _ := strconv.Atoi(owner.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
		p.asOwner = func(name string, args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", name}, args...)...)
		}
	}
	p.port = freePort(t)
	p.run("initdb", "-D", p.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	conf := fmt.Sprintf("\nlisten_addresses = '127.0.0.1'\nport = %d\nunix_socket_directories = '%s'\nmax_connections = 100\n",
		p.port, p.dir)
	if err := appendFile(filepath.Join(p.data, "postgresql.conf"), conf); err != nil {
		t.Fatal(err)
	}
	p.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", p.port)
	t.Cleanup(func() {
		// Immediate: nothing of it needs to survive.
		_ = p.asOwner(filepath.Join(p.bin, "pg_ctl"), "-D", p.data, "-m", "immediate", "-w", "stop").Run()
	})
	p.start()
	return p
}

// start starts the server and waits until it accepts connections.
func (p *privatePostgres) start() {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.data, "-l", filepath.Join(p.dir, "log"), "-w", "-t", "60", "start")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, p.url)
		if err == nil {
			conn.Close(ctx)
			return
		}
		if ctx.Err() != nil {
			p.t.Fatalf("private PostgreSQL does not accept connections: %v\n%s", err, p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopImmediate stops the server in immediate mode: every backend is killed at once, no
// checkpoint, crash recovery at the next start.
func (p *privatePostgres) stopImmediate() {
	p.t.Helper()
	p.run("pg_ctl", "-D", p.data, "-m", "immediate", "-w", "stop")
}

func (p *privatePostgres) run(name string, args ...string) {
	p.t.Helper()
	out, err := p.asOwner(filepath.Join(p.bin, name), args...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("%s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out, p.log())
	}
}

func (p *privatePostgres) log() string {
	b, _ := os.ReadFile(filepath.Join(p.dir, "log"))
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// postgresBinaries is the directory of the newest PostgreSQL server binaries, or "".
func postgresBinaries() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return versionOf(b) - versionOf(a) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "pg_ctl")); err == nil {
			return d
		}
	}
	if initdb, err := exec.LookPath("initdb"); err == nil {
		if _, err := exec.LookPath("pg_ctl"); err == nil {
			return filepath.Dir(initdb)
		}
	}
	return ""
}

func versionOf(binDir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return n
}

// freePort returns a TCP port on 127.0.0.1 that nothing listens on at the moment.
func freePort(t *testing.T) int {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	return lis.Addr().(*net.TCPAddr).Port
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
