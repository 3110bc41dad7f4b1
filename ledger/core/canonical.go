package core

import (
	"fmt"
	"hash/crc32"
	"reflect"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// The checksum of a packed record (packed.go). A Commit's result packed by reference is rebuilt,
// on a retry, from its commitment's and envelope's rows, and the record keeps a checksum of the
// result as first given so that a rebuilt result that differs in anything is refused (INTERNAL),
// never answered. That checksum was the CRC-32C of the result's JSON (field pcChecksum, which
// records written before 2026-12-02 hold and which still replay): encoding the JSON cost an award
// about 8 µs of ledgerd's CPU, 5 % of it, to be thrown away. A record now holds pcSum: the
// CRC-32C of the result's canonical encoding, which covers the same fields at a fraction of the
// cost.
//
// The canonical encoding of a commitment, an envelope, a hold or a payment is every exported field that is
// not zero, in the order of its struct (embedded structs' fields in place, as JSON inlines them; a
// struct in a named field, a hold's policy, its fields in place under "<name>.<field>"): the
// field's JSON name then its value, each length-prefixed or a varint (a true bool: its name
// alone). So it changes when any field
// changes, a field added later costs nothing to the records written before it (it is zero in them,
// and left out), and no field can be forgotten: the plan is read from the struct itself. A field
// of a kind it does not know (only strings, integers, bools and times are) stops the program at its
// start, and TestCanonicalCoversEveryField with it.

// canonField is one field of a canonical plan: its JSON name, where it is, what it is.
type canonField struct {
	name  string
	index []int
	kind  reflect.Kind // reflect.String, reflect.Int64 (any integer), reflect.Bool, or reflect.Struct (time.Time)
}

var timeType = reflect.TypeFor[time.Time]()

// canonPlan lists the fields of struct type t, flattening embedded structs.
func canonPlan(t reflect.Type) []canonField {
	var plan []canonField
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for _, inner := range canonPlan(f.Type) {
				inner.index = append([]int{i}, inner.index...)
				plan = append(plan, inner)
			}
			continue
		}
		name := f.Name
		if tag := f.Tag.Get("json"); tag != "" {
			if n, _, _ := strings.Cut(tag, ","); n != "" && n != "-" {
				name = n
			}
		}
		if f.Type.Kind() == reflect.Struct && f.Type != timeType {
			// A struct in a field of its own (a hold's Policy; JSON nests it as an object): its
			// fields in place, each named after the field's name too, so that no name is another's.
			for _, inner := range canonPlan(f.Type) {
				inner.name = name + "." + inner.name
				inner.index = append([]int{i}, inner.index...)
				plan = append(plan, inner)
			}
			continue
		}
		cf := canonField{name: name, index: []int{i}}
		switch {
		case f.Type.Kind() == reflect.Bool:
			cf.kind = reflect.Bool
		case f.Type == timeType:
			cf.kind = reflect.Struct
		case f.Type.Kind() == reflect.String:
			cf.kind = reflect.String
		case f.Type.Kind() >= reflect.Int && f.Type.Kind() <= reflect.Int64:
			cf.kind = reflect.Int64
		default:
			panic(fmt.Sprintf("core: canonical encoding of %s.%s: no encoding for %s", t.Name(), f.Name, f.Type))
		}
		plan = append(plan, cf)
	}
	return plan
}

var (
	commitmentPlan = canonPlan(reflect.TypeFor[Commitment]())
	envelopePlan   = canonPlan(reflect.TypeFor[Envelope]())
	holdPlan       = canonPlan(reflect.TypeFor[Hold]())
	paymentPlan    = canonPlan(reflect.TypeFor[Payment]())
)

// appendCanonical appends the canonical encoding of the struct v points to, by plan.
func appendCanonical(b []byte, plan []canonField, v reflect.Value) []byte {
	v = v.Elem()
	for _, f := range plan {
		fv := v.FieldByIndex(f.index)
		switch f.kind {
		case reflect.String:
			if s := fv.String(); s != "" {
				b = protowire.AppendString(appendName(b, f.name), s)
			}
		case reflect.Int64:
			if n := fv.Int(); n != 0 {
				b = protowire.AppendVarint(appendName(b, f.name), protowire.EncodeZigZag(n))
			}
		case reflect.Bool:
			if fv.Bool() {
				b = appendName(b, f.name) // the name alone: true (false, like any zero, is left out)
			}
		default:
			if t := fv.Addr().Interface().(*time.Time); !t.IsZero() { // by pointer: no copy made
				b = appendTime(appendName(b, f.name), *t)
			}
		}
	}
	return append(b, 0) // the end of the struct (no name is empty)
}

func appendName(b []byte, name string) []byte { return protowire.AppendString(b, name) }

// appendTime appends t as JSON would tell it apart: its instant to the nanosecond and its offset
// from UTC (the monotonic reading and the zone's name are not part of it).
func appendTime(b []byte, t time.Time) []byte {
	_, offset := t.Zone()
	b = protowire.AppendVarint(b, protowire.EncodeZigZag(t.Unix()))
	b = protowire.AppendVarint(b, uint64(t.Nanosecond()))
	return protowire.AppendVarint(b, protowire.EncodeZigZag(int64(offset)))
}

func appendCommitment(b []byte, c *Commitment) []byte {
	return appendCanonical(b, commitmentPlan, reflect.ValueOf(c))
}

func appendEnvelope(b []byte, e *Envelope) []byte {
	return appendCanonical(b, envelopePlan, reflect.ValueOf(e))
}

func appendHold(b []byte, h *Hold) []byte {
	return appendCanonical(b, holdPlan, reflect.ValueOf(h))
}

func appendPayment(b []byte, p *Payment) []byte {
	return appendCanonical(b, paymentPlan, reflect.ValueOf(p))
}

var canonBuffers = sync.Pool{New: func() any { return new([]byte) }}

// sumCanonical is the CRC-32C of what fill appends to an empty buffer.
func sumCanonical(fill func([]byte) []byte) uint32 {
	buf := canonBuffers.Get().(*[]byte)
	*buf = fill((*buf)[:0])
	sum := crc32.Checksum(*buf, castagnoli)
	canonBuffers.Put(buf)
	return sum
}

// commitSum is the canonical checksum of a Commit's result.
func commitSum(r *CommitResult) uint32 {
	return sumCanonical(func(b []byte) []byte {
		b = appendCommitment(b, &r.Commitment)
		b = appendEnvelope(b, &r.Envelope)
		return protowire.AppendString(b, r.EntryID)
	})
}

// bulkSum is the canonical checksum of a bulk call's result; refusals[i] is item i's refusal as
// JSON (nil for an accepted item).
func bulkSum(res *BulkCommitResult, refusals [][]byte) uint32 {
	return sumCanonical(func(b []byte) []byte {
		b = protowire.AppendVarint(b, uint64(len(res.Items)))
		for i, it := range res.Items {
			if it.Commitment != nil {
				b = appendCommitment(append(b, 1), it.Commitment)
			} else {
				b = protowire.AppendBytes(append(b, 2), refusals[i])
			}
		}
		b = protowire.AppendVarint(b, uint64(res.Accepted))
		b = protowire.AppendVarint(b, uint64(res.Refused))
		return appendEnvelope(b, &res.Envelope)
	})
}

// createHoldSum is the canonical checksum of a CreateHold's result.
func createHoldSum(r *CreateHoldResult) uint32 {
	return sumCanonical(func(b []byte) []byte {
		b = appendHold(b, &r.Hold)
		b = appendEnvelope(b, &r.Envelope)
		return protowire.AppendString(b, r.EntryID)
	})
}

// confirmHoldSum is the canonical checksum of a ConfirmHold's result.
func confirmHoldSum(r *ConfirmHoldResult) uint32 {
	return sumCanonical(func(b []byte) []byte {
		b = appendHold(b, &r.Hold)
		b = appendCommitment(b, &r.Commitment)
		b = appendEnvelope(b, &r.Envelope)
		return protowire.AppendString(b, r.EntryID)
	})
}

// paymentSum is the canonical checksum of a CreatePayment's result.
func paymentSum(r *CreatePaymentResult) uint32 {
	return sumCanonical(func(b []byte) []byte {
		b = appendPayment(b, &r.Payment)
		b = appendCommitment(b, &r.Commitment)
		b = appendEnvelope(b, &r.Envelope)
		return protowire.AppendString(b, r.EntryID)
	})
}
