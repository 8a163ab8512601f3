package export

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Business contracts (requirements 1.6, R37, R93; the IG's "exporting groups
// of patients between systems that should only have certain access based
// on business contracts"). A client limited to some Groups sees only their
// members' data. At Group level internal/api admits only its Groups; at
// Patient level the request carries bulk.Contract, and the export is the
// union of those Groups' members, planned like a Group export: patient
// batches of compartment reads, deletions in their compartments only, and
// Provenance only for resources they own (see inExport).

// checkContract checks the `patient` values of a Patient-level export
// under a Group contract: each must be a member of one of the contract's
// Groups (R23, R93). Otherwise the kick-off is EFORBIDDEN, whether the
// patient exists or not, so the answer says nothing about patients
// outside the contract. Under lenient handling the value is ignored
// instead, named in the manifest's error file (requirements 1.5), and
// returned in outside so that Kickoff does not look it up. An ignored value
// stays in req.Patients: planning keeps only members, so ignoring every
// value exports nobody rather than every member.
func (s *Service) checkContract(ctx context.Context, req *bulk.ExportRequest) (outside map[string]bool, err error) {
	if req.Contract == nil || req.Level != bulk.LevelPatient {
		return nil, nil
	}
	groups := GroupList(req.Contract.Groups)
	// Each value in parallel (checkEach), its Groups one after another: a
	// member of the first needs one read.
	vs := s.checkEach(ctx, req.Patients, req.Lenient, func(ctx context.Context, p string) verdict {
		for _, g := range req.Contract.Groups {
			if in, err := s.Resources.IsGroupMember(ctx, g, p); err != nil || in {
				return verdict{err: err}
			}
		}
		return verdict{msg: "patient Patient/" + p + " is outside this client's contract: not a member of " + groups + "."}
	})
	for i, v := range vs {
		switch {
		case v.err != nil:
			return nil, v.err
		case v.msg == "":
			continue
		case !req.Lenient:
			return nil, bulk.Errorf(bulk.EFORBIDDEN, "%s", v.msg)
		}
		if outside == nil {
			outside = map[string]bool{}
		}
		outside[req.Patients[i]] = true
		req.Ignored = append(req.Ignored, v.msg+" It was ignored (Prefer: handling=lenient).")
	}
	return outside, nil
}

// GroupList names a contract's Groups for client-facing messages.
func GroupList(groups []string) string {
	if len(groups) == 0 {
		return "no Group"
	}
	refs := make([]string, len(groups))
	for i, g := range groups {
		refs[i] = "Group/" + g
	}
	return strings.Join(refs, ", ")
}

// contractMembers returns the patients a Patient-level export under a Group
// contract covers, sorted: the members of the contract's Groups as of the
// job's transactionTime (a member who joined later is left out), narrowed
// by `patient`; and, with `_since`, those of them who joined their first
// such Group after `_since`, who get their whole compartment as new Group
// members do (requirements 5.3, R90). A Group the contract names that is
// not stored has no members.
func (s *Service) contractMembers(ctx context.Context, j *bulk.Job) (members, newMembers []string, err error) {
	req := &j.Request
	joined := map[string]time.Time{} // patient → earliest join of a contract Group
	// A set, not slices.Contains: a Group's members times 10,000 values
	// (fhir.MaxPatients) is too many comparisons for the Plan step.
	asked := make(map[string]bool, len(req.Patients))
	for _, p := range req.Patients {
		asked[p] = true
	}
	for _, g := range req.Contract.Groups {
		ms, err := s.Resources.GroupMembership(ctx, g)
		if bulk.ErrorCode(err) == bulk.ENOTFOUND {
			continue
		} else if err != nil {
			return nil, nil, err
		}
		for _, m := range ms {
			if m.Since.After(j.TransactionTime) || len(req.Patients) > 0 && !asked[m.ID] {
				continue
			}
			if t, ok := joined[m.ID]; !ok || m.Since.Before(t) {
				joined[m.ID] = m.Since
			}
		}
	}
	members = slices.Sorted(maps.Keys(joined))
	if !req.Since.IsZero() {
		for _, m := range members {
			if joined[m].After(req.Since) {
				newMembers = append(newMembers, m)
			}
		}
	}
	return members, newMembers, nil
}
