package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/generate"
)

var (
	importTime = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	genBase    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

// generated writes a small generated dataset and returns its directory.
func generated(t testing.TB, patients int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "gen")
	if _, err := generate.Dir(context.Background(), generate.Options{Patients: patients, Seed: 7, Base: genBase}, dir, nil); err != nil {
		t.Fatalf("generate.Dir: %v", err)
	}
	return dir
}

// exportCase is one export and its independently computed expectation.
type exportCase struct {
	name   string
	method string
	path   string
	body   string
	filter filter
	gzip   bool
}

func runExportCases(t *testing.T, s *server, ds *dataset, cases []exportCase) {
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			method := tc.method
			if method == "" {
				method = "GET"
			}
			m := s.wait(s.kickoff(method, tc.path, []byte(tc.body)))
			tx, _ := time.Parse(time.RFC3339Nano, m.TransactionTime)
			tc.filter.txTimeUpTo = tx
			lines := s.download(m.Output, tc.gzip)
			if m.OutputOrganizedBy != "" {
				// Patient blocks: the headers are not exported resources.
				lines = slices.DeleteFunc(lines, func(l line) bool { return l.Type == "Parameters" })
			}
			got := keys(t, lines)
			want := ds.expect(tc.filter)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("%s %s exported set mismatch (-want +got):\n%s", method, tc.path, diff)
			}
			if len(want) == 0 && len(m.Output) != 0 {
				t.Errorf("empty export lists %d output files, want none (R60)", len(m.Output))
			}
			if req := m.Request; !strings.HasSuffix(req, tc.path) {
				t.Errorf("manifest request = %q, want the kick-off URL ending %q (R56)", req, tc.path)
			}
		})
	}
}

func postPatients(ids ...string) string {
	var ps []string
	for _, id := range ids {
		ps = append(ps, fmt.Sprintf(`{"name":"patient","valueReference":{"reference":"Patient/%s"}}`, id))
	}
	return `{"resourceType":"Parameters","parameter":[` + strings.Join(ps, ",") + `]}`
}

// TestExportGenerated drives full exports at every level over generated
// data (R2, R3, R4, R12, R14, R23, R35, R38, R55, R58–R60, R75, R76, R78).
func TestExportGenerated(t *testing.T) {
	dir := generated(t, 60)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)

	groups := slices.Sorted(maps.Keys(ds.groups))
	if len(groups) < 3 {
		t.Fatalf("generated data has %d Groups, want at least 3", len(groups))
	}
	var lus []time.Time
	for _, r := range ds.byKey {
		lus = append(lus, r.LastUpdated)
	}
	sort.Slice(lus, func(i, j int) bool { return lus[i].Before(lus[j]) })
	since, until := lus[len(lus)/3], lus[2*len(lus)/3]
	q := url.QueryEscape
	small := groups[0]
	for _, g := range groups {
		if len(ds.groups[g]) < len(ds.groups[small]) {
			small = g
		}
	}
	members := ds.groups[small]

	cases := []exportCase{
		{name: "system", path: "/$export", gzip: true},
		{name: "system _type repeats", path: "/$export?_type=Patient,Observation&_type=Condition",
			filter: filter{types: []string{"Patient", "Observation", "Condition"}}},
		{name: "system _since _until", path: "/$export?_since=" + q(since.Format(time.RFC3339Nano)) + "&_until=" + q(until.Format(time.RFC3339Nano)),
			filter: filter{since: since, until: until}},
		{name: "system POST", method: "POST", path: "/$export",
			body:   `{"resourceType":"Parameters","parameter":[{"name":"_type","valueString":"Encounter"},{"name":"_outputFormat","valueString":"ndjson"}]}`,
			filter: filter{types: []string{"Encounter"}}},
		{name: "patient", path: "/Patient/$export", filter: filter{compOnly: true}, gzip: true},
		{name: "patient POST patient", method: "POST", path: "/Patient/$export", body: postPatients(members[0], members[1]),
			filter: filter{compOnly: true, patients: []string{members[0], members[1]}}},
		{name: "group _type _since", path: "/Group/" + small + "/$export?_type=Observation,Patient&_since=" + q(since.Format(time.RFC3339Nano)),
			filter: filter{types: []string{"Observation", "Patient"}, since: since, patients: members, newMembers: ds.joinedAfter(small, since)}},
		{name: "group POST patient", method: "POST", path: "/Group/" + small + "/$export", body: postPatients(members[0]),
			filter: filter{patients: []string{members[0]}}},
	}
	for _, g := range groups {
		cases = append(cases, exportCase{name: "group " + g, path: "/Group/" + g + "/$export", filter: filter{patients: ds.groups[g]}})
	}
	runExportCases(t, s, ds, cases)

	t.Run("bytes are copied as imported", func(t *testing.T) {
		s.t = t
		m := s.wait(s.kickoff("GET", "/$export?_type=Observation", nil))
		want := map[string][]byte{}
		readLines(t, filepath.Join(dir, "Observation.ndjson"), func(b []byte) {
			var h struct{ ID string }
			_ = json.Unmarshal(b, &h)
			want[h.ID] = append([]byte(nil), b...)
		})
		for _, l := range s.download(m.Output, false) {
			if !bytes.Equal(l.Raw, want[l.ID]) {
				t.Fatalf("Observation/%s exported as\n%s\nwant the imported bytes\n%s", l.ID, l.Raw, want[l.ID])
			}
		}
	})
}

func readLines(t *testing.T, path string, fn func([]byte)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		fn(l)
	}
}

// TestExportSynthea runs the same checks on synthea-100, whose Groups list
// members as urn:uuid references and whose resources mostly lack
// meta.lastUpdated.
func TestExportSynthea(t *testing.T) {
	dir := sharedData(t, "synthea-100")
	cfg := testConfig(t)
	cfg.Export.MaxFileResources = 5000
	rep := importInto(t, cfg, importTime, dir)
	var total int64
	for _, n := range rep.Resources {
		total += n
	}
	if total != 38483 {
		t.Fatalf("imported %d resources, want 38483", total)
	}
	ds := readDataset(t, dir, importTime)
	s := startServer(t, cfg)
	cases := []exportCase{
		{name: "system", path: "/$export", gzip: true},
		{name: "patient", path: "/Patient/$export", filter: filter{compOnly: true}},
		{name: "system _since after import", path: "/$export?_since=" + url.QueryEscape(importTime.Format(time.RFC3339)),
			filter: filter{since: importTime}},
	}
	for _, g := range slices.Sorted(maps.Keys(ds.groups)) {
		cases = append(cases, exportCase{name: "group " + g, path: "/Group/" + g + "/$export", filter: filter{patients: ds.groups[g]}})
	}
	runExportCases(t, s, ds, cases)
}

// TestKickoffErrors: every bad kick-off is a 4xx OperationOutcome (R6, R11,
// R13, R16, R18, R19, R24, R25, R36).
func TestKickoffErrors(t *testing.T) {
	dir := generated(t, 12)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	s := startServer(t, cfg)
	tests := []struct {
		name, method, path, body string
		headers                  []string
		want                     int
	}{
		{"unknown format R11", "GET", "/$export?_outputFormat=application/fhir%2Bjson", "", nil, 400},
		{"bad since R13", "GET", "/$export?_since=last-week", "", nil, 400},
		{"unknown type R16", "GET", "/$export?_type=Nope", "", nil, 400},
		{"non-compartment type R18", "GET", "/Patient/$export?_type=Organization", "", nil, 400},
		{"Group at Group level (lists other patients)", "GET", "/Group/group-10/$export?_type=Group", "", nil, 400},
		{"unsupported parameter R19", "GET", "/$export?_minimumFileSize=1000", "", nil, 400},
		{"unknown parameter", "GET", "/$export?foo=bar", "", nil, 400},
		{"unknown patient R24", "POST", "/Patient/$export", postPatients("nobody"), nil, 400},
		{"patient on system R25", "POST", "/$export", postPatients("x"), nil, 400},
		{"unknown group R36", "GET", "/Group/no-such-group/$export", "", nil, 404},
		{"bad JSON body", "POST", "/$export", "{", nil, 400},
		{"XML accept", "GET", "/$export", "", []string{"Accept", "application/fhir+xml"}, 406},
		{"bad content type", "POST", "/$export", "<Parameters/>", []string{"Content-Type", "application/xml"}, 400},
		{"unknown route", "GET", "/Nope/$export", "", nil, 404},
		{"wrong method", "PUT", "/$export", "", nil, 404},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s.t = t
			res := s.do(tc.method, tc.path, []byte(tc.body), tc.headers...)
			if res.Status != tc.want {
				t.Fatalf("%s %s = %d %s, want %d", tc.method, tc.path, res.Status, res.Body, tc.want)
			}
			checkOutcome(t, res)
		})
	}
}

// checkOutcome checks an OperationOutcome error body (R6).
func checkOutcome(t *testing.T, res response) {
	t.Helper()
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
		t.Errorf("error Content-Type = %q, want application/fhir+json", ct)
	}
	var oo struct {
		ResourceType string
		Issue        []struct {
			Severity, Code string
			Details        struct{ Text string }
		}
	}
	if err := json.Unmarshal(res.Body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) == 0 ||
		oo.Issue[0].Severity == "" || oo.Issue[0].Code == "" || oo.Issue[0].Details.Text == "" {
		t.Errorf("body is not an OperationOutcome with a described issue: %s", res.Body)
	}
}

// TestCancel: DELETE stops the job and removes its files, and the status URL
// is then 404 with an OperationOutcome (R68–R71).
func TestCancel(t *testing.T) {
	dir := generated(t, 12)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	s := startServer(t, cfg)

	statusURL := s.kickoff("GET", "/$export", nil)
	m := s.wait(statusURL)
	if len(m.Output) == 0 {
		t.Fatal("no output to cancel")
	}
	res := s.do("DELETE", statusURL, nil)
	if res.Status != http.StatusAccepted {
		t.Fatalf("DELETE %s = %d %s, want 202 (R68)", statusURL, res.Status, res.Body)
	}
	res = s.do("GET", statusURL, nil)
	if res.Status != http.StatusNotFound {
		t.Fatalf("GET after DELETE = %d, want 404 (R69)", res.Status)
	}
	checkOutcome(t, res)
	if res := s.do("GET", m.Output[0].URL, nil); res.Status != http.StatusNotFound {
		t.Errorf("file after DELETE = %d, want 404 (R71, R82)", res.Status)
	}
	if res := s.do("DELETE", statusURL, nil); res.Status != http.StatusNotFound {
		t.Errorf("second DELETE = %d, want 404 (R70)", res.Status)
	} else {
		checkOutcome(t, res)
	}
	left, err := s.app.Objects.List(context.Background(), strings.TrimPrefix(statusURL, s.URL+"/jobs/")+"/")
	if err != nil || len(left) != 0 {
		t.Errorf("files left after DELETE: %v (err %v)", left, err)
	}

	// A running job: cancel straight after kick-off.
	statusURL = s.kickoff("GET", "/$export", nil)
	if res := s.do("DELETE", statusURL, nil); res.Status != http.StatusAccepted {
		t.Fatalf("DELETE running = %d %s", res.Status, res.Body)
	}
	if res := s.do("GET", statusURL, nil); res.Status != http.StatusNotFound {
		t.Fatalf("GET after DELETE of a running job = %d, want 404", res.Status)
	}
	left, _ = s.app.Objects.List(context.Background(), strings.TrimPrefix(statusURL, s.URL+"/jobs/")+"/")
	if len(left) != 0 {
		t.Errorf("a cancelled running job left files: %v", left)
	}
}

// TestDeletedSince: deletions after _since are listed in `deleted` as
// transaction Bundles of DELETE entries and never appear in output (R88,
// R89).
func TestDeletedSince(t *testing.T) {
	dir := generated(t, 12)
	cfg := testConfig(t)
	importInto(t, cfg, importTime, dir)
	ds := readDataset(t, dir, importTime)

	var victims []string
	for k, r := range ds.byKey {
		if r.Type == "Observation" && len(victims) < 3 {
			victims = append(victims, k)
		}
	}
	sort.Strings(victims)
	var entries []string
	for _, v := range victims {
		entries = append(entries, fmt.Sprintf(`{"request":{"method":"DELETE","url":%q}}`, v))
	}
	bundle := filepath.Join(t.TempDir(), "delete.json")
	if err := os.WriteFile(bundle, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	deleteTime := importTime.Add(time.Hour)
	if rep := importInto(t, cfg, deleteTime, bundle); rep.Deleted != int64(len(victims)) {
		t.Fatalf("import deleted %d, want %d", rep.Deleted, len(victims))
	}
	for _, v := range victims {
		delete(ds.byKey, v)
	}
	s := startServer(t, cfg)
	since := importTime.Add(time.Minute)
	m := s.wait(s.kickoff("GET", "/$export?_type=Observation&_since="+url.QueryEscape(since.Format(time.RFC3339)), nil))
	if len(m.Output) != 0 {
		t.Errorf("output lists %d files; nothing changed after _since except deletions", len(m.Output))
	}
	got := deletedURLs(s.deletions(m.Deleted))
	if diff := cmp.Diff(victims, got); diff != "" {
		t.Errorf("deleted entries mismatch (-want +got):\n%s", diff)
	}
	// Without _since nothing deleted is exported either (R89).
	m = s.wait(s.kickoff("GET", "/$export?_type=Observation", nil))
	for _, k := range keys(t, s.download(m.Output, false)) {
		if slices.Contains(victims, k) {
			t.Errorf("deleted %s appears in output (R89)", k)
		}
	}
}
