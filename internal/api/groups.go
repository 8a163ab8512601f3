package api

import (
	"context"
	"net/http"
	"slices"
	"strings"

	"github.com/tidwall/gjson"

	"github.com/tranchehq/tranche/internal/bulk"
)

// readGroup is `GET [base]/Group/{id}` (R122): clients find the Groups they
// export. A client whose contract limits its Groups reads only those:
// another id is 403, as its $export is (R37), whether the Group exists or
// not, so the answer does not reveal which Groups exist.
func (s *Server) readGroup(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	p = s.withGroup(r, p, r.PathValue("id"))
	if c := contractGroups(p); c != nil && !c.AllowsGroup(r.PathValue("id")) {
		writeError(w, r, s.Logger, bulk.Errorf(bulk.EFORBIDDEN, "This client's contract does not include Group/%s.", r.PathValue("id")))
		return
	}
	g, err := s.Resources.Get(r.Context(), "Group", r.PathValue("id"))
	if err == nil {
		err = s.visibleGroup(r.Context(), p, g)
	}
	if err != nil {
		if bulk.ErrorCode(err) == bulk.ENOTFOUND {
			err = bulk.Errorf(bulk.ENOTFOUND, "Group/%s is not known to this server.", r.PathValue("id"))
		}
		writeError(w, r, s.Logger, err)
		return
	}
	w.Header().Set("Content-Type", "application/fhir+json; charset=utf-8")
	w.Header().Set("Last-Modified", g.LastUpdated.UTC().Format(http.TimeFormat))
	_, _ = w.Write(g.Body)
}

// searchGroups is `GET [base]/Group` with `_id`, `name` (FHIR string search:
// case-insensitive starts-with, `:exact`, `:contains`) and `identifier`
// (token: `value` or `system|value`). Several values of one parameter are
// OR-ed (comma), different parameters AND-ed. A client whose contract
// limits its Groups finds only those (requirements 1.6).
func (s *Server) searchGroups(w http.ResponseWriter, r *http.Request) {
	p, err := s.principal(r)
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	q := r.URL.Query()
	var filters []func(body []byte, id string) bool
	if c := contractGroups(p); c != nil {
		filters = append(filters, func(_ []byte, id string) bool { return c.AllowsGroup(id) })
	}

	for name, vals := range q {
		base, mod, _ := strings.Cut(name, ":")
		var match func(body []byte, id, v string) bool
		switch {
		case base == "_id" && mod == "":
			match = func(_ []byte, id, v string) bool { return id == v }
		case base == "name" && (mod == "" || mod == "exact" || mod == "contains"):
			match = func(body []byte, _, v string) bool { return stringMatch(gjson.GetBytes(body, "name").String(), v, mod) }
		case base == "identifier" && mod == "":
			match = func(body []byte, _, v string) bool { return identifierMatch(body, v) }
		default:
			writeError(w, r, s.Logger, bulk.Errorf(bulk.EUNSUPPORTED, "Group search supports _id, name and identifier, not %q.", name))
			return
		}
		for _, v := range vals {
			alts := strings.Split(v, ",")
			filters = append(filters, func(body []byte, id string) bool {
				for _, a := range alts {
					if match(body, id, a) {
						return true
					}
				}
				return false
			})
		}
	}
	type entry struct {
		FullURL  string            `json:"fullUrl"`
		Resource rawJSON           `json:"resource"`
		Search   map[string]string `json:"search"`
	}
	var entries []entry
	var cohorts []string // checked after the listing: maybe other clients'
	base := s.base(r)
	err = s.Resources.List(r.Context(), "Group", "", func(g *bulk.Resource, _ bulk.Cursor) error {
		for _, f := range filters {
			if !f(g.Body, g.ID) {
				return nil
			}
		}
		if s.Cohorts != nil && isCohort(g.Body) {
			cohorts = append(cohorts, g.ID)
		}
		entries = append(entries, entry{FullURL: base + "/Group/" + g.ID, Resource: append(rawJSON(nil), g.Body...), Search: map[string]string{"mode": "match"}})
		return nil
	})
	for _, id := range cohorts {
		if err != nil {
			break
		}
		var hidden bool
		if hidden, err = s.foreignCohort(r.Context(), p, id); hidden {
			entries = slices.DeleteFunc(entries, func(e entry) bool { return e.FullURL == base+"/Group/"+id })
		}
	}
	if err != nil {
		writeError(w, r, s.Logger, err)
		return
	}
	if entries == nil {
		entries = []entry{}
	}
	writeFHIR(w, http.StatusOK, struct {
		ResourceType string              `json:"resourceType"`
		Type         string              `json:"type"`
		Total        int                 `json:"total"`
		Link         []map[string]string `json:"link"`
		Entry        []entry             `json:"entry"`
	}{"Bundle", "searchset", len(entries), []map[string]string{{"relation": "self", "url": base + r.URL.RequestURI()}}, entries})
}

// isCohort reports whether a Group body is a Bulk Cohort Group (its
// profile, which the cohort service sets).
func isCohort(body []byte) bool {
	for _, p := range gjson.GetBytes(body, "meta.profile").Array() {
		if p.String() == bulk.CohortProfile {
			return true
		}
	}
	return false
}

// foreignCohort reports whether cohort Group id is another client's: a
// cohort is its creator's alone to read, search and export (its
// member-filters and members say which patients have what; requirements
// 5.9), even for a client allowed every Group.
func (s *Server) foreignCohort(ctx context.Context, p *Principal, id string) (bool, error) {
	_, err := s.Cohorts.Get(ctx, p.ClientID, id)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return true, nil
	}
	return false, err
}

// visibleGroup returns ENOTFOUND for another client's cohort Group g, as
// for a Group that does not exist.
func (s *Server) visibleGroup(ctx context.Context, p *Principal, g *bulk.Resource) error {
	if s.Cohorts == nil || !isCohort(g.Body) {
		return nil
	}
	if hidden, err := s.foreignCohort(ctx, p, g.ID); err != nil || !hidden {
		return err
	}
	return bulk.Errorf(bulk.ENOTFOUND, "Group/%s is not known to this server.", g.ID)
}

// rawJSON embeds stored bytes in a response without re-encoding them.
type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func stringMatch(have, want, mod string) bool {
	switch mod {
	case "exact":
		return have == want
	case "contains":
		return strings.Contains(strings.ToLower(have), strings.ToLower(want))
	}
	return strings.HasPrefix(strings.ToLower(have), strings.ToLower(want))
}

func identifierMatch(body []byte, v string) bool {
	system, value, hasSystem := strings.Cut(v, "|")
	if !hasSystem {
		value, system = v, ""
	}
	found := false
	gjson.GetBytes(body, "identifier").ForEach(func(_, id gjson.Result) bool {
		if id.Get("value").String() == value && (!hasSystem || id.Get("system").String() == system) {
			found = true
			return false
		}
		return true
	})
	return found
}
