package mem

import (
	"cmp"
	"context"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

var (
	_ bulk.ResourceStore = (*ResourceStore)(nil)
	_ bulk.Clock         = (*ResourceStore)(nil)
)

// ResourceStore is an in-memory bulk.ResourceStore: maps plus sorting under
// one mutex. It is the reference implementation the contract suite is written
// against, so it favours being obviously right over being fast: every scan
// sorts the whole type.
type ResourceStore struct {
	shards int

	mu         sync.RWMutex
	resources  map[string]map[string]*bulk.Resource // type → id → resource
	tombstones map[string]map[string]tombstone      // type → id → deletion
	joined     map[string]map[string]time.Time      // Group id → member → Member.Since

	clock bulk.LocalClock // the store's clock for lastUpdated (bulk.Clock)

	fhirVersion string // bulk.FHIRVersionStore
}

// NewResourceStore returns an empty store that splits each type into shards
// shards (at least 1).
func NewResourceStore(shards int) *ResourceStore {
	return &ResourceStore{
		shards:     max(shards, 1),
		resources:  make(map[string]map[string]*bulk.Resource),
		tombstones: make(map[string]map[string]tombstone),
		joined:     make(map[string]map[string]time.Time),
	}
}

// Shards returns the number of shards each type is split into.
func (s *ResourceStore) Shards() int { return s.shards }

// Begin starts an import's session on the store's clock (bulk.Clock): the
// store lives in one process, so a bulk.LocalClock is the whole story.
func (s *ResourceStore) Begin(ctx context.Context) (bulk.ClockSession, error) {
	return s.clock.Begin(ctx)
}

// TransactionTime implements bulk.Clock.
func (s *ResourceStore) TransactionTime(ctx context.Context, now time.Time) (time.Time, error) {
	return s.clock.TransactionTime(ctx, now)
}

// Count returns the number of live resources per type; types with none are
// left out.
func (s *ResourceStore) Count(ctx context.Context) (map[string]int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	counts := make(map[string]int64, len(s.resources))
	for typ, byID := range s.resources {
		if len(byID) > 0 {
			counts[typ] = int64(len(byID))
		}
	}
	return counts, nil
}

// Scan visits the resources of req.Type in req.Shard in (lastUpdated, id)
// order after req.Cursor. The cursor is "<lastUpdated UnixNano>/<id>". The
// resources are copied out before the first visit, so fn may write to the
// store.
func (s *ResourceStore) Scan(ctx context.Context, req bulk.ScanRequest, fn bulk.Visit) error {
	if req.Shard < 0 || req.Shard >= s.shards {
		return bulk.Errorf(bulk.EINVALID, "Shard %d is out of range [0, %d).", req.Shard, s.shards)
	}
	var after *position
	if req.Cursor != "" {
		p, err := parseCursor(req.Cursor)
		if err != nil {
			return err
		}
		after = &p
	}
	s.mu.RLock()
	var rs []*bulk.Resource
	for id, r := range s.resources[req.Type] {
		switch {
		case bulk.ShardOf(id, s.shards) != req.Shard,
			!req.Range.Contains(r.LastUpdated),
			req.CompartmentOnly && len(r.Patients) == 0,
			after != nil && comparePosition(positionOf(r), *after) <= 0:
			continue
		}
		rs = append(rs, cloneResource(r))
	}
	s.mu.RUnlock()
	slices.SortFunc(rs, func(a, b *bulk.Resource) int { return comparePosition(positionOf(a), positionOf(b)) })
	return visitAll(ctx, rs, func(r *bulk.Resource) bulk.Cursor { return positionOf(r).cursor() }, fn)
}

// Compartment visits the resources of types (all when empty) in patientID's
// compartment, in (type, id) order.
func (s *ResourceStore) Compartment(ctx context.Context, patientID string, types []string, fn bulk.Visit) error {
	s.mu.RLock()
	var rs []*bulk.Resource
	for typ, byID := range s.resources {
		if len(types) > 0 && !slices.Contains(types, typ) {
			continue
		}
		for _, r := range byID {
			if _, ok := slices.BinarySearch(r.Patients, patientID); ok {
				rs = append(rs, cloneResource(r))
			}
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(rs, func(a, b *bulk.Resource) int {
		return cmp.Or(strings.Compare(a.Type, b.Type), strings.Compare(a.ID, b.ID))
	})
	return visitAll(ctx, rs, func(*bulk.Resource) bulk.Cursor { return "" }, fn)
}

// Get returns a copy of one resource. Returns ENOTFOUND if it does not exist.
func (s *ResourceStore) Get(ctx context.Context, typ, id string) (*bulk.Resource, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r, ok := s.resources[typ][id]
	if !ok {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "%s/%s not found.", typ, id)
	}
	return cloneResource(r), nil
}

// GroupMembers returns the members of a Group. Returns ENOTFOUND if the Group
// does not exist.
func (s *ResourceStore) GroupMembers(ctx context.Context, groupID string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.resources["Group"][groupID]
	if !ok {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "Group/%s not found.", groupID)
	}
	return slices.Clone(g.Members), nil
}

// IsGroupMember reports whether patientID is a member of the Group; it is
// false for an unknown Group.
func (s *ResourceStore) IsGroupMember(ctx context.Context, groupID, patientID string) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.resources["Group"][groupID]
	if !ok {
		return false, nil
	}
	_, found := slices.BinarySearch(g.Members, patientID)
	return found, nil
}

// GroupMembership returns the members of a Group with when each joined, in
// id order. Returns ENOTFOUND if the Group does not exist.
func (s *ResourceStore) GroupMembership(ctx context.Context, groupID string) ([]bulk.Member, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	g, ok := s.resources["Group"][groupID]
	if !ok {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "Group/%s not found.", groupID)
	}
	out := make([]bulk.Member, 0, len(g.Members))
	for _, m := range g.Members {
		out = append(out, bulk.Member{ID: m, Since: s.joined[groupID][m]})
	}
	return out, nil
}

// Tombstones visits the deletions of typ in rng in (deletedAt, id) order.
func (s *ResourceStore) Tombstones(ctx context.Context, typ string, rng bulk.Range, fn func(bulk.Tombstone) error) error {
	s.mu.RLock()
	var ts []bulk.Tombstone
	for id, d := range s.tombstones[typ] {
		if rng.Contains(d.at) {
			ts = append(ts, bulk.Tombstone{Type: typ, ID: id, DeletedAt: d.at, Patients: slices.Clone(d.patients)})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(ts, func(a, b bulk.Tombstone) int {
		return cmp.Or(a.DeletedAt.Compare(b.DeletedAt), strings.Compare(a.ID, b.ID))
	})
	for _, t := range ts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(t); err == bulk.ErrStop {
			return nil
		} else if err != nil {
			return err
		}
	}
	return nil
}

// List visits the live resources of typ in id order after afterID. The visit's
// cursor is the resource's id: pass it as afterID to resume.
func (s *ResourceStore) List(ctx context.Context, typ string, afterID string, fn bulk.Visit) error {
	s.mu.RLock()
	var rs []*bulk.Resource
	for id, r := range s.resources[typ] {
		if id > afterID {
			rs = append(rs, cloneResource(r))
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(rs, func(a, b *bulk.Resource) int { return strings.Compare(a.ID, b.ID) })
	return visitAll(ctx, rs, func(r *bulk.Resource) bulk.Cursor { return bulk.Cursor(r.ID) }, fn)
}

// Put stores copies of rs, replacing earlier versions and clearing
// tombstones, and leaves a live version with the same content as it is
// (bulk.ResourceSink). Returns EINVALID, storing nothing, if a resource
// lacks a type or an id.
func (s *ResourceStore) Put(ctx context.Context, rs []*bulk.Resource) error {
	for _, r := range rs {
		if err := checkResource(r); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rs {
		byID := s.resources[r.Type]
		if byID == nil {
			byID = make(map[string]*bulk.Resource)
			s.resources[r.Type] = byID
		}
		old, live := byID[r.ID]
		switch {
		case !live:
			r.SetOutcome(bulk.PutNew)
		case slices.Equal(old.Patients, r.Patients) && slices.Equal(old.Members, r.Members) && bulk.SameContent(old.Body, r.Body):
			r.SetOutcome(bulk.PutUnchanged)
			continue
		default:
			r.SetOutcome(bulk.PutReplaced)
		}
		c := cloneResource(r)
		c.Outcome = nil
		c.LastUpdated = c.LastUpdated.UTC()
		if r.Type == "Group" {
			var was map[string]time.Time
			if live {
				was = s.joined[r.ID]
			}
			s.joined[r.ID] = maps.Collect(bulk.JoinTimes(c.Members, was, c.LastUpdated))
		}
		byID[r.ID] = c
		delete(s.tombstones[r.Type], r.ID)
	}
	return nil
}

// Delete removes a resource and records a tombstone at at with the deleted
// version's Patients, replacing an earlier tombstone of it (whose Patients it
// keeps when there is no live version).
func (s *ResourceStore) Delete(ctx context.Context, ref bulk.Ref, at time.Time) error {
	if ref.Type == "" || ref.ID == "" {
		return bulk.Errorf(bulk.EINVALID, "A resource needs a type and an id.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := s.tombstones[ref.Type]
	if ts == nil {
		ts = make(map[string]tombstone)
		s.tombstones[ref.Type] = ts
	}
	patients := ts[ref.ID].patients
	if r, ok := s.resources[ref.Type][ref.ID]; ok {
		patients = slices.Compact(slices.Sorted(slices.Values(r.Patients)))
	}
	delete(s.resources[ref.Type], ref.ID)
	if ref.Type == "Group" {
		delete(s.joined, ref.ID)
	}
	ts[ref.ID] = tombstone{at: at.UTC(), patients: patients}
	return nil
}

// tombstone is a stored deletion: when, and the compartments it was in.
type tombstone struct {
	at       time.Time
	patients []string
}

// TypeOf returns the types under which id is stored, sorted.
func (s *ResourceStore) TypeOf(ctx context.Context, id string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var types []string
	for typ, byID := range s.resources {
		if _, ok := byID[id]; ok {
			types = append(types, typ)
		}
	}
	slices.Sort(types)
	return types, nil
}

// checkResource returns EINVALID unless r can be stored.
func checkResource(r *bulk.Resource) error {
	if r.Type == "" || r.ID == "" {
		return bulk.Errorf(bulk.EINVALID, "A resource needs a type and an id.")
	}
	return nil
}

// visitAll calls fn for each resource, honouring ErrStop, fn's errors and
// cancellation.
func visitAll(ctx context.Context, rs []*bulk.Resource, next func(*bulk.Resource) bulk.Cursor, fn bulk.Visit) error {
	for _, r := range rs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r, next(r)); err == bulk.ErrStop {
			return nil
		} else if err != nil {
			return err
		}
	}
	return nil
}

// visitEach is visitAll for the List methods of the other stores, which
// have no cursor and no ErrStop: it calls fn on each of xs, the copies
// taken under the lock, until fn fails or ctx is done.
func visitEach[T any](ctx context.Context, xs []T, fn func(T) error) error {
	for _, x := range xs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}

func cloneResource(r *bulk.Resource) *bulk.Resource {
	c := *r
	c.Body = slices.Clone(r.Body)
	c.Patients = slices.Clone(r.Patients)
	c.Members = slices.Clone(r.Members)
	return &c
}

// position is a resource's place in scan order.
type position struct {
	nanos int64
	id    string
}

func positionOf(r *bulk.Resource) position {
	return position{r.LastUpdated.UnixNano(), r.ID}
}

func comparePosition(a, b position) int {
	return cmp.Or(cmp.Compare(a.nanos, b.nanos), strings.Compare(a.id, b.id))
}

func (p position) cursor() bulk.Cursor {
	return bulk.Cursor(strconv.FormatInt(p.nanos, 10) + "/" + p.id)
}

func parseCursor(c bulk.Cursor) (position, error) {
	nanos, id, ok := strings.Cut(string(c), "/")
	n, err := strconv.ParseInt(nanos, 10, 64)
	if !ok || err != nil || id == "" {
		return position{}, bulk.Errorf(bulk.EINVALID, "Invalid scan cursor %q.", c)
	}
	return position{n, id}, nil
}
