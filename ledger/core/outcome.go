package core

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Stamp is what a decision takes from the world instead of reading a clock or a random source:
// the time it is made at, and a maker of new unique ids.
type Stamp struct {
	At    time.Time
	NewID func() string
}

// Outcome is what the request log keeps of a decided request: a JSON result, or a refusal; or,
// for a Commit, a CreateHold, a ConfirmHold and a CreatePayment, its result kept typed (Commit,
// CreateHold, ConfirmHold, CreatePayment), which the request log stores by reference (PackCommit,
// PackCreateHold, PackConfirmHold, PackPayment) and gives back typed (UnpackCommit, ...).
type Outcome struct {
	Result  json.RawMessage `json:"result,omitempty"`
	Refusal *Error          `json:"refusal,omitempty"`
	// Commit is a Commit's result (Result is then empty). It is not shared: NewOutcome copies it.
	Commit *CommitResult `json:"-"`
	// Bulk is a bulk call's result, recorded as one row for the call (PackBulk).
	Bulk *BulkCommitResult `json:"-"`
	// CreateHold and ConfirmHold are those operations' results, kept typed like Commit's
	// (PackCreateHold, PackConfirmHold; Result is then empty). NewOutcome copies them.
	CreateHold  *CreateHoldResult  `json:"-"`
	ConfirmHold *ConfirmHoldResult `json:"-"`
	// CreatePayment is a CreatePayment's result, kept typed too (PackPayment, migration 30).
	CreatePayment *CreatePaymentResult `json:"-"`
}

// typed is the result the outcome keeps typed, nil when none.
func (o Outcome) typed() any {
	switch {
	case o.Commit != nil:
		return o.Commit
	case o.CreateHold != nil:
		return o.CreateHold
	case o.ConfirmHold != nil:
		return o.ConfirmHold
	case o.CreatePayment != nil:
		return o.CreatePayment
	}
	return nil
}

// NewOutcome is the outcome of an accepted request with result: a Commit's, a CreateHold's, a
// ConfirmHold's or a CreatePayment's result kept typed (the request log keeps them by reference),
// any other as JSON.
func NewOutcome(result any) (Outcome, error) {
	switch r := result.(type) {
	case *CommitResult:
		if r != nil {
			cp := *r
			return Outcome{Commit: &cp}, nil
		}
	case *CreateHoldResult:
		if r != nil {
			cp := *r
			return Outcome{CreateHold: &cp}, nil
		}
	case *ConfirmHoldResult:
		if r != nil {
			cp := *r
			return Outcome{ConfirmHold: &cp}, nil
		}
	case *CreatePaymentResult:
		if r != nil {
			cp := *r
			return Outcome{CreatePayment: &cp}, nil
		}
	}
	raw, err := json.Marshal(result)
	if err != nil {
		return Outcome{}, err
	}
	return Outcome{Result: raw}, nil
}

// Encode is the outcome's JSON (the request log's format before migration 18), without
// re-validating the result, which is JSON this process made.
func (o Outcome) Encode() ([]byte, error) {
	if o.Refusal != nil {
		return json.Marshal(o)
	}
	if o.Bulk != nil {
		return nil, Internal("a bulk call's outcome is recorded packed only")
	}
	if r := o.typed(); r != nil {
		raw, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		o.Result = raw
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
	if o.Bulk != nil {
		if br, ok := out.(*BulkCommitResult); ok {
			*br = *o.Bulk
			return nil
		}
		return Internal("a bulk call's outcome decoded as %T", out)
	}
	if r := o.typed(); r != nil {
		switch out := out.(type) {
		case *CommitResult:
			if o.Commit != nil {
				*out = *o.Commit
				return nil
			}
		case *CreateHoldResult:
			if o.CreateHold != nil {
				*out = *o.CreateHold
				return nil
			}
		case *ConfirmHoldResult:
			if o.ConfirmHold != nil {
				*out = *o.ConfirmHold
				return nil
			}
		case *CreatePaymentResult:
			if o.CreatePayment != nil {
				*out = *o.CreatePayment
				return nil
			}
		}
		raw, err := json.Marshal(r)
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, out)
	}
	return json.Unmarshal(o.Result, out)
}

// Prior is a row of the request log: the fingerprint of the request first decided under an id,
// and its outcome.
type Prior struct {
	Fingerprint string
	Outcome     Outcome
	// Err, when set, is why the recorded answer cannot be given back (an INTERNAL error: a row it
	// is rebuilt from was changed, say): a retry fails with it, and nothing of it is decided again.
	// The other requests looked up with it are answered or decided as usual.
	Err error
}

// RequestRow is a decided request to record in the request log, under Key (see RequestKey).
type RequestRow struct {
	Key         string
	Fingerprint string
	Outcome     Outcome
}

// Replay returns what a request with fingerprint gets when its id is already in the request
// log: the first outcome for the same payload, REQUEST_ID_REUSED for another.
func (p Prior) Replay(id string, fingerprint Fingerprint) Outcome {
	if !fingerprint.Matches(p.Fingerprint) {
		return Outcome{Refusal: RequestIDReused(id)}
	}
	return p.Outcome
}

// Request ids belong to their caller: two principals may use the same request id, each for an
// operation of its own. The request log records a request under RequestKey(caller, id),
// "<id>\t<caller>": a request id never holds a tab (nor does a bulk item's "<id> <index>"), so
// the key names one caller's one id, whatever the caller's name holds, and never equals a bare id.
//
// Rows recorded before request ids were scoped are keyed by the bare request id. Their caller is
// known only through their fingerprint, which includes it: such a row replays to a request whose
// fingerprint matches it (its own caller's retry), and refuses any other request under that id
// with REQUEST_ID_REUSED, as before, since whether another caller sent it or the same caller sent
// another payload cannot be told apart.

// RequestKey is the request log's key of request id sent by caller.
func RequestKey(caller, id string) string { return id + "\t" + caller }

// IsBareKey reports whether a request-log key is a bare request id (a row recorded before request
// ids were scoped per caller) rather than a RequestKey.
func IsBareKey(key string) bool { return strings.IndexByte(key, '\t') < 0 }

// LookupKeys lists the keys under which the request log may hold request id of caller: its own
// key, and the bare id of a row recorded before request ids were scoped per caller.
func LookupKeys(caller, id string) []string { return []string{RequestKey(caller, id), id} }

// FindPrior returns the request log's row for request id of caller among priors (loaded by
// LookupKeys): the row under the caller's key, else a row recorded under the bare id before
// request ids were scoped.
func FindPrior(priors map[string]Prior, caller, id string) (Prior, bool) {
	if p, ok := priors[RequestKey(caller, id)]; ok {
		return p, true
	}
	p, ok := priors[id]
	return p, ok
}

// RequestIDReused is the refusal of a request id already used for a different request.
func RequestIDReused(id string) *Error {
	return &Error{
		Reason:   ReasonRequestIDReused,
		Message:  fmt.Sprintf("request id %q was already used for a different request; use a new request id", id),
		Metadata: map[string]string{"request_id": id},
	}
}

// IsInternal reports whether err is the ledger's INTERNAL error (a recorded answer that cannot be
// given back, say), not a database's or a business refusal.
func IsInternal(err error) bool {
	e, ok := AsError(err)
	return ok && e.Reason == ReasonInternal
}

// IsRefusal reports whether err is a business decision to record as the request's outcome. A
// stale etag is not: it says the caller's view is old, not that the request is refused, and the
// caller sends the request again (under the same id) once it has read again.
func IsRefusal(err error) (*Error, bool) {
	e, ok := AsError(err)
	if !ok || e.Retryable() || e.Reason == ReasonInternal || e.Reason == ReasonRequestIDReused || e.Reason == ReasonETagMismatch {
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
	return NewOutcome(result)
}
