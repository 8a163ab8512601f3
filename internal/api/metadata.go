package api

import (
	"net/http"

	"github.com/tranchehq/tranche/internal/fhir"
)

// Canonicals of the Bulk Data IG (requirements 7).
const (
	bulkCapability      = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
	opExport            = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
	opPatientExport     = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
	opGroupExport       = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"
	exportDocumentation = "Bulk Data Access IG v2 $export at system, Patient and Group level (GET, or POST with a Parameters body). " +
		"Parameters: _outputFormat (application/fhir+ndjson, application/ndjson, ndjson), _since, _until, _type (repeats or comma lists), patient (POST). " +
		"Other IG parameters are rejected with 400 OperationOutcome. Output: one resource type per NDJSON file; a file holds at most " +
		"the configured number of resources or bytes (defaults 100,000 resources or 256 MiB). Patient and Group exports return the " +
		"R4 Patient compartment of each patient, each resource once; they add no referenced resources outside it. " +
		"Group _since exports apply _since to every member's resources (new members do not get their older data: " +
		"use the patient parameter for them). With _since, system and Patient exports list deletions in `deleted`."
)

// metadata is `GET [base]/metadata` (R117–R120).
func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	base := s.base(r)
	resources := make([]map[string]any, 0, len(fhir.ResourceTypes))
	for _, t := range fhir.ResourceTypes {
		res := map[string]any{"type": t}
		switch t {
		case "Patient":
			res["operation"] = []map[string]string{{"name": "export", "definition": opPatientExport}}
		case "Group":
			res["interaction"] = []map[string]string{{"code": "read"}, {"code": "search-type"}}
			res["searchParam"] = []map[string]string{
				{"name": "_id", "type": "token"}, {"name": "name", "type": "string"}, {"name": "identifier", "type": "token"},
			}
			res["operation"] = []map[string]string{{"name": "export", "definition": opGroupExport}}
		}
		resources = append(resources, res)
	}
	type kv = map[string]string
	writeFHIR(w, http.StatusOK, struct {
		ResourceType   string           `json:"resourceType"`
		Status         string           `json:"status"`
		Date           string           `json:"date"`
		Publisher      string           `json:"publisher"`
		Kind           string           `json:"kind"`
		Instantiates   []string         `json:"instantiates"`
		Software       kv               `json:"software"`
		Implementation kv               `json:"implementation"`
		FHIRVersion    string           `json:"fhirVersion"`
		Format         []string         `json:"format"`
		Rest           []map[string]any `json:"rest"`
	}{
		ResourceType: "CapabilityStatement", Status: "active", Date: "2026-11-27", Publisher: "Tranche", Kind: "instance",
		Instantiates:   []string{bulkCapability},
		Software:       kv{"name": "Tranche", "version": s.Version},
		Implementation: kv{"description": "Tranche FHIR Bulk Data export server", "url": base},
		FHIRVersion:    "4.0.1",
		Format:         []string{"application/fhir+json", "json"},
		Rest: []map[string]any{{
			"mode":          "server",
			"documentation": exportDocumentation,
			"resource":      resources,
			"operation":     []kv{{"name": "export", "definition": opExport}},
		}},
	})
}
