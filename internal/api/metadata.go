package api

import (
	"net/http"
	"slices"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/search"
)

// Canonicals of the Bulk Data IG (requirements 7).
const (
	bulkCapability      = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
	opExport            = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
	opPatientExport     = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
	opGroupExport       = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
	extNotSupported     = "http://hl7.org/fhir/uv/bulkdata/Extension/operation-not-supported"
	extOAuthURIs        = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
	exportDocumentation = "Bulk Data Access IG $export (v2, with the STU3 additions) at system, Patient and Group level (GET, or POST with a Parameters body). " +
		"Parameters: _outputFormat (application/fhir+ndjson, application/ndjson, ndjson), _since, _until, _type (repeats or comma lists), " +
		"patient (POST, Patient and Group level), _typeFilter (v2 comma lists, v3 repeats and POST parts; the search parameters of each " +
		"resource's searchParam list; several queries for one type are OR-ed), _elements (top-level elements, mandatory ones kept, " +
		"subsetted resources tagged SUBSETTED), includeAssociatedData (LatestProvenanceResources, RelevantProvenanceResources), " +
		"organizeOutputBy (Patient), allowPartialManifests. A kick-off needs Accept: application/fhir+json (or application/json) and " +
		"Prefer: respond-async (400 without them, unless the server runs with --lenient-headers); a _since after the server's time is 400. " +
		"Prefer: handling=lenient ignores unsupported parameters and values and lists " +
		"each in the manifest's error file; Prefer: respond-async, separate-export-status is supported. Scopes restricted by search " +
		"parameters (system/Observation.rs?category=...) filter the export like a _typeFilter. " +
		"Output: one resource type per NDJSON file (Patient blocks with organizeOutputBy); a file holds at most the configured number of " +
		"resources or bytes (defaults 100,000 resources or 256 MiB). Patient and Group exports return the Patient compartment (of the store's FHIR release) of each " +
		"patient, each resource once, and the Provenance whose target is in it, and no Groups (a Group's member list names other patients). " +
		"A _type outside the Patient compartment (Practitioner, Organization, Location, Medication, ...) named with a compartment type adds, " +
		"each once, the resources of that type the exported resources reference directly, whatever their lastUpdated and filtered by " +
		"its _typeFilter, leaving out any that names a patient outside the export. Under Prefer: handling=lenient, unknown patient values " +
		"(and non-members at Group level) are ignored and named in the error file. Every Attachment gets an absolute url the same token " +
		"downloads: Binary/{id} urls name a file of the Binary's content, and inline data over 64 KiB moves to such a file. " +
		"Group _since: patients who joined the Group after _since get their whole compartment; other members get what changed after " +
		"_since. With _since, exports list deletions in `deleted`; Group exports and exports with the patient parameter list only those " +
		"of resources that were in the compartment of a patient they export. " +
		"Client contracts, set by the operator, bound every export beyond the scopes: a client limited to some Groups may not export " +
		"at system level (403), its Patient-level export covers only the members of those Groups at transactionTime (a patient value " +
		"outside them is 403, or ignored under lenient handling), its Group exports and Group reads and searches only those Groups " +
		"(others are 403); a contract's resource types bound the types as scopes do (403 outside them); a contract's maximum look-back " +
		"requires a _since no earlier than it (403 otherwise) and also bounds what new Group members and associated Provenance add."
)

// metadata is `GET [base]/metadata` (R117–R120). Every type lists the
// search parameters _typeFilter supports (R120); the Group REST search
// parameters that _typeFilter lacks carry the operation-not-supported
// extension.
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	base := s.base(r)
	resources := s.capabilityResources()
	type kv = map[string]string
	rest := map[string]any{
		"mode":          "server",
		"documentation": exportDocumentation,
		"resource":      resources,
		// Every level at the system level too, as the reference server and
		// the Bulk Data test suites read them (IG CapabilityStatement).
		"operation": []kv{
			{"name": "export", "definition": opExport},
			{"name": "patient-export", "definition": opPatientExport},
			{"name": "group-export", "definition": opGroupExport},
		},
	}
	if s.Authz != nil {
		rest["security"] = s.capabilitySecurity(base)
	}
	// The store's release (issue 17): DSTU2 calls the resource
	// Conformance and has no instantiates; DSTU2 and STU3 require
	// acceptUnknown. The rest of the statement keeps the R4 shape.
	m := s.model()
	resourceType, instantiates, acceptUnknown := "CapabilityStatement", []string{bulkCapability}, ""
	switch m.Version {
	case defs.DSTU2:
		resourceType, instantiates, acceptUnknown = "Conformance", nil, "no"
	case defs.STU3:
		acceptUnknown = "no"
	}
	writeFHIR(w, http.StatusOK, struct {
		ResourceType   string           `json:"resourceType"`
		Status         string           `json:"status"`
		Date           string           `json:"date"`
		Publisher      string           `json:"publisher"`
		Kind           string           `json:"kind"`
		Instantiates   []string         `json:"instantiates,omitempty"`
		Software       kv               `json:"software"`
		Implementation kv               `json:"implementation"`
		FHIRVersion    string           `json:"fhirVersion"`
		AcceptUnknown  string           `json:"acceptUnknown,omitempty"`
		Format         []string         `json:"format"`
		Rest           []map[string]any `json:"rest"`
	}{
		ResourceType: resourceType, Status: "active", Date: "2026-11-27", Publisher: "Tranche", Kind: "instance",
		Instantiates:   instantiates,
		Software:       kv{"name": "Tranche", "version": s.Version},
		Implementation: kv{"description": "Tranche FHIR Bulk Data export server", "url": base},
		FHIRVersion:    m.FHIRVersion,
		AcceptUnknown:  acceptUnknown,
		Format:         []string{"application/fhir+json", "json"},
		Rest:           []map[string]any{rest},
	})
}

// capabilityResources is the CapabilityStatement's rest.resource: every
// type with the search parameters _typeFilter supports, and the Patient
// and Group operations.
func (s *Server) capabilityResources() []map[string]any {
	supported := s.engine().Supported()
	resources := make([]map[string]any, 0, len(fhir.ResourceTypes))
	for _, t := range fhir.ResourceTypes {
		res := map[string]any{"type": t}
		var params []map[string]any
		for _, p := range supported[t] {
			params = append(params, map[string]any{"name": p.Name, "type": p.Type, "definition": p.Definition})
		}
		switch t {
		case "Patient":
			res["operation"] = []map[string]string{{"name": "export", "definition": opPatientExport}}
		case "Group":
			res["interaction"] = []map[string]string{{"code": "read"}, {"code": "search-type"}}
			for _, rest := range []map[string]any{{"name": "name", "type": "string"}, {"name": "identifier", "type": "token"}} {
				if !slices.ContainsFunc(supported[t], func(p search.Param) bool { return p.Name == rest["name"] }) {
					rest["extension"] = []map[string]string{{"url": extNotSupported, "valueCanonical": bulkCapability}}
					params = append(params, rest)
				}
			}
			res["operation"] = []map[string]string{{"name": "export", "definition": opGroupExport}}
			if s.Cohorts != nil {
				// Bulk Cohort (requirements 5.9, R121).
				res["supportedProfile"] = []string{bulk.CohortProfile}
				res["interaction"] = []map[string]string{{"code": "read"}, {"code": "search-type"}, {"code": "create"}, {"code": "delete"}}
				res["documentation"] = cohortDocumentation
			}
		}
		if len(params) > 0 {
			res["searchParam"] = params
		}
		resources = append(resources, res)
	}
	return resources
}

// capabilitySecurity is the rest.security of a server with SMART
// authorization (requirements 7): security may name SMART; the endpoints
// themselves are in .well-known/smart-configuration, not here
// (deprecated).
func (s *Server) capabilitySecurity(base string) map[string]any {
	type kv = map[string]string
	uris := []map[string]any{{"url": "token", "valueUri": base + "/token"}}
	if s.Authz.RegistrationToken != "" {
		uris = append(uris, map[string]any{"url": "register", "valueUri": base + "/register"})
	}
	return map[string]any{
		// SMART's oauth-uris extension, which the Bulk Data test
		// suites and older clients still read.
		"extension": []map[string]any{{"url": extOAuthURIs, "extension": uris}},
		"service": []map[string]any{{"coding": []kv{{
			"system": "http://terminology.hl7.org/CodeSystem/restful-security-service", "code": "SMART-on-FHIR",
		}}, "text": "OAuth2 using SMART-on-FHIR profile (SMART Backend Services)"}},
		"description": "SMART Backend Services: client_credentials with an RS384 or ES384 JWT assertion; see " +
			base + "/.well-known/smart-configuration.",
	}
}
