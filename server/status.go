package server

import (
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/anypb"
)

type protoadaptMessage = protoadapt.MessageV1

// attach adds details to a status; a status that cannot carry them is sent without them rather
// than not at all. The details are encoded deterministically: an ErrorInfo's metadata is a map,
// which protobuf-go encodes in Go's random map order otherwise, so that a refusal replayed to a
// retry (or answered by another process) would carry the same fields in other bytes. A retry
// gets the first answer byte for byte, its status's details included.
func attach(st *status.Status, details ...protoadaptMessage) error {
	p := st.Proto()
	for _, d := range details {
		a := new(anypb.Any)
		if err := anypb.MarshalFrom(a, protoadapt.MessageV2Of(d), proto.MarshalOptions{Deterministic: true}); err != nil {
			return st.Err()
		}
		p.Details = append(p.Details, a)
	}
	return status.FromProto(p).Err()
}
