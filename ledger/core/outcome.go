package core

import (
	"encoding/json"
	"fmt"
	"time"
)

// Stamp is what a decision takes from the world instead of reading a clock or a random source:
// the time it is made at, and a maker of new unique ids.
type Stamp struct {
	At    time.Time
	NewID func() string
}

// Outcome is what the request log keeps of a decided request: a JSON result, or a refusal.
type Outcome struct {
	Result  json.RawMessage `json:"result,omitempty"`
	Refusal *Error          `json:"refusal,omitempty"`
}

// Encode is json.Marshal(o) without re-validating the result, which is JSON this process made.
func (o Outcome) Encode() ([]byte, error) {
	if o.Refusal != nil {
		return json.Marshal(o)
	}
	raw := make([]byte, 0, len(o.Result)+12)
	raw = append(raw, `{"result":`...)
	raw = append(raw, o.Result...)
	return append(raw, '}'), nil
}

// Decode returns the refusal, or decodes the result into out.
func (o Outcome) Decode(out any) error {
	if o.Refusal != nil {
		return o.Refusal
	}
	return json.Unmarshal(o.Result, out)
}

// Prior is a row of the request log: the fingerprint of the request first decided under an id,
// and its outcome.
type Prior struct {
	Fingerprint string
	Outcome     Outcome
}

// RequestRow is a decided request to record in the request log.
type RequestRow struct {
	ID          string
	Fingerprint string
	Outcome     Outcome
}

// Replay returns what a request with fingerprint gets when its id is already in the request
// log: the first outcome for the same payload, REQUEST_ID_REUSED for another.
func (p Prior) Replay(id, fingerprint string) Outcome {
	if p.Fingerprint != fingerprint {
		return Outcome{Refusal: RequestIDReused(id)}
	}
	return p.Outcome
}

// RequestIDReused is the refusal of a request id already used for a different request.
func RequestIDReused(id string) *Error {
	return &Error{
		Reason:   ReasonRequestIDReused,
		Message:  fmt.Sprintf("request id %q was already used for a different request; use a new request id", id),
		Metadata: map[string]string{"request_id": id},
	}
}

// IsRefusal reports whether err is a business decision to record as the request's outcome.
func IsRefusal(err error) (*Error, bool) {
	e, ok := AsError(err)
	if !ok || e.Retryable() || e.Reason == ReasonInternal || e.Reason == ReasonRequestIDReused {
		return nil, false
	}
	return e, true
}

// Settle turns a decision into the outcome to record: its result, or its refusal. An error that
// is not a business refusal (an internal error) is returned, and nothing is to be recorded.
func Settle(result any, err error) (Outcome, error) {
	if refusal, ok := IsRefusal(err); ok {
		return Outcome{Refusal: refusal}, nil
	} else if err != nil {
		return Outcome{}, err
	}
	raw, err := json.Marshal(result)
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Result: raw}, nil
}
