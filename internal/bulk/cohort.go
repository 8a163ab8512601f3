package bulk

import (
	"context"
	"encoding/json"
	"slices"
	"time"
)

// Bulk Cohort (requirements 5.9): a client defines a Group by criteria
// (member-filter search expressions, AND-ed, optionally bounded by member
// entities), the server computes its members and stores it as a Group
// resource like any other, so `$export`, `GET /Group/{id}` and
// `GET /Group?name=` serve it unchanged. A Cohort is the definition the
// Group is computed from, kept apart from the Group resource.

// Canonical URLs of the Bulk Cohort API.
const (
	// CohortProfile is the profile of criteria-based Groups.
	CohortProfile = "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/bulk-cohort-group"
	// MemberFilterURL is the modifier extension holding one criterion, a
	// valueExpression of language application/x-fhir-query.
	MemberFilterURL = "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/member-filter"
	// MembersRefreshedURL is the extension (valueDateTime) saying when the
	// membership was last computed.
	MembersRefreshedURL = "http://hl7.org/fhir/uv/bulkdata/StructureDefinition/members-refreshed"
	// RefreshIntervalURL is Tranche's extension (valueDuration) by which a
	// client asks for its cohort to be computed again periodically.
	RefreshIntervalURL = "https://tranche.dev/fhir/StructureDefinition/members-refresh-interval"
	// FHIRQueryLanguage is the expression language of a member-filter.
	FHIRQueryLanguage = "application/x-fhir-query"
)

// CohortStatus is where a cohort's latest requested change stands.
type CohortStatus string

// Cohort statuses.
const (
	// CohortPending: an evaluation (the creation, or a refresh) is
	// requested and has not finished. After a refresh request the Group
	// keeps its earlier members until the evaluation stores new ones.
	CohortPending CohortStatus = "pending"
	// CohortReady: the latest evaluation stored the Group.
	CohortReady CohortStatus = "ready"
	// CohortFailed: the latest evaluation failed (Failure says why); a
	// Group stored by an earlier one stays.
	CohortFailed CohortStatus = "failed"
	// CohortDeleting: the owner deleted the cohort; the workflow removes
	// the Group and then the definition.
	CohortDeleting CohortStatus = "deleting"
)

// Cohort is the definition of a criteria-based Group and where its
// computation stands. The Group resource itself (id ID, with the computed
// members) is in the resource store.
type Cohort struct {
	// ID is the Group's id, assigned by the server.
	ID string `json:"id"`
	// Owner is the client that created the cohort: only it reads the
	// definition, refreshes and deletes it.
	Owner string `json:"owner"`
	// Group is the Group as the client posted it (compact JSON), without
	// what the server sets: id, meta, member, quantity, actual and the
	// members-refreshed extension. The stored Group is built from it.
	Group json.RawMessage `json:"group"`
	// Name is the Group's name.
	Name string `json:"name"`
	// Filters are the member-filter queries in canonical form, each a
	// single-type FHIR search; a member matches every one (AND).
	Filters []string `json:"filters"`
	// Patients and Groups are the member.entity references the client gave
	// (ids): when either is set the cohort's members are among these
	// Patients and the members of these Groups.
	Patients []string `json:"patients,omitempty"`
	Groups   []string `json:"groups,omitempty"`
	// Restrictions are the search restrictions of the scopes of the token
	// that created the cohort, in the shape of ExportRequest.Restrictions
	// (nil: none): every evaluation reads only the resources they allow.
	Restrictions map[string][]string `json:"restrictions,omitempty"`
	// RefreshEvery, when positive, is how often the membership is computed
	// again; zero computes it once, at creation (and on explicit refresh).
	RefreshEvery time.Duration `json:"refreshEvery,omitempty"`

	Status CohortStatus `json:"status"`
	// Failure is the client-safe reason of the latest failed evaluation;
	// FailureInternal is set when it failed for a reason of the server's,
	// not of the cohort's definition or its owner's contract.
	Failure         string `json:"failure,omitempty"`
	FailureInternal bool   `json:"failureInternal,omitempty"`
	// Generation counts the evaluations and deletions requested; it names
	// each one's workflow execution, so that a retried request cannot run
	// one twice.
	Generation int `json:"generation"`
	// Bounded is set when the latest evaluation was bounded by the owner's
	// contract: its members are all members of the contract's Groups
	// Bound (sorted) as of RefreshedAt.
	Bounded bool     `json:"bounded,omitempty"`
	Bound   []string `json:"bound,omitempty"`
	// Members is the number of members the latest evaluation stored
	// (Group.quantity).
	Members int `json:"members"`

	CreatedAt time.Time `json:"createdAt"`
	// RequestedAt is when the latest evaluation or deletion was requested.
	RequestedAt time.Time `json:"requestedAt"`
	// RefreshedAt is the time the stored membership was computed as of
	// (members-refreshed); zero until the first evaluation stores it.
	RefreshedAt time.Time `json:"refreshedAt,omitzero"`

	// Revision is the store's: it counts the cohort's writes, and
	// UpdateCohort replaces only the revision it was read at.
	Revision int64 `json:"revision"`
}

// Evaluated reports whether a Group of the cohort is stored (an
// evaluation succeeded at least once and no deletion is requested).
func (c *Cohort) Evaluated() bool {
	return !c.RefreshedAt.IsZero() && c.Status != CohortDeleting
}

// DueAt returns when the cohort is next to be refreshed, or zero when it is
// not refreshed periodically (or is being deleted).
func (c *Cohort) DueAt() time.Time {
	if c.RefreshEvery <= 0 || c.Status == CohortDeleting || c.Status == CohortPending {
		return time.Time{}
	}
	return Latest(c.RefreshedAt, c.RequestedAt).Add(c.RefreshEvery)
}

// WithinContract reports whether the cohort's stored members lie within
// the Groups a contract allows: its latest evaluation was bounded by
// Groups that are all still allowed. A cohort computed without a bound
// (its owner had every Group then) is within no limited contract.
func (c *Cohort) WithinContract(allowed []string) bool {
	if !c.Bounded {
		return false
	}
	for _, g := range c.Bound {
		if !slices.Contains(allowed, g) {
			return false
		}
	}
	return true
}

// CohortStore persists cohort definitions. Cohorts are a client's: every
// read but ListCohorts("") names the owner, and another client's cohort
// is as absent as one that does not exist.
type CohortStore interface {
	// CreateCohort stores a new cohort with Revision 1 (set in c).
	// Returns ECONFLICT if the owner has a cohort with that id, EINVALID
	// if the id or owner is empty.
	CreateCohort(ctx context.Context, c *Cohort) error
	// GetCohort returns the owner's cohort id. Returns ENOTFOUND if the
	// owner has no such cohort.
	GetCohort(ctx context.Context, owner, id string) (*Cohort, error)
	// UpdateCohort replaces the stored cohort if its Revision is still
	// c.Revision, and sets c.Revision to the new one. Returns ECONFLICT if
	// it was written meanwhile, ENOTFOUND if it no longer exists.
	UpdateCohort(ctx context.Context, c *Cohort) error
	// DeleteCohort removes the owner's cohort id. Returns ENOTFOUND if
	// there is none.
	DeleteCohort(ctx context.Context, owner, id string) error
	// ListCohorts visits the cohorts of owner in id order, or, with owner
	// "", every client's in (owner, id) order. The visits come after the
	// read, so fn may call the store.
	ListCohorts(ctx context.Context, owner string, fn func(*Cohort) error) error
}

// CohortRun names one requested evaluation or deletion of a cohort: the
// input of the cohort workflow (statemachines/cohort.asl.json).
type CohortRun struct {
	Owner      string `json:"owner"`
	CohortID   string `json:"cohortId"`
	Generation int    `json:"generation"`
}

// CohortWorkflow runs cohort evaluations and deletions outside the HTTP
// request: the local ASL runner, or Step Functions.
type CohortWorkflow interface {
	// StartCohort starts the run's execution. Starting a run that was
	// started already is not an error and starts nothing.
	StartCohort(ctx context.Context, run CohortRun) error
}

// CohortRequest is a client's request to create a cohort: the Group it
// posted and what its access token lets it read.
type CohortRequest struct {
	// Owner is the client creating the cohort.
	Owner string
	// Body is the Group resource posted (JSON).
	Body []byte
	// BaseURL is the server's FHIR base, so that absolute references
	// under it read as relative ones.
	BaseURL string
	// Reads checks that the client may read resources of a type (its
	// scopes): a member-filter reveals which patients have matching
	// resources. It returns a client-safe error (EFORBIDDEN); nil allows
	// every type.
	Reads func(typ string) error
	// Restrictions are the search restrictions of the client's scopes
	// (ExportRequest.Restrictions' shape; nil: none).
	Restrictions map[string][]string
}
