// Package export is the export engine: kick-off, status and cancel on the
// client side, and the workflow steps (plan, export item, finalize, mark
// failed) that internal/workflow binds to statemachines/export.asl.json.
// It depends only on the domain ports, so the same code runs locally and on
// AWS.
package export

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/search"
)

// Config is the slice of configuration the engine reads. Zero fields take
// the defaults of DefaultConfig.
type Config struct {
	// Retention is how long a finished job's files stay available; the
	// manifest's Expires header says when they go (R53).
	Retention time.Duration
	// MaxFileResources and MaxFileBytes roll output files: a file is closed
	// once it holds this many resources or bytes, whichever comes first
	// (requirements 5.1: the split rule is documented in the README).
	MaxFileResources int64
	MaxFileBytes     int64
	// ItemResources is the target number of resources per type-scan work
	// item; a type is cut into at most Shards items.
	ItemResources int64
	// PatientBatch is the number of patients per compartment work item
	// (Group exports and the `patient` parameter).
	PatientBatch int
	// ItemBudget is how long one ExportItem call runs before it checkpoints
	// and returns a cursor, so a long item fits Lambda's 15-minute limit.
	ItemBudget time.Duration
	// ItemMargin is how long before its context's deadline (on Lambda the
	// function timeout) an ExportItem call stops, whatever is left of
	// ItemBudget: the time to close its files and save its checkpoint. It
	// is capped at a quarter of the time the call has (see itemDeadlines).
	ItemMargin time.Duration
	// MaxConcurrency bounds the work items exported at once per job. The
	// default, more than the cores, lets items overlap their waits: each
	// item ends by syncing its files and committing its checkpoint, some
	// 10–30 ms of I/O that is most of a small item's time (synthea-100's
	// 19 types are 19 items of 3 to 16,000 resources); no more items than
	// cores read and write at once (exportSlot). AWS sets it from its
	// stack's parameter.
	MaxConcurrency int
	// KickoffParallel bounds the store reads a kick-off runs at once to
	// check its `patient` values (patients.go): one after another, a few
	// thousand values at ~5 ms a read passed API Gateway's 29 s.
	KickoffParallel int
	// InlineItems is the most work items Plan hands to the state machine
	// inline; a plan with more writes its item list to ItemLists for a
	// Distributed Map. An inline Map costs about 11 history events per
	// item against Step Functions' 25,000 per execution.
	InlineItems int
	// ManifestPageFiles is the number of files per manifest page of an
	// export with allowPartialManifests (requirements 3.5).
	ManifestPageFiles int
	// WatchdogGrace is how old an unfinished job must be before the
	// watchdog (Service.Watchdog) asks whether its execution still runs.
	// It covers a kick-off between creating the job and starting its
	// execution, which a Lambda's 15-minute limit bounds.
	WatchdogGrace time.Duration
	// AttachmentInlineMax is the largest Attachment.data, decoded, that
	// stays inline in the output; larger data is written to a file of its
	// own that the Attachment's url names (issue 15 item 9, R85). Zero
	// takes the default; negative keeps all data inline.
	AttachmentInlineMax int64
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		Retention:        24 * time.Hour,
		MaxFileResources: 100_000,
		MaxFileBytes:     256 << 20,
		ItemResources:    250_000,
		PatientBatch:     1000,
		ItemBudget:       10 * time.Minute,
		ItemMargin:       30 * time.Second,
		MaxConcurrency:   max(8, 2*runtime.GOMAXPROCS(0)),
		KickoffParallel:  32,
		InlineItems:      1000,

		ManifestPageFiles: 100,
		WatchdogGrace:     15 * time.Minute,

		AttachmentInlineMax: 64 << 10,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	positive(&c.Retention, d.Retention)
	positive(&c.MaxFileResources, d.MaxFileResources)
	positive(&c.MaxFileBytes, d.MaxFileBytes)
	positive(&c.ItemResources, d.ItemResources)
	positive(&c.PatientBatch, d.PatientBatch)
	positive(&c.ItemBudget, d.ItemBudget)
	positive(&c.ItemMargin, d.ItemMargin)
	positive(&c.MaxConcurrency, d.MaxConcurrency)
	positive(&c.KickoffParallel, d.KickoffParallel)
	positive(&c.InlineItems, d.InlineItems)
	positive(&c.ManifestPageFiles, d.ManifestPageFiles)
	positive(&c.WatchdogGrace, d.WatchdogGrace)
	if c.AttachmentInlineMax == 0 {
		c.AttachmentInlineMax = d.AttachmentInlineMax
	}
	return c
}

// positive replaces a zero or negative setting with its default.
func positive[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// ItemLists is where Plan writes the item lists of plans with more than
// Config.InlineItems items, for the Distributed Map's ItemReader
// (arn:aws:states:::s3:getObject) to read: Step Functions finds Store's key
// k as the object Prefix+k of Bucket. Store must keep the bytes as written
// (no compression): Step Functions parses them as JSON.
type ItemLists struct {
	Store  bulk.ObjectStore
	Bucket string
	Prefix string
}

// LocalItemsBucket is the bucket name that item lists in the local object
// store go by (the local runner's s3:getObject reads only it).
const LocalItemsBucket = "tranche-local"

// Service runs exports over the ports.
type Service struct {
	// FHIR is the store's release (nil: R4): which types are in the Patient
	// compartment (issue 17).
	FHIR      *fhir.Model
	Jobs      bulk.JobStore
	Resources bulk.ResourceSource
	Objects   bulk.ObjectStore
	// Space, when set, is Objects' byte budget: kick-offs are refused
	// while it is used up (checkSpace). Nil on AWS: S3 has no limit.
	Space Space
	// Clock, when set, gives each kick-off its transactionTime (see
	// transactionTime); nil takes Now.
	Clock bulk.Clock
	// ItemLists defaults to Objects, as the bucket LocalItemsBucket.
	ItemLists ItemLists
	// ForeignGroups, when set, returns the ids of the Bulk Cohort Groups
	// of clients other than clientID: an export leaves them out (a
	// cohort is its creator's; requirements 5.9).
	ForeignGroups func(ctx context.Context, clientID string) (map[string]bool, error)
	// Workflow is set after construction: its steps call back into the
	// service.
	Workflow bulk.Workflow
	Config   Config
	Logger   *slog.Logger
	// Now and NewID are the time and id seams for deterministic tests.
	// ExportItem compares Now with its context's deadline, so a clock
	// that is not the wall clock must run near it when contexts carry one.
	Now   func() time.Time
	NewID func() string

	// Per-job caches, bounded in size and age (a warm Lambda serves many
	// jobs; cache.go).
	plans    jobCache[jobs256] // job id → *bulk.Plan, so items don't decode the plan each call
	finished jobCache[jobs256] // job id → *finished, completed jobs' records
	specs    jobCache[jobs256] // job id → *spec
	provs    jobCache[jobs16]  // job id → *provEntry

	// slots bounds the ExportItem calls exporting at once (exportSlot).
	slotsOnce sync.Once
	slots     chan struct{}
}

// NewService returns a service with defaults for the seams.
func NewService(jobs bulk.JobStore, res bulk.ResourceSource, objs bulk.ObjectStore, cfg Config, logger *slog.Logger) *Service {
	if logger == nil {
		logger = slog.Default()
	}
	return &Service{Jobs: jobs, Resources: res, Objects: objs, ItemLists: ItemLists{Store: objs, Bucket: LocalItemsBucket},
		Config: cfg.withDefaults(), Logger: logger, Now: time.Now, NewID: RandomID}
}

// RandomID returns 128 random bits in hex: job ids are capability-grade.
func RandomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24)
	return hex.EncodeToString(b[:])
}

func (s *Service) now() time.Time { return s.Now().UTC() }

// engine is the _typeFilter and _elements engine of the store's release.
func (s *Service) engine() *search.Engine { return search.For(s.model().Version) }

// model is the store's release.
func (s *Service) model() *fhir.Model {
	if s.FHIR != nil {
		return s.FHIR
	}
	return fhir.R4Model()
}

// Kickoff validates what needs the store (the Group and `patient` values),
// creates the job with its transactionTime fixed now, at the store's low
// watermark (see transactionTime, R55), and starts the
// workflow. Returns ENOTFOUND for an unknown Group (R36), EINVALID for an
// unknown patient or a non-member (R24) and EFORBIDDEN for a patient
// outside the client's contract (see checkContract). ETOOMANYREQUESTS
// while the files of unexpired exports use up the output budget
// (checkSpace).
func (s *Service) Kickoff(ctx context.Context, clientID string, req bulk.ExportRequest) (*bulk.Job, error) {
	return s.KickoffWithin(ctx, clientID, 0, req)
}

// KickoffWithin is Kickoff under the client's concurrency quota (R39): the
// job is created only while clientID has fewer than maxActive unfinished
// exports, counted by the same write (JobStore.CreateJobWithin), so
// simultaneous kick-offs cannot all pass; otherwise ETOOMANYREQUESTS.
// maxActive ≤ 0 means no quota.
func (s *Service) KickoffWithin(ctx context.Context, clientID string, maxActive int, req bulk.ExportRequest) (*bulk.Job, error) {
	var members []string // checkPatients checks `patient` values against them
	if req.Level == bulk.LevelGroup {
		var err error
		if members, err = s.Resources.GroupMembers(ctx, req.GroupID); err != nil {
			if bulk.ErrorCode(err) == bulk.ENOTFOUND {
				return nil, bulk.Errorf(bulk.ENOTFOUND, "Group/%s is not known to this server.", req.GroupID)
			}
			return nil, err
		}
	}
	outside, err := s.checkContract(ctx, &req)
	if err != nil {
		return nil, err
	}
	if err := s.checkPatients(ctx, &req, outside, members); err != nil {
		return nil, err
	}
	if err := s.checkSpace(ctx); err != nil {
		return nil, err
	}
	// Milliseconds: the manifest shows this instant and clients send it back
	// as the next _since, so the bound we apply must be the one we print.
	now := s.now().Truncate(time.Millisecond)
	tt, err := s.transactionTime(ctx, now)
	if err != nil {
		return nil, err
	}
	j := &bulk.Job{
		ID: s.NewID(), ClientID: clientID, Status: bulk.StatusAccepted, Request: req,
		TransactionTime: tt, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(s.Config.Retention),
	}
	if err := s.Jobs.CreateJobWithin(ctx, j, maxActive); err != nil {
		if bulk.ErrorCode(err) == bulk.ETOOMANYREQUESTS {
			return nil, bulk.Wrapf(err, bulk.ETOOMANYREQUESTS, "This client already has %d exports running, its limit; retry when one finishes.", maxActive)
		}
		return nil, err
	}
	if err := s.Workflow.Start(ctx, j.ID); err != nil {
		s.Logger.Error("workflow start failed", "job", j.ID, "err", err)
		_, _ = s.Jobs.Transition(ctx, j.ID, []bulk.Status{bulk.StatusAccepted}, bulk.StatusFailed, func(j *bulk.Job) {
			j.Failure = "The export could not be started."
		})
		return nil, bulk.Wrapf(err, bulk.ETRANSIENT, "The export could not be started; try again later.")
	}
	s.Logger.Info("export accepted", "job", j.ID, "client", clientID, "level", req.Level, "group", req.GroupID, "types", req.Types)
	return j, nil
}

// Job returns a job its client may see. Another client's job, a cancelled
// job and an expired one are all ENOTFOUND (R69, R82).
func (s *Service) Job(ctx context.Context, clientID, id string) (*bulk.Job, error) {
	j, err := s.Jobs.GetJob(ctx, id)
	if err != nil {
		return nil, err
	}
	if j.ClientID != clientID || j.Status == bulk.StatusCancelled ||
		(j.Status.Terminal() && s.now().After(j.ExpiresAt)) {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "No export job %s.", id)
	}
	return j, nil
}

// Cancel stops a job and deletes it with its files (R68, R71). A running
// job becomes cancelled first, so its items stop recording output, and the
// workflow is stopped and waited for; only then are the files and the job
// removed, so nothing is written after the delete. A finished job is simply
// removed: the DELETE says the client has its files (requirements 3.8).
// Later requests get ENOTFOUND (R69).
func (s *Service) Cancel(ctx context.Context, clientID, id string) error {
	j, err := s.Job(ctx, clientID, id)
	if err != nil {
		return err
	}
	if !j.Status.Terminal() {
		_, err := s.Jobs.Transition(ctx, id, []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress}, bulk.StatusCancelled, nil)
		if err != nil && bulk.ErrorCode(err) != bulk.ECONFLICT { // ECONFLICT: it finished meanwhile
			return err
		}
		if err := s.Workflow.Stop(ctx, id); err != nil {
			return err
		}
	}
	s.forget(id)
	if err := s.Objects.DeletePrefix(ctx, id+"/"); err != nil {
		return err
	}
	if err := s.Jobs.DeleteJob(ctx, id); err != nil {
		return err
	}
	s.Logger.Info("export deleted", "job", id, "status", j.Status)
	return nil
}

// ActiveJobs counts a client's unfinished exports from the store's index
// of active jobs (JobStore.ActiveJobs), not every job. The quota is
// KickoffWithin's, not this count.
func (s *Service) ActiveJobs(ctx context.Context, clientID string) (int, error) {
	return s.Jobs.ActiveJobs(ctx, clientID)
}

// Recover restarts the workflow of every job a previous process left
// unfinished, so no job stays "in progress" forever (peers.md pain point 3).
// Steps are idempotent: finished items are skipped and unfinished ones
// resume from their last checkpoint.
func (s *Service) Recover(ctx context.Context) error {
	var ids []string
	err := s.Jobs.ListJobs(ctx, func(j *bulk.Job) error {
		if !j.Status.Terminal() {
			ids = append(ids, j.ID)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		s.Logger.Info("resuming export after restart", "job", id)
		if err := s.Workflow.Start(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// Purge deletes finished jobs past their expiry, with their files.
func (s *Service) Purge(ctx context.Context) (int, error) {
	now := s.now()
	var ids []string
	err := s.Jobs.ListJobs(ctx, func(j *bulk.Job) error {
		if j.Status.Terminal() && now.After(j.ExpiresAt) {
			ids = append(ids, j.ID)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		if err := s.Objects.DeletePrefix(ctx, id+"/"); err != nil {
			return 0, err
		}
		if err := s.Jobs.DeleteJob(ctx, id); err != nil {
			return 0, err
		}
		s.forget(id)
		s.Logger.Info("expired export purged", "job", id)
	}
	return len(ids), nil
}

// Watchdog fails the jobs whose workflow died, so that no export stays
// "in progress" forever (peers.md pain point 3): a job that is not terminal,
// kicked off (or last updated) more than Config.WatchdogGrace ago, whose
// execution is no longer running. That happens when MarkFailed itself fails
// after its retries, or when an execution is stopped, aborted or timed out
// from outside. The job is failed as MarkFailed fails it: its files are
// removed and the status poll answers 500 with a client-safe
// OperationOutcome. A job whose execution runs is never touched, however
// old. Returns how many jobs it failed; an error for one job does not stop
// the pass.
//
// Locally, run it only after Recover: before, the unfinished jobs of an
// earlier process have no execution yet.
func (s *Service) Watchdog(ctx context.Context) (int, error) {
	cutoff := s.now().Add(-s.Config.WatchdogGrace)
	var ids []string
	err := s.Jobs.ListJobs(ctx, func(j *bulk.Job) error {
		if !j.Status.Terminal() && j.CreatedAt.Before(cutoff) && j.UpdatedAt.Before(cutoff) {
			ids = append(ids, j.ID)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	failed := 0
	var errs []error
	for _, id := range ids {
		if err := ctx.Err(); err != nil {
			return failed, err
		}
		ok, err := s.failStalled(ctx, id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			failed++
		}
	}
	return failed, errors.Join(errs...)
}

// failStalled fails the job if its execution is no longer running and it
// is still not terminal (the execution may have finished it since the
// listing). It reports whether it failed the job.
func (s *Service) failStalled(ctx context.Context, id string) (bool, error) {
	running, err := s.Workflow.Running(ctx, id)
	if err != nil || running {
		return false, err
	}
	j, err := s.Jobs.GetJob(ctx, id)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return false, nil // cancelled and deleted meanwhile
	} else if err != nil {
		return false, err
	}
	if j.Status.Terminal() {
		return false, nil
	}
	s.Logger.Warn("export workflow ended without finishing the job", "job", id, "status", j.Status, "created", j.CreatedAt)
	if err := s.MarkFailed(ctx, id, "WorkflowEnded", "the job's execution is no longer running (found by the watchdog)"); err != nil {
		return false, err
	}
	return true, nil
}

// spec returns a job's compiled request, cached.
func (s *Service) spec(j *bulk.Job) (*spec, error) {
	if sp, ok := s.specs.Load(j.ID); ok {
		return sp.(*spec), nil
	}
	sp, err := newSpec(&j.Request, s.engine())
	if err != nil {
		return nil, err
	}
	v, _ := s.specs.LoadOrStore(j.ID, sp)
	return v.(*spec), nil
}

// forget drops what is cached about a job.
func (s *Service) forget(id string) {
	s.plans.Delete(id)
	s.finished.Delete(id)
	s.specs.Delete(id)
	s.provs.Delete(id)
}

// plan returns a job's plan, cached.
func (s *Service) plan(ctx context.Context, id string) (*bulk.Plan, error) {
	if p, ok := s.plans.Load(id); ok {
		return p.(*bulk.Plan), nil
	}
	p, err := s.Jobs.GetPlan(ctx, id)
	if err != nil {
		return nil, err
	}
	s.plans.Store(id, p)
	return p, nil
}
