package api

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

// CohortService is the Bulk Cohort API behind the cohort routes
// (internal/cohort.Service). Every method names the owner: a cohort is its
// creating client's, and another client's is ENOTFOUND like one that does
// not exist.
type CohortService interface {
	// Create checks and stores a cohort and starts its evaluation.
	Create(ctx context.Context, req bulk.CohortRequest) (*bulk.Cohort, error)
	// Get returns the owner's cohort (ENOTFOUND if none).
	Get(ctx context.Context, owner, id string) (*bulk.Cohort, error)
	// Refresh starts a new evaluation (ENOTFOUND, ECONFLICT while one
	// runs).
	Refresh(ctx context.Context, owner, id string) (*bulk.Cohort, error)
	// Delete removes the cohort and its Group (ENOTFOUND if none).
	Delete(ctx context.Context, owner, id string) error
}

// cohortDocumentation is the Group resource's documentation in the
// CapabilityStatement (requirements 5.9).
const cohortDocumentation = "Bulk Cohort API (bulk-cohort-group): POST [base]/Group with Prefer: respond-async creates a cohort " +
	"asynchronously (202, Content-Location [base]/cohorts/{id}; polls answer 202, then 200 with a batch-response Bundle whose " +
	"entry[0].response has status, location Group/{id} and outcome). Group.type person; one or more member-filter modifier " +
	"extensions, AND-ed, each a valueExpression of language application/x-fhir-query with one single-type query on Patient or " +
	"a Patient-compartment type, using the search parameters listed for that type (the _typeFilter engine; an unsupported " +
	"parameter or modifier is 400 naming it); optional member.entity Patients and Groups bound the cohort (actual true iff given). " +
	"A member is a Patient with, for every filter, a matching resource in its compartment (a Patient filter: the Patient itself). " +
	"Membership is computed at creation and again every members-refresh-interval (extension " + bulk.RefreshIntervalURL +
	", valueDuration of at least 15 min) or on POST [base]/cohorts/{id}/refresh; members-refreshed gives the time it was computed " +
	"as of, and members keep the time they joined for Group _since exports. Read, search (name), $export with every parameter, and " +
	"DELETE [base]/Group/{id} as any Group. Creating, refreshing and deleting need system/Group.cud (or system/Group.write); " +
	"the filters' types need read scopes, whose search restrictions apply. A client whose contract limits its Groups gets " +
	"cohorts within those Groups' members only, may bound them only by those Groups, and exports and reads them as its own Groups " +
	"until a contract Group changes (then until a refresh). A cohort is its creator's: to any other client it is not found, and system exports leave it out."

// cohortRoutes registers the Bulk Cohort routes.
func (s *Server) cohortRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /Group", s.createCohort)
	mux.HandleFunc("DELETE /Group/{id}", s.deleteCohort)
	mux.HandleFunc("GET /cohorts/{id}", s.cohortStatus)
	mux.HandleFunc("DELETE /cohorts/{id}", s.deleteCohort)
	mux.HandleFunc("POST /cohorts/{id}/refresh", s.refreshCohort)
}

// cohortPermission checks that the token may write Groups: perm is c
// (create), u (refresh) or d (delete) (requirements 6.8: Bulk Cohort needs
// system/Group.cud).
func (s *Server) cohortPermission(p *Principal, perm byte, what string) error {
	if p.Grant == nil || auth.Permits(p.Grant.Scopes, auth.WriteType, perm) {
		return nil
	}
	return bulk.Errorf(bulk.EFORBIDDEN, "%s a cohort needs the scope system/Group.cud (or system/Group.write).", what)
}

// createCohort is `POST [base]/Group` with a bulk-cohort-group Group, in
// the FHIR Asynchronous Interaction Request pattern: 202 and the status
// URL in Content-Location.
func (s *Server) createCohort(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err == nil {
		err = s.cohortPermission(p, 'c', "Creating")
	}
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if !fhir.AcceptsFHIRJSON(r.Header.Get("Accept")) {
		writeError(w, r, s.Logger, bulk.Errorf(bulk.ENOTACCEPTABLE, "Cohort responses are application/fhir+json; the Accept header does not allow it."))
		return
	}
	if !s.LenientHeaders && !fhir.ParsePrefer(r.Header.Values("Prefer")).RespondAsync {
		writeError(w, r, s.Logger, bulk.Errorf(bulk.EINVALID, "Creating a cohort is asynchronous: send Prefer: respond-async."))
		return
	}
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	if ct != "" && !strings.HasPrefix(ct, "application/fhir+json") && !strings.HasPrefix(ct, "application/json") {
		writeError(w, r, s.Logger, bulk.Errorf(bulk.EINVALID, "POST [base]/Group takes a Group resource in application/fhir+json."))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.maxBody()))
	if err != nil {
		writeError(w, r, s.Logger, bulk.Errorf(bulk.EINVALID, "The request body is too large or unreadable."))
		return
	}
	req := bulk.CohortRequest{Owner: p.ClientID, Body: body, BaseURL: s.base(r)}
	if g := p.Grant; g != nil {
		req.Reads = func(typ string) error {
			if !g.Allows(typ) {
				return bulk.Errorf(bulk.EFORBIDDEN, "The access token's scopes do not allow reading %s, so a cohort may not select by it (system/%s.rs).", typ, typ)
			}
			return nil
		}
		req.Restrictions = restrictions(g)
	}
	c, err := s.Cohorts.Create(r.Context(), req)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	w.Header().Set("Content-Location", s.base(r)+"/cohorts/"+c.ID)
	w.Header().Set("Preference-Applied", "respond-async")
	writeFHIR(w, http.StatusAccepted, fhir.Outcome("information", "informational", "Cohort accepted; poll the Content-Location URL until it is created as Group/"+c.ID+"."))
}

// cohortStatus is the status URL of a cohort's latest creation or
// refresh: 202 while it is evaluated, then 200 with a batch-response
// Bundle (FHIR Asynchronous Interaction Request pattern; requirements 5.9).
func (s *Server) cohortStatus(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	c, err := s.Cohorts.Get(r.Context(), p.ClientID, r.PathValue("id"))
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if c.Status == bulk.CohortPending {
		w.Header().Set("X-Progress", "evaluating the member-filters")
		w.Header().Set("Retry-After", "1")
		writeFHIR(w, http.StatusAccepted, fhir.Outcome("information", "informational", "The cohort's members are being computed."))
		return
	}
	type response struct {
		Status       string                 `json:"status"`
		Location     string                 `json:"location,omitempty"`
		LastModified string                 `json:"lastModified,omitempty"`
		Outcome      *fhir.OperationOutcome `json:"outcome"`
	}
	res := response{Status: "201 Created", Location: "Group/" + c.ID}
	if c.Generation > 1 {
		res.Status = "200 OK" // a refresh
	}
	if !c.RefreshedAt.IsZero() {
		res.LastModified = c.RefreshedAt.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	switch c.Status {
	case bulk.CohortFailed:
		res.Status = "422 Unprocessable Entity"
		if c.FailureInternal {
			res.Status = "500 Internal Server Error"
		}
		if c.RefreshedAt.IsZero() {
			res.Location = "" // nothing was created
		}
		res.Outcome = fhir.Outcome("error", "processing", c.Failure)
	default:
		res.Outcome = fhir.Outcome("information", "informational",
			"Group/"+c.ID+" has "+strconv.Itoa(c.Members)+" members as of "+c.RefreshedAt.UTC().Format(time.RFC3339)+".")
	}
	type entry struct {
		Response response `json:"response"`
	}
	writeFHIR(w, http.StatusOK, struct {
		ResourceType string  `json:"resourceType"`
		Type         string  `json:"type"`
		Entry        []entry `json:"entry"`
	}{"Bundle", "batch-response", []entry{{res}}})
}

// refreshCohort is `POST [base]/cohorts/{id}/refresh`: the membership is
// computed again, asynchronously, with the status at the same URL.
func (s *Server) refreshCohort(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err == nil {
		err = s.cohortPermission(p, 'u', "Refreshing")
	}
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	c, err := s.Cohorts.Refresh(r.Context(), p.ClientID, r.PathValue("id"))
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	w.Header().Set("Content-Location", s.base(r)+"/cohorts/"+c.ID)
	writeFHIR(w, http.StatusAccepted, fhir.Outcome("information", "informational", "Refresh accepted; poll the Content-Location URL."))
}

// deleteCohort is `DELETE [base]/Group/{id}` (and of its status URL): the
// client's own cohort goes; any other Group, a static one or another
// client's cohort, is 404 whether it exists or not.
func (s *Server) deleteCohort(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err == nil {
		err = s.cohortPermission(p, 'd', "Deleting")
	}
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if err := s.Cohorts.Delete(r.Context(), p.ClientID, r.PathValue("id")); err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	// FHIR delete: 202, the Group is removed in the background.
	writeFHIR(w, http.StatusAccepted, fhir.Outcome("information", "informational", "Cohort deleted; its Group is being removed."))
}
