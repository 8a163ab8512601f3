package test

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// TestMetadata checks the CapabilityStatement (R117–R119) and the Group read
// and search a Group-export client uses to find its Group (R122).
func TestMetadata(t *testing.T) {
	dir := generated(t, 12)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	s := startServer(t, cfg)

	res := s.do("GET", "/metadata", nil)
	if res.Status != http.StatusOK {
		t.Fatalf("GET /metadata = %d", res.Status)
	}
	var cs struct {
		ResourceType, Kind, FHIRVersion string
		Instantiates                    []string
		Rest                            []struct {
			Security struct {
				Extension []struct {
					URL       string
					Extension []struct{ URL, ValueURI string }
				}
				Service []struct {
					Coding []struct{ System, Code string }
				}
			}
			Operation []struct{ Name, Definition string }
			Resource  []struct {
				Type      string
				Operation []struct{ Name, Definition string }
			}
		}
	}
	if err := json.Unmarshal(res.Body, &cs); err != nil {
		t.Fatal(err)
	}
	if cs.ResourceType != "CapabilityStatement" || cs.Kind != "instance" || cs.FHIRVersion != "4.0.1" {
		t.Errorf("CapabilityStatement header = %+v (R117)", cs)
	}
	if !slices.Contains(cs.Instantiates, "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data") {
		t.Errorf("instantiates = %v (R118)", cs.Instantiates)
	}
	if sec := cs.Rest[0].Security.Service; len(sec) == 0 || len(sec[0].Coding) == 0 || sec[0].Coding[0].Code != "SMART-on-FHIR" {
		t.Errorf("rest.security.service = %+v, want SMART-on-FHIR on a server with authorization", sec)
	}
	ops := map[string]string{}
	for _, o := range cs.Rest[0].Operation {
		ops["system:"+o.Name] = o.Definition
	}
	for _, r := range cs.Rest[0].Resource {
		for _, o := range r.Operation {
			ops[r.Type+":"+o.Name] = o.Definition
		}
	}
	// SMART's oauth-uris extension names the token (and, with
	// registration on, the register) endpoint (issue 15 item 5).
	uris := map[string]string{}
	for _, e := range cs.Rest[0].Security.Extension {
		if e.URL == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris" {
			for _, u := range e.Extension {
				uris[u.URL] = u.ValueURI
			}
		}
	}
	if uris["token"] != s.URL+"/token" || uris["register"] != s.URL+"/register" {
		t.Errorf("oauth-uris = %v, want token and register under %s", uris, s.URL)
	}
	for k, want := range map[string]string{
		"system:patient-export": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
		"system:group-export":   "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
		"system:export":         "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export",
		"Patient:export":        "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export",
		"Group:export":          "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export",
	} {
		if ops[k] != want {
			t.Errorf("operation %s = %q, want %q (R119)", k, ops[k], want)
		}
	}

	res = s.do("GET", "/Group/group-10", nil)
	var g struct{ ResourceType, ID string }
	if res.Status != http.StatusOK || json.Unmarshal(res.Body, &g) != nil || g.ID != "group-10" {
		t.Errorf("GET /Group/group-10 = %d %s (R122)", res.Status, res.Body)
	}
	if res := s.do("GET", "/Group/nope", nil); res.Status != http.StatusNotFound {
		t.Errorf("GET /Group/nope = %d, want 404", res.Status)
	} else {
		checkOutcome(t, res)
	}
	for query, want := range map[string]int{
		"": 3, "?name=sample": 2, "?name:exact=All%20patients": 1, "?identifier=group-all": 1,
		"?identifier=urn:tranche:generate:group|group-10": 1, "?_id=group-10,group-all": 2, "?name=zzz": 0,
	} {
		res := s.do("GET", "/Group"+query, nil)
		var b struct {
			ResourceType string
			Total        int
			Entry        []json.RawMessage
		}
		if res.Status != http.StatusOK || json.Unmarshal(res.Body, &b) != nil || b.ResourceType != "Bundle" || b.Total != want || len(b.Entry) != want {
			t.Errorf("GET /Group%s = %d total %d, want %d matches (R122)", query, res.Status, b.Total, want)
		}
	}
	if res := s.do("GET", "/Group?_sort=name", nil); res.Status != http.StatusBadRequest {
		t.Errorf("GET /Group?_sort=name = %d, want 400", res.Status)
	}
}
