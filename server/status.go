package server

import (
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

type protoadaptMessage = protoadapt.MessageV1

// attach adds details to a status; a status that cannot carry them is sent without them rather
// than not at all.
func attach(st *status.Status, details ...protoadaptMessage) error {
	withDetails, err := st.WithDetails(details...)
	if err != nil {
		return st.Err()
	}
	return withDetails.Err()
}
