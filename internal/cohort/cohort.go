// Package cohort is the Bulk Cohort API's domain service (requirements 5.9):
// Groups defined by criteria, created asynchronously and exported like any
// Group.
//
// A cohort is a stored Group resource plus its definition (bulk.Cohort, in
// a bulk.CohortStore). Creating one checks the posted bulk-cohort-group
// Group and stores the definition as pending; a workflow execution
// (statemachines/cohort.asl.json: the local ASL runner, or Step Functions)
// then evaluates it (Evaluator: index-driven, one type per filter) and
// writes the Group with its members through ResourceSink.Put, which keeps
// each remaining member's join time, so `$export` (with `_since`),
// `GET /Group/{id}` and `GET /Group?name=` serve it as they serve any
// Group. Refreshes (periodic, RefreshEvery, or on request) run the same
// evaluation again; deleting runs the workflow to remove the Group, then
// the definition.
//
// Contracts: a client whose contract limits its Groups gets cohorts whose
// members are all members of those Groups (every evaluation intersects
// with them), may bound a cohort only by Groups its contract allows, and
// may export or read its cohorts only while they were computed within its
// current contract (ContractClients).
package cohort

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/search"
)

// Defaults of Service's limits.
const (
	DefaultMinRefresh   = 15 * time.Minute
	DefaultMaxPerClient = 100
)

// Store is what a Service reads and writes of the stored resources: the
// Evaluator's Source (by default), the members of the Groups a definition
// names (bulk.GroupReader), and the cohort's own Group, read, written and
// deleted (bulk.ResourceReader, bulk.ResourceSink). Every
// bulk.ResourceStore is one.
type Store interface {
	Source
	bulk.GroupReader
	bulk.ResourceSink
}

var _ Store = bulk.ResourceStore(nil)

// Service manages cohorts. Set the fields, then use it from any number of
// goroutines.
type Service struct {
	Cohorts   bulk.CohortStore
	Resources Store
	// Clock stamps the Group's writes (meta.lastUpdated is the store's
	// clock) and gives the snapshot time of an evaluation.
	Clock bulk.Clock
	// Clients, when set, holds the owners' contracts, read at every
	// evaluation; nil means no contracts (an open server).
	Clients bulk.ClientStore
	// Workflow runs evaluations and deletions. Set it before the first
	// request (the local runner needs the service first).
	Workflow bulk.CohortWorkflow
	// Evaluator computes members; its Source defaults to Resources and
	// its FHIR to FHIR.
	Evaluator Evaluator
	// FHIR is the store's release (nil: R4): the search parameters of the
	// member-filters and the Patient compartment they select by.
	FHIR *fhir.Model
	// Now is the wall clock (default time.Now).
	Now func() time.Time
	// MinRefresh is the shortest refresh interval a client may ask for
	// (default DefaultMinRefresh); MaxPerClient the most cohorts a client
	// may have (default DefaultMaxPerClient).
	MinRefresh   time.Duration
	MaxPerClient int
	Logger       *slog.Logger
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.Default()
}

func (s *Service) minRefresh() time.Duration {
	if s.MinRefresh > 0 {
		return s.MinRefresh
	}
	return DefaultMinRefresh
}

func (s *Service) evaluator() *Evaluator {
	e := s.Evaluator
	if e.Source == nil {
		e.Source = s.Resources
	}
	if e.FHIR == nil {
		e.FHIR = s.FHIR
	}
	return &e
}

func (s *Service) model() *fhir.Model {
	if s.FHIR != nil {
		return s.FHIR
	}
	return fhir.R4Model()
}

// errNoCohort is what every request about a cohort the client does not
// own gets, whether it exists or not.
func errNoCohort(id string) error {
	return bulk.Errorf(bulk.ENOTFOUND, "This client has no cohort Group/%s.", id)
}

// Create checks the posted Group (parseDefinition) and what the client may
// read and bound a cohort by, stores the definition as pending and starts
// its evaluation. It returns the cohort; its Group is written by the
// workflow. Errors: EINVALID/EUNSUPPORTED for the Group, EFORBIDDEN for a
// filter type the scopes or contract do not allow, or a bounding Group
// outside the contract, ETOOMANYREQUESTS past MaxPerClient.
func (s *Service) Create(ctx context.Context, req bulk.CohortRequest) (*bulk.Cohort, error) {
	d, err := parseDefinition(req.Body, req.BaseURL, s.minRefresh(), s.model())
	if err != nil {
		return nil, err
	}
	var filters []string
	for _, f := range d.filters {
		if req.Reads != nil {
			if err := req.Reads(f.Type()); err != nil {
				return nil, err
			}
		}
		filters = append(filters, f.String())
	}
	if len(d.groups) > 0 && req.Reads != nil {
		// Bounding by a Group reads its members.
		if err := req.Reads("Group"); err != nil {
			return nil, err
		}
	}
	contract, err := s.contract(ctx, req.Owner)
	if err != nil {
		return nil, err
	}
	if err := s.checkTypes(contract, filters); err != nil {
		return nil, err
	}
	if err := s.checkGroups(ctx, req.Owner, contract, d.groups); err != nil {
		return nil, err
	}
	for _, g := range d.groups {
		if _, err := s.Resources.GroupMembers(ctx, g); bulk.ErrorCode(err) == bulk.ENOTFOUND {
			return nil, bulk.Errorf(bulk.EINVALID, "Group.member entity Group/%s is not known to this server.", g)
		} else if err != nil {
			return nil, err
		}
	}
	if n, err := s.count(ctx, req.Owner); err != nil {
		return nil, err
	} else if limit := cmpOr(s.MaxPerClient, DefaultMaxPerClient); n >= limit {
		return nil, bulk.Errorf(bulk.ETOOMANYREQUESTS, "This client has %d cohorts, the most it may have; delete one first.", n)
	}
	now := s.now()
	c := &bulk.Cohort{
		ID: newID(), Owner: req.Owner, Group: d.group, Name: d.name, Filters: filters,
		Patients: d.patients, Groups: d.groups, Restrictions: req.Restrictions, RefreshEvery: d.refreshEvery,
		Status: bulk.CohortPending, Generation: 1, CreatedAt: now, RequestedAt: now,
	}
	if err := s.Cohorts.CreateCohort(ctx, c); err != nil {
		return nil, err
	}
	s.logger().Info("cohort accepted", "cohort", c.ID, "client", c.Owner, "filters", len(filters), "refresh", c.RefreshEvery)
	if err := s.start(ctx, c); err != nil {
		// The client gets an error and no id: leave no cohort behind to
		// count against its limit or run later (a run that did start
		// finds none and does nothing).
		_ = s.Cohorts.DeleteCohort(context.WithoutCancel(ctx), c.Owner, c.ID)
		return nil, err
	}
	return c, nil
}

// start starts the workflow of c's current generation. A start that fails
// leaves the request recorded; RefreshDue starts it again (local Recover
// too), so the answer is the error and the client may retry.
func (s *Service) start(ctx context.Context, c *bulk.Cohort) error {
	if s.Workflow == nil {
		return bulk.Errorf(bulk.EINTERNAL, "The cohort service has no workflow.")
	}
	return s.Workflow.StartCohort(ctx, bulk.CohortRun{Owner: c.Owner, CohortID: c.ID, Generation: c.Generation})
}

// Get returns the owner's cohort. Returns ENOTFOUND if it has none by that
// id (or it is being deleted).
func (s *Service) Get(ctx context.Context, owner, id string) (*bulk.Cohort, error) {
	c, err := s.Cohorts.GetCohort(ctx, owner, id)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND || err == nil && c.Status == bulk.CohortDeleting {
		return nil, errNoCohort(id)
	}
	return c, err
}

// Refresh requests a new evaluation of the owner's cohort and starts it.
// Returns ENOTFOUND as Get, ECONFLICT while an evaluation is pending.
func (s *Service) Refresh(ctx context.Context, owner, id string) (*bulk.Cohort, error) {
	c, err := s.update(ctx, owner, id, func(c *bulk.Cohort) error {
		switch c.Status {
		case bulk.CohortDeleting:
			return errNoCohort(id)
		case bulk.CohortPending:
			return bulk.Errorf(bulk.ECONFLICT, "Cohort Group/%s is being evaluated already; poll its status.", id)
		}
		c.Status, c.Failure, c.FailureInternal, c.RequestedAt = bulk.CohortPending, "", false, s.now()
		c.Generation++
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, s.start(ctx, c)
}

// Delete marks the owner's cohort deleted (it is at once no longer the
// client's to read, export or refresh) and starts the workflow that removes
// its Group and then its definition. Returns ENOTFOUND as Get.
func (s *Service) Delete(ctx context.Context, owner, id string) error {
	c, err := s.update(ctx, owner, id, func(c *bulk.Cohort) error {
		if c.Status == bulk.CohortDeleting {
			return errNoCohort(id)
		}
		c.Status, c.Failure, c.FailureInternal, c.RequestedAt = bulk.CohortDeleting, "", false, s.now()
		c.Generation++
		return nil
	})
	if err != nil {
		return err
	}
	s.logger().Info("cohort deleted", "cohort", id, "client", owner)
	return s.start(ctx, c)
}

// update applies change to the stored cohort, again on a conflicting
// write. A missing cohort is errNoCohort.
func (s *Service) update(ctx context.Context, owner, id string, change func(*bulk.Cohort) error) (*bulk.Cohort, error) {
	for attempt := 0; ; attempt++ {
		c, err := s.Cohorts.GetCohort(ctx, owner, id)
		if bulk.ErrorCode(err) == bulk.ENOTFOUND {
			return nil, errNoCohort(id)
		} else if err != nil {
			return nil, err
		}
		if err := change(c); err != nil {
			return nil, err
		}
		err = s.Cohorts.UpdateCohort(ctx, c)
		switch {
		case err == nil:
			return c, nil
		case bulk.ErrorCode(err) == bulk.ENOTFOUND:
			return nil, errNoCohort(id)
		case bulk.ErrorCode(err) == bulk.ECONFLICT && attempt < 10:
			continue
		}
		return nil, err
	}
}

// Run is the workflow step (statemachines/cohort.asl.json): it brings the
// store in line with the cohort's definition for run's generation. A
// pending cohort is evaluated and its Group written; a deleting one loses
// its Group, then its definition. A run that a later request superseded,
// or whose cohort is gone, does nothing. Errors are permanent (EINVALID,
// EFORBIDDEN: the cohort is marked failed by MarkFailed) or transient.
func (s *Service) Run(ctx context.Context, run bulk.CohortRun) error {
	c, err := s.Cohorts.GetCohort(ctx, run.Owner, run.CohortID)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		// Deleted: a Group an earlier run wrote after the deletion's run
		// removed it (or a crash between a deletion's two steps) must not
		// outlive its definition. Removing it is idempotent.
		return s.removeGroup(ctx, run.CohortID)
	} else if err != nil {
		return err
	}
	if c.Generation != run.Generation {
		return nil // superseded: a later run does what is asked now
	}
	switch c.Status {
	case bulk.CohortDeleting:
		return s.remove(ctx, c)
	case bulk.CohortPending:
		return s.evaluate(ctx, c)
	}
	return nil // done already (a retried step)
}

// evaluate computes c's members and writes its Group, then records the
// evaluation. Should the cohort be deleted meanwhile, the Group goes again.
func (s *Service) evaluate(ctx context.Context, c *bulk.Cohort) error {
	start := time.Now()
	contract, err := s.contract(ctx, c.Owner)
	if err != nil {
		return err
	}
	if err := s.checkTypes(contract, c.Filters); err != nil {
		return err
	}
	if err := s.checkGroups(ctx, c.Owner, contract, c.Groups); err != nil {
		return err
	}
	cr := Criteria{Restrictions: c.Restrictions}
	for _, q := range c.Filters {
		f, err := search.For(s.model().Defs().Version).Parse(q)
		if err != nil {
			return fmt.Errorf("cohort %s: stored filter %q: %w", c.ID, q, err)
		}
		cr.Filters = append(cr.Filters, f)
	}
	// Candidates: the member entities, within the contract's Groups.
	var bound []string
	if len(c.Patients) > 0 || len(c.Groups) > 0 {
		cr.Candidates = map[string]bool{}
		for _, p := range c.Patients {
			cr.Candidates[p] = true
		}
		if err := s.addMembers(ctx, cr.Candidates, c.Groups); err != nil {
			return err
		}
	}
	if contract != nil && !contract.AllGroups() {
		bound = slices.Sorted(slices.Values(contract.Groups))
		within := map[string]bool{}
		if err := s.addMembers(ctx, within, bound); err != nil {
			return err
		}
		if cr.Candidates == nil {
			cr.Candidates = within
		} else {
			for p := range cr.Candidates {
				if !within[p] {
					delete(cr.Candidates, p)
				}
			}
		}
	}
	if cr.AsOf, err = s.Clock.TransactionTime(ctx, s.now()); err != nil {
		return err
	}
	if contract != nil && contract.MaxLookback > 0 {
		// A filter must not select by data older than the client may
		// export (the contract's look-back, requirements 1.6).
		cr.Since = cr.AsOf.Add(-contract.MaxLookback)
	}
	members, st, err := s.evaluator().Members(ctx, cr)
	if err != nil {
		return err
	}
	// A newer request may have come while this one computed (a deletion,
	// or a restart of a run thought lost): its run writes what is asked
	// now, and this one must not write over it.
	if cur, err := s.Cohorts.GetCohort(ctx, c.Owner, c.ID); bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	} else if cur.Generation != c.Generation || cur.Status != bulk.CohortPending {
		return nil
	}
	if err := s.writeGroup(ctx, c, members, cr.AsOf); err != nil {
		return err
	}
	_, err = s.update(ctx, c.Owner, c.ID, func(u *bulk.Cohort) error {
		if u.Generation != c.Generation || u.Status != bulk.CohortPending {
			return errSuperseded
		}
		u.Status, u.Failure, u.FailureInternal, u.Members, u.RefreshedAt = bulk.CohortReady, "", false, len(members), cr.AsOf
		u.Bounded, u.Bound = contract != nil && !contract.AllGroups(), bound
		return nil
	})
	switch {
	case errors.Is(err, errSuperseded):
		// A deletion or a newer request came meanwhile; a deletion's
		// run may have removed the Group before this one wrote it.
		return s.removeGroupIfDeleted(ctx, c)
	case bulk.ErrorCode(err) == bulk.ENOTFOUND:
		return s.removeGroup(ctx, c.ID)
	case err != nil:
		return err
	}
	s.logger().Info("cohort evaluated", "cohort", c.ID, "client", c.Owner, "members", len(members),
		"scanned", st.Scanned, "compartment_reads", st.Compartments, "resources_read", st.Resources,
		"duration_ms", time.Since(start).Milliseconds())
	return nil
}

var errSuperseded = errors.New("superseded")

func (s *Service) removeGroupIfDeleted(ctx context.Context, c *bulk.Cohort) error {
	cur, err := s.Cohorts.GetCohort(ctx, c.Owner, c.ID)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND || err == nil && cur.Status == bulk.CohortDeleting {
		return s.removeGroup(ctx, c.ID)
	}
	return err
}

// addMembers adds the members of groups to set; a Group not stored adds
// none.
func (s *Service) addMembers(ctx context.Context, set map[string]bool, groups []string) error {
	for _, g := range groups {
		ms, err := s.Resources.GroupMembers(ctx, g)
		if bulk.ErrorCode(err) == bulk.ENOTFOUND {
			continue
		} else if err != nil {
			return err
		}
		for _, m := range ms {
			set[m] = true
		}
	}
	return nil
}

// writeGroup stores c's Group with members, stamped by the store's clock.
func (s *Service) writeGroup(ctx context.Context, c *bulk.Cohort, members []string, refreshed time.Time) error {
	sess, err := s.Clock.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = sess.End(context.WithoutCancel(ctx)) }()
	stamp, err := sess.Stamp(ctx, s.now())
	if err != nil {
		return err
	}
	r, err := groupResource(c, members, refreshed, stamp)
	if err != nil {
		return err
	}
	return s.Resources.Put(ctx, []*bulk.Resource{r})
}

// remove deletes c's Group, then c.
func (s *Service) remove(ctx context.Context, c *bulk.Cohort) error {
	if err := s.removeGroup(ctx, c.ID); err != nil {
		return err
	}
	err := s.Cohorts.DeleteCohort(ctx, c.Owner, c.ID)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		err = nil
	}
	return err
}

// removeGroup deletes the Group of a cohort if it is stored, with a
// tombstone stamped by the store's clock.
func (s *Service) removeGroup(ctx context.Context, id string) error {
	if _, err := s.Resources.Get(ctx, "Group", id); bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return nil
	} else if err != nil {
		return err
	}
	sess, err := s.Clock.Begin(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = sess.End(context.WithoutCancel(ctx)) }()
	stamp, err := sess.Stamp(ctx, s.now())
	if err != nil {
		return err
	}
	return s.Resources.Delete(ctx, bulk.Ref{Type: "Group", ID: id}, stamp)
}

// MarkFailed records a run's failure (the workflow's Catch): the cohort's
// status says why, with cause as its message when the step's error was
// client-safe. A superseded or vanished run changes nothing; a failed
// deletion stays a deletion (RefreshDue starts it again).
func (s *Service) MarkFailed(ctx context.Context, run bulk.CohortRun, cause string, internal bool) error {
	_, err := s.update(ctx, run.Owner, run.CohortID, func(c *bulk.Cohort) error {
		if c.Generation != run.Generation || c.Status != bulk.CohortPending && c.Status != bulk.CohortDeleting {
			return errSuperseded
		}
		if cause == "" {
			cause = "The evaluation failed."
		}
		c.Failure, c.FailureInternal = cause, internal
		if c.Status == bulk.CohortPending {
			c.Status = bulk.CohortFailed
		}
		return nil
	})
	if errors.Is(err, errSuperseded) || bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return nil
	}
	if err == nil {
		s.logger().Warn("cohort evaluation failed", "cohort", run.CohortID, "client", run.Owner, "cause", cause)
	}
	return err
}

// RefreshDue starts what is due: the periodic refresh of every cohort
// whose RefreshEvery has passed since its last evaluation, and the runs
// of cohorts whose request stalled (a deletion that failed, or a pending
// run older than stall, whose start may have been lost). It returns how
// many it started.
func (s *Service) RefreshDue(ctx context.Context, stall time.Duration) (int, error) {
	now := s.now()
	var due []*bulk.Cohort
	err := s.Cohorts.ListCohorts(ctx, "", func(c *bulk.Cohort) error {
		switch {
		case c.Status == bulk.CohortDeleting && (c.Failure != "" || now.Sub(c.RequestedAt) >= stall),
			c.Status == bulk.CohortPending && now.Sub(c.RequestedAt) >= stall,
			!c.DueAt().IsZero() && !now.Before(c.DueAt()):
			due = append(due, c)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	started := 0
	var errs []error
	for _, c := range due {
		u, err := s.update(ctx, c.Owner, c.ID, func(u *bulk.Cohort) error {
			if u.Revision != c.Revision {
				return errSuperseded // changed since the list: next time
			}
			if u.Status != bulk.CohortDeleting {
				u.Status = bulk.CohortPending
			}
			u.Failure, u.FailureInternal, u.RequestedAt = "", false, now
			u.Generation++
			return nil
		})
		if errors.Is(err, errSuperseded) || bulk.ErrorCode(err) == bulk.ENOTFOUND {
			continue
		}
		if err == nil {
			err = s.start(ctx, u)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		started++
	}
	return started, errors.Join(errs...)
}

// Recover starts the runs of every pending or deleting cohort again, for
// a local server starting after a stop that interrupted them (Step
// Functions keeps its executions; RefreshDue catches lost starts there).
func (s *Service) Recover(ctx context.Context) error {
	var runs []*bulk.Cohort
	err := s.Cohorts.ListCohorts(ctx, "", func(c *bulk.Cohort) error {
		if c.Status == bulk.CohortPending || c.Status == bulk.CohortDeleting {
			runs = append(runs, c)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range runs {
		if err := s.start(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

// contract returns the owner's registered client (its contract), or nil
// without a ClientStore. An owner no longer registered is EFORBIDDEN.
func (s *Service) contract(ctx context.Context, owner string) (*bulk.Client, error) {
	if s.Clients == nil {
		return nil, nil
	}
	c, err := s.Clients.GetClient(ctx, owner)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return nil, bulk.Errorf(bulk.EFORBIDDEN, "The client that owns this cohort is no longer registered.")
	}
	return c, err
}

// checkTypes refuses filters on types the contract does not let the
// client export: a filter reveals which patients have such resources.
func (s *Service) checkTypes(contract *bulk.Client, filters []string) error {
	if contract == nil {
		return nil
	}
	for _, q := range filters {
		f, err := search.For(s.model().Defs().Version).Parse(q)
		if err != nil {
			return err
		}
		if !contract.AllowsType(f.Type()) {
			return bulk.Errorf(bulk.EFORBIDDEN, "This client's contract does not allow %s, so a member-filter may not select by it.", f.Type())
		}
	}
	return nil
}

// checkGroups refuses bounding Groups a limited contract does not allow:
// its own Groups and the client's own cohorts within it.
func (s *Service) checkGroups(ctx context.Context, owner string, contract *bulk.Client, groups []string) error {
	if contract == nil || contract.AllGroups() {
		return nil
	}
	for _, g := range groups {
		if slices.Contains(contract.Groups, g) {
			continue
		}
		own, err := s.Cohorts.GetCohort(ctx, owner, g)
		if err == nil && own.Evaluated() && own.WithinContract(contract.Groups) {
			continue
		}
		if err != nil && bulk.ErrorCode(err) != bulk.ENOTFOUND {
			return err
		}
		return bulk.Errorf(bulk.EFORBIDDEN, "This client's contract does not include Group/%s, so it may not bound a cohort.", g)
	}
	return nil
}

func (s *Service) count(ctx context.Context, owner string) (int, error) {
	n := 0
	err := s.Cohorts.ListCohorts(ctx, owner, func(*bulk.Cohort) error { n++; return nil })
	return n, err
}

// newID returns a random Group id: 128 bits in hex, which no imported
// Group is expected to use.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func cmpOr(v, def int) int {
	if v > 0 {
		return v
	}
	return def
}

// groupResource is the stored Group of c with members.
//
// Unlike an imported Group, a cohort's is not indexed in its members'
// compartments (Patients is empty): Patient and Group exports never
// export Groups (fhir.Model.IsPatientExportType), so those index entries
// would serve nothing, and they are one random write per member: on a
// 1M-resource store, a 9,625-member cohort's Group took 4.7 s to write
// with them and 0.25 s without (BenchmarkCohortCreate). Its membership
// (Members, with join times) is indexed as any Group's.
func groupResource(c *bulk.Cohort, members []string, refreshed, lastUpdated time.Time) (*bulk.Resource, error) {
	body, err := groupBody(c, members, refreshed, lastUpdated)
	if err != nil {
		return nil, err
	}
	return &bulk.Resource{Type: "Group", ID: c.ID, LastUpdated: lastUpdated, Body: body, Members: slices.Clone(members)}, nil
}
