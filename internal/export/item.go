package export

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// ItemInput is the ExportItem state's input: which item, and the cursor the
// previous call returned (informational: the checkpoint stored on the job is
// authoritative, so a restarted workflow resumes where the item really was).
type ItemInput struct {
	JobID  string `json:"jobId"`
	Item   int    `json:"item"`
	Cursor string `json:"cursor,omitempty"`
}

// ItemOutput is the ExportItem state's result; the Choice state loops while
// Done is false.
type ItemOutput struct {
	JobID  string `json:"jobId"`
	Item   int    `json:"item"`
	Cursor string `json:"cursor,omitempty"`
	Done   bool   `json:"done"`
}

// ExportItem exports one work item, or as much of it as fits in the item
// budget, then records a checkpoint: the files written and the cursor to
// resume from. Files are named by (item, part, sequence), so a retried call
// rewrites exactly the files its failed attempt may have left, and every
// resource lands in the output exactly once.
func (s *Service) ExportItem(ctx context.Context, in ItemInput) (out ItemOutput, err error) {
	defer bulk.Wrap(&err, "ExportItem(%q, %d)", in.JobID, in.Item)
	defer s.failNoSpace(ctx, in.JobID, &err)
	out = ItemOutput{JobID: in.JobID, Item: in.Item, Done: true}
	j, err := s.Jobs.GetJob(ctx, in.JobID)
	if err != nil {
		return out, err
	}
	if j.Status.Terminal() {
		return out, nil // cancelled or failed meanwhile: nothing more to write
	}
	p, err := s.plan(ctx, in.JobID)
	if err != nil {
		return out, err
	}
	if in.Item < 0 || in.Item >= len(p.Items) {
		return out, fmt.Errorf("item %d out of range (%d items)", in.Item, len(p.Items))
	}
	item := p.Items[in.Item]
	prog, err := s.itemProgress(ctx, in.JobID, in.Item)
	if err != nil {
		return out, err
	}
	if prog.Done {
		return out, nil
	}

	sp, err := s.spec(j)
	if err != nil {
		return out, err
	}
	log := s.Logger.With("job", in.JobID, "item", in.Item)
	release, err := s.exportSlot(ctx)
	if err != nil {
		return out, err
	}
	defer release()
	started := s.Now()
	x := &itemRun{
		s: s, job: j, plan: p, item: item, spec: sp,
		files:    newFileSet(ctx, s.Objects, s.Config, fmt.Sprintf("%s/%%s.%05d.%03d.%%03d.ndjson", in.JobID, in.Item, prog.Part)),
		inExport: map[string]bool{},
	}
	x.budgetEnd, x.end = itemDeadlines(ctx, started, s.Config.ItemBudget, s.Config.ItemMargin)
	cursor, done, n, err := x.export(ctx, prog.Cursor)
	release() // the files' syncs and the checkpoint below wait on I/O only
	files := x.files
	if err != nil {
		files.abort()
		return out, err
	}
	written, err := files.close()
	if err != nil {
		return out, err
	}
	next := &bulk.ItemProgress{Index: in.Item, Done: done, Cursor: cursor, Part: prog.Part + 1,
		Files: append(slices.Clone(prog.Files), written...), RefKeys: prog.RefKeys}
	if len(x.refs) > 0 {
		key := refsKey(in.JobID, in.Item, prog.Part)
		if err := x.writeRefs(ctx, key); err != nil {
			return out, err
		}
		next.RefKeys = append(slices.Clone(prog.RefKeys), key)
	}
	if err := s.Jobs.SaveProgress(ctx, in.JobID, next); err != nil {
		if code := bulk.ErrorCode(err); code == bulk.ECONFLICT || code == bulk.ENOTFOUND {
			// The job was cancelled (ECONFLICT) or already deleted
			// (ENOTFOUND) while we wrote.
			keys := append(slices.Clone(next.RefKeys[len(prog.RefKeys):]), x.attached...)
			for _, f := range written {
				keys = append(keys, f.Key)
			}
			s.deleteCancelled(ctx, log, keys)
			return out, nil
		}
		return out, err
	}
	log.Info("export item checkpoint", "done", done, "resources", n, "files", len(written), "elapsed_ms", s.Now().Sub(started).Milliseconds())
	out.Done, out.Cursor = done, cursor
	return out, nil
}

// deleteCancelled removes the objects an ExportItem call of a job cancelled
// meanwhile wrote. Locally Cancel waits for the call and then deletes the
// job's files anyway; on AWS StopExecution does not wait for a running
// Lambda, so this is what removes them. Locally ctx is cancelled by then
// (Workflow.Stop): the deletes run on a context that outlives it, bounded
// by cancelledDeleteTimeout.
func (s *Service) deleteCancelled(ctx context.Context, log *slog.Logger, keys []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelledDeleteTimeout)
	defer cancel()
	for _, key := range keys {
		if err := s.Objects.DeletePrefix(ctx, key); err != nil {
			log.Warn("could not delete a cancelled job's file", "key", key, "err", err)
		}
	}
}

// cancelledDeleteTimeout bounds deleteCancelled.
const cancelledDeleteTimeout = time.Minute

// export writes the item's resources, from cursor on, until it is done or
// stops (see stop); it returns the cursor to resume from and the number of
// resources written.
func (x *itemRun) export(ctx context.Context, cursor string) (next string, done bool, n int64, err error) {
	switch item := x.item; {
	case item.Deleted:
		n, err = x.exportDeleted(ctx)
		return "", true, n, err
	case item.Associated:
		n, err = x.exportAssociated(ctx)
		return "", true, n, err
	case item.Referenced:
		return x.exportReferenced(ctx, cursor)
	case item.Type != "":
		return x.exportScan(ctx, cursor)
	default:
		return x.exportPatients(ctx, cursor)
	}
}

// exportSlot waits until fewer ExportItem calls of this process than it
// has cores (GOMAXPROCS) are exporting, and returns the release of the slot
// it took (idempotent). Reading the store and writing the files is
// CPU-bound; an item's end, syncing its files and committing its
// checkpoint, is waits. So Config.MaxConcurrency items can be in flight to
// overlap those waits while no more of them compete for the cores than
// there are cores, and the HTTP handlers keep their share: 8 items
// exporting at once on 2 cores made the bench's kick-off and status
// latency under an export 1.5–3× what it is with 2. On Lambda a process
// runs one item at a time.
func (s *Service) exportSlot(ctx context.Context) (release func(), err error) {
	s.slotsOnce.Do(func() { s.slots = make(chan struct{}, runtime.GOMAXPROCS(0)) })
	select {
	case s.slots <- struct{}{}:
		return sync.OnceFunc(func() { <-s.slots }), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// itemDeadlines returns when an ExportItem call that started at started
// stops exporting and checkpoints: budgetEnd, once its budget is spent, and
// end, margin before ctx's deadline (zero if ctx has none), so that closing
// its files and saving the checkpoint fit in the call. On Lambda the
// context carries the invocation's deadline (aws-lambda-go sets it from the
// function timeout, docs.aws.amazon.com/lambda/latest/dg/golang-context.html).
// The margin is at most a quarter of the time left, so a short timeout
// still leaves most of the call to export.
func itemDeadlines(ctx context.Context, started time.Time, budget, margin time.Duration) (budgetEnd, end time.Time) {
	budgetEnd = started.Add(budget)
	if dl, ok := ctx.Deadline(); ok {
		end = dl.Add(-max(min(margin, dl.Sub(started)/4), 0))
	}
	return budgetEnd, end
}

// minScanRows is the fewest rows a scan passes before the item budget (not
// the context's deadline) stops it: a budget shorter than reading a few
// rows (tests set 1ns) would otherwise checkpoint, and start a file, at
// every row.
const minScanRows = 64

func (s *Service) itemProgress(ctx context.Context, jobID string, index int) (*bulk.ItemProgress, error) {
	p, err := s.Jobs.ItemProgress(ctx, jobID, index)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return &bulk.ItemProgress{Index: index}, nil
	}
	return p, err
}

// itemRun is one ExportItem call.
type itemRun struct {
	s        *Service
	job      *bulk.Job
	plan     *bulk.Plan
	item     bulk.Item
	spec     *spec
	files    *fileSet
	inExport map[string]bool // patient id → whether its compartment is exported
	// refs collects the references to plan.Referenced types of the
	// resources this call writes (see referenced.go).
	refs map[bulk.Ref]struct{}
	// attached are the attachment files this call wrote (attachments.go).
	attached []string
	// budgetEnd and end are when the call stops (see itemDeadlines and
	// stop).
	budgetEnd, end time.Time
	// foreign are other clients' cohort Groups (Service.ForeignGroups),
	// read at the first Group this call meets.
	foreign map[string]bool
}

// stop reports whether the call should checkpoint now, having passed
// passed rows (or patients): at least one, so that every call makes
// progress, and it is past end, or past budgetEnd with at least floor
// passed. The clock is read at every row the call passes, written or not:
// a reading costs tens of nanoseconds, next to microseconds a row.
func (x *itemRun) stop(passed, floor int) bool {
	if passed == 0 {
		return false
	}
	now := x.s.Now()
	return (!x.end.IsZero() && !now.Before(x.end)) || (passed >= floor && !now.Before(x.budgetEnd))
}

// emit writes one resource that belongs in the output, if it passes the
// export's filters, to its type's file or to the current Patient block.
func (x *itemRun) emit(ctx context.Context, r *bulk.Resource, block bool) (bool, error) {
	if !x.spec.match(r.Type, r.Body) {
		return false, nil
	}
	if r.Type == "Group" && x.s.ForeignGroups != nil {
		if x.foreign == nil {
			f, err := x.s.ForeignGroups(ctx, x.job.ClientID)
			if err != nil {
				return false, err
			}
			if f == nil {
				f = map[string]bool{}
			}
			x.foreign = f
		}
		if x.foreign[r.ID] {
			return false, nil
		}
	}
	body := x.spec.body(r.Type, r.Body)
	body, err := x.attachments(ctx, r, body)
	if err != nil {
		return false, err
	}
	if len(x.plan.Referenced) > 0 && !x.item.Referenced {
		x.collectRefs(body)
	}
	if block {
		return true, x.files.blockLine(body)
	}
	return true, x.files.write(bulk.KindOutput, r.Type, body)
}

// scanShards runs visit over the item's shards of its type, resuming at
// cursor ("<position in item.Shards>|<store cursor>"). visit reports the
// resources it wrote. After every row the scan passes (visited, or left out
// by the store, see bulk.ScanRequest.Skipped) and between shards, the scan
// may stop (see stop) and return the cursor after that row. The resource
// filters run in visit, so a selective `_typeFilter` that writes nothing
// stops in time too. floor is stop's: minScanRows, or 1 where a visit is a
// whole Patient block.
func (x *itemRun) scanShards(ctx context.Context, cursor string, rng bulk.Range, compartmentOnly bool, floor int, visit func(*bulk.Resource) (int64, error)) (string, bool, int64, error) {
	item := x.item
	pos, storeCursor := 0, ""
	if cursor != "" {
		head, rest, ok := strings.Cut(cursor, "|")
		v, err := strconv.Atoi(head)
		if !ok || err != nil || v < 0 || v > len(item.Shards) {
			return "", false, 0, fmt.Errorf("bad cursor %q", cursor)
		}
		pos, storeCursor = v, rest
	}
	var n int64
	rows := 0 // rows passed in this call
	for ; pos < len(item.Shards); pos++ {
		if x.stop(rows, floor) {
			return strconv.Itoa(pos) + "|", false, n, nil
		}
		var stopAt bulk.Cursor
		stopped := false
		passed := func(next bulk.Cursor) error {
			rows++
			if err := ctx.Err(); err != nil {
				return err
			}
			if x.stop(rows, floor) {
				stopAt, stopped = next, true
				return bulk.ErrStop
			}
			return nil
		}
		err := x.s.Resources.Scan(ctx, bulk.ScanRequest{
			Type: item.Type, Shard: item.Shards[pos], Range: rng,
			Cursor: bulk.Cursor(storeCursor), CompartmentOnly: compartmentOnly,
			Skipped: passed,
		}, func(r *bulk.Resource, next bulk.Cursor) error {
			k, err := visit(r)
			n += k
			if err != nil {
				return err
			}
			return passed(next)
		})
		if err != nil && err != bulk.ErrStop {
			return "", false, n, err
		}
		if stopped {
			return strconv.Itoa(pos) + "|" + string(stopAt), false, n, nil
		}
		storeCursor = ""
	}
	return "", true, n, nil
}

// exportScan copies a type's stored bytes shard by shard (system and
// Patient level), or with item.Organized writes the Patient block of every
// Patient the scan visits.
func (x *itemRun) exportScan(ctx context.Context, cursor string) (string, bool, int64, error) {
	if x.item.Organized {
		// Every stored Patient anchors a block, whatever its lastUpdated:
		// its compartment may have changed since _since.
		rng := bulk.Range{Until: x.plan.Range.Until}
		return x.scanShards(ctx, cursor, rng, false, 1, func(r *bulk.Resource) (int64, error) {
			patient := *r
			patient.Body = slices.Clone(r.Body) // valid only during the visit
			return x.block(ctx, r.ID, &patient)
		})
	}
	return x.scanShards(ctx, cursor, x.plan.Range, x.item.CompartmentOnly, minScanRows, func(r *bulk.Resource) (int64, error) {
		ok, err := x.emit(ctx, r, false)
		if ok {
			return 1, err
		}
		return 0, err
	})
}

// exportPatients reads each of the item's patients' compartments (Group
// exports and the `patient` parameter), as Patient blocks with
// item.Organized. The cursor is the position of the next patient. The call
// may stop (see stop) before any patient but its first, written to or not;
// a patient's compartment is written whole.
func (x *itemRun) exportPatients(ctx context.Context, cursor string) (string, bool, int64, error) {
	item := x.item
	pos := 0
	if cursor != "" {
		v, err := strconv.Atoi(cursor)
		if err != nil || v < 0 || v > len(item.Patients) {
			return "", false, 0, fmt.Errorf("bad cursor %q", cursor)
		}
		pos = v
	}
	var n int64
	for first := pos; pos < len(item.Patients); pos++ {
		if err := ctx.Err(); err != nil {
			return "", false, n, err
		}
		if x.stop(pos-first, 1) {
			return strconv.Itoa(pos), false, n, nil
		}
		patient := item.Patients[pos]
		var k int64
		var err error
		if item.Organized {
			var r *bulk.Resource
			r, err = x.s.Resources.Get(ctx, "Patient", patient)
			if bulk.ErrorCode(err) == bulk.ENOTFOUND {
				r, err = nil, nil
			}
			if err == nil {
				k, err = x.block(ctx, patient, r)
			}
		} else {
			k, err = x.compartment(ctx, patient, item.Types, false)
		}
		n += k
		if err != nil {
			return "", false, n, err
		}
	}
	return "", true, n, nil
}

// compartment writes the resources of types in patient's compartment that
// the export holds and that patient owns (see owner), to type files or to
// the current block.
func (x *itemRun) compartment(ctx context.Context, patient string, types []string, block bool) (int64, error) {
	if len(types) == 0 {
		return 0, nil
	}
	var n int64
	rng := x.rangeFor(patient)
	err := x.s.Resources.Compartment(ctx, patient, types, func(r *bulk.Resource, _ bulk.Cursor) error {
		if !rng.Contains(r.LastUpdated) {
			return nil
		}
		owner, err := x.owner(ctx, r)
		if err != nil || owner != patient {
			return err // another patient's visit writes it, or nobody's
		}
		ok, err := x.emit(ctx, r, block)
		if ok {
			n++
		}
		return err
	})
	return n, err
}

// block writes patient's block (organizeOutputBy=Patient, requirements
// 5.7): the header, the Patient resource (nil if not stored), its
// compartment, and with plan.Provenance the Provenance it owns. Blocks with
// no resource are left out.
func (x *itemRun) block(ctx context.Context, patient string, r *bulk.Resource) (int64, error) {
	x.files.beginBlock(blockHeader(patient))
	var n int64
	if r != nil && slices.Contains(x.plan.Types, "Patient") && x.rangeFor(patient).Contains(r.LastUpdated) {
		ok, err := x.emit(ctx, r, true)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	// The block's own Patient comes first; other Patients linked to it are
	// written in their own blocks.
	types := slices.DeleteFunc(slices.Clone(x.item.Types), func(t string) bool { return t == "Patient" })
	k, err := x.compartment(ctx, patient, types, true)
	n += k
	if err != nil {
		return n, err
	}
	if x.plan.Provenance {
		idx, err := x.s.provenance(ctx, x)
		if err != nil {
			return n, err
		}
		for _, id := range idx.owned[patient] {
			k, err := x.writeProvenance(ctx, id, true)
			n += k
			if err != nil {
				return n, err
			}
		}
	}
	return n, x.files.endBlock()
}

// blockHeader is the Parameters line that starts a Patient block (R91).
func blockHeader(patient string) []byte {
	b := append([]byte(nil), `{"resourceType":"Parameters","parameter":[{"name":"header","valueReference":{"reference":`...)
	b = strconv.AppendQuote(b, "Patient/"+patient)
	return append(b, `}}]}`...)
}

// rangeFor is the lastUpdated range of patient's compartment: the plan's,
// or for a Group member that joined after _since no lower bound but the
// contract's look-back (requirements 5.3, R90).
func (x *itemRun) rangeFor(patient string) bulk.Range {
	return rangeFor(x.plan, patient)
}

func rangeFor(p *bulk.Plan, patient string) bulk.Range {
	if _, ok := slices.BinarySearch(p.NewMembers, patient); ok {
		return bulk.Range{Since: p.Floor, Until: p.Range.Until}
	}
	return p.Range
}

// owner returns the patient whose compartment read writes r: the first of
// r's patients, in id order, whose compartment is exported and whose range
// holds r. So a resource in several exported compartments is written once.
// Empty when none is.
func (x *itemRun) owner(ctx context.Context, r *bulk.Resource) (string, error) {
	return ownerOf(ctx, x.s, x.job, x.plan, x.item.Organized, x.inExport, r)
}

func ownerOf(ctx context.Context, s *Service, j *bulk.Job, p *bulk.Plan, organized bool, cache map[string]bool, r *bulk.Resource) (string, error) {
	for _, q := range r.Patients {
		if !rangeFor(p, q).Contains(r.LastUpdated) {
			continue
		}
		in, ok := cache[q]
		if !ok {
			var err error
			if in, err = s.inExport(ctx, j, p, organized, q); err != nil {
				return "", err
			}
			cache[q] = in
		}
		if in {
			return q, nil
		}
	}
	return "", nil
}

// inExport reports whether a patient's compartment is part of the export:
// a Group member (and a `patient` value if given), a `patient` value, a
// member of the contract's Groups (plan.Members), or at Patient and system
// level any patient; organized output has blocks only for stored Patients.
func (s *Service) inExport(ctx context.Context, j *bulk.Job, p *bulk.Plan, organized bool, patient string) (bool, error) {
	req := &j.Request
	if len(req.Patients) > 0 && !slices.Contains(req.Patients, patient) {
		return false, nil
	}
	switch {
	case req.Level == bulk.LevelGroup:
		return s.Resources.IsGroupMember(ctx, req.GroupID, patient)
	case req.Contract != nil:
		_, ok := slices.BinarySearch(p.Members, patient)
		return ok, nil
	case len(req.Patients) > 0 || !organized:
		return true, nil
	}
	r, err := s.Resources.Get(ctx, "Patient", patient)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return false, nil
	} else if err != nil {
		return false, err
	}
	return !r.LastUpdated.After(p.Range.Until), nil
}

// exportDeleted writes one transaction Bundle per tombstone with a DELETE
// entry (R88, requirements 5.4). With item.Patients (Group and `patient`
// exports) it writes only the tombstones of resources that were in one of
// their compartments; each tombstone is visited once, so a deletion in
// several of their compartments is listed once.
func (x *itemRun) exportDeleted(ctx context.Context) (int64, error) {
	var n int64
	buf := make([]byte, 0, 256)
	for _, t := range x.item.Types {
		err := x.s.Resources.Tombstones(ctx, t, x.plan.Range, func(ts bulk.Tombstone) error {
			if len(x.item.Patients) > 0 && !inCompartments(ts, x.item.Patients) {
				return nil
			}
			buf = append(buf[:0], `{"resourceType":"Bundle","type":"transaction","meta":{"lastUpdated":"`...)
			buf = ts.DeletedAt.UTC().AppendFormat(buf, "2006-01-02T15:04:05.000Z07:00")
			buf = append(buf, `"},"entry":[{"request":{"method":"DELETE","url":`...)
			buf = strconv.AppendQuote(buf, ts.Type+"/"+ts.ID)
			buf = append(buf, `}}]}`...)
			n++
			return x.files.write(bulk.KindDeleted, "Bundle", buf)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// inCompartments reports whether ts was in the compartment of one of
// patients (sorted).
func inCompartments(ts bulk.Tombstone, patients []string) bool {
	if ts.Type == "Patient" {
		if _, ok := slices.BinarySearch(patients, ts.ID); ok {
			return true
		}
	}
	for _, p := range ts.Patients {
		if _, ok := slices.BinarySearch(patients, p); ok {
			return true
		}
	}
	return false
}

// Finalize completes the job once every item is done. Finalizing a
// cancelled job does nothing.
func (s *Service) Finalize(ctx context.Context, jobID string) (err error) {
	defer bulk.Wrap(&err, "Finalize(%q)", jobID)
	progress, err := s.Jobs.Progress(ctx, jobID)
	if err != nil {
		return err
	}
	p, err := s.plan(ctx, jobID)
	if err != nil {
		if bulk.ErrorCode(err) == bulk.ENOTFOUND {
			return nil // cancelled before planning
		}
		return err
	}
	done := 0
	var resources int64
	for _, pr := range progress {
		if pr.Done {
			done++
		}
		for _, f := range pr.Files {
			resources += f.Count
		}
	}
	if done != len(p.Items) {
		return fmt.Errorf("%d of %d items done", done, len(p.Items))
	}
	now := s.now()
	j, err := s.Jobs.Transition(ctx, jobID, []bulk.Status{bulk.StatusInProgress}, bulk.StatusCompleted, func(j *bulk.Job) {
		j.ExpiresAt = now.Add(s.Config.Retention)
	})
	if bulk.ErrorCode(err) == bulk.ECONFLICT {
		return nil
	} else if err != nil {
		return err
	}
	s.forget(jobID)
	s.Logger.Info("export completed", "job", jobID, "resources", resources, "items", len(p.Items),
		"duration_ms", now.Sub(j.CreatedAt).Milliseconds())
	return nil
}

// MarkFailed records a failure the workflow could not recover from. The
// cause is logged, never shown to the client; the job's files are removed.
func (s *Service) MarkFailed(ctx context.Context, jobID, name, cause string) (err error) {
	defer bulk.Wrap(&err, "MarkFailed(%q)", jobID)
	s.Logger.Error("export failed", "job", jobID, "error", name, "cause", cause)
	now := s.now()
	_, err = s.Jobs.Transition(ctx, jobID, []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress}, bulk.StatusFailed, func(j *bulk.Job) {
		j.Failure = "The export could not be completed because of an internal error; start a new export."
		j.ExpiresAt = now.Add(s.Config.Retention)
	})
	if bulk.ErrorCode(err) == bulk.ECONFLICT {
		return nil // already terminal (e.g. cancelled)
	} else if err != nil {
		return err
	}
	s.forget(jobID)
	return s.Objects.DeletePrefix(ctx, jobID+"/")
}
