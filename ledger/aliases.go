package ledger

import (
	"github.com/budgetledger/budgetledger/ledger/audit"
	"github.com/budgetledger/budgetledger/ledger/core"
	"github.com/budgetledger/budgetledger/ledger/report"
	"github.com/budgetledger/budgetledger/ledger/store"
)

// The ledger's vocabulary is defined by the packages below it; these aliases are the names
// server/ and cmd/ use. See each original for its documentation.

// Types of the decision core (package core).
type (
	BulkCommit           = core.BulkCommit
	BulkCommitResult     = core.BulkCommitResult
	BulkItem             = core.BulkItem
	BulkItemResult       = core.BulkItemResult
	Commit               = core.Commit
	CommitResult         = core.CommitResult
	Commitment           = core.Commitment
	CreateEnvelope       = core.CreateEnvelope
	CreateEnvelopeResult = core.CreateEnvelopeResult
	EffectiveRules       = core.EffectiveRules
	Entry                = core.Entry
	EntryKind            = core.EntryKind
	Envelope             = core.Envelope
	EnvelopeRules        = core.EnvelopeRules
	Error                = core.Error
	MoveAllocation       = core.MoveAllocation
	MoveAllocationResult = core.MoveAllocationResult
	Policy               = core.Policy
	Posting              = core.Posting
	Reason               = core.Reason
	Release              = core.Release
	ReleaseResult        = core.ReleaseResult
	RuleSet              = core.RuleSet
	Rules                = core.Rules
	SetRules             = core.SetRules
	SetRulesResult       = core.SetRulesResult
	Window               = core.Window
)

// Types of lists (package store), the verifier (package audit) and reports (package report).
type (
	Page             = store.Page
	EnvelopeFilter   = store.EnvelopeFilter
	CommitmentFilter = store.CommitmentFilter
	EntryFilter      = store.EntryFilter
	Discrepancy      = audit.Discrepancy
	VerifyReport     = audit.VerifyReport
	Figures          = report.Figures
	ReportLine       = report.ReportLine
	Report           = report.Report
	Award            = report.Award
	Awards           = report.Awards
)

// Reasons, entry kinds and limits.
const (
	ReasonAmountOverflow          = core.ReasonAmountOverflow
	ReasonCommitmentNotFound      = core.ReasonCommitmentNotFound
	ReasonCurrencyMismatch        = core.ReasonCurrencyMismatch
	ReasonEnvelopeAlreadyExists   = core.ReasonEnvelopeAlreadyExists
	ReasonEnvelopeNotFound        = core.ReasonEnvelopeNotFound
	ReasonEnvelopesNotRelated     = core.ReasonEnvelopesNotRelated
	ReasonEnvelopeTooDeep         = core.ReasonEnvelopeTooDeep
	ReasonInsufficientFunds       = core.ReasonInsufficientFunds
	ReasonInternal                = core.ReasonInternal
	ReasonInvalidArgument         = core.ReasonInvalidArgument
	ReasonInvalidPageToken        = core.ReasonInvalidPageToken
	ReasonReleaseExceedsRemaining = core.ReasonReleaseExceedsRemaining
	ReasonRequestIDReused         = core.ReasonRequestIDReused
	ReasonStoreUnavailable        = core.ReasonStoreUnavailable
	ReasonTransactionConflict     = core.ReasonTransactionConflict
	ReasonPolicyViolation         = core.ReasonPolicyViolation
	// The refusals of effective times (see core.CheckEffective).
	ReasonEffectiveTimeInFuture         = core.ReasonEffectiveTimeInFuture
	ReasonEffectiveTimeBeforeEnvelope   = core.ReasonEffectiveTimeBeforeEnvelope
	ReasonEffectiveTimeBeforeLatest     = core.ReasonEffectiveTimeBeforeLatest
	ReasonEffectiveTimeBeforeCommitment = core.ReasonEffectiveTimeBeforeCommitment
	ReasonEffectiveTimeBeforeHold       = core.ReasonEffectiveTimeBeforeHold
	ReasonEffectiveTimeBeforePayment    = core.ReasonEffectiveTimeBeforePayment
	ReasonEffectiveTimeBeforeRelease    = core.ReasonEffectiveTimeBeforeRelease
	KindAllocationMoved                 = core.KindAllocationMoved
	KindCommitted                       = core.KindCommitted
	KindEnvelopeAllocated               = core.KindEnvelopeAllocated
	KindEnvelopeFunded                  = core.KindEnvelopeFunded
	KindReleased                        = core.KindReleased
	KindRulesChanged                    = core.KindRulesChanged
	MaxBulkItems                        = core.MaxBulkItems
	MaxEnvelopeDepth                    = core.MaxEnvelopeDepth
	FundingAccount                      = core.FundingAccount
	ReasonETagMismatch                  = core.ReasonETagMismatch
	ReasonVerificationNotFound          = core.ReasonVerificationNotFound
	ReasonVerificationRunning           = core.ReasonVerificationRunning
)

// Sentinel errors, for errors.Is.
var (
	ErrAmountOverflow          = core.ErrAmountOverflow
	ErrETagMismatch            = core.ErrETagMismatch
	ErrVerificationNotFound    = core.ErrVerificationNotFound
	ErrVerificationRunning     = core.ErrVerificationRunning
	ErrCommitmentNotFound      = core.ErrCommitmentNotFound
	ErrCurrencyMismatch        = core.ErrCurrencyMismatch
	ErrEnvelopeAlreadyExists   = core.ErrEnvelopeAlreadyExists
	ErrEnvelopeNotFound        = core.ErrEnvelopeNotFound
	ErrEnvelopesNotRelated     = core.ErrEnvelopesNotRelated
	ErrEnvelopeTooDeep         = core.ErrEnvelopeTooDeep
	ErrInsufficientFunds       = core.ErrInsufficientFunds
	ErrInternal                = core.ErrInternal
	ErrInvalidArgument         = core.ErrInvalidArgument
	ErrInvalidPageToken        = core.ErrInvalidPageToken
	ErrReleaseExceedsRemaining = core.ErrReleaseExceedsRemaining
	ErrRequestIDReused         = core.ErrRequestIDReused
	ErrStoreUnavailable        = core.ErrStoreUnavailable
	ErrTransactionConflict     = core.ErrTransactionConflict
	ErrPolicyViolation         = core.ErrPolicyViolation
	// The refusals of effective times.
	ErrEffectiveTimeInFuture         = core.ErrEffectiveTimeInFuture
	ErrEffectiveTimeBeforeEnvelope   = core.ErrEffectiveTimeBeforeEnvelope
	ErrEffectiveTimeBeforeLatest     = core.ErrEffectiveTimeBeforeLatest
	ErrEffectiveTimeBeforeCommitment = core.ErrEffectiveTimeBeforeCommitment
)

// Resource names.
var (
	EnvelopeName   = core.EnvelopeName
	CommitmentName = core.CommitmentName
	EntryName      = core.EntryName
	RuleSetName    = core.RuleSetName
)
