package mem

import (
	"cmp"
	"context"
	"slices"
	"sync"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.CohortStore = (*CohortStore)(nil)

// CohortStore is an in-memory bulk.CohortStore. It stores and returns
// copies.
type CohortStore struct {
	mu      sync.Mutex
	cohorts map[cohortKey]*bulk.Cohort
}

type cohortKey struct{ owner, id string }

// NewCohortStore returns an empty store.
func NewCohortStore() *CohortStore {
	return &CohortStore{cohorts: map[cohortKey]*bulk.Cohort{}}
}

// CreateCohort implements bulk.CohortStore.
func (s *CohortStore) CreateCohort(ctx context.Context, c *bulk.Cohort) error {
	if c.ID == "" || c.Owner == "" {
		return bulk.Errorf(bulk.EINVALID, "A cohort needs an id and an owner.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	k := cohortKey{c.Owner, c.ID}
	if _, ok := s.cohorts[k]; ok {
		return bulk.Errorf(bulk.ECONFLICT, "Cohort %s already exists.", c.ID)
	}
	c.Revision = 1
	s.cohorts[k] = deepCopy(c)
	return nil
}

// GetCohort implements bulk.CohortStore.
func (s *CohortStore) GetCohort(ctx context.Context, owner, id string) (*bulk.Cohort, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.cohorts[cohortKey{owner, id}]
	if !ok {
		return nil, errCohortNotFound(id)
	}
	return deepCopy(c), nil
}

// UpdateCohort implements bulk.CohortStore.
func (s *CohortStore) UpdateCohort(ctx context.Context, c *bulk.Cohort) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := cohortKey{c.Owner, c.ID}
	old, ok := s.cohorts[k]
	switch {
	case !ok:
		return errCohortNotFound(c.ID)
	case old.Revision != c.Revision:
		return bulk.Errorf(bulk.ECONFLICT, "Cohort %s was changed meanwhile.", c.ID)
	}
	c.Revision++
	s.cohorts[k] = deepCopy(c)
	return nil
}

// DeleteCohort implements bulk.CohortStore.
func (s *CohortStore) DeleteCohort(ctx context.Context, owner, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := cohortKey{owner, id}
	if _, ok := s.cohorts[k]; !ok {
		return errCohortNotFound(id)
	}
	delete(s.cohorts, k)
	return nil
}

// ListCohorts implements bulk.CohortStore.
func (s *CohortStore) ListCohorts(ctx context.Context, owner string, fn func(*bulk.Cohort) error) error {
	s.mu.Lock()
	var cs []*bulk.Cohort
	for k, c := range s.cohorts {
		if owner == "" || k.owner == owner {
			cs = append(cs, deepCopy(c))
		}
	}
	s.mu.Unlock()
	slices.SortFunc(cs, func(a, b *bulk.Cohort) int {
		return cmp.Or(cmp.Compare(a.Owner, b.Owner), cmp.Compare(a.ID, b.ID))
	})
	return visitEach(ctx, cs, fn)
}

func errCohortNotFound(id string) error {
	return bulk.Errorf(bulk.ENOTFOUND, "Cohort %s not found.", id)
}
