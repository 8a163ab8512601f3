package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
)

// TestLenient: with Prefer: handling=lenient, unsupported parameters and
// values are ignored, the export runs, and the manifest's error file holds
// one OperationOutcome per ignored item naming it; without it (or with
// handling=strict) the same request is a 400 (R16, R17, R19, R20, R30, R34).
func TestLenient(t *testing.T) {
	dir := generated(t, 12)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	q := url.QueryEscape

	// A patient outside group-10, and one of its members.
	members := ds.groups["group-10"]
	var outsider string
	for id := range ds.patient {
		if !slices.Contains(members, id) && (outsider == "" || id < outsider) {
			outsider = id
		}
	}

	type want struct {
		filter filter
		names  []string // what the error file's outcomes name, one each
	}
	for _, tc := range []struct {
		name, method, path, body string
		want                     want
	}{
		{name: "everything at once", path: "/$export?_type=Patient,Nope,Condition&_typeFilter=" + q("Condition?nonsense=1") +
			"&foo=bar&_minimumFileSize=10&includeAssociatedData=_custom&organizeOutputBy=Encounter&_elements=" + q("Patient.name.given") +
			"&_outputFormat=" + q("text/csv") + "&allowPartialManifests=maybe",
			want: want{filter: filter{types: []string{"Patient", "Condition"}},
				names: []string{"Nope", "_typeFilter", "foo", "_minimumFileSize", "includeAssociatedData", "organizeOutputBy", "_elements", "_outputFormat", "allowPartialManifests"}}},
		{name: "patient level Group type R17", path: "/Patient/$export?_type=Condition,Group",
			want: want{filter: filter{types: []string{"Condition"}, compOnly: true}, names: []string{"Group"}}},
		{name: "group level unsupported query keeps the supported one", method: "POST", path: "/Group/group-10/$export",
			body: `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Observation"},
				{"name":"_typeFilter","valueString":"Observation?category=laboratory"},
				{"name":"_typeFilter","valueString":"Observation?_sort=date"}]}`,
			want: want{filter: filter{types: []string{"Observation"}, patients: ds.groups["group-10"],
				match: bf{"Observation": {func(m map[string]any) bool { return coded(m, "category", obsCategory, "laboratory") }}}.match},
				names: []string{"_sort"}}},
		// Issue 15 item 4: unknown patients, and non-members at Group
		// level, are dropped and named (R24, requirements 1.5).
		{name: "patient level unknown patient", method: "POST", path: "/Patient/$export",
			body: postPatients(members[0], "nobody"),
			want: want{filter: filter{patients: members[:1], compOnly: true}, names: []string{"Patient/nobody"}}},
		{name: "group level non-member and unknown patient", method: "POST", path: "/Group/group-10/$export",
			body: postPatients(members[1], outsider, "nobody"),
			want: want{filter: filter{patients: members[1:2]}, names: []string{"Patient/" + outsider + " is not a member", "Patient/nobody"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			method := tc.method
			if method == "" {
				method = "GET"
			}
			// Strict (the default, and handling=strict): 400 naming something.
			for _, prefer := range []string{"respond-async", "respond-async, handling=strict"} {
				res := s.do(method, tc.path, []byte(tc.body), "Prefer", prefer, "Content-Type", "application/fhir+json")
				if res.Status != http.StatusBadRequest {
					t.Fatalf("%s %s with Prefer %q = %d %s, want 400 (R19)", method, tc.path, prefer, res.Status, res.Body)
				}
				checkOutcome(t, res)
			}
			res := s.do(method, tc.path, []byte(tc.body), "Prefer", "respond-async, handling=lenient", "Content-Type", "application/fhir+json")
			if res.Status != http.StatusAccepted {
				t.Fatalf("%s %s lenient = %d %s, want 202 (R20)", method, tc.path, res.Status, res.Body)
			}
			if pa := res.Header.Get("Preference-Applied"); !strings.Contains(pa, "handling=lenient") {
				t.Errorf("Preference-Applied = %q, want handling=lenient", pa)
			}
			m := s.wait(res.Header.Get("Content-Location"))
			tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
			f := tc.want.filter
			f.txTimeUpTo = tx
			if diff := cmp.Diff(ds.expect(f), keys(t, s.download(m.Output, false))); diff != "" {
				t.Errorf("exported set mismatch (-want +got):\n%s", diff)
			}
			if len(m.Error) != 1 {
				t.Fatalf("manifest error = %+v, want one OperationOutcome file (R20)", m.Error)
			}
			var texts []string
			for _, l := range s.download(m.Error, false) {
				var oo struct {
					Issue []struct {
						Severity, Code string
						Details        struct{ Text string }
					}
				}
				if err := json.Unmarshal(l.Raw, &oo); err != nil || len(oo.Issue) != 1 || oo.Issue[0].Details.Text == "" {
					t.Fatalf("error line is not an OperationOutcome with one described issue: %s", l.Raw)
				}
				texts = append(texts, oo.Issue[0].Details.Text)
			}
			if len(texts) != len(tc.want.names) {
				t.Errorf("error file has %d outcomes, want one per ignored item (%d): %q", len(texts), len(tc.want.names), texts)
			}
			for _, name := range tc.want.names {
				if !slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, name) }) {
					t.Errorf("no outcome names %q: %q", name, texts)
				}
			}
		})
	}

	t.Run("nothing left of _type", func(t *testing.T) {
		s.t = t
		res := s.do("GET", "/$export?_type=Nope", nil, "Prefer", "respond-async, handling=lenient")
		if res.Status != http.StatusBadRequest {
			t.Fatalf("lenient _type=Nope = %d, want 400: exporting everything instead is not what was asked", res.Status)
		}
		checkOutcome(t, res)
	})
	t.Run("never lenient about _since, nor about every patient unknown", func(t *testing.T) {
		s.t = t
		for _, tc := range []struct{ method, path, body string }{
			{"GET", "/$export?_since=yesterday", ""},
			{"POST", "/Patient/$export", postPatients("nobody")},
			{"POST", "/$export", postPatients("x")},
		} {
			res := s.do(tc.method, tc.path, []byte(tc.body), "Prefer", "respond-async, handling=lenient", "Content-Type", "application/fhir+json")
			if res.Status != http.StatusBadRequest {
				t.Errorf("lenient %s %s = %d, want 400", tc.method, tc.path, res.Status)
			}
		}
	})
	t.Run("no error file without lenient items", func(t *testing.T) {
		s.t = t
		res := s.do("GET", "/$export?_type=Patient", nil, "Prefer", "respond-async, handling=lenient")
		m := s.wait(res.Header.Get("Content-Location"))
		if len(m.Error) != 0 {
			t.Errorf("error = %+v, want [] (R61)", m.Error)
		}
	})
}

// TestSeparateExportStatus: Prefer: respond-async, separate-export-status is
// echoed in Preference-Applied (R40), and every status poll answers 200 with
// the job's state in X-Export-Status: 202 Accepted while running, the
// failure's status, 200 OK when complete (R67).
func TestSeparateExportStatus(t *testing.T) {
	dir := generated(t, 5)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	s := startServer(t, cfg)

	for _, prefer := range [][]string{{"respond-async, separate-export-status"}, {"respond-async", "separate-export-status"}, {"Respond-Async,Separate-Export-Status"}} {
		var hdr []string
		for _, p := range prefer {
			hdr = append(hdr, "Prefer", p)
		}
		res := s.do("GET", "/$export?_type=Patient", nil, hdr...)
		if res.Status != http.StatusAccepted {
			t.Fatalf("kick-off = %d %s", res.Status, res.Body)
		}
		pa := strings.ToLower(strings.Join(res.Header.Values("Preference-Applied"), ","))
		if !strings.Contains(pa, "respond-async") || !strings.Contains(pa, "separate-export-status") {
			t.Errorf("Prefer %q: Preference-Applied = %q, want respond-async and separate-export-status (R40)", prefer, pa)
		}
		statusURL := res.Header.Get("Content-Location")
		deadline := time.Now().Add(time.Minute)
		for {
			res := s.do("GET", statusURL, nil)
			if res.Status != http.StatusOK {
				t.Fatalf("poll under separate-export-status = %d, want 200 (R67)", res.Status)
			}
			xs := res.Header.Get("X-Export-Status")
			if xs == "202 Accepted" {
				if time.Now().After(deadline) {
					t.Fatal("export did not finish")
				}
				time.Sleep(5 * time.Millisecond) // poll interval
				continue
			}
			if xs != "200 OK" {
				t.Fatalf("X-Export-Status = %q, want 200 OK or 202 Accepted (R67)", xs)
			}
			var m manifest
			if err := json.Unmarshal(res.Body, &m); err != nil {
				t.Fatal(err)
			}
			checkManifestShape(t, res.Body, m)
			break
		}
	}

	// Without the preference the status codes are the job's (R45).
	res := s.do("GET", "/$export?_type=Patient", nil, "Prefer", "respond-async")
	if pa := res.Header.Get("Preference-Applied"); strings.Contains(pa, "separate-export-status") {
		t.Errorf("Preference-Applied = %q without separate-export-status asked", pa)
	}
	if res := s.do("GET", res.Header.Get("Content-Location"), nil); res.Header.Get("X-Export-Status") != "" {
		t.Errorf("X-Export-Status %q without separate-export-status", res.Header.Get("X-Export-Status"))
	}

	// Running and failed jobs, held in those states: jobs stored directly,
	// so no workflow moves them on.
	clientID := s.tokens.(*client.BackendServices).ClientID
	for _, tc := range []struct {
		status   bulk.Status
		want     string
		separate bool
		code     int
	}{
		{bulk.StatusInProgress, "202 Accepted", true, http.StatusOK},
		{bulk.StatusFailed, "500 Internal Server Error", true, http.StatusOK},
		{bulk.StatusInProgress, "", false, http.StatusAccepted},
		{bulk.StatusFailed, "", false, http.StatusInternalServerError},
	} {
		id := storeJob(t, s, clientID, tc.status, bulk.ExportRequest{SeparateStatus: tc.separate})
		res := s.do("GET", "/jobs/"+id, nil)
		if res.Status != tc.code || res.Header.Get("X-Export-Status") != tc.want {
			t.Errorf("%s job (separate %v): %d X-Export-Status %q, want %d %q (R45, R49, R67)", tc.status, tc.separate, res.Status,
				res.Header.Get("X-Export-Status"), tc.code, tc.want)
		}
		if tc.status == bulk.StatusFailed {
			checkOutcome(t, res)
		} else if res.Header.Get("X-Progress") == "" || res.Header.Get("Retry-After") == "" {
			t.Errorf("running job: X-Progress %q Retry-After %q (R46, R47)", res.Header.Get("X-Progress"), res.Header.Get("Retry-After"))
		}
	}
}

var storedJobs int

// storeJob stores a job of clientID in the given status, without starting
// its workflow, and returns its id.
func storeJob(t *testing.T, s *server, clientID string, status bulk.Status, req bulk.ExportRequest) string {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	req.Level, req.OutputFormat, req.RequestURL = bulk.LevelSystem, "application/fhir+ndjson", s.URL+"/$export"
	storedJobs++
	j := &bulk.Job{ID: fmt.Sprintf("stored-%d-%s", storedJobs, status), ClientID: clientID,
		Status: status, Request: req, TransactionTime: now, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour),
		Failure: "Stored as failed by the test."}
	if err := s.app.DB.Jobs().CreateJob(context.Background(), j); err != nil {
		t.Fatal(err)
	}
	return j.ID
}
