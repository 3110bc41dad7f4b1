package server

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// serverReasons is every ErrorInfo reason the server's tables list, with its gRPC code.
func serverReasons() map[string]codes.Code {
	all := map[string]codes.Code{}
	for r, c := range reasonCodes {
		all[string(r)] = c
	}
	for r, c := range serverReasonCodes {
		all[r] = c
	}
	return all
}

// TestErrorReasonsAgree: the contract lists every refusal a client can meet (issue 18). The
// proto's ErrorReason enum and the server's reason tables name the same reasons, both ways: a
// reason the server sends is in the enum (its name is ERROR_REASON_ + the reason), and every value
// of the enum but UNSPECIFIED is a reason the server sends.
func TestErrorReasonsAgree(t *testing.T) {
	var fromEnum []string
	values := pb.ErrorReason(0).Descriptor().Values()
	for i := range values.Len() {
		v := values.Get(i)
		if v.Number() == 0 {
			continue
		}
		name, ok := strings.CutPrefix(string(v.Name()), "ERROR_REASON_")
		if !ok {
			t.Errorf("ErrorReason value %s lacks the ERROR_REASON_ prefix", v.Name())
		}
		fromEnum = append(fromEnum, name)
	}
	var fromServer []string
	for r := range serverReasons() {
		fromServer = append(fromServer, r)
	}
	slices.Sort(fromEnum)
	slices.Sort(fromServer)
	if diff := cmp.Diff(fromServer, fromEnum); diff != "" {
		t.Errorf("the server's reasons (-) and the ErrorReason enum (+) differ:\n%s", diff)
	}
}

// TestEveryReasonSentIsInTheTables: no reason reaches a client without being in the server's
// tables (and so, by TestErrorReasonsAgree, in the enum). It reads the code: every Reason
// constant of the ledger, and every reason given to withInfo or to an ErrorInfo literal in
// server/, including the literals of auth.go.
func TestEveryReasonSentIsInTheTables(t *testing.T) {
	known := serverReasons()
	fset := token.NewFileSet()
	parse := func(pattern string) []*ast.File {
		paths, err := filepath.Glob(pattern)
		if err != nil || len(paths) == 0 {
			t.Fatalf("no file matches %s: %v", pattern, err)
		}
		var files []*ast.File
		for _, p := range paths {
			if strings.HasSuffix(p, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		return files
	}
	// String constants by name: the ledger's Reason constants, and server/'s own.
	ledgerReasons := map[string]string{}
	consts := map[string]string{}
	for _, f := range parse(filepath.Join("..", "ledger", "core", "*.go")) {
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				if typ, ok := vs.Type.(*ast.Ident); !ok || typ.Name != "Reason" {
					continue
				}
				for i, name := range vs.Names {
					v, _ := strconv.Unquote(vs.Values[i].(*ast.BasicLit).Value)
					ledgerReasons[name.Name] = v
				}
			}
		}
	}
	if len(ledgerReasons) < 15 {
		t.Fatalf("found %d Reason constants in ledger/core, want at least 15", len(ledgerReasons))
	}
	for name, r := range ledgerReasons {
		if _, ok := known[r]; !ok {
			t.Errorf("ledger/core's %s (%q) is in no reason table of the server", name, r)
		}
	}
	server := parse("*.go")
	for _, f := range server {
		ast.Inspect(f, func(n ast.Node) bool {
			if vs, ok := n.(*ast.ValueSpec); ok {
				for i, name := range vs.Names {
					if i < len(vs.Values) {
						if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
							consts[name.Name], _ = strconv.Unquote(lit.Value)
						}
					}
				}
			}
			return true
		})
	}
	// value resolves a reason expression: a literal, a constant, string(ledger.ReasonX).
	var value func(e ast.Expr) (string, bool)
	value = func(e ast.Expr) (string, bool) {
		switch e := e.(type) {
		case *ast.BasicLit:
			v, err := strconv.Unquote(e.Value)
			return v, err == nil
		case *ast.Ident:
			v, ok := consts[e.Name]
			return v, ok
		case *ast.SelectorExpr:
			v, ok := ledgerReasons[e.Sel.Name]
			return v, ok
		case *ast.CallExpr:
			if fn, ok := e.Fun.(*ast.Ident); ok && fn.Name == "string" && len(e.Args) == 1 {
				return value(e.Args[0])
			}
		}
		return "", false
	}
	sites := 0
	check := func(pos token.Pos, e ast.Expr) {
		sites++
		r, ok := value(e)
		switch {
		case !ok:
			// A reason computed at run time: the ledger's, whose constants are checked above.
			if sel, isSel := e.(*ast.SelectorExpr); !isSel || sel.Sel.Name != "Reason" {
				if call, isCall := e.(*ast.CallExpr); !isCall || !isReasonField(call) {
					t.Errorf("%s: a reason this test cannot resolve: %#v", fset.Position(pos), e)
				}
			}
		case known[r] == 0 && r != "":
			t.Errorf("%s: sends reason %q, which is in no reason table of the server", fset.Position(pos), r)
		}
	}
	for _, f := range server {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.FuncDecl:
				// withInfo passes its caller's reason on; its callers are checked.
				return n.Name.Name != "withInfo"
			case *ast.CallExpr:
				if fn, ok := n.Fun.(*ast.Ident); ok && fn.Name == "withInfo" && len(n.Args) == 4 {
					check(n.Pos(), n.Args[2])
				}
			case *ast.CompositeLit:
				sel, ok := n.Type.(*ast.SelectorExpr)
				if !ok || sel.Sel.Name != "ErrorInfo" {
					return true
				}
				for _, el := range n.Elts {
					if kv, ok := el.(*ast.KeyValueExpr); ok && kv.Key.(*ast.Ident).Name == "Reason" {
						check(kv.Pos(), kv.Value)
					}
				}
			}
			return true
		})
	}
	if sites < 6 {
		t.Errorf("found %d places that send a reason, want at least 6 (errors.go, validate.go, auth.go...)", sites)
	}
}

// isReasonField reports whether call is string(x.Reason): the reason of a ledger error, one of the
// ledger's constants.
func isReasonField(call *ast.CallExpr) bool {
	fn, ok := call.Fun.(*ast.Ident)
	if !ok || fn.Name != "string" || len(call.Args) != 1 {
		return false
	}
	sel, ok := call.Args[0].(*ast.SelectorExpr)
	return ok && sel.Sel.Name == "Reason"
}
