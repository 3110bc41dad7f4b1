package budgetledgerv1_test

import (
	"strings"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestMaxResponseSizeCoversLargestBatchCommit protects the end-to-end size limits: the largest
// response a server can owe to a valid request — a BatchCommit of max_items awards, every string
// at its longest — must fit in MaxResponseSize, with a margin, or a client would report as failed
// a batch the server made (issue 16). The bounds are read from the .proto's validation rules, so
// raising one of them fails this test until MaxResponseSize is raised too.
func TestMaxResponseSizeCoversLargestBatchCommit(t *testing.T) {
	item := (&pb.BatchCommitItem{}).ProtoReflect().Descriptor()
	create := (&pb.CreateEnvelopeRequest{}).ProtoReflect().Descriptor()
	maxItems := fieldRules(t, (&pb.BatchCommitRequest{}).ProtoReflect().Descriptor(), "items").GetRepeated().GetMaxItems()
	if maxItems == 0 {
		t.Fatal("BatchCommitRequest.items has no max_items: no response size can be promised")
	}
	maxLen := func(md protoreflect.MessageDescriptor, field protoreflect.Name) int {
		n := fieldRules(t, md, field).GetString().GetMaxLen()
		if n == 0 {
			t.Fatalf("%s.%s has no max_len: no response size can be promised", md.FullName(), field)
		}
		return int(n)
	}
	// max_len counts characters; the longest UTF-8 character takes 4 bytes.
	longest := func(chars int) string { return strings.Repeat("\U0001D11E", chars) }
	envelopeName := "envelopes/" + strings.Repeat("a", maxLen(create, "envelope_id")) // the pattern is ASCII
	strs := map[protoreflect.FullName]string{
		"budgetledger.v1.Commitment.name":          "commitments/" + strings.Repeat("f", 36),
		"budgetledger.v1.Commitment.envelope":      envelopeName,
		"budgetledger.v1.Commitment.beneficiary":   longest(maxLen(item, "beneficiary")),
		"budgetledger.v1.Commitment.project":       longest(maxLen(item, "project")),
		"budgetledger.v1.Commitment.description":   longest(maxLen(item, "description")),
		"budgetledger.v1.Commitment.territory":     longest(maxLen(item, "territory")),
		"budgetledger.v1.Commitment.currency_code": "EUR",
		"budgetledger.v1.Envelope.name":            envelopeName,
		"budgetledger.v1.Envelope.parent":          envelopeName,
		"budgetledger.v1.Envelope.display_name":    longest(maxLen(create, "display_name")),
		"budgetledger.v1.Envelope.currency_code":   "EUR",
		"budgetledger.v1.Envelope.etag":            strings.Repeat("A", 16), // core.EnvelopeETag: 12 bytes in base64url
		// Closing and publication (issue 13): a closing's reason is a release reason's length.
		"budgetledger.v1.Commitment.close_reason":           longest(maxLen((&pb.CloseCommitmentRequest{}).ProtoReflect().Descriptor(), "reason")),
		"budgetledger.v1.Commitment.decision_reference":     longest(maxLen(item, "decision_reference")),
		"budgetledger.v1.Commitment.beneficiary_legal_name": longest(maxLen(item, "beneficiary_legal_name")),
		"budgetledger.v1.Commitment.beneficiary_siret":      strings.Repeat("9", maxLen(item, "beneficiary_siret")),
		"budgetledger.v1.Commitment.beneficiary_rna":        "W" + strings.Repeat("9", maxLen(item, "beneficiary_rna")-1),
		"budgetledger.v1.Commitment.purpose":                longest(maxLen(item, "purpose")),
		"budgetledger.v1.Envelope.granting_body_name":       longest(maxLen(create, "granting_body_name")),
		"budgetledger.v1.Envelope.granting_body_siret":      strings.Repeat("9", maxLen(create, "granting_body_siret")),
	}
	result := &pb.BatchCommitResult{Commitment: &pb.Commitment{}}
	fillLongest(t, result.GetCommitment().ProtoReflect(), strs)
	resp := &pb.BatchCommitResponse{Envelope: &pb.Envelope{}}
	fillLongest(t, resp.GetEnvelope().ProtoReflect(), strs)
	resp.AcceptedCount, resp.RefusedCount = -1, -1 // the longest varint
	for range maxItems {
		resp.Results = append(resp.Results, result)
	}

	size := proto.Size(resp)
	t.Logf("largest BatchCommit response: %d bytes (%d results of %d bytes); MaxResponseSize %d",
		size, maxItems, proto.Size(result), pb.MaxResponseSize)
	if size+size/4 > pb.MaxResponseSize {
		t.Errorf("the largest BatchCommit response is %d bytes: MaxResponseSize (%d) must exceed it by a quarter", size, pb.MaxResponseSize)
	}
}

// fieldRules returns the protovalidate rules of one field.
func fieldRules(t *testing.T, md protoreflect.MessageDescriptor, name protoreflect.Name) *validate.FieldRules {
	t.Helper()
	fd := md.Fields().ByName(name)
	if fd == nil {
		t.Fatalf("%s has no field %s", md.FullName(), name)
	}
	rules, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
	return rules
}

// fillLongest sets every field of m to the value whose encoding is the longest it can be in a
// response: strings from strs (a string field it does not name fails the test, so a new field
// needs its bound stated), integers to -1 (ten bytes), times to the last nanosecond of year 9999.
func fillLongest(t *testing.T, m protoreflect.Message, strs map[protoreflect.FullName]string) {
	t.Helper()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		switch {
		case fd.IsList() || fd.IsMap():
			t.Fatalf("%s: a repeated field in a response item; state its bound in this test", fd.FullName())
		case fd.Kind() == protoreflect.StringKind:
			s, ok := strs[fd.FullName()]
			if !ok {
				t.Fatalf("%s: no bound known for this string; state it in this test", fd.FullName())
			}
			m.Set(fd, protoreflect.ValueOfString(s))
		case fd.Kind() == protoreflect.Int64Kind:
			m.Set(fd, protoreflect.ValueOfInt64(-1))
		case fd.Kind() == protoreflect.Int32Kind:
			m.Set(fd, protoreflect.ValueOfInt32(-1))
		case fd.Kind() == protoreflect.EnumKind:
			values := fd.Enum().Values()
			m.Set(fd, protoreflect.ValueOfEnum(values.Get(values.Len()-1).Number()))
		case fd.Kind() == protoreflect.BoolKind:
			m.Set(fd, protoreflect.ValueOfBool(true))
		case fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Timestamp":
			ts := &timestamppb.Timestamp{Seconds: 253402300799, Nanos: 999999999}
			m.Set(fd, protoreflect.ValueOfMessage(ts.ProtoReflect()))
		case fd.Message() != nil:
			sub := m.Mutable(fd).Message()
			fillLongest(t, sub, strs)
		default:
			t.Fatalf("%s: a field of kind %v; state its longest value in this test", fd.FullName(), fd.Kind())
		}
	}
}
