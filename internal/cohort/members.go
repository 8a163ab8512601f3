package cohort

import (
	"bytes"
	"cmp"
	"context"
	"maps"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/search"
)

// Criteria are what an evaluation computes members from.
type Criteria struct {
	// Filters are AND-ed: a member has, for each, a matching resource in
	// its compartment (a Patient filter: the Patient itself matches).
	Filters []*search.Filter
	// Restrictions are the scope restrictions of the cohort's owner
	// (ExportRequest.Restrictions' shape): a resource a restriction of its
	// type does not match counts as absent.
	Restrictions map[string][]string
	// Candidates, when not nil, bound the members (the member entities and
	// the contract's Groups, intersected): only they are considered.
	Candidates map[string]bool
	// AsOf is the snapshot time: resources stored later are not read.
	// Since, when set, is the contract's look-back: resources last
	// updated at or before it count as absent.
	AsOf, Since time.Time
}

// Stats say what an evaluation read, for tests and benchmarks.
type Stats struct {
	// Scanned are the types whose every shard was scanned, and
	// Compartments the (type, patient) compartment reads.
	Scanned      []string
	Compartments int
	// Resources counts the resources visited.
	Resources int64
}

// Source is what an Evaluator reads: counts, shard scans and compartment
// reads of the filters' types (bulk.ResourceScanner), and Patients by id
// (bulk.ResourceReader). Every bulk.ResourceSource is one.
type Source interface {
	bulk.ResourceScanner
	bulk.ResourceReader
}

var _ Source = bulk.ResourceSource(nil)

// Evaluator computes cohort members from the store's indexes: a filter
// on type T reads resources of T only, either scanning T's shards in
// parallel or, when the candidates are few, reading T in each candidate's
// compartment; matches map to patients with the store release's Patient
// compartment (fhir.Model.PatientCompartment). Filters run from the
// smallest type up, each narrowing the candidates of the next.
type Evaluator struct {
	Source Source
	// FHIR is the store's release (nil: R4).
	FHIR *fhir.Model
	// Parallel is how many shard scans or compartment reads run at once
	// (default 8).
	Parallel int
	// MaxCompartmentReads is how many candidates at most are read by
	// compartment rather than by a scan of the type (default 2,000); a
	// scan is also chosen when the candidates are more than a quarter of
	// the type's resources.
	MaxCompartmentReads int
}

// Members returns the sorted ids of the patients that meet every filter.
func (e *Evaluator) Members(ctx context.Context, cr Criteria) ([]string, *Stats, error) {
	st := &Stats{}
	counts, err := e.Source.Count(ctx)
	if err != nil {
		return nil, nil, err
	}
	filters := slices.Clone(cr.Filters)
	// Smallest type first; a Patient filter before any other of its size.
	slices.SortStableFunc(filters, func(a, b *search.Filter) int {
		return cmp.Compare(counts[a.Type()], counts[b.Type()])
	})
	cands := cr.Candidates
	for _, f := range filters {
		if cands != nil && len(cands) == 0 {
			break
		}
		restrict, err := e.compileRestriction(cr.Restrictions, f.Type())
		if err != nil {
			return nil, nil, err
		}
		pre := e.prefilter(f)
		match := func(r *bulk.Resource) bool {
			if !(bulk.Range{Since: cr.Since, Until: cr.AsOf}).Contains(r.LastUpdated) || !pre(r.Body) || !f.Match(r.Body) {
				return false
			}
			if restrict == nil {
				return true
			}
			for _, rf := range restrict {
				if rf != nil && rf.Match(r.Body) {
					return true
				}
			}
			return false
		}
		var matched map[string]bool
		if cands != nil && e.byCompartment(len(cands), counts[f.Type()]) {
			matched, err = e.compartments(ctx, f.Type(), cands, match, st)
		} else {
			matched, err = e.scan(ctx, f.Type(), bulk.Range{Since: cr.Since, Until: cr.AsOf}, cands, match, st)
		}
		if err != nil {
			return nil, nil, err
		}
		cands = matched
	}
	if cands == nil {
		cands = map[string]bool{} // no filter ran: cannot happen with a valid cohort
	}
	return slices.Sorted(maps.Keys(cands)), st, nil
}

func (e *Evaluator) byCompartment(candidates int, count int64) bool {
	limit := e.MaxCompartmentReads
	if limit <= 0 {
		limit = 2000
	}
	return candidates <= limit && int64(candidates)*4 <= max(count, 1)
}

func (e *Evaluator) model() *fhir.Model {
	if e.FHIR != nil {
		return e.FHIR
	}
	return fhir.R4Model()
}

func (e *Evaluator) engine() *search.Engine { return search.For(e.model().Defs().Version) }

func (e *Evaluator) parallel() int {
	if e.Parallel > 0 {
		return e.Parallel
	}
	return 8
}

// patientsOf returns the patients a matching resource selects: a Patient
// itself, any other resource the Patients of its compartment.
func (e *Evaluator) patientsOf(r *bulk.Resource) []string {
	if r.Type == "Patient" {
		return []string{r.ID}
	}
	return e.model().PatientCompartment(r.Type, r.ID, r.Body)
}

// scan reads every shard of typ in rng and returns the patients of the
// matching resources (within cands, when set).
func (e *Evaluator) scan(ctx context.Context, typ string, rng bulk.Range, cands map[string]bool, match func(*bulk.Resource) bool, st *Stats) (map[string]bool, error) {
	shards := e.Source.Shards()
	var mu sync.Mutex
	out := map[string]bool{}
	var visited int64
	err := forEach(ctx, e.parallel(), shards, func(ctx context.Context, shard int) error {
		local := map[string]bool{}
		var n int64
		err := e.Source.Scan(ctx, bulk.ScanRequest{Type: typ, Shard: shard, Range: rng, CompartmentOnly: typ != "Patient"},
			func(r *bulk.Resource, _ bulk.Cursor) error {
				n++
				if !match(r) {
					return nil
				}
				for _, p := range e.patientsOf(r) {
					if cands == nil || cands[p] {
						local[p] = true
					}
				}
				return nil
			})
		mu.Lock()
		defer mu.Unlock()
		visited += n
		for p := range local {
			out[p] = true
		}
		return err
	})
	st.Scanned = append(st.Scanned, typ)
	st.Resources += visited
	return out, err
}

// compartments reads typ in each candidate's compartment (a candidate
// Patient itself, for a Patient filter) and returns the candidates with a
// match.
func (e *Evaluator) compartments(ctx context.Context, typ string, cands map[string]bool, match func(*bulk.Resource) bool, st *Stats) (map[string]bool, error) {
	ids := slices.Sorted(maps.Keys(cands))
	var mu sync.Mutex
	out := map[string]bool{}
	var visited int64
	err := forEach(ctx, e.parallel(), len(ids), func(ctx context.Context, i int) error {
		p := ids[i]
		found := false
		var n int64
		if typ == "Patient" {
			r, err := e.Source.Get(ctx, "Patient", p)
			if bulk.ErrorCode(err) == bulk.ENOTFOUND {
				return nil
			} else if err != nil {
				return err
			}
			n, found = 1, match(r)
		} else {
			err := e.Source.Compartment(ctx, p, []string{typ}, func(r *bulk.Resource, _ bulk.Cursor) error {
				n++
				if match(r) && slices.Contains(e.patientsOf(r), p) {
					found = true
					return bulk.ErrStop
				}
				return nil
			})
			if err != nil && err != bulk.ErrStop {
				return err
			}
		}
		mu.Lock()
		defer mu.Unlock()
		visited += n
		if found {
			out[p] = true
		}
		return nil
	})
	st.Compartments += len(ids)
	st.Resources += visited
	return out, err
}

// compileRestriction returns typ's scope restriction filters: nil when
// unrestricted, else a non-empty list (a nil entry matches nothing: a "*"
// restriction naming a parameter typ lacks).
func (e *Evaluator) compileRestriction(restrict map[string][]string, typ string) ([]*search.Filter, error) {
	if restrict == nil {
		return nil, nil
	}
	qs, ok := restrict[typ]
	if !ok {
		qs = restrict["*"]
	}
	if len(qs) == 0 {
		return nil, nil
	}
	fs := make([]*search.Filter, len(qs))
	for i, q := range qs {
		fs[i], _ = e.engine().Parse(typ + "?" + q)
	}
	return fs, nil
}

// forEach calls fn(ctx, 0..n-1) with at most limit calls at once; the
// first error cancels the others' context and is returned.
func forEach(ctx context.Context, limit, n int, fn func(ctx context.Context, i int) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for range min(max(limit, 1), n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if first != nil || next >= n {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := fn(ctx, i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
						cancel()
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// prefilter returns a necessary condition of f.Match that costs a few
// substring searches instead of a JSON parse: for every token clause
// without a modifier, whose values all name a code, the body contains one
// of the codes. A token matches a JSON string equal to its code, or a
// number or boolean written as it; a body without a backslash writes its
// strings as they are, so such a match contains the code's bytes. A body
// with a backslash (an escape) passes, and is left to Match.
func (e *Evaluator) prefilter(f *search.Filter) func(body []byte) bool {
	var clauses [][][]byte // AND of OR-ed codes
	_, query, _ := strings.Cut(f.String(), "?")
	tokens := map[string]bool{}
	for _, p := range e.engine().Supported()[f.Type()] {
		if p.Type == "token" {
			tokens[p.Name] = true
		}
	}
	for _, part := range strings.Split(query, "&") {
		name, raw, _ := strings.Cut(part, "=")
		value, err := url.QueryUnescape(raw)
		if !tokens[name] || err != nil || value == "" || strings.ContainsRune(value, '\\') {
			continue // not a plain token clause: Match alone decides
		}
		var codes [][]byte
		for _, v := range strings.Split(value, ",") {
			code := v
			if _, c, ok := strings.Cut(v, "|"); ok {
				code = c
			}
			if code == "" {
				codes = nil // "system|": any code
				break
			}
			codes = append(codes, []byte(code))
		}
		if len(codes) > 0 {
			clauses = append(clauses, codes)
		}
	}
	if len(clauses) == 0 {
		return func([]byte) bool { return true }
	}
	return func(body []byte) bool {
		if bytes.IndexByte(body, '\\') >= 0 {
			return true
		}
		for _, codes := range clauses {
			found := false
			for _, c := range codes {
				if bytes.Contains(body, c) {
					found = true
					break
				}
			}
			if !found {
				return false
			}
		}
		return true
	}
}
