package export

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// PlanOutput is the Plan state's result: the Map iterates over the item
// indexes with at most MaxConcurrency at once. Up to Config.InlineItems
// indexes are in Items and an inline Map runs them; more are in the S3
// object ItemsKey of ItemsBucket (a JSON array), which a Distributed Map
// reads, and Items is absent: an inline Map's execution history would
// outgrow Step Functions' 25,000 events (about 11 per item).
type PlanOutput struct {
	Items       []int  `json:"items,omitzero"` // [] when there is nothing to do
	ItemsBucket string `json:"itemsBucket,omitempty"`
	ItemsKey    string `json:"itemsKey,omitempty"`
	// ResultsPrefix is where the Distributed Map's ResultWriter puts the
	// Map Run's results (under the job's prefix, so deleted with it): the
	// Map's own output stays a small descriptor, not every child's.
	ResultsPrefix  string `json:"resultsPrefix,omitempty"`
	MaxConcurrency int    `json:"maxConcurrency"`
	// Referenced is the index of the item that writes the referenced
	// resources (bulk.Plan.Referenced), absent when there is none: the
	// Map leaves it out, and the ExportReferenced state runs it once every
	// other item is done.
	Referenced *int `json:"referenced,omitempty"`
}

// ItemsKey is the key, in Service.ItemLists.Store, of the item list of a job
// planned for a Distributed Map. It is under the job's prefix, so whatever
// deletes the job's files (Cancel, Purge, MarkFailed) deletes it too; it is
// never recorded as an output file, so no manifest lists it.
func ItemsKey(jobID string) string { return jobID + "/plan/items.json" }

// Plan resolves the job into work items cut from the indexes and stores them
// once, so a re-run after a restart sees the same items. A Group export reads
// the Group's member index, never the whole store.
func (s *Service) Plan(ctx context.Context, jobID string) (out PlanOutput, err error) {
	defer bulk.Wrap(&err, "Plan(%q)", jobID)
	defer s.failNoSpace(ctx, jobID, &err)
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
		if p.Files, err = s.writeIgnored(ctx, j); err != nil {
			return out, err
		}
		p, err = s.Jobs.SavePlan(ctx, jobID, p)
	}
	if err != nil {
		return out, err
	}
	s.plans.Store(jobID, p)
	items := make([]int, 0, len(p.Items))
	out = PlanOutput{MaxConcurrency: s.Config.MaxConcurrency}
	for i, it := range p.Items {
		if it.Referenced {
			out.Referenced = &i
			continue
		}
		items = append(items, i)
	}
	if len(items) <= s.Config.InlineItems {
		out.Items = items
	} else {
		// Rewritten from the saved plan on a re-run, so a retried Plan
		// hands the Map the same list.
		key := ItemsKey(jobID)
		if err := s.writeItems(ctx, key, items); err != nil {
			return PlanOutput{}, err
		}
		out.ItemsBucket, out.ItemsKey = s.ItemLists.Bucket, s.ItemLists.Prefix+key
		out.ResultsPrefix = s.ItemLists.Prefix + jobID + "/plan/results/"
	}
	s.Logger.Info("export planned", "job", jobID, "items", len(p.Items), "types", len(p.Types), "distributed", out.ItemsKey != "")
	return out, nil
}

// writeItems stores a Distributed Map's item list as one JSON array.
func (s *Service) writeItems(ctx context.Context, key string, items []int) error {
	w, err := s.ItemLists.Store.Create(ctx, key)
	if err != nil {
		return err
	}
	if err := json.NewEncoder(w).Encode(items); err != nil {
		_ = w.Abort()
		return err
	}
	return w.Close()
}

// cut computes the plan: its types and range (planTypes, planRange), how
// Provenance goes (planProvenance), the patients of a compartment-level
// export (planPatients), then its items in order: the data items
// (addDataItems), the added Provenance, the deletions (addDeletedItem) and
// last the referenced resources.
func (s *Service) cut(ctx context.Context, j *bulk.Job) (*bulk.Plan, error) {
	req := &j.Request
	counts, err := s.Resources.Count(ctx)
	if err != nil {
		return nil, err
	}
	types, referenced := s.planTypes(req, counts)
	p := &bulk.Plan{Types: types, Range: planRange(j), Floor: req.NotBefore}
	itemTypes := planProvenance(req, p)
	patients, err := s.planPatients(ctx, j, p)
	if err != nil {
		return nil, err
	}
	s.addDataItems(p, req, counts, itemTypes, patients)
	if p.Provenance && req.OrganizeBy == "" {
		addItem(p, bulk.Item{Associated: true})
	}
	if err := s.addDeletedItem(p, req, patients); err != nil {
		return nil, err
	}
	if len(referenced) > 0 && len(p.Items) > 0 {
		// Last, so that it runs after the items whose references it reads.
		p.Referenced = referenced
		addItem(p, bulk.Item{Referenced: true, Types: referenced})
	}
	return p, nil
}

// addItem appends it to p's items as the next index.
func addItem(p *bulk.Plan, it bulk.Item) {
	it.Index = len(p.Items)
	p.Items = append(p.Items, it)
}

// compartmental reports whether req exports Patient compartments: below
// system level, or organized by Patient.
func compartmental(req *bulk.ExportRequest) bool {
	return req.Level != bulk.LevelSystem || req.OrganizeBy != ""
}

// byPatient reports whether req reads only given patients' compartments
// (Group, `patient` and contract exports), which must not reveal other
// patients' data.
func byPatient(req *bulk.ExportRequest) bool {
	return req.Level == bulk.LevelGroup || len(req.Patients) > 0 || req.Contract != nil
}

// planTypes returns the plan's types, sorted: `_type` or everything stored
// (and authorized), limited to the Patient compartment below system level
// and for organized output; and the referenced types, sorted: those named
// outside the compartment at Patient and Group level (issue 15 item 3).
func (s *Service) planTypes(req *bulk.ExportRequest, counts map[string]int64) (types, referenced []string) {
	types = req.Types
	if len(types) == 0 {
		for t, n := range counts {
			if n > 0 && (req.Allowed == nil || slices.Contains(req.Allowed, t)) {
				types = append(types, t)
			}
		}
	}
	if req.Level != bulk.LevelSystem && req.OrganizeBy == "" {
		// Unnamed types are never added.
		for _, t := range req.Types {
			if !s.model().IsPatientExportType(t) && t != "Group" {
				referenced = append(referenced, t)
			}
		}
		slices.Sort(referenced)
	}
	if compartmental(req) {
		types = slices.DeleteFunc(slices.Clone(types), func(t string) bool { return !s.model().IsPatientExportType(t) })
	}
	slices.Sort(types)
	return types, referenced
}

// planRange is the export's lastUpdated range: (_since, min(_until,
// transactionTime)].
func planRange(j *bulk.Job) bulk.Range {
	req := &j.Request
	rng := bulk.Range{Since: req.Since, Until: j.TransactionTime}
	if !req.Until.IsZero() && !req.Until.After(rng.Until) {
		// `_until` is exclusive (R35); our Until bound is inclusive.
		rng.Until = req.Until.Add(-time.Nanosecond)
	}
	return rng
}

// planProvenance sets p.Provenance and returns the types the data items
// read. Provenance goes by its rules (R33, includeAssociatedData) rather
// than as a plain compartment type: at compartment level whenever it is
// exported, at system level when associated data is asked for (and the
// scopes allow Provenance). At compartment level the data items leave it
// out then: the Patient blocks or the Associated item write it.
func planProvenance(req *bulk.ExportRequest, p *bulk.Plan) (itemTypes []string) {
	provAllowed := req.Allowed == nil || slices.Contains(req.Allowed, "Provenance")
	p.Provenance = (compartmental(req) && slices.Contains(p.Types, "Provenance")) || (req.Associated != "" && provAllowed)
	if p.Provenance && compartmental(req) {
		return slices.DeleteFunc(slices.Clone(p.Types), func(t string) bool { return t == "Provenance" })
	}
	return p.Types
}

// planPatients returns the sorted patients whose compartments a Group,
// contract or `patient` export reads (none otherwise), and sets
// p.NewMembers and, under a contract, p.Members.
func (s *Service) planPatients(ctx context.Context, j *bulk.Job, p *bulk.Plan) ([]string, error) {
	req := &j.Request
	var patients []string
	switch {
	case req.Level == bulk.LevelGroup:
		members, err := s.Resources.GroupMembership(ctx, req.GroupID)
		if err != nil {
			return nil, err
		}
		for _, m := range members {
			if len(req.Patients) > 0 && !slices.Contains(req.Patients, m.ID) {
				continue
			}
			patients = append(patients, m.ID)
			// A member who joined after _since gets their whole compartment
			// (requirements 5.3, R90).
			if !req.Since.IsZero() && m.Since.After(req.Since) {
				p.NewMembers = append(p.NewMembers, m.ID)
			}
		}
		slices.Sort(patients)
		slices.Sort(p.NewMembers)
	case req.Contract != nil:
		// Patient level under a Group contract: the Groups' members, like
		// a Group export (R93).
		var err error
		if patients, p.NewMembers, err = s.contractMembers(ctx, j); err != nil {
			return nil, err
		}
		p.Members = patients
	case len(req.Patients) > 0:
		patients = slices.Clone(req.Patients)
		slices.Sort(patients)
	}
	return patients, nil
}

// addDataItems adds the items that read the exported resources of
// itemTypes: patient batches of a compartment-level export of given
// patients, Patient-block scans of organized output, or else type scans.
func (s *Service) addDataItems(p *bulk.Plan, req *bulk.ExportRequest, counts map[string]int64, itemTypes, patients []string) {
	organized := req.OrganizeBy != ""
	blocks := len(itemTypes) > 0 || (organized && p.Provenance)
	switch {
	case byPatient(req):
		// type × patient batch: reads only these patients' compartments.
		for start := 0; start < len(patients) && blocks; start += s.Config.PatientBatch {
			end := min(start+s.Config.PatientBatch, len(patients))
			addItem(p, bulk.Item{Patients: patients[start:end], Types: itemTypes, Organized: organized})
		}
	case organized:
		// Patient blocks for every stored Patient: the Patient scan, cut
		// like any type scan.
		if blocks {
			for _, g := range s.shardGroups(counts["Patient"]) {
				addItem(p, bulk.Item{Type: "Patient", Shards: g, Types: itemTypes, Organized: true})
			}
		}
	default:
		// type × shard range: each type's shards split into as many items
		// as its size warrants, up to one per shard.
		for _, t := range itemTypes {
			if counts[t] == 0 {
				continue
			}
			for _, g := range s.shardGroups(counts[t]) {
				addItem(p, bulk.Item{Type: t, Shards: g, CompartmentOnly: req.Level == bulk.LevelPatient})
			}
		}
	}
}

// addDeletedItem adds, with _since, the item that lists deletions since
// then (R88, requirements 5.4). Group, `patient` and contract exports list
// those in the compartment of a patient they export (the item carries the
// patients: the plan's members, fixed once planned); tombstones that do
// not know their compartments are left out there. Tombstones record no
// contents, so types the client's scopes restrict by search parameters
// list none.
func (s *Service) addDeletedItem(p *bulk.Plan, req *bulk.ExportRequest, patients []string) error {
	if req.Since.IsZero() {
		return nil
	}
	sp, err := newSpec(req, s.engine())
	if err != nil {
		return err
	}
	deleted := slices.DeleteFunc(slices.Clone(p.Types), sp.restricted)
	if len(deleted) > 0 && (!byPatient(req) || len(patients) > 0) {
		addItem(p, bulk.Item{Deleted: true, Types: deleted, Patients: patients})
	}
	return nil
}

// shardGroups cuts a type of n resources into as many work items as its
// size warrants, up to one per shard, and returns each item's shards.
func (s *Service) shardGroups(n int64) [][]int {
	if n == 0 {
		return nil
	}
	shards := s.Resources.Shards()
	k := int(min(max((n+s.Config.ItemResources-1)/s.Config.ItemResources, 1), int64(shards)))
	groups := make([][]int, k)
	for sh := 0; sh < shards; sh++ {
		groups[sh%k] = append(groups[sh%k], sh)
	}
	return groups
}

// writeIgnored writes the error file of a lenient kick-off: one
// OperationOutcome per ignored parameter or value (requirements 1.5, R17,
// R20). Its name is fixed, so a re-planned job rewrites the same file.
func (s *Service) writeIgnored(ctx context.Context, j *bulk.Job) ([]bulk.OutputFile, error) {
	if len(j.Request.Ignored) == 0 {
		return nil, nil
	}
	fs := newFileSet(ctx, s.Objects, s.Config, j.ID+"/%s.plan.%03d.ndjson")
	for _, msg := range j.Request.Ignored {
		if err := fs.write(bulk.KindError, "OperationOutcome", fhir.Outcome("warning", "not-supported", msg).JSON()); err != nil {
			fs.abort()
			return nil, err
		}
	}
	return fs.close()
}
