package export

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// Referenced resources (issue 15 item 3; requirements 1.4.4, which lets
// Patient and Group exports add "referenced non-compartment resources that
// help interpretation" when documented, and 1.4.2, which lets them do so
// whatever their lastUpdated).
//
// A Patient or Group export whose `_type` names types outside the Patient
// compartment (Practitioner, Organization, Location, Medication, ...) adds
// the resources of those types that its exported resources reference
// directly (one hop), each once. While the other items write, each records
// the relative references to those types in what it writes (after
// `_elements`), in one object per checkpoint under the job's refs/ prefix,
// listed nowhere (ItemProgress.RefKeys). The plan's last item, which the
// workflow runs after the Map, reads them all, and writes each referenced
// resource that
//
//   - is stored and changed at or before transactionTime (and after the
//     contract's look-back, Plan.Floor), whatever `_since`;
//   - passes the export's filters for its type (`_typeFilter`, the scopes'
//     restrictions, `_elements`);
//   - names no Patient whose compartment the export does not hold: a
//     client limited to some patients never receives another's data by
//     this route.

// refsKey names the object of one checkpoint's references.
func refsKey(jobID string, item, part int) string {
	return fmt.Sprintf("%s/refs/%05d.%03d.txt", jobID, item, part)
}

// collectRefs records body's relative references to plan.Referenced types.
// Absolute references may name another server's resources, so they are
// left out.
func (x *itemRun) collectRefs(body []byte) {
	fhir.EachReference(body, func(ref string) {
		if strings.Contains(ref, "://") {
			return
		}
		typ, id, ok := fhir.ParseReference(ref)
		if !ok {
			return
		}
		if _, ok := slices.BinarySearch(x.plan.Referenced, typ); !ok {
			return
		}
		if x.refs == nil {
			x.refs = map[bulk.Ref]struct{}{}
		}
		x.refs[bulk.Ref{Type: typ, ID: id}] = struct{}{}
	})
}

// writeRefs stores the call's references at key, one Type/id a line.
func (x *itemRun) writeRefs(ctx context.Context, key string) error {
	w, err := x.s.Objects.Create(ctx, key)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	for _, r := range sortRefs(slices.Collect(maps.Keys(x.refs))) {
		bw.WriteString(r.Type)
		bw.WriteByte('/')
		bw.WriteString(r.ID)
		bw.WriteByte('\n')
	}
	if err := bw.Flush(); err != nil {
		_ = w.Abort()
		return err
	}
	return w.Close()
}

func sortRefs(refs []bulk.Ref) []bulk.Ref {
	slices.SortFunc(refs, func(a, b bulk.Ref) int {
		return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.ID, b.ID))
	})
	return refs
}

// referencedRefs reads every other item's references, deduplicated and
// sorted: the same list on every call, so a cursor into it resumes.
func (s *Service) referencedRefs(ctx context.Context, jobID string, self int) ([]bulk.Ref, error) {
	progress, err := s.Jobs.Progress(ctx, jobID)
	if err != nil {
		return nil, err
	}
	set := map[bulk.Ref]struct{}{}
	for _, p := range progress {
		if p.Index == self {
			continue
		}
		for _, key := range p.RefKeys {
			if err := s.readRefs(ctx, key, set); err != nil {
				return nil, err
			}
		}
	}
	return sortRefs(slices.Collect(maps.Keys(set))), nil
}

func (s *Service) readRefs(ctx context.Context, key string, set map[bulk.Ref]struct{}) error {
	obj, err := s.Objects.Open(ctx, key)
	if err != nil {
		return err
	}
	defer obj.Close()
	sc := bufio.NewScanner(obj)
	for sc.Scan() {
		typ, id, ok := strings.Cut(sc.Text(), "/")
		if ok {
			set[bulk.Ref{Type: typ, ID: id}] = struct{}{}
		}
	}
	return sc.Err()
}

// exportReferenced writes the referenced resources (see above). The cursor
// is the position in referencedRefs' list of the next reference.
func (x *itemRun) exportReferenced(ctx context.Context, cursor string) (string, bool, int64, error) {
	refs, err := x.s.referencedRefs(ctx, x.job.ID, x.item.Index)
	if err != nil {
		return "", false, 0, err
	}
	pos := 0
	if cursor != "" {
		v, err := strconv.Atoi(cursor)
		if err != nil || v < 0 || v > len(refs) {
			return "", false, 0, fmt.Errorf("bad cursor %q", cursor)
		}
		pos = v
	}
	var n int64
	for first := pos; pos < len(refs); pos++ {
		if err := ctx.Err(); err != nil {
			return "", false, n, err
		}
		if x.stop(pos-first, minScanRows) {
			return strconv.Itoa(pos), false, n, nil
		}
		ref := refs[pos]
		r, err := x.s.Resources.Get(ctx, ref.Type, ref.ID)
		if bulk.ErrorCode(err) == bulk.ENOTFOUND {
			continue
		} else if err != nil {
			return "", false, n, err
		}
		if r.LastUpdated.After(x.plan.Range.Until) || (!x.plan.Floor.IsZero() && r.LastUpdated.Before(x.plan.Floor)) {
			continue
		}
		ok, err := x.namesOnlyExported(ctx, r)
		if err != nil {
			return "", false, n, err
		}
		if !ok {
			continue
		}
		wrote, err := x.emit(ctx, r, false)
		if err != nil {
			return "", false, n, err
		}
		if wrote {
			n++
		}
	}
	return "", true, n, nil
}

// namesOnlyExported reports whether every Patient r references is one whose
// compartment the export holds.
func (x *itemRun) namesOnlyExported(ctx context.Context, r *bulk.Resource) (bool, error) {
	ok := true
	var err error
	fhir.EachReference(r.Body, func(ref string) {
		if !ok || err != nil {
			return
		}
		typ, id, parsed := fhir.ParseReference(ref)
		if !parsed || typ != "Patient" {
			if strings.HasPrefix(ref, "Patient/") || strings.Contains(ref, "/Patient/") {
				ok = false // a Patient reference we cannot check
			}
			return
		}
		in, seen := x.inExport[id]
		if !seen {
			if in, err = x.s.inExport(ctx, x.job, x.plan, false, id); err != nil {
				return
			}
			x.inExport[id] = in
		}
		ok = in
	})
	return ok, err
}
