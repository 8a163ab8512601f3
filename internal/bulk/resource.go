package bulk

import (
	"context"
	"time"
)

// Resource is one stored FHIR resource: its compact JSON exactly as it will be
// exported (with meta.lastUpdated filled in) plus what the indexes need.
type Resource struct {
	Type        string
	ID          string
	LastUpdated time.Time
	// Body is the compact single-line JSON. Export copies it verbatim: it is
	// never decoded and re-encoded on the export path.
	Body []byte
	// Patients are the ids of the Patients whose compartment holds this
	// resource (R4 CompartmentDefinition/patient), sorted and distinct. A
	// Patient is in its own compartment.
	Patients []string
	// Members are the ids of the Patients a Group lists in Group.member (only
	// for Type == "Group"), sorted and distinct.
	Members []string
	// Outcome, if not nil, is where ResourceSink.Put records what it did
	// with the resource (SetOutcome). It is the caller's: stores do not keep
	// it, and reads return nil. An opt-in pointer rather than a result of
	// Put, so that wrappers of a store (tests gate Put) pass it on, and
	// callers that compare what they put with what they read see no change.
	Outcome *PutOutcome
}

// SetOutcome records o in *r.Outcome, if r has one.
func (r *Resource) SetOutcome(o PutOutcome) {
	if r.Outcome != nil {
		*r.Outcome = o
	}
}

// Member is a Patient member of a Group and when it joined.
type Member struct {
	ID string
	// Since is when the patient joined the Group: the LastUpdated of the
	// first stored version of the Group that listed it, counting from the
	// last version that did not (a Group stored once has every member
	// joining at its LastUpdated). Stores record it on Put, so that a Group
	// export with `_since` can give members who joined later their whole
	// compartment (requirements 5.3, R90).
	Since time.Time
}

// Tombstone records the deletion of a resource, so `_since` exports can list
// it in the manifest's `deleted` array (R88).
type Tombstone struct {
	Type      string
	ID        string
	DeletedAt time.Time
	// Patients are the Patients whose compartment held the resource when it
	// was deleted: the Patients of the version deleted (sorted, distinct),
	// or, when a deleted resource is deleted again, those the earlier
	// tombstone recorded. Empty means unknown: the resource was not stored
	// when deleted, was in no compartment, the tombstone was written
	// before stores recorded compartments, or the store does not keep so
	// long a list (DynamoDB: see its Delete). Group and `patient` exports list
	// only tombstones in an exported patient's compartment (R88, R89), so
	// they leave those out; they count a Patient's tombstone in its own
	// compartment whatever this says.
	Patients []string
}

// Ref names a stored resource.
type Ref struct {
	Type string
	ID   string
}

// Cursor is an opaque resume position inside one scan. The empty cursor
// means "from the start".
type Cursor string

// Range selects resources by lastUpdated: Since < lastUpdated <= Until.
// A zero Since means no lower bound; Until is always set (the job's
// transactionTime, or `_until` when that is earlier).
type Range struct {
	Since time.Time
	Until time.Time
}

// Contains reports whether t lies in the range.
func (r Range) Contains(t time.Time) bool {
	return (r.Since.IsZero() || t.After(r.Since)) && !t.After(r.Until)
}

// ScanRequest asks for the resources of one type in one shard, within a
// lastUpdated range, in (lastUpdated, id) order, after Cursor.
type ScanRequest struct {
	Type   string
	Shard  int
	Range  Range
	Cursor Cursor
	// CompartmentOnly keeps only resources that belong to some Patient's
	// compartment (a Patient-level export).
	CompartmentOnly bool
	// Skipped, if set, is called with the cursor just after each resource
	// the scan reads but leaves out (CompartmentOnly), in order with the
	// visits, so that a caller can stop at a deadline in a long run of
	// such rows: ErrStop stops the scan as from a Visit, and the cursor
	// resumes after the row. A store whose rows cost no I/O to pass over
	// need not call it.
	Skipped func(next Cursor) error
}

// Visit receives a resource and the cursor that resumes just after it. Its
// Body is only valid during the call. Returning a non-nil error stops the scan
// and that error is returned; ErrStop stops it without an error.
type Visit func(r *Resource, next Cursor) error

// ErrStop stops a scan early without reporting an error.
var ErrStop = &Error{Code: "stop", Message: "stop"}

// ResourceSource reads stored resources for export: the composition of
// the read capabilities below, which every adapter implements and the
// contract suite (bulktest.RunResourceStoreTests) checks. Every method
// returns ENOTFOUND only where it says so; a scan over nothing visits
// nothing. Components that use only some of it take the parts they use.
type ResourceSource interface {
	ResourceScanner
	ResourceReader
	GroupReader
	TombstoneReader
}

// ResourceScanner reads resources through the store's indexes, as an
// export (and a cohort evaluation) does: by type, shard and lastUpdated
// range, resumable from a cursor, or by Patient compartment.
type ResourceScanner interface {
	// Shards returns the fixed number of shards each type is split into
	// (shard = hash(id) mod Shards). Shards are the natural fan-out items.
	Shards() int
	// Count returns the number of live resources stored per type, for
	// planning. It may be approximate in adapters that cannot count cheaply.
	Count(ctx context.Context) (map[string]int64, error)
	// Scan visits the resources of req.Type in req.Shard in (lastUpdated, id)
	// order, starting after req.Cursor.
	Scan(ctx context.Context, req ScanRequest, fn Visit) error
	// Compartment visits the resources of the given types (all types when
	// types is empty) in the compartment of Patient patientID. The visit's
	// cursor is unused and empty.
	Compartment(ctx context.Context, patientID string, types []string, fn Visit) error
}

// ResourceReader reads resources by id, as plain FHIR reads do: one
// resource, or every live resource of a type in id order.
type ResourceReader interface {
	// Get returns one resource. Returns ENOTFOUND if it does not exist or was
	// deleted.
	Get(ctx context.Context, typ, id string) (*Resource, error)
	// List visits every live resource of typ in id order, after afterID, for
	// plain FHIR reads such as `GET /Group`.
	List(ctx context.Context, typ string, afterID string, fn Visit) error
}

// GroupReader reads Group membership from the index that ResourceSink.Put
// keeps of each Group's members and when they joined.
type GroupReader interface {
	// GroupMembers returns the member Patient ids of a Group. Returns
	// ENOTFOUND if the Group does not exist.
	GroupMembers(ctx context.Context, groupID string) ([]string, error)
	// IsGroupMember reports whether patientID is a member of the Group.
	IsGroupMember(ctx context.Context, groupID, patientID string) (bool, error)
	// GroupMembership returns the members of a Group with the time each
	// joined (Member.Since), in id order. Returns ENOTFOUND if the Group
	// does not exist.
	GroupMembership(ctx context.Context, groupID string) ([]Member, error)
}

// TombstoneReader lists the deletions that ResourceSink.Delete recorded,
// for the manifest's `deleted` array of `_since` exports (R88). It has one
// method: deletions are read on their own, by exports and by imports that
// re-create deleted resources.
type TombstoneReader interface {
	// Tombstones visits deletions of typ whose time lies in rng, in
	// (deletedAt, id) order, each with the compartments it was in
	// (Tombstone.Patients). Callers that want one patient set's deletions
	// filter the visits: deletions are few next to resources.
	Tombstones(ctx context.Context, typ string, rng Range, fn func(Tombstone) error) error
}

// ResourceSink writes resources (import).
type ResourceSink interface {
	// Put stores resources, replacing any earlier version with the same type
	// and id (and its index entries), and clearing a tombstone of it. For a
	// Group it records when each member joined (Member.Since): members the
	// live earlier version listed keep their time, the others get the new
	// version's LastUpdated.
	//
	// A resource whose live version has the same content (SameContent) and
	// the same Patients and Members is not written: the stored version keeps
	// its LastUpdated and body, as FHIR servers do with a no-op update (HAPI
	// FHIR; microsoft/fhir-server#2519). Otherwise importing the same data
	// again would give every resource a new lastUpdated, and the next
	// `_since` export would return all of it again as changed.
	//
	// Put records what it did with each resource in its Outcome (if set), a
	// version earlier in rs counting as stored before a later one of the
	// same resource. When it fails part-way, the resources it stored
	// (committed) have their Outcome set and the others are left alone:
	// callers that count zero them first.
	Put(ctx context.Context, rs []*Resource) error
	// Delete removes a resource and records a tombstone at time at, with the
	// Patients of the version it removes (Tombstone.Patients). Deleting a
	// resource that does not exist still records the tombstone: with the
	// Patients of its earlier tombstone if it has one, else with none.
	Delete(ctx context.Context, ref Ref, at time.Time) error
	// TypeOf returns the types under which id is stored, for resolving
	// `urn:uuid:` references on import.
	TypeOf(ctx context.Context, id string) ([]string, error)
}

// PutOutcome is what ResourceSink.Put did with one resource.
type PutOutcome uint8

const (
	// PutNew stored a resource that had no live version (none, or deleted).
	PutNew PutOutcome = iota + 1
	// PutReplaced stored a new version in place of the live one.
	PutReplaced
	// PutUnchanged wrote nothing: the live version is the same (see Put).
	PutUnchanged
)

// String names the outcome.
func (o PutOutcome) String() string {
	switch o {
	case PutNew:
		return "new"
	case PutReplaced:
		return "replaced"
	case PutUnchanged:
		return "unchanged"
	}
	return "none"
}

// ResourceStore is both ends, as the embedded and in-memory stores are.
type ResourceStore interface {
	ResourceSource
	ResourceSink
}
