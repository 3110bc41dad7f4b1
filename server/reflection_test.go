package server_test

import (
	"context"
	"strings"
	"testing"

	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/budgetledger/budgetledger/server"
)

// TestReflectionServesDocumentation protects "grpcurl describe is the manual": server reflection
// serves the descriptors with their source info, so that every RPC of every service comes with
// the comment written above it in the .proto file (what grpcurl describe prints).
func TestReflectionServesDocumentation(t *testing.T) {
	t.Parallel()
	addr, _ := serveLedger(t, server.Config{})
	stream, err := reflectionpb.NewServerReflectionClient(dialPlain(t, addr)).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ask := func(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
		t.Helper()
		if err := stream.Send(req); err != nil {
			t.Fatal(err)
		}
		resp, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	list := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	set := &descriptorpb.FileDescriptorSet{}
	seen := map[string]bool{}
	var services []string
	for _, s := range list.GetListServicesResponse().GetService() {
		if !strings.HasPrefix(s.GetName(), "budgetledger.v1.") {
			continue
		}
		services = append(services, s.GetName())
		resp := ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: s.GetName()}})
		for _, raw := range resp.GetFileDescriptorResponse().GetFileDescriptorProto() {
			fdp := &descriptorpb.FileDescriptorProto{}
			if err := proto.Unmarshal(raw, fdp); err != nil {
				t.Fatal(err)
			}
			if !seen[fdp.GetName()] {
				seen[fdp.GetName()] = true
				set.File = append(set.File, fdp)
			}
		}
	}
	if len(services) < 5 {
		t.Fatalf("reflection lists %v, want the five services of budgetledger.v1", services)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatalf("the files reflection sent do not build: %v", err)
	}
	rpcs := 0
	for _, name := range services {
		d, err := files.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		svc := d.(protoreflect.ServiceDescriptor)
		if doc := svc.ParentFile().SourceLocations().ByDescriptor(svc).LeadingComments; strings.TrimSpace(doc) == "" {
			t.Errorf("reflection sends %s without its comment", name)
		}
		for i := range svc.Methods().Len() {
			m := svc.Methods().Get(i)
			rpcs++
			if doc := svc.ParentFile().SourceLocations().ByDescriptor(m).LeadingComments; strings.TrimSpace(doc) == "" {
				t.Errorf("reflection sends %s without its comment", m.FullName())
			}
		}
	}
	if rpcs < 10 {
		t.Errorf("walked %d RPCs, want every RPC of budgetledger.v1", rpcs)
	}
}
