package core

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"sync"

	kflate "github.com/klauspost/compress/flate"
)

// Outcomes the request log keeps as JSON (those of cancellations and expiries of holds,
// closings, envelopes, rules and refusals: everything but a Commit's, a bulk call's, a
// CreateHold's, a ConfirmHold's and a CreatePayment's results, which it keeps by reference; and a
// CreateHold's or ConfirmHold's written before migration 29, a CreatePayment's before migration
// 30, or one that its rows could not give back)
// are stored deflated (RFC 1951) with a preset dictionary made of the field names and shapes of
// those outcomes: a fifth to a third of their JSON. The record is one tag byte (packedDeflated),
// the deflated JSON (exactly the bytes the outcome column would otherwise hold), and the CRC-32C of
// that JSON, big-endian: deflate has no check of its own, and a damaged record must fail, never
// give another answer.
//
// The dictionary is part of the format: rows written with it are read with it, so it never
// changes. Another dictionary would be another tag byte.

const packedDeflated byte = 3

// deflateDict is the preset dictionary of packedDeflated records. The most frequent strings are
// last: deflate reaches them with the shortest distances.
const deflateDict = `{"refusal":{"reason":"HOLD_EXPIRED","message":"hold \"holds/\" expired at ; its amount returns to the envelope",` +
	`"field":"","metadata":{"envelope":"envelopes/","commitment":"commitments/","expire_time":"","hold":"holds/","state":"CONFIRMED"}}}` +
	`{"result":{"rule_set":{"effective_from":""},"payment":{"id":"","commitment_id":"","envelope_id":"","currency":"EUR","amount":0,` +
	`"effective_at":"","caller":"","request_id":"","entry_id":"","created_at":""},"returned":0,` +
	`"hold":{"id":"","envelope_id":"","beneficiary":"","project":"","currency":"EUR","amount":0,"state":"HELD","description":"",` +
	`"policy":{"EligibleCost":0,"Territory":"","Population":0,"EligibleCostGiven":false,"PopulationGiven":false},` +
	`"expire_at":"","effective_at":"","confirmed_amount":0,"commitment_id":"","reason":"","created_at":"","updated_at":""},` +
	`"commitment":{"id":"","envelope_id":"","beneficiary":"","project":"","currency":"EUR","amount":0,"released":0,"description":"",` +
	`"eligible_cost":0,"territory":"insee:","population":0,"created_at":"","updated_at":"","effective_at":"","paid":0,` +
	`"closed_at":"","close_reason":"","close_effective_at":""},` +
	`"envelope":{"id":"","parent_id":"","display_name":"","currency":"EUR","allocation":0,"committed":0,"children_allocated":0,` +
	`"released":0,"commitment_count":0,"created_at":"2026-01-01T00:00:00.000000Z","updated_at":"2026-01-01T00:00:00.000000Z",` +
	`"effective_at":"2026-01-01T00:00:00.000000Z","latest_effective_at":"2026-01-01T00:00:00.000000Z","paid":0,"held":0},"entry_id":""}}`

// DeflateOutcome returns the record of an outcome's JSON deflated, or nil when that is not
// shorter than the JSON.
//
// It writes with github.com/klauspost/compress/flate's stateless encoder: the same format as the
// standard library's (which reads it back, in InflateOutcome), with the dictionary, and no
// writer to keep: a hold's confirmation takes 8 µs and 293 bytes (go test ./ledger/core -run '^$'
// -bench DeflateOutcome). The standard library's writer takes 28–46 µs, mostly clearing its
// tables at each Reset, and at its fastest level leaves the dictionary out; a writer kept for
// reuse holds 0.8–1 MB of tables.
func DeflateOutcome(raw []byte) []byte {
	var buf bytes.Buffer
	buf.Grow(len(raw)/3 + 16)
	buf.WriteByte(packedDeflated)
	if err := kflate.StatelessDeflate(&buf, raw, true, dictBytes); err != nil {
		return nil
	}
	record := binary.BigEndian.AppendUint32(buf.Bytes(), crc32.Checksum(raw, castagnoli))
	if len(record) >= len(raw) {
		return nil
	}
	return record
}

// IsDeflated reports whether a request log record is a deflated outcome.
func IsDeflated(record []byte) bool { return len(record) > 0 && record[0] == packedDeflated }

// maxInflated bounds an outcome's JSON read back (a record is this process's own writing; the
// bound keeps a damaged one from filling the memory).
const maxInflated = 64 << 20

var errDeflated = errors.New("malformed deflated outcome")

// inflaters keeps decompressors for InflateOutcome; dictBytes is the preset dictionary as bytes,
// made once (both flate packages only read it).
var (
	inflaters sync.Pool
	dictBytes = []byte(deflateDict)
)

// InflateOutcome returns the JSON a deflated record holds.
func InflateOutcome(record []byte) ([]byte, error) {
	if !IsDeflated(record) || len(record) < 5 {
		return nil, errDeflated
	}
	body, sum := record[1:len(record)-4], binary.BigEndian.Uint32(record[len(record)-4:])
	// A reader is 40 KB and its dictionary copied in: reused, it costs a fifth of a new one.
	r, _ := inflaters.Get().(io.ReadCloser)
	if r == nil {
		r = flate.NewReaderDict(bytes.NewReader(body), dictBytes)
	} else if err := r.(flate.Resetter).Reset(bytes.NewReader(body), dictBytes); err != nil {
		return nil, errDeflated
	}
	defer inflaters.Put(r)
	raw, err := io.ReadAll(io.LimitReader(r, maxInflated+1))
	if err != nil || len(raw) > maxInflated || crc32.Checksum(raw, castagnoli) != sum {
		return nil, errDeflated
	}
	return raw, nil
}
