package client_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
)

// The examples run against a real ledgerd. This module cannot import the server (its module
// brings the database drivers that a client must not pull), so TestMain builds the repository's
// cmd/ledgerd once and each example starts it as a process, as a deployment would run it.
// The client's tests that need more than that (failure injection, restarts, TLS) live in the
// root module, in internal/clienttest.

var ledgerdBinary string // built by TestMain; empty outside the repository

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "budgetledger-client-test-")
	if err != nil {
		log.Fatal(err)
	}
	code := func() int {
		defer os.RemoveAll(dir)
		root, err := filepath.Abs("..")
		if err != nil {
			log.Fatal(err)
		}
		// Outside the repository (this module read from the module cache) there is no ledgerd
		// to build: run the tests that need none.
		if mod, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil ||
			!bytes.HasPrefix(mod, []byte("module github.com/budgetledger/budgetledger\n")) {
			fmt.Println("client: no ledgerd to build beside this module; the examples are skipped")
			flag.Set("test.run", "^Test")
			return m.Run()
		}
		ledgerdBinary = filepath.Join(dir, "ledgerd")
		build := exec.Command("go", "build", "-o", ledgerdBinary, "./cmd/ledgerd")
		build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			log.Fatalf("building ledgerd for the examples: %v", err)
		}
		return m.Run()
	}()
	os.Exit(code)
}

// startServer stands in for a deployed ledgerd: the real server on a temporary SQLite file, on a
// loopback port it picks. It returns the server's address and a function that stops it.
func startServer() (addr string, stop func()) {
	dir, err := os.MkdirTemp("", "budgetledger-example-")
	if err != nil {
		log.Fatal(err)
	}
	cmd := exec.Command(ledgerdBinary, "--listen", "127.0.0.1:0", "--database", filepath.Join(dir, "ledger.db"),
		"--log-format", "json", "--tx-timeout", "5m") // no example depends on the machine's speed
	logs, err := cmd.StderrPipe()
	if err != nil {
		log.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		log.Fatal(err)
	}
	// ledgerd logs the address it took once it serves; until then nothing can be called.
	lines := bufio.NewScanner(logs)
	for addr == "" && lines.Scan() {
		var line struct{ Msg, Address string }
		if json.Unmarshal(lines.Bytes(), &line) == nil && line.Msg == "ledgerd listening" {
			addr = line.Address
		}
	}
	if addr == "" {
		cmd.Process.Kill()
		log.Fatalf("ledgerd stopped before serving: %v", cmd.Wait())
	}
	drained := make(chan struct{})
	go func() { io.Copy(io.Discard, logs); close(drained) }() // one log line per call
	return addr, func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-drained
		if err := cmd.Wait(); err != nil {
			log.Printf("ledgerd: %v", err)
		}
		os.RemoveAll(dir)
	}
}
