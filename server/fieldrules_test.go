package server

import (
	"regexp"
	"strings"
	"testing"

	"buf.build/gen/go/bufbuild/protovalidate/protocolbuffers/go/buf/validate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/budgetledger/budgetledger/ledger/core"
	v1 "github.com/budgetledger/budgetledger/proto/budgetledger/v1"
)

// TestFieldRulesAgreeWithProto protects "validation written once": the ledger checks every
// request field against core.Fields, the gRPC boundary against the .proto's protovalidate rules,
// and this test holds the two to one value. It walks every field of every mutating request (and
// bulk item) and compares its length bounds and pattern with the ledger's rule of the same name;
// a field that names an envelope (envelopes/{id}) is compared with the envelope id's rule (a
// payment's parent names a commitment, and is not). A rule changed on one side only fails here.
func TestFieldRulesAgreeWithProto(t *testing.T) {
	msgs := []proto.Message{&v1.CreateEnvelopeRequest{}, &v1.MoveAllocationRequest{}, &v1.SetEnvelopeRulesRequest{},
		&v1.CommitRequest{}, &v1.ReleaseRequest{}, &v1.BatchCommitRequest{}, &v1.BatchCommitItem{},
		&v1.CreatePaymentRequest{}, &v1.CloseCommitmentRequest{}}
	envelopeRefs := map[string]bool{"parent": true, "source": true, "destination": true, "envelope": true}
	checked := map[string]bool{}
	for _, m := range msgs {
		fields := m.ProtoReflect().Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.Kind() != protoreflect.StringKind || fd.IsList() {
				continue
			}
			name := string(fd.Name())
			rules, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
			str := rules.GetString()
			minLen := int(str.GetMinLen())
			if rules.GetRequired() {
				minLen = max(minLen, 1)
			}
			where := string(fd.FullName())
			if envelopeRefs[name] && !strings.HasPrefix(str.GetPattern(), "^commitments/") {
				want := core.Fields["envelope_id"].Pattern
				got := str.GetPattern()
				if got != "^envelopes/"+strings.TrimPrefix(want, "^") {
					t.Errorf("%s: pattern %q, the ledger's envelope id is %q", where, got, want)
				}
				checked["envelope_id"] = true
				continue
			}
			want, ok := core.Fields[name]
			if !ok {
				continue
			}
			checked[name] = true
			if minLen != want.MinLen || int(str.GetMaxLen()) != want.MaxLen {
				t.Errorf("%s: length %d..%d in the .proto, %d..%d in the ledger", where, minLen, str.GetMaxLen(), want.MinLen, want.MaxLen)
			}
			if want.Pattern != "" && str.GetPattern() != want.Pattern {
				t.Errorf("%s: pattern %q in the .proto, %q in the ledger", where, str.GetPattern(), want.Pattern)
			}
			if want.Pattern == "" && str.GetPattern() != core.TextPattern {
				t.Errorf("%s: free text with pattern %q in the .proto, the ledger checks core.TextPattern %q", where, str.GetPattern(), core.TextPattern)
			}
		}
	}
	for name := range core.Fields {
		if !checked[name] {
			t.Errorf("the ledger has a rule for %q, but no request field of that name was compared", name)
		}
	}
}

// TestFilterRulesRefuseWhatTheDatabaseCannotHold protects issue 12 item 7: every string filter of
// every List request has a rule in the .proto that refuses a NUL (which PostgreSQL cannot receive
// in text) and a control character, and the length the ledger allows for a field of that name.
func TestFilterRulesRefuseWhatTheDatabaseCannotHold(t *testing.T) {
	msgs := []proto.Message{&v1.ListEnvelopesRequest{}, &v1.ListCommitmentsRequest{}, &v1.ListJournalEntriesRequest{}}
	filters := 0
	for _, m := range msgs {
		fields := m.ProtoReflect().Descriptor().Fields()
		for i := range fields.Len() {
			fd := fields.Get(i)
			if fd.Kind() != protoreflect.StringKind || fd.Name() == "page_token" {
				continue
			}
			filters++
			where := string(fd.FullName())
			rules, _ := proto.GetExtension(fd.Options(), validate.E_Field).(*validate.FieldRules)
			str := rules.GetString()
			if str.GetPattern() == "" {
				t.Errorf("%s: a filter without a pattern in the .proto", where)
				continue
			}
			re, err := regexp.Compile(str.GetPattern())
			if err != nil {
				t.Errorf("%s: pattern %q: %v", where, str.GetPattern(), err)
				continue
			}
			for _, bad := range []string{"a\x00b", "a\nb", "\x7f", "a\u0085b", "a\u202eb", "\u2028", "\u200b"} {
				if re.MatchString(bad) {
					t.Errorf("%s: pattern %q accepts %q", where, str.GetPattern(), bad)
				}
			}
			if want, ok := core.Fields[string(fd.Name())]; ok && int(str.GetMaxLen()) != want.MaxLen {
				t.Errorf("%s: max_len %d in the .proto, %d in the ledger", where, str.GetMaxLen(), want.MaxLen)
			}
		}
	}
	if filters < 5 {
		t.Errorf("checked %d string filters, want the 5 of ListEnvelopes, ListCommitments and ListJournalEntries", filters)
	}
}

// TestTextPatternIsCheckText: the .proto's pattern of free text (core.TextPattern, which
// protovalidate checks) and the ledger's own check of it (core.IsHiddenControl, for callers of the
// Go API) refuse the same characters: C0 and C1 controls, DEL, line and paragraph separators,
// bidirectional embeddings, overrides and isolates, the zero-width space and the byte-order mark;
// and accept the others (letters of every script, the zero-width joiners some scripts need).
func TestTextPatternIsCheckText(t *testing.T) {
	re := regexp.MustCompile(core.TextPattern)
	refused := 0
	for r := rune(0); r <= 0x10ffff; r++ {
		if r >= 0xd800 && r <= 0xdfff {
			continue // surrogates are not UTF-8
		}
		s := "a" + string(r) + "b"
		if byPattern, byLedger := !re.MatchString(s), core.CheckText("f", s, 0, 10) != nil; byPattern != byLedger {
			t.Fatalf("U+%04X: refused by the pattern %v, by the ledger %v", r, byPattern, byLedger)
		} else if byPattern {
			refused++
		}
	}
	for _, ok := range []string{"Commune d'Évry", "زهرا\u200cی", "👩\u200d💻", "東京都"} {
		if !re.MatchString(ok) {
			t.Errorf("%q refused", ok)
		}
	}
	if want := 0x20 + 0x21 + 1 + 7 + 4 + 1; refused != want {
		t.Errorf("%d characters refused, want %d", refused, want)
	}
}
