package server

import "testing"

// TestEmbeddedDescriptorsUpToDate protects reflection's documentation from drifting: the embedded
// descriptor set (with comments) must be the API compiled into the server, comments aside. When it
// fails, run go generate ./server/.
func TestEmbeddedDescriptorsUpToDate(t *testing.T) {
	files, err := documentedFiles()
	if err != nil {
		t.Fatal(err)
	}
	if files.NumFilesByPackage("budgetledger.v1") == 0 {
		t.Fatal("the embedded descriptor set holds no file of budgetledger.v1")
	}
	if stale := staleFiles(files); len(stale) > 0 {
		t.Errorf("server/descriptors.binpb is stale for %v: run go generate ./server/", stale)
	}
}
