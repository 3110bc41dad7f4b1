package proto_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	budgetledgerv1 "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// The API's descriptors as the generated Go code registers them: what reflection serves and what
// clients' generators read.
func apiFiles(t *testing.T) []protoreflect.FileDescriptor {
	t.Helper()
	var files []protoreflect.FileDescriptor
	protoregistry.GlobalFiles.RangeFilesByPackage("budgetledger.v1", func(fd protoreflect.FileDescriptor) bool {
		files = append(files, fd)
		return true
	})
	if len(files) < 6 {
		t.Fatalf("found %d files of budgetledger.v1, want at least 6", len(files))
	}
	return files
}

// eachMessage calls f for every message of the API, nested ones included (map entries excluded:
// they are protobuf's, not ours).
func eachMessage(t *testing.T, f func(protoreflect.MessageDescriptor)) {
	var walk func(protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			if m.IsMapEntry() {
				continue
			}
			f(m)
			walk(m.Messages())
		}
	}
	for _, fd := range apiFiles(t) {
		walk(fd.Messages())
	}
}

func fieldBehaviors(fd protoreflect.FieldDescriptor) []annotations.FieldBehavior {
	return proto.GetExtension(fd.Options(), annotations.E_FieldBehavior).([]annotations.FieldBehavior)
}

func resourceOf(m protoreflect.MessageDescriptor) *annotations.ResourceDescriptor {
	return proto.GetExtension(m.Options(), annotations.E_Resource).(*annotations.ResourceDescriptor)
}

func referenceOf(fd protoreflect.FieldDescriptor) *annotations.ResourceReference {
	return proto.GetExtension(fd.Options(), annotations.E_ResourceReference).(*annotations.ResourceReference)
}

// TestEveryFieldHasBehavior: AIP-203. Every field of every message says whether it is REQUIRED,
// OPTIONAL, OUTPUT_ONLY or the resource's IDENTIFIER, so that generators and readers need not
// guess; a request's REQUIRED field is also required by protovalidate (the annotation does not
// lie), and a resource's fields are never inputs.
func TestEveryFieldHasBehavior(t *testing.T) {
	eachMessage(t, func(m protoreflect.MessageDescriptor) {
		isResource := resourceOf(m) != nil
		for i := range m.Fields().Len() {
			fd := m.Fields().Get(i)
			behaviors := fieldBehaviors(fd)
			if len(behaviors) == 0 {
				t.Errorf("%s has no google.api.field_behavior", fd.FullName())
				continue
			}
			if slices.Contains(behaviors, annotations.FieldBehavior_REQUIRED) {
				rules := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
				if !rules.GetRequired() && !rules.GetInt64().HasGt() && !rules.GetRepeated().HasMinItems() {
					t.Errorf("%s is REQUIRED but protovalidate does not require it", fd.FullName())
				}
			}
			if isResource && !slices.Contains(behaviors, annotations.FieldBehavior_OUTPUT_ONLY) &&
				!slices.Contains(behaviors, annotations.FieldBehavior_IDENTIFIER) {
				t.Errorf("%s: a resource's fields are output only (resources are never sent), got %v", fd.FullName(), behaviors)
			}
		}
	})
}

// outputNames are the output fields that name a resource and have no validation rule to tell:
// a resource's references to others, and the report's.
var outputNames = map[protoreflect.FullName]bool{
	"budgetledger.v1.Envelope.parent": true, "budgetledger.v1.Commitment.envelope": true,
	"budgetledger.v1.RuleSet.envelope": true, "budgetledger.v1.EnvelopeReport.envelope": true,
	"budgetledger.v1.EnvelopeReport.parent": true,
}

// TestResourcesAreAnnotated: AIP-123. A message with a `name` field is a resource and carries
// google.api.resource, with a type under the service's name and patterns whose variables do not
// end in _id; fields that name a resource (a name pattern in their validation rule, a
// journal_entry or rule set, a resource's reference to another) carry a
// google.api.resource_reference to a declared type.
func TestResourcesAreAnnotated(t *testing.T) {
	types := map[string]bool{}
	var resources []string
	eachMessage(t, func(m protoreflect.MessageDescriptor) {
		res := resourceOf(m)
		if m.Fields().ByName("name") != nil && res == nil && !strings.HasSuffix(string(m.Name()), "Request") {
			t.Errorf("%s has a name field but no google.api.resource", m.FullName())
		}
		if res == nil {
			return
		}
		resources = append(resources, string(m.Name()))
		types[res.GetType()] = true
		if res.GetType() != "budgetledger.github.io/"+string(m.Name()) {
			t.Errorf("%s: resource type %q, want budgetledger.github.io/%s", m.FullName(), res.GetType(), m.Name())
		}
		if len(res.GetPattern()) == 0 || res.GetSingular() == "" || res.GetPlural() == "" {
			t.Errorf("%s: resource %v lacks a pattern, singular or plural", m.FullName(), res)
		}
		for _, p := range res.GetPattern() {
			for _, v := range regexp.MustCompile(`\{([^}]*)\}`).FindAllStringSubmatch(p, -1) {
				if strings.HasSuffix(v[1], "_id") {
					t.Errorf("%s: pattern %q has a variable ending in _id", m.FullName(), p)
				}
			}
		}
		if name := m.Fields().ByName("name"); name == nil ||
			!slices.Contains(fieldBehaviors(name), annotations.FieldBehavior_IDENTIFIER) {
			t.Errorf("%s: its name field is not an IDENTIFIER", m.FullName())
		}
	})
	slices.Sort(resources)
	if want := []string{"Commitment", "Envelope", "Hold", "JournalEntry", "Payment", "RuleSet", "Verification"}; !slices.Equal(resources, want) {
		t.Errorf("resources %v, want %v", resources, want)
	}
	eachMessage(t, func(m protoreflect.MessageDescriptor) {
		for i := range m.Fields().Len() {
			fd := m.Fields().Get(i)
			if fd.Kind() != protoreflect.StringKind || fd.Name() == "name" && resourceOf(m) != nil {
				continue
			}
			ref := referenceOf(fd)
			pattern := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules).GetString().GetPattern()
			names := strings.HasPrefix(pattern, "^envelopes/") || strings.HasPrefix(pattern, "^commitments/") ||
				strings.HasSuffix(string(fd.Name()), "journal_entry") || strings.HasSuffix(string(fd.Name()), "_rule_set") ||
				outputNames[fd.FullName()]
			switch {
			case names && ref == nil:
				t.Errorf("%s names a resource but has no google.api.resource_reference", fd.FullName())
			case ref != nil && !types[ref.GetType()]:
				t.Errorf("%s refers to %q, which no message declares", fd.FullName(), ref.GetType())
			}
		}
	})
}

// TestEnumsAreOpenWithUnspecifiedZero: AIP-126. Every enum's zero value is its _UNSPECIFIED one,
// and its documentation says that new values will come.
func TestEnumsAreOpenWithUnspecifiedZero(t *testing.T) {
	n := 0
	for _, fd := range apiFiles(t) {
		for i := range fd.Enums().Len() {
			e := fd.Enums().Get(i)
			n++
			zero := e.Values().ByNumber(0)
			if zero == nil || !strings.HasSuffix(string(zero.Name()), "_UNSPECIFIED") {
				t.Errorf("%s: zero value %v, want an _UNSPECIFIED", e.FullName(), zero)
			}
			// The generated Go keeps no comments: read the enum's in its .proto file.
			src, err := os.ReadFile(fd.Path())
			if err != nil {
				t.Fatal(err)
			}
			before, _, found := strings.Cut(string(src), "\nenum "+string(e.Name())+" {")
			doc := before[strings.LastIndex(before, "}")+1:]
			if !found || !strings.Contains(doc, "The enum is open") {
				t.Errorf("%s: its documentation does not say the enum is open: %q", e.FullName(), doc)
			}
		}
	}
	if n < 3 {
		t.Errorf("found %d enums, want EntryKind, ErrorReason and Invariant at least", n)
	}
}

// TestVendoredGoogleAPIMatchesGo: the google/api files vendored in third_party/ declare every
// message field, enum value and extension with the name and number of the Go descriptors they
// were printed from (so buf compiles the annotations our Go code reads).
func TestVendoredGoogleAPIMatchesGo(t *testing.T) {
	for _, fd := range []protoreflect.FileDescriptor{annotations.File_google_api_resource_proto,
		annotations.File_google_api_field_behavior_proto, annotations.File_google_api_field_info_proto} {
		raw, err := os.ReadFile(filepath.Join("..", "third_party", fd.Path()))
		if err != nil {
			t.Fatal(err)
		}
		text := string(raw)
		var want []string
		var walk func(protoreflect.MessageDescriptors)
		walk = func(ms protoreflect.MessageDescriptors) {
			for i := range ms.Len() {
				m := ms.Get(i)
				want = append(want, fmt.Sprintf("message %s {", m.Name()))
				for j := range m.Fields().Len() {
					want = append(want, fmt.Sprintf(" %s = %d", m.Fields().Get(j).Name(), m.Fields().Get(j).Number()))
				}
				walk(m.Messages())
				for j := range m.Enums().Len() {
					e := m.Enums().Get(j)
					for k := range e.Values().Len() {
						want = append(want, fmt.Sprintf(" %s = %d;", e.Values().Get(k).Name(), e.Values().Get(k).Number()))
					}
				}
			}
		}
		walk(fd.Messages())
		for i := range fd.Enums().Len() {
			e := fd.Enums().Get(i)
			for k := range e.Values().Len() {
				want = append(want, fmt.Sprintf(" %s = %d;", e.Values().Get(k).Name(), e.Values().Get(k).Number()))
			}
		}
		for i := range fd.Extensions().Len() {
			x := fd.Extensions().Get(i)
			want = append(want, fmt.Sprintf("extend %s {", x.ContainingMessage().FullName()),
				fmt.Sprintf(" %s = %d", x.Name(), x.Number()))
		}
		want = append(want, fmt.Sprintf("package %s;", fd.Package()))
		for _, w := range want {
			if !strings.Contains(text, w) {
				t.Errorf("third_party/%s lacks %q", fd.Path(), w)
			}
		}
	}
}

func fieldRules(fd protoreflect.FieldDescriptor) *validate.FieldRules {
	return proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
}

// isInput reports whether messages of m are sent by clients: requests, and the messages they
// carry.
func isInput(m protoreflect.MessageDescriptor) bool {
	switch m.Name() {
	case "BatchCommitItem", "FundingRules", "AwardWindow":
		return true
	}
	return strings.HasSuffix(string(m.Name()), "Request")
}

// TestInputsAreBounded: issue 18, item 7. Every string a client sends has a pattern (a resource
// name's, or the control-character rule of free text and list filters) and a length, except the
// opaque page_token (a length only); every time a client sends lies in the years 0001 to 9999.
func TestInputsAreBounded(t *testing.T) {
	const printable = "^[^\\x00-\\x1f\u007f-\u009f\u200b\u2028-\u202e\u2066-\u2069\ufeff]*$" // core.TextPattern
	minTime, maxTime := int64(-62135596800), int64(253402300799)
	eachMessage(t, func(m protoreflect.MessageDescriptor) {
		if !isInput(m) {
			return
		}
		for i := range m.Fields().Len() {
			fd := m.Fields().Get(i)
			rules := fieldRules(fd)
			switch {
			case fd.Kind() == protoreflect.StringKind:
				s := rules.GetString()
				if fd.Name() == "page_token" {
					if !s.HasMaxLen() {
						t.Errorf("%s has no maximum length", fd.FullName())
					}
					continue
				}
				if !s.HasPattern() && len(rules.GetCel()) == 0 {
					t.Errorf("%s has neither a pattern nor a rule", fd.FullName())
				}
				if s.GetPattern() == printable && !s.HasMaxLen() {
					t.Errorf("%s is free text without a maximum length", fd.FullName())
				}
			case fd.Message() != nil && fd.Message().FullName() == "google.protobuf.Timestamp":
				ts := rules.GetTimestamp()
				if ts.GetGte().GetSeconds() != minTime || ts.GetLte().GetSeconds() != maxTime {
					t.Errorf("%s is not bounded to the years 0001 to 9999: %v", fd.FullName(), ts)
				}
			}
		}
	})
}

// TestBatchCommitItemMatchesCommitRequest: issue 18, item 7. Every field of a batch item is the
// CommitRequest field of the same name, with the same type, presence, behaviour and validation
// (only the numbers differ, frozen in v1: see the proto).
func TestBatchCommitItemMatchesCommitRequest(t *testing.T) {
	item, single := (&budgetledgerv1.BatchCommitItem{}).ProtoReflect().Descriptor(), (&budgetledgerv1.CommitRequest{}).ProtoReflect().Descriptor()
	for i := range item.Fields().Len() {
		fd := item.Fields().Get(i)
		other := single.Fields().ByName(fd.Name())
		if other == nil {
			t.Errorf("BatchCommitItem.%s has no counterpart in CommitRequest", fd.Name())
			continue
		}
		if fd.Kind() != other.Kind() || fd.HasPresence() != other.HasPresence() ||
			!slices.Equal(fieldBehaviors(fd), fieldBehaviors(other)) || !proto.Equal(fieldRules(fd), fieldRules(other)) {
			t.Errorf("BatchCommitItem.%s differs from CommitRequest.%[1]s: %v %v %v %v vs %v %v %v %v", fd.Name(),
				fd.Kind(), fd.HasPresence(), fieldBehaviors(fd), fieldRules(fd),
				other.Kind(), other.HasPresence(), fieldBehaviors(other), fieldRules(other))
		}
	}
}
