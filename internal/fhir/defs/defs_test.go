package defs_test

import (
	"slices"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/fhir/defs"
)

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]defs.Version{
		"dstu2": defs.DSTU2, "DSTU2": defs.DSTU2, "1.0.2": defs.DSTU2, "1.0": defs.DSTU2,
		"stu3": defs.STU3, "3.0.2": defs.STU3, "3.0": defs.STU3,
		"r4": defs.R4, "R4": defs.R4, "4.0.1": defs.R4, "4.0": defs.R4,
		"r5": defs.R5, "5.0.0": defs.R5, "5.0": defs.R5,
	} {
		got, err := defs.ParseVersion(in)
		if err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "r3", "4.0.0", "4.3.0", "r4b", "6.0"} {
		if v, err := defs.ParseVersion(in); err == nil {
			t.Errorf("ParseVersion(%q) = %q, want an error", in, v)
		}
	}
	if defs.For("r6") != nil {
		t.Error(`For("r6") is not nil`)
	}
}

// compartment returns typ's Patient compartment parameters as name → paths
// (chained ones with a nil slice).
func compartment(d *defs.Defs, typ string) map[string][]string {
	params := d.CompartmentParams(typ)
	if params == nil {
		return nil
	}
	m := map[string][]string{}
	for _, p := range params {
		m[p.Name] = p.Paths
	}
	return m
}

func paths(p *defs.SearchParam) []string {
	var out []string
	for _, pp := range p.Paths {
		out = append(out, pp.Path)
	}
	return out
}

// wantParam checks that typ has search parameter name of type typ with
// exactly the given paths.
func wantParam(t *testing.T, d *defs.Defs, typ, name, ptype string, want ...string) *defs.SearchParam {
	t.Helper()
	p := d.SearchParam(typ, name)
	if p == nil {
		t.Fatalf("%s: %s has no search parameter %q", d.Version, typ, name)
	}
	if p.Type != ptype || p.Unsupported != "" || !slices.Equal(paths(p), want) {
		t.Errorf("%s: %s %s = type %s paths %q (unsupported %q), want type %s paths %q", d.Version, typ, name, p.Type, paths(p), p.Unsupported, ptype, want)
	}
	return p
}

func TestDSTU2(t *testing.T) {
	d := defs.For(defs.DSTU2)
	if d.FHIRVersion != "1.0.2" || d.Package != "hl7.fhir.r2.core@1.0.2" {
		t.Errorf("DSTU2 is %s from %s", d.FHIRVersion, d.Package)
	}
	if n := len(d.ResourceTypes()); n != 94 {
		t.Errorf("DSTU2 has %d resource types, want 94", n)
	}
	for _, typ := range []string{"MedicationOrder", "Conformance", "DiagnosticOrder", "DeviceUseRequest", "Order"} {
		if !d.IsResourceType(typ) {
			t.Errorf("DSTU2 has no %s", typ)
		}
	}
	for _, typ := range []string{"MedicationRequest", "CapabilityStatement", "ServiceRequest", "Resource", "DomainResource"} {
		if d.IsResourceType(typ) {
			t.Errorf("DSTU2 has %s", typ)
		}
	}
	if got := compartment(d, "MedicationOrder"); !cmp.Equal(got, map[string][]string{"patient": {"patient"}}) {
		t.Errorf("DSTU2 MedicationOrder compartment = %v, want patient → patient", got)
	}
	// DSTU2 Condition links by patient (R4: subject).
	if got := compartment(d, "Condition"); !cmp.Equal(got, map[string][]string{"patient": {"patient"}}) {
		t.Errorf("DSTU2 Condition compartment = %v", got)
	}
	// A chained parameter has no paths of its own.
	audit := d.CompartmentParams("AuditEvent")
	if len(audit) != 3 || audit[0].Name != "patient" || !audit[1].Chained || audit[1].Name != "participant.patient" || audit[1].Paths != nil {
		t.Errorf("DSTU2 AuditEvent compartment = %+v", audit)
	}
	if d.CompartmentParams("Device") != nil {
		t.Error("DSTU2 Device is in the Patient compartment")
	}
	// From xpath: f:Observation/f:code, f:Observation/f:effectiveDateTime | …
	wantParam(t, d, "Observation", "code", "token", "code")
	wantParam(t, d, "Observation", "date", "date", "effectiveDateTime", "effectivePeriod")
	wantParam(t, d, "Observation", "value-quantity", "quantity", "valueQuantity")
	email := wantParam(t, d, "Patient", "email", "token", "telecom")
	if pp := email.Paths[0]; pp.WhereAt != "telecom" || pp.WhereKey != "system" || pp.WhereValue != "email" {
		t.Errorf("DSTU2 Patient email filter = %+v", pp)
	}
	wantParam(t, d, "Patient", "_lastUpdated", "date", "meta.lastUpdated")
	if got, want := d.Mandatory("MedicationOrder"), []string{"medication[x]"}; !slices.Equal(got, want) {
		t.Errorf("DSTU2 MedicationOrder mandatory = %q, want %q", got, want)
	}
	if got, want := d.Mandatory("Observation"), []string{"status", "code"}; !slices.Equal(got, want) {
		t.Errorf("DSTU2 Observation mandatory = %q, want %q", got, want)
	}
}

func TestSTU3(t *testing.T) {
	d := defs.For(defs.STU3)
	if d.FHIRVersion != "3.0.2" || d.Package != "hl7.fhir.r3.core@3.0.2" {
		t.Errorf("STU3 is %s from %s", d.FHIRVersion, d.Package)
	}
	if n := len(d.ResourceTypes()); n != 117 {
		t.Errorf("STU3 has %d resource types, want 117", n)
	}
	// The STU3 CompartmentDefinition lists Device without a parameter: a
	// Device is not in the Patient compartment, although Device has a
	// patient search parameter. DeviceUseStatement links by subject.
	if got := d.CompartmentParams("Device"); got != nil {
		t.Errorf("STU3 Device compartment = %+v, want none", got)
	}
	wantParam(t, d, "Device", "patient", "reference", "patient")
	if got := compartment(d, "DeviceUseStatement"); !cmp.Equal(got, map[string][]string{"subject": {"subject"}}) {
		t.Errorf("STU3 DeviceUseStatement compartment = %v", got)
	}
	if got := compartment(d, "MedicationRequest"); !cmp.Equal(got, map[string][]string{"subject": {"subject"}}) {
		t.Errorf("STU3 MedicationRequest compartment = %v", got)
	}
	// STU3 casts are capitalised: Observation.value.as(DateTime).
	wantParam(t, d, "Observation", "value-date", "date", "valueDateTime", "valuePeriod")
	wantParam(t, d, "Observation", "date", "date", "effective[x]")
	if got := compartment(d, "Provenance"); !cmp.Equal(got, map[string][]string{"target.subject": nil, "target.patient": nil, "patient": {"target"}}) {
		t.Errorf("STU3 Provenance compartment = %v", got)
	}
	for _, typ := range []string{"MedicationOrder", "ServiceRequest"} {
		if d.IsResourceType(typ) {
			t.Errorf("STU3 has %s", typ)
		}
	}
}

func TestR4(t *testing.T) {
	d := defs.For(defs.R4)
	if d.FHIRVersion != "4.0.1" || d.Package != "hl7.fhir.r4.core@4.0.1" {
		t.Errorf("R4 is %s from %s", d.FHIRVersion, d.Package)
	}
	if n := len(d.ResourceTypes()); n != 146 {
		t.Errorf("R4 has %d resource types, want 146", n)
	}
	if n := len(d.PatientCompartmentTypes()); n != 66 {
		t.Errorf("R4 has %d Patient compartment types, want 66", n)
	}
	if got := compartment(d, "MedicationRequest"); !cmp.Equal(got, map[string][]string{"subject": {"subject"}}) {
		t.Errorf("R4 MedicationRequest compartment = %v", got)
	}
	if got := compartment(d, "AuditEvent"); !cmp.Equal(got, map[string][]string{"patient": {"agent.who", "entity.what"}}) {
		t.Errorf("R4 AuditEvent compartment = %v", got)
	}
	if got := compartment(d, "Patient"); !cmp.Equal(got, map[string][]string{"link": {"link.other"}}) {
		t.Errorf("R4 Patient compartment = %v", got)
	}
	if d.CompartmentParams("Device") != nil || d.CompartmentParams("Medication") != nil {
		t.Error("R4 Device or Medication is in the Patient compartment")
	}
	wantParam(t, d, "Observation", "code", "token", "code")
	wantParam(t, d, "Observation", "date", "date", "effective[x]")
	wantParam(t, d, "Observation", "value-quantity", "quantity", "valueQuantity", "valueSampledData")
	wantParam(t, d, "Observation", "combo-code", "token", "code", "component.code")
	p := wantParam(t, d, "Observation", "patient", "reference", "subject")
	if p.Paths[0].Target != "Patient" || p.ID != "clinical-patient" || p.URL() != "http://hl7.org/fhir/SearchParameter/clinical-patient" {
		t.Errorf("R4 Observation patient = %+v", p)
	}
	wantParam(t, d, "Condition", "onset-date", "date", "onsetDateTime", "onsetPeriod")
	if p := d.SearchParam("Observation", "code-value-quantity"); p == nil || p.Type != "composite" || p.Paths != nil || p.Unsupported == "" {
		t.Errorf("R4 Observation code-value-quantity = %+v, want an unsupported composite", p)
	}
	if p := d.SearchParam("Patient", "deceased"); p == nil || p.Unsupported == "" {
		t.Errorf("R4 Patient deceased = %+v, want unsupported (exists() and != false)", p)
	}
	if d.SearchParam("Observation", "no-such") != nil || d.SearchParam("NoSuchType", "code") != nil {
		t.Error("SearchParam found a parameter that does not exist")
	}

	if got := d.Mandatory("Patient"); got != nil {
		t.Errorf("R4 Patient mandatory = %q, want none", got)
	}
	for typ, want := range map[string][]string{
		"Observation":       {"status", "code"},
		"MedicationRequest": {"status", "intent", "medication[x]", "subject"},
		"Immunization":      {"status", "vaccineCode", "patient", "occurrence[x]"},
		"Claim":             {"status", "type", "use", "patient", "created", "provider", "priority", "insurance"},
	} {
		if got := d.Mandatory(typ); !slices.Equal(got, want) {
			t.Errorf("R4 %s mandatory = %q, want %q", typ, got, want)
		}
	}
	if got, want := d.ChoiceTypes("Observation", "effective"), []string{"dateTime", "Period", "Timing", "instant"}; !slices.Equal(got, want) {
		t.Errorf("R4 Observation.effective types = %q, want %q", got, want)
	}
	if got := d.ChoiceTypes("Observation", "component.value[x]"); len(got) != 11 {
		t.Errorf("R4 Observation.component.value types = %q", got)
	}
	if e := d.Element("Observation", "value"); e == nil || e.Name != "value[x]" || e.Min != 0 || e.Max != "1" || !e.Summary {
		t.Errorf("R4 Observation value element = %+v", e)
	}
	if e := d.Element("Observation", "subject"); e == nil || !slices.Equal(e.Targets, []string{"Patient", "Group", "Device", "Location"}) {
		t.Errorf("R4 Observation subject element = %+v", e)
	}
	if e := d.Element("Patient", "active"); e == nil || !e.Modifier || e.Types[0] != "boolean" {
		t.Errorf("R4 Patient active element = %+v", e)
	}
	obs := d.Type("Observation")
	var dates []string
	for _, p := range obs.DatePaths {
		dates = append(dates, p.Path)
	}
	if want := []string{"effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued", "valueDateTime", "valuePeriod", "component.valueDateTime", "component.valuePeriod"}; !slices.Equal(dates, want) {
		t.Errorf("R4 Observation date paths = %q, want %q", dates, want)
	}
	var refs []string
	for _, p := range obs.ReferencePaths {
		refs = append(refs, p.Path)
	}
	for _, want := range []string{"subject", "encounter", "performer", "hasMember", "derivedFrom", "basedOn", "partOf", "focus", "specimen", "device"} {
		if !slices.Contains(refs, want) {
			t.Errorf("R4 Observation reference paths %q lack %s", refs, want)
		}
	}
}

func TestR5(t *testing.T) {
	d := defs.For(defs.R5)
	if d.FHIRVersion != "5.0.0" || d.Package != "hl7.fhir.r5.core@5.0.0" {
		t.Errorf("R5 is %s from %s", d.FHIRVersion, d.Package)
	}
	if n := len(d.ResourceTypes()); n != 158 {
		t.Errorf("R5 has %d resource types, want 158", n)
	}
	// R5 keeps MedicationStatement (its ballots named it MedicationUsage).
	if got := compartment(d, "MedicationStatement"); !cmp.Equal(got, map[string][]string{"subject": {"subject"}}) {
		t.Errorf("R5 MedicationStatement compartment = %v", got)
	}
	if got := compartment(d, "DeviceUsage"); !cmp.Equal(got, map[string][]string{"patient": {"patient"}}) {
		t.Errorf("R5 DeviceUsage compartment = %v", got)
	}
	for _, typ := range []string{"MedicationUsage", "DeviceUseStatement", "Media", "DocumentManifest", "RequestGroup", "MedicationOrder"} {
		if d.IsResourceType(typ) {
			t.Errorf("R5 has %s", typ)
		}
	}
	for _, typ := range []string{"MedicationStatement", "DeviceUsage", "RequestOrchestration", "Transport", "SubscriptionTopic"} {
		if !d.IsResourceType(typ) {
			t.Errorf("R5 has no %s", typ)
		}
	}
	// R5 shares clinical-date among many types; each gets its own paths.
	wantParam(t, d, "Observation", "date", "date", "effectiveDateTime", "effectivePeriod", "effectiveTiming", "effectiveInstant")
	wantParam(t, d, "Encounter", "date", "date", "actualPeriod")
	// ... but its Appointment alternative, "(start | requestedPeriod.start).first()", has no root.
	if p := d.SearchParam("Appointment", "date"); p == nil || p.Unsupported == "" {
		t.Errorf("R5 Appointment date = %+v, want unsupported", p)
	}
	wantParam(t, d, "Observation", "code", "token", "code")
	if got := compartment(d, "Task"); !cmp.Equal(got, map[string][]string{"patient": {"for"}, "focus": {"focus"}}) {
		t.Errorf("R5 Task compartment = %v", got)
	}
}

// TestConsistency checks, for every release, what the tables promise.
func TestConsistency(t *testing.T) {
	for _, v := range defs.Versions() {
		d := defs.For(v)
		if d == nil || d.Version != v {
			t.Fatalf("For(%s) = %v", v, d)
		}
		types := d.ResourceTypes()
		if !sort.StringsAreSorted(types) || len(types) != len(d.Types) {
			t.Errorf("%s: resource types not sorted or not all listed", v)
		}
		if !slices.Contains(types, "Patient") || !slices.Contains(types, "Bundle") || d.IsResourceType("patient") {
			t.Errorf("%s: Patient, Bundle or case-insensitivity wrong", v)
		}
		for _, typ := range d.PatientCompartmentTypes() {
			if !d.IsResourceType(typ) {
				t.Errorf("%s: compartment type %s is not a resource type", v, typ)
			}
		}
		for _, ty := range d.Types {
			if d.Type(ty.Name) != ty {
				t.Errorf("%s: Type(%s) is not the listed one", v, ty.Name)
			}
			if len(ty.Elements) == 0 || ty.Elements[0].Name != "id" {
				t.Errorf("%s: %s elements do not start with id", v, ty.Name)
			}
			for _, m := range ty.Mandatory {
				if e := d.Element(ty.Name, m); e == nil || e.Min < 1 {
					t.Errorf("%s: %s mandatory %s is not an element with min >= 1", v, ty.Name, m)
				}
			}
			for i, p := range ty.SearchParams {
				if i > 0 && ty.SearchParams[i-1].Name >= p.Name {
					t.Errorf("%s: %s search parameters not sorted and distinct at %s", v, ty.Name, p.Name)
				}
				if (len(p.Paths) == 0) == (p.Unsupported == "") {
					t.Errorf("%s: %s %s has paths %v and unsupported %q", v, ty.Name, p.Name, p.Paths, p.Unsupported)
				}
			}
			for _, wantCommon := range []string{"_id", "_lastUpdated"} {
				if p := d.SearchParam(ty.Name, wantCommon); p == nil || p.Unsupported != "" {
					t.Errorf("%s: %s has no usable %s", v, ty.Name, wantCommon)
				}
			}
			for _, cp := range ty.Compartment {
				if cp.Chained != (len(cp.Paths) == 0) {
					t.Errorf("%s: %s compartment parameter %s: chained %v, paths %q", v, ty.Name, cp.Name, cp.Chained, cp.Paths)
				}
			}
		}
	}
}
