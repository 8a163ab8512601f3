package bulk

import (
	"context"
	"io"
	"time"
)

// Status is the state of an export job. accepted → in-progress → completed |
// failed | cancelled; there is no way back from a terminal status.
type Status string

const (
	StatusAccepted   Status = "accepted"
	StatusInProgress Status = "in-progress"
	StatusCompleted  Status = "completed"
	StatusFailed     Status = "failed"
	StatusCancelled  Status = "cancelled"
)

// Terminal reports whether s can no longer change.
func (s Status) Terminal() bool {
	return s == StatusCompleted || s == StatusFailed || s == StatusCancelled
}

// Level is where the export was kicked off.
type Level string

const (
	LevelSystem  Level = "system"
	LevelPatient Level = "patient"
	LevelGroup   Level = "group"
)

// ExportRequest is a validated kick-off: GET query and POST Parameters both
// normalize into it (requirements 1.2).
type ExportRequest struct {
	Level   Level  `json:"level"`
	GroupID string `json:"groupId,omitempty"`
	// Types is the `_type` list in request order, deduplicated; empty means
	// every supported (and authorized) type.
	Types []string `json:"types,omitempty"`
	// Allowed are the types the client's scopes allow, nil meaning every
	// type: an export without `_type` covers only these (R15).
	Allowed []string `json:"allowed,omitempty"`
	// Since and Until are `_since` / `_until`; zero when absent.
	Since time.Time `json:"since,omitzero"`
	Until time.Time `json:"until,omitzero"`
	// Patients is the POST-only `patient` parameter: Patient ids.
	Patients     []string `json:"patients,omitempty"`
	OutputFormat string   `json:"outputFormat"`
	// RequestURL is the full kick-off URL for the manifest's `request` (R56).
	RequestURL string `json:"requestUrl"`
	// BaseURL is the server's base as the kick-off saw it: attachment
	// URLs written into the output start with it (R85).
	BaseURL string `json:"baseUrl,omitempty"`

	// TypeFilters are the `_typeFilter` queries, each a single-type search
	// in the canonical form of search.Filter.String. A resource of a type
	// with filters is exported if it matches one of them (OR, R27); a type
	// without any is not filtered (R26, R28).
	TypeFilters []string `json:"typeFilters,omitempty"`
	// Restrictions are the search restrictions of the client's SMART v2
	// scopes (`system/Observation.rs?category=laboratory`), by resource
	// type, with "*" for every type that has no entry of its own. Each
	// value lists queries without the "Type?" prefix, OR-ed; an empty list
	// means the type is unrestricted. A restricted type is exported only
	// where a resource matches one of its queries, on top of TypeFilters
	// (requirements 6.8, R114). Nil means no restriction at all.
	Restrictions map[string][]string `json:"restrictions,omitempty"`
	// Elements are the `_elements` entries, "Type.element" or a bare
	// "element" for every type (R21, R22).
	Elements []string `json:"elements,omitempty"`
	// Associated is the `includeAssociatedData` value applied:
	// "LatestProvenanceResources" or "RelevantProvenanceResources" (the
	// least restrictive when both were sent, R32), or empty.
	Associated string `json:"associated,omitempty"`
	// OrganizeBy is `organizeOutputBy`: "Patient" or empty (R64, R91).
	OrganizeBy string `json:"organizeBy,omitempty"`
	// AllowPartial is `allowPartialManifests=true`: manifests are paged and
	// files are listed while the export runs (R65, R66).
	AllowPartial bool `json:"allowPartial,omitempty"`
	// SeparateStatus is set when the client asked for
	// `Prefer: separate-export-status`: status polls answer 200 and carry
	// the job's state in X-Export-Status (requirements 3.6, R67).
	SeparateStatus bool `json:"separateStatus,omitempty"`
	// Contract, when set, is the Group limit of the client's business
	// contract on a Patient-level export: the export covers only the
	// patients who were members of one of Contract.Groups at
	// transactionTime (requirements 1.6, R93). Nil means no such limit.
	Contract *Contract `json:"contract,omitempty"`
	// NotBefore is the earliest lastUpdated the client's contract lets it
	// see: kick-off time minus its maximum look-back (zero: no bound).
	// `_since` is never earlier; NotBefore also bounds what an export adds
	// regardless of `_since` (new Group members' compartments, associated
	// Provenance).
	NotBefore time.Time `json:"notBefore,omitzero"`
	// Lenient is set when the client sent `Prefer: handling=lenient`.
	Lenient bool `json:"lenient,omitempty"`
	// Ignored lists what lenient handling ignored, one client-safe message
	// naming the parameter each; each becomes an OperationOutcome in the
	// manifest's `error` file (requirements 1.5, R17, R20).
	Ignored []string `json:"ignored,omitempty"`
}

// Contract is the part of a client's business contract that an export
// carries to planning (requirements 1.6).
type Contract struct {
	// Groups are the Group ids the client may export, sorted; empty
	// allows none, so the export covers no patient.
	Groups []string `json:"groups"`
}

// Associated data values (`includeAssociatedData`, requirements 1.4.8).
const (
	LatestProvenance   = "LatestProvenanceResources"
	RelevantProvenance = "RelevantProvenanceResources"
)

// Item is one unit of export work cut by the planner from the indexes: either
// one type over some shards (system and Patient level), or a batch of
// patients over the requested types (Group level, `patient` parameter).
type Item struct {
	Index int `json:"index"`
	// Type and Shards: a type scan. Shards lists the shards this item reads.
	Type   string `json:"type,omitempty"`
	Shards []int  `json:"shards,omitempty"`
	// Patients and Types: a compartment read for a batch of patients.
	// With Deleted: only tombstones in these patients' compartments.
	Patients []string `json:"patients,omitempty"`
	Types    []string `json:"types,omitempty"`
	// Deleted marks an item that lists tombstones of Types for the
	// manifest's `deleted` array instead of resources.
	Deleted bool `json:"deleted,omitempty"`
	// Patient-level exports keep only compartment resources.
	CompartmentOnly bool `json:"compartmentOnly,omitempty"`
	// Organized writes Patient blocks (`organizeOutputBy=Patient`): for the
	// item's Patients, or for every Patient its Type "Patient" scan visits.
	Organized bool `json:"organized,omitempty"`
	// Associated marks the item that writes the Provenance of the default
	// Provenance rule and of `includeAssociatedData` (R33).
	Associated bool `json:"associated,omitempty"`
	// Referenced marks the item that runs after every other item: it
	// writes the resources of Types (outside the Patient compartment) that
	// the other items' resources reference (Plan.Referenced).
	Referenced bool `json:"referenced,omitempty"`
}

// Plan is the planner's result, stored once per job so that re-running the
// workflow after a restart exports exactly the same work items.
type Plan struct {
	Types []string `json:"types"`
	Range Range    `json:"range"`
	Items []Item   `json:"items"`
	// NewMembers are the Group members (sorted) that joined the Group
	// after `_since`: their compartments are exported whatever the
	// resources' lastUpdated (requirements 5.3, R90).
	NewMembers []string `json:"newMembers,omitempty"`
	// Members, for a Patient-level export under a Group contract
	// (ExportRequest.Contract), are the patients it covers, sorted: those
	// who were members of one of the contract's Groups at transactionTime,
	// narrowed by `patient`. No other patient's compartment is exported.
	Members []string `json:"members,omitempty"`
	// Floor is ExportRequest.NotBefore: the lower bound of what the
	// new-member rule and associated Provenance add (zero: none).
	Floor time.Time `json:"floor,omitzero"`
	// Provenance says whether Provenance is exported by Provenance rules
	// (the default rule at Patient and Group level, or
	// `includeAssociatedData`) rather than as a plain type.
	Provenance bool `json:"provenance,omitempty"`
	// Referenced are the types, outside the Patient compartment, that a
	// Patient or Group export adds as the resources its compartment
	// resources reference, one hop (issue 15 item 3, requirements 1.4.4).
	// The plan's last item (Item.Referenced) writes them.
	Referenced []string `json:"referenced,omitempty"`
	// Files were written by planning itself: the error file listing what
	// lenient handling ignored.
	Files []OutputFile `json:"files,omitempty"`
}

// FileKind says which manifest array a file belongs to.
type FileKind string

const (
	KindOutput  FileKind = "output"
	KindDeleted FileKind = "deleted"
	KindError   FileKind = "error"
)

// OutputFile is one written NDJSON file. Type is empty for organized
// output, whose files hold Patient blocks of many types.
type OutputFile struct {
	Kind  FileKind `json:"kind"`
	Type  string   `json:"type"`
	Key   string   `json:"key"` // ObjectStore key
	Count int64    `json:"count"`
	Bytes int64    `json:"bytes"`
	// ContinuesIn is the key of the file that continues this file's last
	// Patient block (organized output, R92).
	ContinuesIn string `json:"continuesIn,omitempty"`
}

// ItemProgress is what an export item has recorded: its files so far and
// where to resume. Recording it is the item's checkpoint.
type ItemProgress struct {
	Index  int          `json:"index"`
	Done   bool         `json:"done"`
	Cursor string       `json:"cursor,omitempty"`
	Part   int          `json:"part"` // number of checkpoints so far
	Files  []OutputFile `json:"files,omitempty"`
	// RefKeys are the objects, one per checkpoint that found any, listing
	// the references to Plan.Referenced types this item's resources hold.
	RefKeys []string `json:"refKeys,omitempty"`
}

// Job is one export.
type Job struct {
	ID       string        `json:"id"`
	ClientID string        `json:"clientId"`
	Status   Status        `json:"status"`
	Request  ExportRequest `json:"request"`
	// TransactionTime is fixed at kick-off (R55).
	TransactionTime time.Time `json:"transactionTime"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
	// ExpiresAt is when the job and its files are purged.
	ExpiresAt time.Time `json:"expiresAt"`
	// ItemsTotal and ItemsDone drive X-Progress.
	ItemsTotal int `json:"itemsTotal"`
	ItemsDone  int `json:"itemsDone"`
	// Failure is the client-safe reason of a failed job.
	Failure string `json:"failure,omitempty"`
}

// JobStore persists jobs: the composition of the capabilities below, which
// every adapter implements and the contract suite (bulktest.RunJobStoreTests)
// checks. Implementations must make every transition a single conditional
// write: a terminal status never changes again. Components that use only
// some of it take the parts they use.
type JobStore interface {
	JobWriter
	JobReader
	PlanStore
	ProgressStore
}

// JobWriter creates, moves and removes job records: kick-off, the workflow's
// status changes, cancellation and purging. Every write is a single
// conditional write: a terminal status never changes again.
type JobWriter interface {
	// CreateJob stores a new job. Returns ECONFLICT if the id exists.
	CreateJob(ctx context.Context, j *Job) error
	// CreateJobWithin is CreateJob for a client's concurrency quota (R39):
	// a job that is not terminal is stored only if its owner has fewer
	// than limit jobs that are not terminal, counted by the same atomic
	// write, so concurrent kick-offs cannot all pass. Returns
	// ETOOMANYREQUESTS when the owner has limit already. limit ≤ 0 means
	// no limit.
	CreateJobWithin(ctx context.Context, j *Job, limit int) error
	// Transition moves a job from one of the statuses in from to to, applying
	// mutate (which may be nil) to the stored job in the same write. Returns
	// ENOTFOUND for an unknown job and ECONFLICT when its status is not in
	// from. Returns the updated job.
	Transition(ctx context.Context, id string, from []Status, to Status, mutate func(*Job)) (*Job, error)
	// DeleteJob removes a job with its plan and progress. Deleting an unknown
	// job is not an error.
	DeleteJob(ctx context.Context, id string) error
}

// JobReader reads job records: one job (status polls, the workflow's
// steps), all of them (recovery, purging, the watchdog, stats) and a
// client's unfinished ones (quotas).
type JobReader interface {
	// GetJob returns a job. Returns ENOTFOUND if it does not exist.
	GetJob(ctx context.Context, id string) (*Job, error)
	// ListJobs visits all jobs (for recovery after a restart, for purging
	// expired jobs and for the watchdog) in id order.
	ListJobs(ctx context.Context, fn func(*Job) error) error
	// ActiveJobs counts the jobs of clientID that are not terminal
	// (accepted or in progress). It reads only that client's unfinished
	// jobs, never every job: stores keep an index of the active jobs by
	// owner, updated by the same write as the transitions, so the cost
	// follows the client's running exports, not the jobs kept for a day.
	// The count may briefly lag a transition where the store's index is
	// eventually consistent (DynamoDB's): the quota itself is
	// CreateJobWithin's, not a count followed by a create.
	ActiveJobs(ctx context.Context, clientID string) (int, error)
}

// PlanStore keeps each job's plan, written once by the plan step so that
// re-running the workflow after a restart exports exactly the same items.
type PlanStore interface {
	// SavePlan stores the job's plan and sets ItemsTotal, only if the job is
	// not terminal and has no plan yet. Returns the plan that is stored (the
	// earlier one when there was one). Returns ECONFLICT if the job is
	// terminal.
	SavePlan(ctx context.Context, id string, p *Plan) (*Plan, error)
	// GetPlan returns the stored plan. Returns ENOTFOUND if there is none.
	GetPlan(ctx context.Context, id string) (*Plan, error)
}

// ProgressStore keeps the export items' checkpoints: the files each item
// wrote and where it resumes.
type ProgressStore interface {
	// SaveProgress records an item's checkpoint, replacing the earlier one
	// for that item, and counts ItemsDone when p.Done first becomes true.
	// Returns ECONFLICT if the job is terminal, so a cancelled job's items
	// stop writing.
	SaveProgress(ctx context.Context, id string, p *ItemProgress) error
	// ItemProgress returns one item's checkpoint, so an item resuming from
	// it reads one record however many items the job has. Returns
	// ENOTFOUND if the item has recorded none.
	ItemProgress(ctx context.Context, id string, index int) (*ItemProgress, error)
	// Progress returns the recorded checkpoints of all items, by index.
	Progress(ctx context.Context, id string) ([]*ItemProgress, error)
}

// ObjectStore holds output files.
type ObjectStore interface {
	// Create starts writing an object. Nothing is visible until Close
	// returns nil; Abort discards it. Writing an existing key replaces it
	// (writes are idempotent, so a retried item overwrites its own files).
	Create(ctx context.Context, key string) (ObjectWriter, error)
	// Open reads an object. Returns ENOTFOUND if it does not exist.
	Open(ctx context.Context, key string) (Object, error)
	// DeletePrefix removes every object whose key starts with prefix.
	DeletePrefix(ctx context.Context, prefix string) error
	// List returns the keys under prefix in lexical order.
	List(ctx context.Context, prefix string) ([]string, error)
}

// ObjectWriter is an object being written.
type ObjectWriter interface {
	Write(p []byte) (int, error)
	// Close makes the object visible.
	Close() error
	// Abort discards what was written. It is safe after Close.
	Abort() error
}

// Object is an object being read. Local objects are *os.File-backed so the
// server can hand them to sendfile.
type Object interface {
	Read(p []byte) (int, error)
	Seek(offset int64, whence int) (int64, error)
	Close() error
	Size() int64
	ModTime() time.Time
}

// SeekTarget resolves an Object's Seek(offset, whence) from its current
// position pos and its size: the absolute offset, or EINVALID.
func SeekTarget(pos, size, offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = pos + offset
	case io.SeekEnd:
		abs = size + offset
	default:
		return 0, Errorf(EINVALID, "Seek whence %d is invalid.", whence)
	}
	if abs < 0 {
		return 0, Errorf(EINVALID, "Seek to a negative offset.")
	}
	return abs, nil
}

// Workflow runs the export state machine for a job.
type Workflow interface {
	// Start begins (or, after a restart, resumes) the execution for a job.
	// Starting a job whose execution is already running is a no-op.
	Start(ctx context.Context, jobID string) error
	// Stop ends a running execution and returns once its work has stopped
	// writing. Stopping an unknown or finished execution is not an error.
	Stop(ctx context.Context, jobID string) error
	// Running reports whether the job's execution is still running, for
	// the watchdog that fails jobs whose execution ended without making
	// them terminal. An execution that ended in any way, or that does not
	// exist, is not running. Returns ETRANSIENT when the workflow service
	// cannot answer now.
	Running(ctx context.Context, jobID string) (bool, error)
}
