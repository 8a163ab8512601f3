package fhir_test

import (
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/search"
)

// withHooks gives an input the search package's _typeFilter and _elements
// hooks, as the API does.
func withHooks(in fhir.KickoffInput, lenient bool) fhir.KickoffInput {
	in.TypeFilter, in.Element, in.Lenient = search.Canonical, search.CheckElement, lenient
	return in
}

func TestParseKickoffParameters(t *testing.T) {
	sys := func(r bulk.ExportRequest) bulk.ExportRequest {
		r.Level, r.OutputFormat = bulk.LevelSystem, fhir.NDJSON
		return r
	}
	tests := []struct {
		name    string
		in      fhir.KickoffInput
		lenient bool
		want    bulk.ExportRequest
		wantErr string
	}{
		{name: "_typeFilter v3 repeats", in: get(bulk.LevelSystem, "_typeFilter=Observation%3Fstatus%3Dfinal&_typeFilter=Condition%3Fcode%3D1"),
			want: sys(bulk.ExportRequest{TypeFilters: []string{"Observation?status=final", "Condition?code=1"}})},
		{name: "_typeFilter v2 comma list (R31)", in: get(bulk.LevelSystem, "_typeFilter=Observation%3Fstatus%3Dfinal%2Camended,Condition%3Fcode%3D1"),
			want: sys(bulk.ExportRequest{TypeFilters: []string{"Observation?status=final,amended", "Condition?code=1"}})},
		{name: "_typeFilter duplicates", in: get(bulk.LevelSystem, "_typeFilter=Observation%3Fstatus%3Dfinal&_typeFilter=Observation%3Fstatus%3Dfinal"),
			want: sys(bulk.ExportRequest{TypeFilters: []string{"Observation?status=final"}})},
		{name: "_typeFilter POST", in: post(bulk.LevelSystem, "", `{"resourceType":"Parameters","parameter":[{"name":"_typeFilter","valueString":"Observation?code=a,b"}]}`),
			want: sys(bulk.ExportRequest{TypeFilters: []string{"Observation?code=a,b"}})},
		{name: "_typeFilter result parameter (R29)", in: get(bulk.LevelSystem, "_typeFilter=Observation%3F_sort%3Ddate"), wantErr: bulk.EINVALID},
		{name: "_typeFilter unknown parameter (R30)", in: get(bulk.LevelSystem, "_typeFilter=Observation%3Fnope%3D1"), wantErr: bulk.EUNSUPPORTED},
		{name: "_elements", in: get(bulk.LevelSystem, "_elements=Patient.id,name&_elements=Observation.status"),
			want: sys(bulk.ExportRequest{Elements: []string{"Patient.id", "name", "Observation.status"}})},
		{name: "_elements nested", in: get(bulk.LevelSystem, "_elements=Patient.name.given"), wantErr: bulk.EINVALID},
		{name: "includeAssociatedData both: least restrictive (R32)", in: get(bulk.LevelSystem, "includeAssociatedData=RelevantProvenanceResources,LatestProvenanceResources"),
			want: sys(bulk.ExportRequest{Associated: bulk.RelevantProvenance})},
		{name: "includeAssociatedData latest", in: get(bulk.LevelSystem, "includeAssociatedData=LatestProvenanceResources"),
			want: sys(bulk.ExportRequest{Associated: bulk.LatestProvenance})},
		{name: "includeAssociatedData Coding (draft)", in: post(bulk.LevelSystem, "", `{"resourceType":"Parameters","parameter":[{"name":"includeAssociatedData","valueCoding":{"code":"LatestProvenanceResources"}}]}`),
			want: sys(bulk.ExportRequest{Associated: bulk.LatestProvenance})},
		{name: "includeAssociatedData custom (R34)", in: get(bulk.LevelSystem, "includeAssociatedData=_mine"), wantErr: bulk.EUNSUPPORTED},
		{name: "organizeOutputBy", in: get(bulk.LevelPatient, "organizeOutputBy=Patient"),
			want: bulk.ExportRequest{Level: bulk.LevelPatient, OutputFormat: fhir.NDJSON, OrganizeBy: "Patient"}},
		{name: "organizeOutputBy other type", in: get(bulk.LevelSystem, "organizeOutputBy=Encounter"), wantErr: bulk.EUNSUPPORTED},
		{name: "organizeOutputBy with a non-compartment type", in: get(bulk.LevelSystem, "organizeOutputBy=Patient&_type=Organization"), wantErr: bulk.EUNSUPPORTED},
		{name: "allowPartialManifests", in: post(bulk.LevelSystem, "", `{"resourceType":"Parameters","parameter":[{"name":"allowPartialManifests","valueBoolean":true}]}`),
			want: sys(bulk.ExportRequest{AllowPartial: true})},
		{name: "allowPartialManifests not boolean", in: get(bulk.LevelSystem, "allowPartialManifests=yes"), wantErr: bulk.EINVALID},
		{name: "lenient ignores and lists (R17, R20)", lenient: true,
			in: get(bulk.LevelPatient, "_type=Patient,Nope,Organization&foo=1&_typeFilter=Observation%3F_count%3D1&includeAssociatedData=_x&_outputFormat=csv"),
			want: bulk.ExportRequest{Level: bulk.LevelPatient, OutputFormat: fhir.NDJSON, Types: []string{"Patient", "Organization"}, Lenient: true,
				Ignored: []string{"_outputFormat", "_type \"Nope\"", "_typeFilter", "Unknown parameter \"foo\"", "includeAssociatedData"}}},
		// Issue 15 item 3: non-compartment types with a compartment type
		// are the referenced resources; alone they are refused (1.4.4).
		{name: "referenced types at Group level", in: get(bulk.LevelGroup, "_type=Encounter,Practitioner,Organization"),
			want: bulk.ExportRequest{Level: bulk.LevelGroup, OutputFormat: fhir.NDJSON, Types: []string{"Encounter", "Practitioner", "Organization"}}},
		{name: "only referenced types", in: get(bulk.LevelGroup, "_type=Practitioner,Organization"), wantErr: bulk.EUNSUPPORTED},
		{name: "only referenced types, lenient", lenient: true, in: get(bulk.LevelPatient, "_type=Practitioner"), wantErr: bulk.EUNSUPPORTED},
		{name: "Group at Patient level", in: get(bulk.LevelPatient, "_type=Patient,Group"), wantErr: bulk.EUNSUPPORTED},
		{name: "lenient keeps _since strict", lenient: true, in: get(bulk.LevelSystem, "_since=x"), wantErr: bulk.EINVALID},
		{name: "lenient with nothing left of _type", lenient: true, in: get(bulk.LevelSystem, "_type=Nope"), wantErr: bulk.EUNSUPPORTED},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fhir.ParseKickoff(withHooks(tc.in, tc.lenient))
			if tc.wantErr != "" {
				if code := bulk.ErrorCode(err); code != tc.wantErr {
					t.Fatalf("ParseKickoff() error code = %q (%v), want %q", code, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKickoff() error = %v", err)
			}
			// Ignored messages: compare what each names, in order.
			wantIgnored := tc.want.Ignored
			tc.want.Ignored = nil
			gotIgnored := got.Ignored
			got.Ignored = nil
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseKickoff() mismatch (-want +got):\n%s", diff)
			}
			if len(gotIgnored) != len(wantIgnored) {
				t.Fatalf("Ignored = %q, want %d messages naming %q", gotIgnored, len(wantIgnored), wantIgnored)
			}
			for i, w := range wantIgnored {
				if !strings.Contains(gotIgnored[i], w) || !strings.Contains(gotIgnored[i], "ignored") {
					t.Errorf("Ignored[%d] = %q, want it to name %q and say it was ignored", i, gotIgnored[i], w)
				}
			}
		})
	}
}

// FuzzParseKickoff feeds arbitrary query strings and POST bodies to the
// kick-off parser, strict and lenient: it must never panic, and must either
// fail with a client-safe EINVALID or EUNSUPPORTED message or return a
// request whose filters and elements the export engine compiles again.
// Run it with: go test ./internal/fhir -fuzz FuzzParseKickoff
func FuzzParseKickoff(f *testing.F) {
	for _, seed := range []struct {
		query, body string
		level       int
	}{
		{"_type=Patient,Observation&_since=2024-01-02T03:04:05Z", "", 0},
		{"_typeFilter=Observation%3Fcategory%3Dlaboratory%2Cvital-signs%26status%3Dfinal,Condition%3Fclinical-status%3Dactive", "", 0},
		{"_typeFilter=Observation%3Fdate%3Dge2024-01%26date%3Dlt2024-02&_elements=Patient.id,name", "", 1},
		{"includeAssociatedData=LatestProvenanceResources,_x&organizeOutputBy=Patient&allowPartialManifests=true", "", 2},
		{"_until=2024-01-02T03:04:05%2B01:00&_outputFormat=ndjson&foo=bar", "", 0},
		{"", `{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/1"}},{"name":"_typeFilter","valueString":"Observation?code=a|b"}]}`, 2},
		{"", `{"resourceType":"Parameters","parameter":[{"name":"includeAssociatedData","valueCoding":{"code":"RelevantProvenanceResources"}},{"name":"allowPartialManifests","valueBoolean":false}]}`, 1},
		{"_typeFilter=%3Fcode%3D1&_typeFilter=Patient%2F1%2FObservation%3Fcode%3D1", "{", 0},
	} {
		f.Add(seed.query, seed.body, seed.level, false)
		f.Add(seed.query, seed.body, seed.level, true)
	}
	levels := []bulk.Level{bulk.LevelSystem, bulk.LevelPatient, bulk.LevelGroup}
	f.Fuzz(func(t *testing.T, query, body string, level int, lenient bool) {
		q, err := url.ParseQuery(query)
		if err != nil {
			return // net/http would not deliver it either
		}
		in := fhir.KickoffInput{Method: "POST", Level: levels[(level%3+3)%3], GroupID: "g", Query: q, Body: []byte(body)}
		req, err := fhir.ParseKickoff(withHooks(in, lenient))
		if err != nil {
			code := bulk.ErrorCode(err)
			if code != bulk.EINVALID && code != bulk.EUNSUPPORTED {
				t.Fatalf("ParseKickoff(%q, %q) error code %q: %v", query, body, code, err)
			}
			if msg := bulk.ErrorMessage(err); msg == "" || msg == "Internal error." || !utf8.ValidString(msg) && utf8.ValidString(query+body) {
				t.Fatalf("ParseKickoff(%q, %q) message %q is not a client-safe explanation", query, body, msg)
			}
			return
		}
		for _, tf := range req.TypeFilters {
			if _, err := search.Parse(tf); err != nil {
				t.Fatalf("ParseKickoff(%q, %q) kept _typeFilter %q that does not parse again: %v", query, body, tf, err)
			}
		}
		if _, err := search.ParseElements(req.Elements); err != nil {
			t.Fatalf("ParseKickoff(%q, %q) kept _elements %q that do not parse again: %v", query, body, req.Elements, err)
		}
		if !lenient && len(req.Ignored) > 0 {
			t.Fatalf("ParseKickoff(%q, %q) ignored %q without lenient handling", query, body, req.Ignored)
		}
		if req.Level == bulk.LevelSystem && len(req.Patients) > 0 {
			t.Fatalf("ParseKickoff(%q, %q) accepted patient at system level", query, body)
		}
		for _, typ := range req.Types {
			if !fhir.IsResourceType(typ) || (req.Level != bulk.LevelSystem || req.OrganizeBy != "") && !fhir.IsPatientCompartmentType(typ) {
				t.Fatalf("ParseKickoff(%q, %q) kept _type %q", query, body, typ)
			}
		}
		if !req.Since.IsZero() && !req.Until.IsZero() && !req.Until.After(req.Since) {
			t.Fatalf("ParseKickoff(%q, %q): _until %v not after _since %v", query, body, req.Until, req.Since)
		}
	})
}
