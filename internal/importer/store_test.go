package importer_test

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/importer"
)

// fakeStore is an in-memory importer.Store: exactly what the importer
// uses, Put (which leaves a resource the same as the stored one alone),
// Delete, TypeOf, Get, GroupMembers, Tombstones.
type fakeStore struct {
	mu         sync.Mutex // the importer reads while its writer writes
	resources  map[bulk.Ref]*bulk.Resource
	types      map[string][]string // id → types, for TypeOf
	tombstones []bulk.Tombstone
	puts       int
	// PutFn, if set, is called before each Put and fails it with an error.
	PutFn func(rs []*bulk.Resource) error
}

var _ importer.Store = (*fakeStore)(nil)

func newFakeStore() *fakeStore {
	return &fakeStore{resources: map[bulk.Ref]*bulk.Resource{}, types: map[string][]string{}}
}

func (s *fakeStore) Put(ctx context.Context, rs []*bulk.Resource) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.PutFn != nil {
		if err := s.PutFn(rs); err != nil {
			return err
		}
	}
	s.puts++
	for _, r := range rs {
		ref := bulk.Ref{Type: r.Type, ID: r.ID}
		switch old, ok := s.resources[ref]; {
		case !ok:
			r.SetOutcome(bulk.PutNew)
		case slices.Equal(old.Patients, r.Patients) && slices.Equal(old.Members, r.Members) && bulk.SameContent(old.Body, r.Body):
			r.SetOutcome(bulk.PutUnchanged)
			continue
		default:
			r.SetOutcome(bulk.PutReplaced)
		}
		c := *r
		c.Body = slices.Clone(r.Body)
		c.Outcome = nil
		s.resources[ref] = &c
		s.tombstones = slices.DeleteFunc(s.tombstones, func(t bulk.Tombstone) bool { return t.Type == r.Type && t.ID == r.ID })
		if !slices.Contains(s.types[r.ID], r.Type) {
			s.types[r.ID] = append(s.types[r.ID], r.Type)
		}
	}
	return nil
}

func (s *fakeStore) Delete(ctx context.Context, ref bulk.Ref, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.resources, ref)
	s.types[ref.ID] = slices.DeleteFunc(s.types[ref.ID], func(t string) bool { return t == ref.Type })
	s.tombstones = append(s.tombstones, bulk.Tombstone{Type: ref.Type, ID: ref.ID, DeletedAt: at})
	return nil
}

func (s *fakeStore) Tombstones(ctx context.Context, typ string, rng bulk.Range, fn func(bulk.Tombstone) error) error {
	s.mu.Lock()
	ts := slices.Clone(s.tombstones)
	s.mu.Unlock()
	for _, t := range ts {
		if t.Type == typ && rng.Contains(t.DeletedAt) {
			if err := fn(t); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *fakeStore) TypeOf(ctx context.Context, id string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	types := slices.Clone(s.types[id])
	slices.Sort(types)
	return types, nil
}

func (s *fakeStore) Get(ctx context.Context, typ, id string) (*bulk.Resource, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.resources[bulk.Ref{Type: typ, ID: id}]
	if !ok {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "%s/%s not found", typ, id)
	}
	c := *r
	return &c, nil
}

func (s *fakeStore) GroupMembers(ctx context.Context, id string) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.resources[bulk.Ref{Type: "Group", ID: id}]
	if !ok {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "Group/%s not found", id)
	}
	return slices.Clone(r.Members), nil
}

// counts returns the number of stored resources per type.
func (s *fakeStore) counts() map[string]int64 {
	m := map[string]int64{}
	for ref := range s.resources {
		m[ref.Type]++
	}
	return m
}
