package api_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/config"
)

// fileSizePatients is the size of the store the file-size tests export.
const fileSizePatients = 6

// startFileSizeServer is an open local server over fileSizePatients
// generated patients (and the generator's Groups).
func startFileSizeServer(t *testing.T) string {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir, cfg.Shards, cfg.Demo, cfg.PurgeEvery = t.TempDir(), 2, false, 0
	cfg.Auth.Open = true
	loadPatients(t, cfg, fileSizePatients)
	l, err := app.NewLocal(context.Background(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatalf("NewLocal: %v", err)
	}
	hs := httptest.NewServer(l.API.Handler())
	t.Cleanup(func() { hs.Close(); l.Close() })
	return hs.URL
}

// kickoffRaw sends an $export kick-off and returns the response with its
// body read.
func kickoffRaw(t *testing.T, method, u, body, prefer string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", prefer)
	if body != "" {
		req.Header.Set("Content-Type", "application/fhir+json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, raw
}

// outcome is the part of an OperationOutcome the tests read.
type outcome struct {
	ResourceType string `json:"resourceType"`
	Issue        []struct {
		Severity string `json:"severity"`
		Code     string `json:"code"`
		Details  struct {
			Text string `json:"text"`
		} `json:"details"`
	} `json:"issue"`
}

// sizeParams wraps parameters in a POST Parameters body.
func sizeParams(params ...string) string {
	return `{"resourceType":"Parameters","parameter":[` + strings.Join(params, ",") + `]}`
}

// TestFileSizeParams_Rejected: _minimumFileSize and _maximumFileSize
// (requirements 1.4.11) are kick-off parameters the IG defines and this
// server does not implement (its files roll at Export.MaxFileResources
// resources), so a kick-off that gives either is refused naming it,
// whatever the value, at every level and in a GET query or a POST body:
// 400 with an OperationOutcome, so that the client can retry without it
// (requirements 1.5, R19). Where the server reads the value as a string
// (a query, a valueString, a valuePositiveInt) the issue is not-supported; when both are given
// the first in name order (_maximumFileSize) is named.
func TestFileSizeParams_Rejected(t *testing.T) {
	base := startFileSizeServer(t)
	for _, tc := range []struct {
		name, method, path, body string
		param                    string // the parameter the outcome names
		code                     string // its issue code; "" for any
	}{
		{name: "Minimum", path: "/$export?_minimumFileSize=1000", param: "_minimumFileSize", code: "not-supported"},
		{name: "Maximum", path: "/$export?_maximumFileSize=1048576", param: "_maximumFileSize", code: "not-supported"},
		{name: "Both", path: "/$export?_minimumFileSize=10&_maximumFileSize=1000", param: "_maximumFileSize", code: "not-supported"},
		{name: "MaximumBelowMinimum", path: "/$export?_minimumFileSize=1000&_maximumFileSize=10", param: "_maximumFileSize", code: "not-supported"},
		{name: "Zero", path: "/$export?_minimumFileSize=0", param: "_minimumFileSize", code: "not-supported"},
		{name: "Negative", path: "/$export?_maximumFileSize=-1", param: "_maximumFileSize", code: "not-supported"},
		{name: "NotANumber", path: "/$export?_maximumFileSize=big", param: "_maximumFileSize", code: "not-supported"},
		{name: "Empty", path: "/$export?_minimumFileSize=", param: "_minimumFileSize", code: "not-supported"},
		{name: "Repeated", path: "/$export?_minimumFileSize=1&_minimumFileSize=2", param: "_minimumFileSize", code: "not-supported"},
		{name: "BesideSupported", path: "/$export?_type=Patient&_maximumFileSize=1000", param: "_maximumFileSize", code: "not-supported"},
		{name: "PatientLevel", path: "/Patient/$export?_maximumFileSize=1000", param: "_maximumFileSize", code: "not-supported"},
		{name: "GroupLevel", path: "/Group/group-10/$export?_minimumFileSize=1000", param: "_minimumFileSize", code: "not-supported"},
		{name: "PostQuery", method: "POST", path: "/$export?_maximumFileSize=1000", body: sizeParams(`{"name":"_type","valueString":"Patient"}`),
			param: "_maximumFileSize", code: "not-supported"},
		{name: "PostValueString", method: "POST", path: "/$export", body: sizeParams(`{"name":"_maximumFileSize","valueString":"1000"}`),
			param: "_maximumFileSize", code: "not-supported"},
		// positiveInt is the parameter's type: refused by name like the rest.
		{name: "PostValuePositiveInt", method: "POST", path: "/$export", body: sizeParams(`{"name":"_maximumFileSize","valuePositiveInt":1000}`),
			param: "_maximumFileSize", code: "not-supported"},
		{name: "PostValueIntegerNegative", method: "POST", path: "/Patient/$export", body: sizeParams(`{"name":"_minimumFileSize","valueInteger":-5}`),
			param: "_minimumFileSize", code: "not-supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = "GET"
			}
			for _, prefer := range []string{"respond-async", "respond-async, handling=strict"} {
				res, body := kickoffRaw(t, method, base+tc.path, tc.body, prefer)
				if res.StatusCode != http.StatusBadRequest {
					t.Fatalf("%s %s (Prefer %q) = %d %s, want 400 (R19)", method, tc.path, prefer, res.StatusCode, body)
				}
				if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/fhir+json") {
					t.Errorf("%s %s: Content-Type %q, want application/fhir+json", method, tc.path, ct)
				}
				if loc := res.Header.Get("Content-Location"); loc != "" {
					t.Errorf("%s %s: Content-Location %q on a refused kick-off", method, tc.path, loc)
				}
				var oo outcome
				if err := json.Unmarshal(body, &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
					t.Fatalf("%s %s: body %s (%v), want an OperationOutcome with one issue", method, tc.path, body, err)
				}
				is := oo.Issue[0]
				if is.Severity != "error" || (tc.code != "" && is.Code != tc.code) || !strings.Contains(is.Details.Text, tc.param) {
					t.Errorf("%s %s: issue %+v, want severity error, code %q, naming %s", method, tc.path, is, tc.code, tc.param)
				}
			}
		})
	}
}

// TestFileSizeParams_Lenient: under Prefer: handling=lenient (requirements
// 1.5, R20) a kick-off with _minimumFileSize and _maximumFileSize, valid
// or not, runs as if they were not there, and the manifest's error file
// names each, one OperationOutcome per parameter.
func TestFileSizeParams_Lenient(t *testing.T) {
	base := startFileSizeServer(t)
	const path = "/$export?_type=Patient&_minimumFileSize=0&_maximumFileSize=big"
	res, body := kickoffRaw(t, "GET", base+path, "", "respond-async, handling=lenient")
	if res.StatusCode != http.StatusAccepted {
		t.Fatalf("GET %s lenient = %d %s, want 202 (R20)", path, res.StatusCode, body)
	}
	if pa := res.Header.Get("Preference-Applied"); !strings.Contains(pa, "handling=lenient") {
		t.Errorf("Preference-Applied = %q, want handling=lenient", pa)
	}
	m := completeManifest(t, res.Header.Get("Content-Location"))

	var types []string
	var patients int
	for _, o := range m.Output {
		types = append(types, o.Type)
		body, _ := get(t, o.URL, nil)
		patients += bytes.Count(body, []byte("\n"))
	}
	if len(types) == 0 || slices.ContainsFunc(types, func(s string) bool { return s != "Patient" }) || patients != fileSizePatients {
		t.Errorf("output %v with %d Patients, want the %d Patients an export without the size parameters has", types, patients, fileSizePatients)
	}

	if len(m.Error) != 1 || m.Error[0].Type != "OperationOutcome" {
		t.Fatalf("manifest error = %+v, want one OperationOutcome file (R20)", m.Error)
	}
	errs, _ := get(t, m.Error[0].URL, nil)
	var named []string
	sc := bufio.NewScanner(bytes.NewReader(errs))
	for sc.Scan() {
		var oo outcome
		if err := json.Unmarshal(sc.Bytes(), &oo); err != nil || oo.ResourceType != "OperationOutcome" || len(oo.Issue) != 1 {
			t.Fatalf("error file line %s (%v), want an OperationOutcome with one issue", sc.Bytes(), err)
		}
		text := oo.Issue[0].Details.Text
		for _, p := range []string{"_minimumFileSize", "_maximumFileSize"} {
			if strings.Contains(text, p) {
				named = append(named, p)
			}
		}
		if !strings.Contains(text, "ignored") {
			t.Errorf("error file issue %q does not say the parameter was ignored", text)
		}
	}
	slices.Sort(named)
	if want := []string{"_maximumFileSize", "_minimumFileSize"}; !slices.Equal(named, want) {
		t.Errorf("error file names %v, want each of %v once:\n%s", named, want, errs)
	}
}

// sizeManifest is the part of a manifest the file-size tests read.
type sizeManifest struct {
	Output []struct{ Type, URL string } `json:"output"`
	Error  []struct{ Type, URL string } `json:"error"`
}

// completeManifest polls statusURL until the export is done (each poll
// answers at once: readiness, not sleeps) and returns its manifest.
func completeManifest(t *testing.T, statusURL string) sizeManifest {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		res, err := http.Get(statusURL)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		switch res.StatusCode {
		case http.StatusAccepted:
			continue
		case http.StatusOK:
			var m sizeManifest
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatalf("manifest %s: %v", raw, err)
			}
			return m
		}
		t.Fatalf("GET %s = %d %s", statusURL, res.StatusCode, raw)
	}
	t.Fatal("the export did not finish in a minute")
	return sizeManifest{}
}
