package mock

import (
	"context"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

var (
	_ bulk.ResourceScanner = (*ResourceScanner)(nil)
	_ bulk.ResourceReader  = (*ResourceReader)(nil)
	_ bulk.GroupReader     = (*GroupReader)(nil)
	_ bulk.TombstoneReader = (*TombstoneReader)(nil)
	_ bulk.ResourceSink    = (*ResourceSink)(nil)
)

// ResourceScanner is a bulk.ResourceScanner whose methods call its fields.
type ResourceScanner struct {
	ShardsFn      func() int
	CountFn       func(ctx context.Context) (map[string]int64, error)
	ScanFn        func(ctx context.Context, req bulk.ScanRequest, fn bulk.Visit) error
	CompartmentFn func(ctx context.Context, patientID string, types []string, fn bulk.Visit) error
}

// Shards calls ShardsFn.
func (m *ResourceScanner) Shards() int {
	if m.ShardsFn == nil {
		notSet("ResourceScanner.Shards")
	}
	return m.ShardsFn()
}

// Count calls CountFn.
func (m *ResourceScanner) Count(ctx context.Context) (map[string]int64, error) {
	if m.CountFn == nil {
		notSet("ResourceScanner.Count")
	}
	return m.CountFn(ctx)
}

// Scan calls ScanFn.
func (m *ResourceScanner) Scan(ctx context.Context, req bulk.ScanRequest, fn bulk.Visit) error {
	if m.ScanFn == nil {
		notSet("ResourceScanner.Scan")
	}
	return m.ScanFn(ctx, req, fn)
}

// Compartment calls CompartmentFn.
func (m *ResourceScanner) Compartment(ctx context.Context, patientID string, types []string, fn bulk.Visit) error {
	if m.CompartmentFn == nil {
		notSet("ResourceScanner.Compartment")
	}
	return m.CompartmentFn(ctx, patientID, types, fn)
}

// ResourceReader is a bulk.ResourceReader whose methods call its fields.
type ResourceReader struct {
	GetFn  func(ctx context.Context, typ, id string) (*bulk.Resource, error)
	ListFn func(ctx context.Context, typ string, afterID string, fn bulk.Visit) error
}

// Get calls GetFn.
func (m *ResourceReader) Get(ctx context.Context, typ, id string) (*bulk.Resource, error) {
	if m.GetFn == nil {
		notSet("ResourceReader.Get")
	}
	return m.GetFn(ctx, typ, id)
}

// List calls ListFn.
func (m *ResourceReader) List(ctx context.Context, typ string, afterID string, fn bulk.Visit) error {
	if m.ListFn == nil {
		notSet("ResourceReader.List")
	}
	return m.ListFn(ctx, typ, afterID, fn)
}

// GroupReader is a bulk.GroupReader whose methods call its fields.
type GroupReader struct {
	GroupMembersFn    func(ctx context.Context, groupID string) ([]string, error)
	IsGroupMemberFn   func(ctx context.Context, groupID, patientID string) (bool, error)
	GroupMembershipFn func(ctx context.Context, groupID string) ([]bulk.Member, error)
}

// GroupMembers calls GroupMembersFn.
func (m *GroupReader) GroupMembers(ctx context.Context, groupID string) ([]string, error) {
	if m.GroupMembersFn == nil {
		notSet("GroupReader.GroupMembers")
	}
	return m.GroupMembersFn(ctx, groupID)
}

// IsGroupMember calls IsGroupMemberFn.
func (m *GroupReader) IsGroupMember(ctx context.Context, groupID, patientID string) (bool, error) {
	if m.IsGroupMemberFn == nil {
		notSet("GroupReader.IsGroupMember")
	}
	return m.IsGroupMemberFn(ctx, groupID, patientID)
}

// GroupMembership calls GroupMembershipFn.
func (m *GroupReader) GroupMembership(ctx context.Context, groupID string) ([]bulk.Member, error) {
	if m.GroupMembershipFn == nil {
		notSet("GroupReader.GroupMembership")
	}
	return m.GroupMembershipFn(ctx, groupID)
}

// TombstoneReader is a bulk.TombstoneReader whose method calls its field.
type TombstoneReader struct {
	TombstonesFn func(ctx context.Context, typ string, rng bulk.Range, fn func(bulk.Tombstone) error) error
}

// Tombstones calls TombstonesFn.
func (m *TombstoneReader) Tombstones(ctx context.Context, typ string, rng bulk.Range, fn func(bulk.Tombstone) error) error {
	if m.TombstonesFn == nil {
		notSet("TombstoneReader.Tombstones")
	}
	return m.TombstonesFn(ctx, typ, rng, fn)
}

// ResourceSink is a bulk.ResourceSink whose methods call its fields.
type ResourceSink struct {
	PutFn    func(ctx context.Context, rs []*bulk.Resource) error
	DeleteFn func(ctx context.Context, ref bulk.Ref, at time.Time) error
	TypeOfFn func(ctx context.Context, id string) ([]string, error)
}

// Put calls PutFn.
func (m *ResourceSink) Put(ctx context.Context, rs []*bulk.Resource) error {
	if m.PutFn == nil {
		notSet("ResourceSink.Put")
	}
	return m.PutFn(ctx, rs)
}

// Delete calls DeleteFn.
func (m *ResourceSink) Delete(ctx context.Context, ref bulk.Ref, at time.Time) error {
	if m.DeleteFn == nil {
		notSet("ResourceSink.Delete")
	}
	return m.DeleteFn(ctx, ref, at)
}

// TypeOf calls TypeOfFn.
func (m *ResourceSink) TypeOf(ctx context.Context, id string) ([]string, error) {
	if m.TypeOfFn == nil {
		notSet("ResourceSink.TypeOf")
	}
	return m.TypeOfFn(ctx, id)
}
