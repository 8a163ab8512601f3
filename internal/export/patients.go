package export

import (
	"context"
	"fmt"
	"sync"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Kick-off checks each `patient` value against the store (R23, R24, R93):
// a Get of the Patient, and under a Group contract an IsGroupMember per
// contract Group, which on DynamoDB (~5 ms a GetItem, two a Get) took a
// list of 2,000–3,000 values past API Gateway's 29 s when run one after
// another (issue 12 item 4). checkEach runs them Config.KickoffParallel at
// a time and still answers as the loop in input order did: a refusal names
// the first failing value in input order, and lenient handling's messages
// come in input order.

// verdict is what a check found for one `patient` value.
type verdict struct {
	msg string // why the value fails, for the client; "" when it passes
	err error  // a store error: the kick-off fails with it
}

// checkEach returns the verdicts of check for patients, in input order,
// running at most Config.KickoffParallel checks at once. A verdict stops
// the run when it is a store error, or any failure under strict handling:
// no check starts after it, so the result is the prefix of verdicts up to
// and including the first that stops (in input order), and every one of
// them is the value's own answer. Checks of later values already in
// flight (at most KickoffParallel−1) finish and are dropped; no check of
// an earlier value is ever skipped, so the prefix is exactly what the loop
// in input order would have read.
func (s *Service) checkEach(ctx context.Context, patients []string, lenient bool, check func(ctx context.Context, patient string) verdict) []verdict {
	vs := make([]verdict, len(patients))
	var (
		mu   sync.Mutex
		next int
		end  = len(patients) // one past the first stopping verdict so far
		wg   sync.WaitGroup
	)
	take := func() (int, bool) {
		mu.Lock()
		defer mu.Unlock()
		if next >= end {
			return 0, false
		}
		next++
		return next - 1, true
	}
	// At least one: a Config not passed through withDefaults must not
	// check nothing.
	for range min(max(s.Config.KickoffParallel, 1), len(patients)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, ok := take(); ok; i, ok = take() {
				v := check(ctx, patients[i])
				vs[i] = v
				if v.err != nil || (!lenient && v.msg != "") {
					mu.Lock()
					end = min(end, i+1)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return vs[:end]
}

// checkPatients looks up each `patient` value: an unknown patient, or at
// Group level a non-member, is EINVALID (R24), or under lenient handling
// dropped from req.Patients with a message for the error file (issue 15
// item 4, requirements 1.5). members are the Group's, which kick-off has
// read anyway: membership is a set lookup, not a read per value. Values
// outside the client's contract (checkContract) are kept and never looked
// up.
func (s *Service) checkPatients(ctx context.Context, req *bulk.ExportRequest, outside map[string]bool, members []string) error {
	if len(req.Patients) == 0 {
		return nil
	}
	var inGroup map[string]bool
	if req.Level == bulk.LevelGroup {
		inGroup = among(members, req.Patients)
	}
	vs := s.checkEach(ctx, req.Patients, req.Lenient, func(ctx context.Context, p string) verdict {
		if outside[p] {
			return verdict{}
		}
		return s.checkPatient(ctx, req, inGroup, p)
	})
	kept := req.Patients[:0:0]
	for i, v := range vs {
		switch {
		case v.err != nil:
			return v.err
		case v.msg == "":
			kept = append(kept, req.Patients[i])
		case !req.Lenient:
			return bulk.Errorf(bulk.EINVALID, "%s", v.msg)
		default:
			req.Ignored = append(req.Ignored, v.msg+" It was ignored (Prefer: handling=lenient).")
		}
	}
	if len(kept) == 0 {
		// Exporting every patient instead would not be what was asked.
		return bulk.Errorf(bulk.EINVALID, "None of the patient values name a patient this export can include.")
	}
	req.Patients = kept
	return nil
}

// among returns the set of patients that members lists, in memory that
// follows the patients (at most fhir.MaxPatients), not the Group.
func among(members, patients []string) map[string]bool {
	in := make(map[string]bool, len(patients))
	for _, p := range patients {
		in[p] = false
	}
	for _, m := range members {
		if _, ok := in[m]; ok {
			in[m] = true
		}
	}
	return in
}

// checkPatient is one value's lookup. At Group level (inGroup set)
// membership is checked first, so the answer for a non-member does not say
// whether that patient exists (R24).
func (s *Service) checkPatient(ctx context.Context, req *bulk.ExportRequest, inGroup map[string]bool, p string) verdict {
	if inGroup != nil && !inGroup[p] {
		return verdict{msg: fmt.Sprintf("patient Patient/%s is not a member of Group/%s.", p, req.GroupID)}
	}
	_, err := s.Resources.Get(ctx, "Patient", p)
	switch {
	case bulk.ErrorCode(err) == bulk.ENOTFOUND:
		return verdict{msg: fmt.Sprintf("patient Patient/%s is not known to this server.", p)}
	case err != nil:
		return verdict{err: err}
	}
	return verdict{}
}
