package clienttest_test

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

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestClientKnowsEveryReason: the Go client names every reason of the contract's ErrorReason
// enum (issue 18: every refusal reason in the contract), so that a caller can switch on any of
// them. It reads the client's Reason constants from its source, in every file of the package.
func TestClientKnowsEveryReason(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "client", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var client []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		client = append(client, reasonConstants(f)...)
	}
	var enum []string
	values := pb.ErrorReason(0).Descriptor().Values()
	for i := range values.Len() {
		if v := values.Get(i); v.Number() != 0 {
			enum = append(enum, strings.TrimPrefix(string(v.Name()), "ERROR_REASON_"))
		}
	}
	slices.Sort(client)
	slices.Sort(enum)
	if diff := cmp.Diff(enum, client); diff != "" {
		t.Errorf("the ErrorReason enum (-) and the client's Reason constants (+) differ:\n%s", diff)
	}
}

// reasonConstants are the values of the constants of type Reason declared in f.
func reasonConstants(f *ast.File) []string {
	var out []string
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
			for _, v := range vs.Values {
				s, _ := strconv.Unquote(v.(*ast.BasicLit).Value)
				out = append(out, s)
			}
		}
	}
	return out
}
