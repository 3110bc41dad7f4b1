package server

import (
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
)

// RoleTableMarkdown is the authorization table as the README and docs/security.md show it: one
// row per RPC of budgetledger.v1 (services by name, RPCs in the order of the .proto files), then
// server reflection and health checks. TestRoleTablesInDocs keeps the documents equal to it.
func RoleTableMarkdown() string {
	var b strings.Builder
	b.WriteString("| RPC |")
	for _, r := range Roles {
		fmt.Fprintf(&b, " %s |", r)
	}
	b.WriteString("\n|---|")
	for range Roles {
		b.WriteString(":-:|")
	}
	b.WriteString("\n")
	row := func(label, method string) {
		fmt.Fprintf(&b, "| %s |", label)
		for _, r := range Roles {
			if slices.Contains(authorization[method], r) {
				b.WriteString(" ✓ |")
			} else {
				b.WriteString(" |")
			}
		}
		b.WriteString("\n")
	}
	var services []protoreflect.ServiceDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("budgetledger.v1", func(fd protoreflect.FileDescriptor) bool {
		for i := range fd.Services().Len() {
			services = append(services, fd.Services().Get(i))
		}
		return true
	})
	slices.SortFunc(services, func(a, b protoreflect.ServiceDescriptor) int {
		return strings.Compare(string(a.Name()), string(b.Name()))
	})
	for _, svc := range services {
		for i := range svc.Methods().Len() {
			m := svc.Methods().Get(i)
			row(fmt.Sprintf("`%s/%s`", svc.Name(), m.Name()), fmt.Sprintf("/%s/%s", svc.FullName(), m.Name()))
		}
	}
	row("server reflection (`grpcurl list`, `describe`)", reflectionv1.ServerReflection_ServerReflectionInfo_FullMethodName)
	b.WriteString("| health checks (`grpc.health.v1.Health`) | open to all, no credential needed | | |\n")
	return b.String()
}
