// Command ledgertoken mints a bearer token for ledgerd: a random 256-bit token, printed once, and
// the line of ledgerd's tokens file that accepts it (the token's SHA-256, never the token).
//
//	go run ./cmd/ledgertoken --name alice --role admin
//	blt_Qm9v…                                     <- the token: give it to alice, keep it nowhere
//	sha256:5e88…d1 alice admin                    <- the line: add it to the tokens file
//
// With --append FILE the line goes to the end of FILE (created, mode 0600, if missing) and only
// the token is printed. Then send ledgerd SIGHUP to take the new line in.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/budgetledger/budgetledger/server"
)

func main() {
	if err := realMain(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "ledgertoken:", err)
		os.Exit(2)
	}
}

func realMain(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ledgertoken", flag.ContinueOnError)
	fs.SetOutput(stderr)
	name := fs.String("name", "", "the principal's name, recorded as the caller of its journal entries (letters, digits, . _ - @ : / +)")
	role := fs.String("role", "", "service, admin or auditor")
	appendTo := fs.String("append", "", "append the tokens file line to this file instead of printing it")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: ledgertoken --name NAME --role service|admin|auditor [--append TOKENS_FILE]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *name == "" || *role == "" {
		return errors.New("--name and --role are required")
	}
	token, line, err := server.MintToken(*name, server.Role(*role))
	if err != nil {
		return err
	}
	if *appendTo != "" {
		// A file ledgerd would refuse for its modes (or its folders') is refused here too (not for
		// its owner: ledgertoken may run as root on a file of ledgerd's user),
		// before anything is written; a file that does not exist yet is made 0600, and removed
		// again if ledgerd would refuse it where it is.
		_, statErr := os.Stat(*appendTo)
		created := os.IsNotExist(statErr)
		f, err := os.OpenFile(*appendTo, os.O_APPEND|os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			return err
		}
		if _, err := server.CheckTokensFileModes(*appendTo); err != nil {
			f.Close()
			if created {
				os.Remove(*appendTo)
			}
			return fmt.Errorf("%w; nothing appended", err)
		}
		// A principal has one role: a line giving it another would make ledgerd refuse the whole
		// file at its next start or reload. So would a file that is already broken.
		roles, err := server.TokensFileRoles(f)
		if err != nil {
			f.Close()
			return fmt.Errorf("%s: %w; nothing appended", *appendTo, err)
		}
		if had, ok := roles[*name]; ok && had != server.Role(*role) {
			f.Close()
			return fmt.Errorf("%s already has role %s in %s, and a principal has one role; nothing appended "+
				"(use another name, or edit the file to change %s's role)", *name, had, *appendTo, *name)
		}
		// A last line without its newline would swallow ours.
		if st, err := f.Stat(); err == nil && st.Size() > 0 {
			last := make([]byte, 1)
			if _, err := f.ReadAt(last, st.Size()-1); err == nil && last[0] != '\n' {
				line = "\n" + line
			}
		}
		if _, err := fmt.Fprintln(f, line); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		fmt.Fprintln(stdout, token)
		fmt.Fprintf(stderr, "ledgertoken: added %s (%s) to %s; send ledgerd SIGHUP to take it in.\n"+
			"The token above is shown once and stored nowhere: hand it to %s now.\n", *name, *role, *appendTo, *name)
		return nil
	}
	fmt.Fprintln(stdout, token)
	fmt.Fprintln(stdout, line)
	fmt.Fprintf(stderr, "ledgertoken: line 1 is the token, shown once and stored nowhere: hand it to %s now.\n"+
		"Line 2 goes into ledgerd's tokens file; then send ledgerd SIGHUP.\n", *name)
	return nil
}
