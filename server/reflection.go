package server

import (
	_ "embed"
	"errors"
	"fmt"
	"log/slog"

	"google.golang.org/grpc"
	"google.golang.org/grpc/reflection"
	v1reflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1"
	v1alphareflectiongrpc "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// descriptorSet is the API's descriptors with their source info (the comments of the .proto
// files), which the descriptors compiled into the Go code lack: reflection serves these, so that
// `grpcurl describe` prints the documentation. Regenerate with `go generate ./server/` after any
// change to the .proto files; CI checks it is up to date.
//
//go:generate sh -c "cd .. && go tool -modfile=tools/go.mod buf build --as-file-descriptor-set --path proto/budgetledger -o server/descriptors.binpb"
//go:embed descriptors.binpb
var descriptorSet []byte

// documentedFiles builds the files of descriptorSet.
func documentedFiles() (*protoregistry.Files, error) {
	var set descriptorpb.FileDescriptorSet
	if err := proto.Unmarshal(descriptorSet, &set); err != nil {
		return nil, fmt.Errorf("embedded descriptor set: %w", err)
	}
	files, err := protodesc.NewFiles(&set)
	if err != nil {
		return nil, fmt.Errorf("embedded descriptor set: %w", err)
	}
	return files, nil
}

// layeredResolver finds descriptors in the documented files first, then among those compiled
// into the program (health, reflection).
type layeredResolver []*protoregistry.Files

func (l layeredResolver) FindFileByPath(path string) (protoreflect.FileDescriptor, error) {
	for _, files := range l {
		if fd, err := files.FindFileByPath(path); err == nil {
			return fd, nil
		} else if !errors.Is(err, protoregistry.NotFound) {
			return nil, err
		}
	}
	return nil, protoregistry.NotFound
}

func (l layeredResolver) FindDescriptorByName(name protoreflect.FullName) (protoreflect.Descriptor, error) {
	for _, files := range l {
		if d, err := files.FindDescriptorByName(name); err == nil {
			return d, nil
		} else if !errors.Is(err, protoregistry.NotFound) {
			return nil, err
		}
	}
	return nil, protoregistry.NotFound
}

// staleFiles lists the files of the API (budgetledger.v1) in the documented set that differ,
// comments aside, from those compiled into the program: the .proto files changed and
// `go generate ./server/` was not run. (The imports, such as descriptor.proto, may come from
// another release in buf than in the Go module; they only describe.)
func staleFiles(files *protoregistry.Files) []string {
	var stale []string
	files.RangeFilesByPackage("budgetledger.v1", func(doc protoreflect.FileDescriptor) bool {
		compiled, err := protoregistry.GlobalFiles.FindFileByPath(doc.Path())
		if err != nil {
			return true // not compiled in: nothing to disagree with
		}
		a, b := protodesc.ToFileDescriptorProto(doc), protodesc.ToFileDescriptorProto(compiled)
		a.SourceCodeInfo, b.SourceCodeInfo = nil, nil
		if !proto.Equal(a, b) {
			stale = append(stale, doc.Path())
		}
		return true
	})
	protoregistry.GlobalFiles.RangeFilesByPackage("budgetledger.v1", func(compiled protoreflect.FileDescriptor) bool {
		if _, err := files.FindFileByPath(compiled.Path()); err != nil {
			stale = append(stale, compiled.Path())
		}
		return true
	})
	return stale
}

// registerReflection serves server reflection (v1 and v1alpha) from the documented descriptors,
// or from the compiled ones, without comments, when the documented ones are stale: reflection
// must never describe another API than the one served.
func registerReflection(g *grpc.Server, log *slog.Logger) error {
	files, err := documentedFiles()
	if err != nil {
		return err
	}
	resolver := layeredResolver{files, protoregistry.GlobalFiles}
	if stale := staleFiles(files); len(stale) > 0 {
		log.Warn("the embedded descriptors differ from the compiled API (run go generate ./server/); reflection serves them without comments", "files", stale)
		resolver = layeredResolver{protoregistry.GlobalFiles}
	}
	opts := reflection.ServerOptions{Services: g, DescriptorResolver: resolver}
	v1reflectiongrpc.RegisterServerReflectionServer(g, reflection.NewServerV1(opts))
	v1alphareflectiongrpc.RegisterServerReflectionServer(g, reflection.NewServer(opts)) //nolint:staticcheck // grpcurl still asks v1alpha first on older servers
	return nil
}
