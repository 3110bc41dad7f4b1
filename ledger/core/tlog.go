package core

// The transparency log's refusals (issue 14; see docs/transparency.md).
const (
	// ReasonLogDisabled: the server signs no checkpoints (it runs without a log key), so it
	// serves no checkpoint and no proof.
	ReasonLogDisabled Reason = "LOG_DISABLED"
	// ReasonTreeSizeTooLarge: a tree size beyond the log's current size was asked for.
	ReasonTreeSizeTooLarge Reason = "TREE_SIZE_TOO_LARGE"
)

// ReasonStreamOverflow: a journal stream fell too far behind (its buffer filled) and was ended;
// open a new one after the last sequence received (metadata resume_after_sequence).
const ReasonStreamOverflow Reason = "STREAM_OVERFLOW"
