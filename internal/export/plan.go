package export

import (
	"context"
	"slices"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// PlanOutput is the Plan state's result: the Map iterates over Items (small
// integers, so the state payload stays far under 256 KB even with 10,000
// items) with at most MaxConcurrency at once.
type PlanOutput struct {
	Items          []int `json:"items"`
	MaxConcurrency int   `json:"maxConcurrency"`
}

// Plan resolves the job into work items cut from the indexes and stores them
// once, so a re-run after a restart sees the same items. A Group export reads
// the Group's member index, never the whole store.
func (s *Service) Plan(ctx context.Context, jobID string) (out PlanOutput, err error) {
	defer bulk.Wrap(&err, "Plan(%q)", jobID)
	j, err := s.Jobs.Transition(ctx, jobID, []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress}, bulk.StatusInProgress, nil)
	if err != nil {
		if bulk.ErrorCode(err) == bulk.ECONFLICT {
			// Cancelled (or otherwise finished) before planning: no work.
			return PlanOutput{Items: []int{}, MaxConcurrency: 1}, nil
		}
		return out, err
	}
	p, err := s.Jobs.GetPlan(ctx, jobID)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		if p, err = s.cut(ctx, j); err != nil {
			return out, err
		}
		p, err = s.Jobs.SavePlan(ctx, jobID, p)
	}
	if err != nil {
		return out, err
	}
	s.plans.Store(jobID, p)
	out = PlanOutput{Items: make([]int, len(p.Items)), MaxConcurrency: s.Config.MaxConcurrency}
	for i := range p.Items {
		out.Items[i] = i
	}
	s.Logger.Info("export planned", "job", jobID, "items", len(p.Items), "types", len(p.Types))
	return out, nil
}

// cut computes the plan. Types: `_type` or everything stored, limited to the
// Patient compartment below system level. Range: (_since, min(_until,
// transactionTime)].
func (s *Service) cut(ctx context.Context, j *bulk.Job) (*bulk.Plan, error) {
	req := j.Request
	counts, err := s.Resources.Count(ctx)
	if err != nil {
		return nil, err
	}
	types := req.Types
	if len(types) == 0 {
		for t, n := range counts {
			if n > 0 && (req.Allowed == nil || slices.Contains(req.Allowed, t)) {
				types = append(types, t)
			}
		}
	}
	if req.Level != bulk.LevelSystem {
		types = slices.DeleteFunc(slices.Clone(types), func(t string) bool { return !fhir.IsPatientCompartmentType(t) })
	}
	slices.Sort(types)

	rng := bulk.Range{Since: req.Since, Until: j.TransactionTime}
	if !req.Until.IsZero() && !req.Until.After(rng.Until) {
		// `_until` is exclusive (R35); our Until bound is inclusive.
		rng.Until = req.Until.Add(-time.Nanosecond)
	}
	p := &bulk.Plan{Types: types, Range: rng}
	add := func(it bulk.Item) {
		it.Index = len(p.Items)
		p.Items = append(p.Items, it)
	}

	var patients []string
	switch {
	case req.Level == bulk.LevelGroup:
		members, err := s.Resources.GroupMembers(ctx, req.GroupID)
		if err != nil {
			return nil, err
		}
		patients = members
		if len(req.Patients) > 0 {
			patients = slices.DeleteFunc(slices.Clone(members), func(m string) bool { return !slices.Contains(req.Patients, m) })
		}
	case len(req.Patients) > 0:
		patients = slices.Clone(req.Patients)
		slices.Sort(patients)
	}

	if req.Level == bulk.LevelGroup || len(req.Patients) > 0 {
		// type × patient batch: reads only these patients' compartments.
		for start := 0; start < len(patients) && len(types) > 0; start += s.Config.PatientBatch {
			end := min(start+s.Config.PatientBatch, len(patients))
			add(bulk.Item{Patients: patients[start:end], Types: types})
		}
	} else {
		// type × shard range: each type's shards split into as many items as
		// its size warrants, up to one per shard.
		shards := s.Resources.Shards()
		for _, t := range types {
			n := counts[t]
			if n == 0 {
				continue
			}
			k := int(min(max((n+s.Config.ItemResources-1)/s.Config.ItemResources, 1), int64(shards)))
			groups := make([][]int, k)
			for sh := 0; sh < shards; sh++ {
				groups[sh%k] = append(groups[sh%k], sh)
			}
			for _, g := range groups {
				add(bulk.Item{Type: t, Shards: g, CompartmentOnly: req.Level == bulk.LevelPatient})
			}
		}
	}
	if !req.Since.IsZero() && len(types) > 0 && req.Level != bulk.LevelGroup && len(req.Patients) == 0 {
		// Deletions since _since (R88). Tombstones do not record compartments,
		// so Group and `patient` exports, which must not reveal other
		// patients' data, list none.
		add(bulk.Item{Deleted: true, Types: types})
	}
	return p, nil
}
