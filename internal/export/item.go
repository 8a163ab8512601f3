package export

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
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

// checkEvery is how many resources pass between deadline and cancellation
// checks: often enough to stop promptly, rarely enough to cost nothing.
const checkEvery = 4096

// ExportItem exports one work item, or as much of it as fits in the item
// budget, then records a checkpoint: the files written and the cursor to
// resume from. Files are named by (item, part, sequence), so a retried call
// rewrites exactly the files its failed attempt may have left, and every
// resource lands in the output exactly once.
func (s *Service) ExportItem(ctx context.Context, in ItemInput) (out ItemOutput, err error) {
	defer bulk.Wrap(&err, "ExportItem(%q, %d)", in.JobID, in.Item)
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

	log := s.Logger.With("job", in.JobID, "item", in.Item)
	started := time.Now()
	deadline := started.Add(s.Config.ItemBudget)
	files := newFileSet(ctx, s.Objects, s.Config, fmt.Sprintf("%s/%%s.%05d.%03d.%%03d.ndjson", in.JobID, in.Item, prog.Part))
	var (
		cursor string
		done   bool
		n      int64
	)
	switch {
	case item.Deleted:
		n, err = s.exportDeleted(ctx, p, item, files)
		done = true
	case item.Type != "":
		cursor, done, n, err = s.exportScan(ctx, p, item, prog.Cursor, deadline, files)
	default:
		cursor, done, n, err = s.exportCompartments(ctx, j, p, item, prog.Cursor, deadline, files)
	}
	if err != nil {
		files.abort()
		return out, err
	}
	written, err := files.close()
	if err != nil {
		return out, err
	}
	next := &bulk.ItemProgress{Index: in.Item, Done: done, Cursor: cursor, Part: prog.Part + 1,
		Files: append(slices.Clone(prog.Files), written...)}
	if err := s.Jobs.SaveProgress(ctx, in.JobID, next); err != nil {
		if bulk.ErrorCode(err) == bulk.ECONFLICT {
			// The job was cancelled while we wrote: Cancel deletes the job's
			// files once we return.
			return out, nil
		}
		return out, err
	}
	log.Info("export item checkpoint", "done", done, "resources", n, "files", len(written), "elapsed_ms", time.Since(started).Milliseconds())
	out.Done, out.Cursor = done, cursor
	return out, nil
}

func (s *Service) itemProgress(ctx context.Context, jobID string, index int) (*bulk.ItemProgress, error) {
	all, err := s.Jobs.Progress(ctx, jobID)
	if err != nil {
		return nil, err
	}
	for _, p := range all {
		if p.Index == index {
			return p, nil
		}
	}
	return &bulk.ItemProgress{Index: index}, nil
}

// exportScan copies a type's stored bytes shard by shard. The cursor is
// "<position in item.Shards>|<store cursor>".
func (s *Service) exportScan(ctx context.Context, p *bulk.Plan, item bulk.Item, cursor string, deadline time.Time, files *fileSet) (string, bool, int64, error) {
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
	for ; pos < len(item.Shards); pos++ {
		var stopAt bulk.Cursor
		stopped := false
		err := s.Resources.Scan(ctx, bulk.ScanRequest{
			Type: item.Type, Shard: item.Shards[pos], Range: p.Range,
			Cursor: bulk.Cursor(storeCursor), CompartmentOnly: item.CompartmentOnly,
		}, func(r *bulk.Resource, next bulk.Cursor) error {
			if err := files.write(bulk.KindOutput, r.Type, r.Body); err != nil {
				return err
			}
			n++
			if n%checkEvery == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
				if time.Now().After(deadline) {
					stopAt, stopped = next, true
					return bulk.ErrStop
				}
			}
			return nil
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

// exportCompartments reads each patient's compartment (Group exports and the
// `patient` parameter). The cursor is the position of the next patient. A
// resource in several exported patients' compartments is written only by the
// first of them in id order, so it appears exactly once.
func (s *Service) exportCompartments(ctx context.Context, j *bulk.Job, p *bulk.Plan, item bulk.Item, cursor string, deadline time.Time, files *fileSet) (string, bool, int64, error) {
	pos := 0
	if cursor != "" {
		v, err := strconv.Atoi(cursor)
		if err != nil || v < 0 || v > len(item.Patients) {
			return "", false, 0, fmt.Errorf("bad cursor %q", cursor)
		}
		pos = v
	}
	var n int64
	for ; pos < len(item.Patients); pos++ {
		if err := ctx.Err(); err != nil {
			return "", false, n, err
		}
		if n > 0 && time.Now().After(deadline) {
			return strconv.Itoa(pos), false, n, nil
		}
		patient := item.Patients[pos]
		err := s.Resources.Compartment(ctx, patient, item.Types, func(r *bulk.Resource, _ bulk.Cursor) error {
			if !p.Range.Contains(r.LastUpdated) {
				return nil
			}
			for _, q := range r.Patients {
				if q >= patient {
					break
				}
				in, err := s.inExport(ctx, j, q)
				if err != nil {
					return err
				}
				if in {
					return nil // q's visit writes it
				}
			}
			n++
			return files.write(bulk.KindOutput, r.Type, r.Body)
		})
		if err != nil {
			return "", false, n, err
		}
	}
	return "", true, n, nil
}

// inExport reports whether a patient's compartment is part of the export.
func (s *Service) inExport(ctx context.Context, j *bulk.Job, patient string) (bool, error) {
	if len(j.Request.Patients) > 0 && !slices.Contains(j.Request.Patients, patient) {
		return false, nil
	}
	if j.Request.Level == bulk.LevelGroup {
		return s.Resources.IsGroupMember(ctx, j.Request.GroupID, patient)
	}
	return true, nil
}

// exportDeleted writes one transaction Bundle per tombstone with a DELETE
// entry (R88, requirements 5.4).
func (s *Service) exportDeleted(ctx context.Context, p *bulk.Plan, item bulk.Item, files *fileSet) (int64, error) {
	var n int64
	buf := make([]byte, 0, 256)
	for _, t := range item.Types {
		err := s.Resources.Tombstones(ctx, t, p.Range, func(ts bulk.Tombstone) error {
			buf = append(buf[:0], `{"resourceType":"Bundle","type":"transaction","meta":{"lastUpdated":"`...)
			buf = ts.DeletedAt.UTC().AppendFormat(buf, "2006-01-02T15:04:05.000Z07:00")
			buf = append(buf, `"},"entry":[{"request":{"method":"DELETE","url":`...)
			buf = strconv.AppendQuote(buf, ts.Type+"/"+ts.ID)
			buf = append(buf, `}}]}`...)
			n++
			return files.write(bulk.KindDeleted, "Bundle", buf)
		})
		if err != nil {
			return n, err
		}
	}
	return n, nil
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
	s.plans.Delete(jobID)
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
	s.plans.Delete(jobID)
	return s.Objects.DeletePrefix(ctx, jobID+"/")
}
