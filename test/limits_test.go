package test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
)

// TestKickoffQueryHardening: a kick-off query with a bad percent-escape
// is a 400 (r.URL.Query() used to drop the pair and export more than was
// asked), and a query string or _typeFilter past the limits is a 400 that
// names the limit, before any work.
func TestKickoffQueryHardening(t *testing.T) {
	s := startServer(t, testConfig(t))
	for _, tc := range []struct {
		name, query, want string
	}{
		{"bad escape in a value", "_type=Patient&_typeFilter=Patient%3Fgender%3Dfe%ZZmale", "percent-encoded"},
		{"bad escape in a name", "_type=Patient&_type%ZZFilter=x", "percent-encoded"},
		{"query over 64 KiB", "_type=Patient&_typeFilter=Observation%3Fcode%3D" + strings.Repeat("c,", 40_000), "at most 65536"},
		{"_elements over the limit", "_elements=" + strings.Repeat("id,", 600), "more than 500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.do("GET", "/$export?"+tc.query, nil, "Accept", "application/fhir+json", "Prefer", "respond-async")
			if res.Status != http.StatusBadRequest || !strings.Contains(string(res.Body), tc.want) {
				t.Errorf("GET /$export?%.60s… = %d %s, want 400 naming %q", tc.query, res.Status, res.Body, tc.want)
			}
			checkOutcome(t, res)
		})
	}
}

// TestMethodHardening: HEAD on a kick-off route answers 405 with Allow and
// starts nothing (a GET route also matches HEAD); CONNECT gets a FHIR
// OperationOutcome, not Go's plain-text 404; a bad file key is a plain
// 404 without the store's wording.
func TestMethodHardening(t *testing.T) {
	cfg := testConfig(t)
	importInto(t, cfg, importTime, generated(t, 3))
	s := startServer(t, cfg)
	for _, path := range []string{"/$export", "/Patient/$export", "/Group/group-all/$export"} {
		res := s.do("HEAD", path, nil, "Accept", "application/fhir+json", "Prefer", "respond-async")
		if res.Status != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, POST" || res.Header.Get("Content-Location") != "" {
			t.Errorf("HEAD %s = %d (Allow %q, Content-Location %q), want 405 with Allow: GET, POST and no job", path, res.Status, res.Header.Get("Allow"), res.Header.Get("Content-Location"))
		}
	}
	jobs := 0
	if err := s.app.DB.Jobs().ListJobs(context.Background(), func(*bulk.Job) error { jobs++; return nil }); err != nil || jobs != 0 {
		t.Errorf("%d jobs after HEAD kick-offs (%v), want none", jobs, err)
	}

	c, err := net.Dial("tcp", strings.TrimPrefix(s.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: "CONNECT"})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/fhir+json") || !strings.Contains(string(body), "OperationOutcome") {
		t.Errorf("CONNECT = %d %q %s, want 405 with an OperationOutcome", res.StatusCode, res.Header.Get("Content-Type"), body)
	}

	m := s.wait(s.kickoff("GET", "/$export?_type=Patient", nil))
	job := strings.TrimPrefix(m.Output[0].URL, s.URL+"/files/")
	job, _, _ = strings.Cut(job, "/")
	for _, key := range []string{job + "/nope.ndjson", job + "/a/../../x", job + "/%2e%2e/x", job + "//x"} {
		res := s.do("GET", "/files/"+key, nil)
		if res.Status != http.StatusNotFound || strings.Contains(strings.ToLower(string(res.Body)), "key") {
			t.Errorf("GET /files/%s = %d %s, want 404 No such file", key, res.Status, res.Body)
		}
	}
}
