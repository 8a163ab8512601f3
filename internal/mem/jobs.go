package mem

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.JobStore = (*JobStore)(nil)

// JobStore is an in-memory bulk.JobStore. One mutex makes every method a
// single atomic step, which is the conditional write the contract asks for.
type JobStore struct {
	mu       sync.Mutex
	jobs     map[string]*bulk.Job
	plans    map[string]*bulk.Plan
	progress map[string]map[int]*bulk.ItemProgress // job id → item index → checkpoint
}

// NewJobStore returns an empty store.
func NewJobStore() *JobStore {
	return &JobStore{
		jobs:     make(map[string]*bulk.Job),
		plans:    make(map[string]*bulk.Plan),
		progress: make(map[string]map[int]*bulk.ItemProgress),
	}
}

// CreateJob stores a copy of j. Returns ECONFLICT if the id exists.
func (s *JobStore) CreateJob(ctx context.Context, j *bulk.Job) error {
	return s.CreateJobWithin(ctx, j, 0)
}

// CreateJobWithin is CreateJob that refuses a job that is not terminal
// while its owner has limit of them: the count and the insert happen under
// one hold of the mutex.
func (s *JobStore) CreateJobWithin(ctx context.Context, j *bulk.Job, limit int) error {
	if j.ID == "" {
		return bulk.Errorf(bulk.EINVALID, "A job needs an id.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.jobs[j.ID]; ok {
		return bulk.Errorf(bulk.ECONFLICT, "Job %s already exists.", j.ID)
	}
	if limit > 0 && !j.Status.Terminal() {
		if n := s.activeJobs(j.ClientID); n >= limit {
			return bulk.Errorf(bulk.ETOOMANYREQUESTS, "Client %s has %d unfinished jobs, its limit.", j.ClientID, n)
		}
	}
	s.jobs[j.ID] = deepCopy(j)
	return nil
}

// GetJob returns a copy of a job. Returns ENOTFOUND if it does not exist.
func (s *JobStore) GetJob(ctx context.Context, id string) (*bulk.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return nil, errJobNotFound(id)
	}
	return deepCopy(j), nil
}

// Transition moves a job from one of from to to and applies mutate. A
// terminal job never changes, even when from lists its status. mutate cannot
// change the job's id or status.
func (s *JobStore) Transition(ctx context.Context, id string, from []bulk.Status, to bulk.Status, mutate func(*bulk.Job)) (*bulk.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[id]
	if !ok {
		return nil, errJobNotFound(id)
	}
	if j.Status.Terminal() || !slices.Contains(from, j.Status) {
		return nil, bulk.Errorf(bulk.ECONFLICT, "Job %s is %s, not %v.", id, j.Status, from)
	}
	next := deepCopy(j)
	if mutate != nil {
		mutate(next)
	}
	next.ID, next.Status = id, to
	s.jobs[id] = next
	return deepCopy(next), nil
}

// SavePlan stores p unless the job has a plan already, and returns the stored
// plan.
func (s *JobStore) SavePlan(ctx context.Context, id string, p *bulk.Plan) (*bulk.Plan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.liveJob(id)
	if err != nil {
		return nil, err
	}
	if old, ok := s.plans[id]; ok {
		return deepCopy(old), nil
	}
	s.plans[id] = deepCopy(p)
	j.ItemsTotal = len(p.Items)
	return deepCopy(p), nil
}

// GetPlan returns the stored plan. Returns ENOTFOUND if there is none.
func (s *JobStore) GetPlan(ctx context.Context, id string) (*bulk.Plan, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.plans[id]
	if !ok {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "Job %s has no plan.", id)
	}
	return deepCopy(p), nil
}

// SaveProgress replaces an item's checkpoint. ItemsDone counts the items whose
// checkpoint is Done, so saving a done item again does not count it twice.
func (s *JobStore) SaveProgress(ctx context.Context, id string, p *bulk.ItemProgress) error {
	if p.Index < 0 {
		return bulk.Errorf(bulk.EINVALID, "Item index %d is negative.", p.Index)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	j, err := s.liveJob(id)
	if err != nil {
		return err
	}
	items := s.progress[id]
	if items == nil {
		items = make(map[int]*bulk.ItemProgress)
		s.progress[id] = items
	}
	wasDone := items[p.Index] != nil && items[p.Index].Done
	switch {
	case p.Done && !wasDone:
		j.ItemsDone++
	case !p.Done && wasDone:
		j.ItemsDone--
	}
	items[p.Index] = deepCopy(p)
	return nil
}

// Progress returns the job's checkpoints by index; none for an unknown job.
func (s *JobStore) ItemProgress(ctx context.Context, id string, index int) (*bulk.ItemProgress, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.progress[id][index]
	if !ok {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "No checkpoint of item %d of job %s.", index, id)
	}
	return deepCopy(p), nil
}

// Progress returns copies of a job's checkpoints by index.
func (s *JobStore) Progress(ctx context.Context, id string) ([]*bulk.ItemProgress, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := make([]*bulk.ItemProgress, 0, len(s.progress[id]))
	for _, p := range s.progress[id] {
		ps = append(ps, deepCopy(p))
	}
	slices.SortFunc(ps, func(a, b *bulk.ItemProgress) int { return a.Index - b.Index })
	return ps, nil
}

// ListJobs visits copies of all jobs in id order. fn runs without the lock
// held, so it may call the store.
func (s *JobStore) ListJobs(ctx context.Context, fn func(*bulk.Job) error) error {
	s.mu.Lock()
	jobs := make([]*bulk.Job, 0, len(s.jobs))
	for _, j := range s.jobs {
		jobs = append(jobs, deepCopy(j))
	}
	s.mu.Unlock()
	slices.SortFunc(jobs, func(a, b *bulk.Job) int { return strings.Compare(a.ID, b.ID) })
	return visitEach(ctx, jobs, fn)
}

// ActiveJobs counts clientID's jobs that are not terminal. It looks at every
// job under the lock, without copying any: a map walk, which is cheap for
// the reference store; the durable stores keep an index instead.
func (s *JobStore) ActiveJobs(ctx context.Context, clientID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.activeJobs(clientID), nil
}

// activeJobs is ActiveJobs for a caller that holds s.mu.
func (s *JobStore) activeJobs(clientID string) int {
	n := 0
	for _, j := range s.jobs {
		if j.ClientID == clientID && !j.Status.Terminal() {
			n++
		}
	}
	return n
}

// DeleteJob removes a job with its plan and progress.
func (s *JobStore) DeleteJob(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.jobs, id)
	delete(s.plans, id)
	delete(s.progress, id)
	return nil
}

// liveJob returns the stored job if it exists and is not terminal. The caller
// holds s.mu.
func (s *JobStore) liveJob(id string) (*bulk.Job, error) {
	j, ok := s.jobs[id]
	if !ok {
		return nil, errJobNotFound(id)
	}
	if j.Status.Terminal() {
		return nil, bulk.Errorf(bulk.ECONFLICT, "Job %s is %s.", id, j.Status)
	}
	return j, nil
}

func errJobNotFound(id string) error {
	return bulk.Errorf(bulk.ENOTFOUND, "Job %s not found.", id)
}

// deepCopy copies v through JSON, the same encoding the durable stores use,
// so the reference store cannot keep a field they would lose.
func deepCopy[T any](v *T) *T {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // the domain types always marshal
	}
	var c T
	if err := json.Unmarshal(b, &c); err != nil {
		panic(err)
	}
	return &c
}
