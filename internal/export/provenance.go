package export

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/tidwall/gjson"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// Provenance rules (requirements 1.4.8, 5.8).
//
// The store has no index from a Provenance's targets back to it, so the
// Provenance an export adds are decided once per job (per process) by one
// pass over the stored Provenance, and cached: provIndex. A Provenance is
// added when
//
//   - default rule (R33), at Patient and Group level and for organized
//     output, when Provenance is among the exported types: one of its
//     targets is in the compartment of an exported patient, and it is
//     itself in that patient's lastUpdated range;
//   - RelevantProvenanceResources: one of its targets is exported;
//   - LatestProvenanceResources: it is the newest (by `recorded`, then
//     lastUpdated, then id) of the Provenance of an exported target that
//     is not itself a Provenance.
//
// Every Provenance considered must pass the export's filters (its
// `_typeFilter` and the scopes' restrictions) and have changed at or before
// the export's upper bound (and after the contract's look-back,
// Plan.Floor). At system level, a Provenance the Provenance type scan
// exports anyway is not added again. Compartment-level exports
// write each added Provenance once, in the owner's place: an exported
// patient it was added for (the first found, Patient targets first, for
// the default rule alone; otherwise the first in id order).

// provIndex is a job's added Provenance.
type provIndex struct {
	ids   []string            // every added Provenance, sorted
	owned map[string][]string // patient → the added Provenance it owns, sorted
}

type provEntry struct {
	once sync.Once
	idx  *provIndex
	err  error
}

// provCandidate is a stored Provenance that passes the export's filters.
type provCandidate struct {
	id          string
	lastUpdated time.Time
	recorded    time.Time
	targets     []bulk.Ref
}

// provenance returns the job's provIndex, building it on first use.
func (s *Service) provenance(ctx context.Context, x *itemRun) (*provIndex, error) {
	v, _ := s.provs.LoadOrStore(x.job.ID, &provEntry{})
	e := v.(*provEntry)
	e.once.Do(func() { e.idx, e.err = s.buildProvenance(ctx, x) })
	if e.err != nil {
		s.provs.CompareAndDelete(x.job.ID, e) // let a retry build it again
		return nil, e.err
	}
	return e.idx, nil
}

// buildProvenance makes the job's provIndex: the candidates
// (provenanceCandidates), then whether each is added and who owns it
// (provSelector.decide).
func (s *Service) buildProvenance(ctx context.Context, x *itemRun) (*provIndex, error) {
	cands, byTarget, err := s.provenanceCandidates(ctx, x.plan, x.spec)
	if err != nil {
		return nil, err
	}
	sel := &provSelector{s: s, job: x.job, plan: x.plan, spec: x.spec, byTarget: byTarget,
		inExport: map[string]bool{}, targets: map[bulk.Ref]*provTarget{}}
	idx := &provIndex{owned: map[string][]string{}}
	for _, c := range cands {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		owner, add, err := sel.decide(ctx, c)
		if err != nil {
			return nil, err
		}
		if !add {
			continue
		}
		idx.ids = append(idx.ids, c.id)
		if owner != "" {
			idx.owned[owner] = append(idx.owned[owner], c.id)
		}
	}
	slices.Sort(idx.ids)
	for _, ids := range idx.owned {
		slices.Sort(ids)
	}
	s.Logger.Info("provenance selected", "job", x.job.ID, "candidates", len(cands), "added", len(idx.ids))
	return idx, nil
}

// provenanceCandidates reads every stored Provenance in the plan's range
// (from its look-back floor) that passes the export's filters, and returns
// them with the candidates of each target, in the order read.
func (s *Service) provenanceCandidates(ctx context.Context, p *bulk.Plan, sp *spec) ([]*provCandidate, map[bulk.Ref][]*provCandidate, error) {
	var cands []*provCandidate
	byTarget := map[bulk.Ref][]*provCandidate{}
	for shard := range s.Resources.Shards() {
		err := s.Resources.Scan(ctx, bulk.ScanRequest{Type: "Provenance", Shard: shard, Range: bulk.Range{Since: p.Floor, Until: p.Range.Until}},
			func(r *bulk.Resource, _ bulk.Cursor) error {
				if !sp.match("Provenance", r.Body) {
					return nil
				}
				c := newProvCandidate(r)
				for _, ref := range c.targets {
					byTarget[ref] = append(byTarget[ref], c)
				}
				cands = append(cands, c)
				return nil
			})
		if err != nil {
			return nil, nil, err
		}
	}
	return cands, byTarget, nil
}

// newProvCandidate reads a Provenance's recorded time (its lastUpdated if
// it has none) and its distinct targets, Patient targets first: for the
// default rule one in an exported compartment settles the matter without
// reading the other targets.
func newProvCandidate(r *bulk.Resource) *provCandidate {
	c := &provCandidate{id: r.ID, lastUpdated: r.LastUpdated, recorded: r.LastUpdated}
	body := gjson.ParseBytes(r.Body)
	if t, err := fhir.ParseInstant(body.Get("recorded").String()); err == nil {
		c.recorded = t
	}
	body.Get("target.#.reference").ForEach(func(_, v gjson.Result) bool {
		if typ, id, ok := fhir.ParseReference(v.String()); ok {
			if ref := (bulk.Ref{Type: typ, ID: id}); !slices.Contains(c.targets, ref) {
				c.targets = append(c.targets, ref)
			}
		}
		return true
	})
	slices.SortStableFunc(c.targets, func(a, b bulk.Ref) int {
		return boolRank(a.Type != "Patient") - boolRank(b.Type != "Patient")
	})
	return c
}

// newestProvenance returns the newest of cs (not empty): by recorded, then
// lastUpdated, then id.
func newestProvenance(cs []*provCandidate) *provCandidate {
	best := cs[0]
	for _, c := range cs[1:] {
		if d := c.recorded.Compare(best.recorded); d > 0 ||
			d == 0 && (c.lastUpdated.After(best.lastUpdated) || c.lastUpdated.Equal(best.lastUpdated) && c.id > best.id) {
			best = c
		}
	}
	return best
}

// provSelector decides, candidate by candidate, which Provenance a job adds
// (the rules above), reading each target once.
type provSelector struct {
	s        *Service
	job      *bulk.Job
	plan     *bulk.Plan
	spec     *spec
	byTarget map[bulk.Ref][]*provCandidate // target → its candidates
	inExport map[string]bool               // patient → whether its compartment is exported
	targets  map[bulk.Ref]*provTarget
}

// provTarget is a Provenance target, read once.
type provTarget struct {
	r        *bulk.Resource // nil: not stored
	owner    string         // compartmental: exported patient that owns it
	exported bool
}

// decide reports whether c is added, and the exported patient that owns
// it ("" at system level).
func (sel *provSelector) decide(ctx context.Context, c *provCandidate) (owner string, add bool, err error) {
	req, p := &sel.job.Request, sel.plan
	comp := compartmental(req)
	if !comp && slices.Contains(p.Types, "Provenance") && p.Range.Contains(c.lastUpdated) {
		return "", false, nil // the Provenance scan writes it
	}
	defaultRule := comp && slices.Contains(p.Types, "Provenance")
	added := false
	consider := func(q string) {
		added = true
		if q != "" && (owner == "" || q < owner) {
			owner = q
		}
	}
	for _, ref := range c.targets {
		if added && req.Associated == "" {
			break // the default rule has its owner: the first found
		}
		t, err := sel.target(ctx, ref)
		if err != nil {
			return "", false, err
		}
		if t.r == nil {
			continue
		}
		if defaultRule {
			q, err := sel.inCompartment(ctx, t.r, c)
			if err != nil {
				return "", false, err
			}
			if q != "" {
				consider(q)
			}
		}
		if !t.exported {
			continue
		}
		switch req.Associated {
		case bulk.RelevantProvenance:
			consider(t.owner)
		case bulk.LatestProvenance:
			if newestProvenance(sel.byTarget[ref]) == c {
				consider(t.owner)
			}
		}
	}
	return owner, added && !(comp && owner == ""), nil
}

// target returns the target ref, reading it on first use: whether it is
// stored, and whether the export writes it (and at compartment level, the
// patient whose place it is written in).
func (sel *provSelector) target(ctx context.Context, ref bulk.Ref) (*provTarget, error) {
	if t, ok := sel.targets[ref]; ok {
		return t, nil
	}
	t := &provTarget{}
	sel.targets[ref] = t
	r, err := sel.s.Resources.Get(ctx, ref.Type, ref.ID)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return t, nil
	} else if err != nil {
		return nil, err
	}
	t.r = r
	p := sel.plan
	if !slices.Contains(p.Types, r.Type) || r.Type == "Provenance" || !sel.spec.match(r.Type, r.Body) {
		return t, nil
	}
	if req := &sel.job.Request; compartmental(req) {
		if t.owner, err = ownerOf(ctx, sel.s, sel.job, p, req.OrganizeBy != "", sel.inExport, r); err != nil {
			return nil, err
		}
		t.exported = t.owner != ""
	} else {
		t.exported = p.Range.Contains(r.LastUpdated)
	}
	return t, nil
}

// inCompartment returns the first exported patient (in id order) whose
// compartment holds r and whose range holds the Provenance c.
func (sel *provSelector) inCompartment(ctx context.Context, r *bulk.Resource, c *provCandidate) (string, error) {
	p := sel.plan
	for _, q := range r.Patients {
		if !rangeFor(p, q).Contains(c.lastUpdated) {
			continue
		}
		in, ok := sel.inExport[q]
		if !ok {
			var err error
			if in, err = sel.s.inExport(ctx, sel.job, p, sel.job.Request.OrganizeBy != "", q); err != nil {
				return "", err
			}
			sel.inExport[q] = in
		}
		if in {
			return q, nil
		}
	}
	return "", nil
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// exportAssociated writes the added Provenance (the Associated item).
func (x *itemRun) exportAssociated(ctx context.Context) (int64, error) {
	idx, err := x.s.provenance(ctx, x)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, id := range idx.ids {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, err := x.writeProvenance(ctx, id, false)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// writeProvenance writes one added Provenance, read again from the store
// (it may have been deleted since the index was built: then it is left out).
func (x *itemRun) writeProvenance(ctx context.Context, id string, block bool) (int64, error) {
	r, err := x.s.Resources.Get(ctx, "Provenance", id)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return 0, nil
	} else if err != nil {
		return 0, err
	}
	if r.LastUpdated.After(x.plan.Range.Until) {
		return 0, nil // replaced after the export's upper bound
	}
	ok, err := x.emit(ctx, r, block)
	if ok {
		return 1, err
	}
	return 0, err
}
