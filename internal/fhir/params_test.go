package fhir_test

import (
	"net/url"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
)

func TestParseKickoff(t *testing.T) {
	since := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name    string
		in      fhir.KickoffInput
		want    bulk.ExportRequest
		wantErr string // bulk error code
	}{
		{name: "defaults (R10)", in: get(bulk.LevelSystem, ""),
			want: bulk.ExportRequest{Level: bulk.LevelSystem, OutputFormat: fhir.NDJSON}},
		{name: "three ndjson spellings (R9)", in: get(bulk.LevelSystem, "_outputFormat=ndjson"),
			want: bulk.ExportRequest{Level: bulk.LevelSystem, OutputFormat: fhir.NDJSON}},
		{name: "application/ndjson (R9)", in: get(bulk.LevelSystem, "_outputFormat=application%2Fndjson"),
			want: bulk.ExportRequest{Level: bulk.LevelSystem, OutputFormat: fhir.NDJSON}},
		{name: "unsupported format (R11)", in: get(bulk.LevelSystem, "_outputFormat=text/csv"), wantErr: bulk.EUNSUPPORTED},
		{name: "repeats equal comma lists (R4)", in: get(bulk.LevelSystem, "_type=Patient,Observation&_type=Condition&_type=Patient"),
			want: bulk.ExportRequest{Level: bulk.LevelSystem, OutputFormat: fhir.NDJSON, Types: []string{"Patient", "Observation", "Condition"}}},
		{name: "unknown type (R16)", in: get(bulk.LevelSystem, "_type=Patient,Bogus"), wantErr: bulk.EUNSUPPORTED},
		{name: "since", in: get(bulk.LevelSystem, "_since=2024-01-02T03:04:05Z"),
			want: bulk.ExportRequest{Level: bulk.LevelSystem, OutputFormat: fhir.NDJSON, Since: since}},
		{name: "since with unencoded + offset", in: get(bulk.LevelSystem, "_since=2024-01-02T04:04:05+01:00"),
			want: bulk.ExportRequest{Level: bulk.LevelSystem, OutputFormat: fhir.NDJSON, Since: since.In(time.FixedZone("", 3600))}},
		{name: "malformed since (R13)", in: get(bulk.LevelSystem, "_since=yesterday"), wantErr: bulk.EINVALID},
		{name: "date only since (R13)", in: get(bulk.LevelSystem, "_since=2024-01-02"), wantErr: bulk.EINVALID},
		{name: "until before since", in: get(bulk.LevelSystem, "_since=2024-01-02T00:00:00Z&_until=2024-01-01T00:00:00Z"), wantErr: bulk.EINVALID},
		{name: "unknown parameter", in: get(bulk.LevelSystem, "_foo=1"), wantErr: bulk.EINVALID},
		{name: "unsupported IG parameter (R19)", in: get(bulk.LevelSystem, "_typeFilter=Observation%3Fcode%3D1"), wantErr: bulk.EUNSUPPORTED},
		{name: "patient on GET", in: get(bulk.LevelPatient, "patient=Patient/1"), wantErr: bulk.EINVALID},
		{name: "non-compartment type at Patient level (R18)", in: get(bulk.LevelPatient, "_type=Practitioner"), wantErr: bulk.EUNSUPPORTED},
		{name: "POST Parameters (R3)", in: post(bulk.LevelGroup, "g1", `{"resourceType":"Parameters","parameter":[
			{"name":"_type","valueString":"Observation"},{"name":"_type","valueString":"Patient"},
			{"name":"_since","valueInstant":"2024-01-02T03:04:05Z"},
			{"name":"patient","valueReference":{"reference":"Patient/p2"}},{"name":"patient","valueReference":{"reference":"Patient/p1"}}]}`),
			want: bulk.ExportRequest{Level: bulk.LevelGroup, GroupID: "g1", OutputFormat: fhir.NDJSON, Since: since,
				Types: []string{"Observation", "Patient"}, Patients: []string{"p2", "p1"}}},
		{name: "patient at system level (R25)", in: post(bulk.LevelSystem, "", `{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Patient/p1"}}]}`), wantErr: bulk.EINVALID},
		{name: "patient not a Patient", in: post(bulk.LevelPatient, "", `{"resourceType":"Parameters","parameter":[{"name":"patient","valueReference":{"reference":"Group/p1"}}]}`), wantErr: bulk.EINVALID},
		{name: "body not Parameters", in: post(bulk.LevelSystem, "", `{"resourceType":"Patient"}`), wantErr: bulk.EINVALID},
		{name: "body not JSON", in: post(bulk.LevelSystem, "", `{`), wantErr: bulk.EINVALID},
		{name: "parameter without value", in: post(bulk.LevelSystem, "", `{"resourceType":"Parameters","parameter":[{"name":"_type"}]}`), wantErr: bulk.EINVALID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := fhir.ParseKickoff(tc.in)
			if tc.wantErr != "" {
				if code := bulk.ErrorCode(err); code != tc.wantErr {
					t.Fatalf("ParseKickoff() error code = %q (%v), want %q", code, err, tc.wantErr)
				}
				if msg := bulk.ErrorMessage(err); msg == "" || msg == "Internal error." {
					t.Errorf("ParseKickoff() message = %q, want a client-facing explanation", msg)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseKickoff() error = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseKickoff() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func get(level bulk.Level, rawQuery string) fhir.KickoffInput {
	// url.ParseQuery turns an unencoded '+' into a space, as HTTP servers do.
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		panic(err)
	}
	return fhir.KickoffInput{Method: "GET", Level: level, Query: q}
}

func post(level bulk.Level, group, body string) fhir.KickoffInput {
	return fhir.KickoffInput{Method: "POST", Level: level, GroupID: group, Query: url.Values{}, Body: []byte(body)}
}

func TestParsePrefer(t *testing.T) {
	got := fhir.ParsePrefer([]string{"respond-async, handling=lenient", "Separate-Export-Status"})
	want := fhir.Prefer{RespondAsync: true, Lenient: true, SeparateExportStatus: true}
	if got != want {
		t.Errorf("ParsePrefer() = %+v, want %+v", got, want)
	}
}

func TestAcceptsFHIRJSON(t *testing.T) {
	for accept, want := range map[string]bool{
		"": true, "application/fhir+json": true, "application/json;q=0.9": true, "*/*": true,
		"text/html": false, "application/xml": false,
	} {
		if got := fhir.AcceptsFHIRJSON(accept); got != want {
			t.Errorf("AcceptsFHIRJSON(%q) = %v, want %v", accept, got, want)
		}
	}
}
