package generate_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/generate"
)

// TestStream_FHIRVersions generates every release and checks each resource
// against that release's definitions: against defs (its resourceType
// exists, every top-level key is an element or a choice variant of one,
// every mandatory element is present, and each clinical resource reaches
// its Patient through a path of the release's Patient compartment, so a
// Patient-level export returns all of it), and, element by element at
// every depth, against the release's official StructureDefinitions in
// internal/fhir/defs/spec (cardinality, JSON kind, Reference targets,
// mandatory children; see validator).
func TestStream_FHIRVersions(t *testing.T) {
	for _, v := range defs.Versions() {
		t.Run(string(v), func(t *testing.T) {
			d := defs.For(v)
			opts := generate.Options{Patients: 100, Seed: 42, Base: base, FHIRVersion: v}
			p, st := stream(t, opts)
			types := generate.TypesFor(v)
			if got := slices.Sorted(maps.Keys(p)); !slices.Equal(got, slices.Sorted(slices.Values(types))) {
				t.Errorf("Stream opened %v, TypesFor(%s) = %v", got, v, types)
			}
			all := decode(t, p, types)
			val := loadValidator(t, v)

			counts := map[string]int64{}
			owner := map[string]string{} // clinical resource -> its Patient reference
			ids := map[string]bool{}
			seen := map[string]bool{} // "Type.key" of top-level keys
			for _, r := range all {
				counts[r.typ]++
				for k := range r.body {
					seen[r.typ+"."+k] = true
				}
				key := r.typ + "/" + r.id
				ids[key] = true
				checkTopLevel(t, d, key, r)
				val.resource(t, key, r.body)
				switch r.typ {
				case "Patient", "Group", "Organization", "Location", "Practitioner":
					continue
				}
				if d.CompartmentParams(r.typ) == nil {
					t.Errorf("%s: %s is not in the %s Patient compartment", key, r.typ, v)
					continue
				}
				pats := compartmentPatients(d, r)
				if len(pats) != 1 {
					t.Errorf("%s reaches Patients %v through its compartment paths %+v, want exactly one", key, pats, d.CompartmentParams(r.typ))
					continue
				}
				owner[key] = pats[0]
			}
			for _, typ := range types {
				if counts[typ] == 0 {
					t.Errorf("no %s resources for %d patients", typ, opts.Patients)
				}
			}
			// The optional shapes were exercised too.
			for _, k := range optionalKeys[v] {
				if !seen[k] {
					t.Errorf("no resource has %s, so its shape went unchecked", k)
				}
			}
			if diff := cmp.Diff(st.Resources, counts); diff != "" {
				t.Errorf("Stats.Resources differ from the lines written (-stats +lines):\n%s", diff)
			}
			// References resolve, and stay within the owner's compartment.
			for _, r := range all {
				key := r.typ + "/" + r.id
				for _, ref := range refs(r.body, nil) {
					if !ids[ref] {
						t.Errorf("%s references %s, which was not generated", key, ref)
						continue
					}
					if o, ok := owner[key]; ok {
						if ro, ok := owner[ref]; ok && ro != o {
							t.Errorf("%s of %s references %s of %s", key, o, ref, ro)
						}
						if strings.HasPrefix(ref, "Patient/") && ref != o {
							t.Errorf("%s of %s references another patient %s", key, o, ref)
						}
					}
				}
			}
		})
	}
}

// optionalKeys are top-level elements written only sometimes (a reason, a
// resolution, a prescription or procedure to bill) that a run must show.
var optionalKeys = map[defs.Version][]string{
	defs.DSTU2: {"Encounter.indication", "Condition.abatementDateTime", "Procedure.reasonReference", "MedicationOrder.reasonReference", "Claim.prescription", "Claim.diagnosis", "Patient.maritalStatus"},
	defs.STU3:  {"Encounter.diagnosis", "Condition.abatementDateTime", "Procedure.reasonReference", "MedicationRequest.reasonReference", "Claim.prescription", "Claim.procedure", "ExplanationOfBenefit.diagnosis"},
	defs.R4:    {"Encounter.reasonReference", "Condition.abatementDateTime", "Procedure.reasonReference", "MedicationRequest.reasonReference", "Claim.prescription", "Claim.procedure", "ExplanationOfBenefit.diagnosis"},
	defs.R5:    {"Encounter.reason", "Condition.abatementDateTime", "Procedure.reason", "MedicationRequest.reason", "Claim.prescription", "Claim.procedure", "ExplanationOfBenefit.diagnosis"},
}

// TestStream_FHIRVersionsSameData: a release changes shapes, not data.
// The same Options give the same Patients, Groups and shared resources (by
// id) and the same number of resources of each type that both releases
// write, and R4 is the zero value's output byte for byte.
func TestStream_FHIRVersionsSameData(t *testing.T) {
	opts := generate.Options{Patients: 120, Seed: 3, Base: base}
	zero, zst := stream(t, opts)
	opts.FHIRVersion = defs.R4
	r4, rst := stream(t, opts)
	if diff := cmp.Diff(zst, rst); diff != "" {
		t.Errorf("FHIRVersion r4 Stats differ from the zero value's (-zero +r4):\n%s", diff)
	}
	for _, typ := range generate.Types() {
		if !bytes.Equal(zero.joined(typ), r4.joined(typ)) {
			t.Errorf("FHIRVersion r4 wrote other %s bytes than the zero value", typ)
		}
	}
	idsOf := func(p parts, typ string) []string {
		var ids []string
		for line := range bytes.Lines(p.joined(typ)) {
			var r struct{ ID string }
			if err := json.Unmarshal(line, &r); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, r.ID)
		}
		return ids
	}
	for _, v := range []defs.Version{defs.DSTU2, defs.STU3, defs.R5} {
		opts.FHIRVersion = v
		p, st := stream(t, opts)
		for _, typ := range []string{"Patient", "Practitioner", "Organization", "Location", "Group", "Encounter", "Observation", "Claim"} {
			if diff := cmp.Diff(idsOf(r4, typ), idsOf(p, typ)); diff != "" {
				t.Errorf("%s: %s ids differ from R4's (-r4 +%s):\n%s", v, typ, v, diff)
			}
		}
		for typ, n := range rst.Resources {
			if got, ok := st.Resources[typ]; ok && got != n {
				t.Errorf("%s wrote %d %s, R4 %d", v, got, typ, n)
			}
		}
		if v == defs.DSTU2 && st.Resources["MedicationOrder"] != rst.Resources["MedicationRequest"] {
			t.Errorf("DSTU2 wrote %d MedicationOrders, R4 %d MedicationRequests", st.Resources["MedicationOrder"], rst.Resources["MedicationRequest"])
		}
	}
}

func TestTypesFor(t *testing.T) {
	if got, want := generate.TypesFor(""), generate.Types(); !slices.Equal(got, want) {
		t.Errorf("TypesFor(\"\") = %v, want Types() %v", got, want)
	}
	for _, v := range defs.Versions() {
		d := defs.For(v)
		for _, typ := range generate.TypesFor(v) {
			if !d.IsResourceType(typ) {
				t.Errorf("TypesFor(%s) lists %s, which %s does not define", v, typ, v)
			}
		}
	}
	dstu2 := generate.TypesFor(defs.DSTU2)
	if !slices.Contains(dstu2, "MedicationOrder") || slices.Contains(dstu2, "MedicationRequest") || slices.Contains(dstu2, "ExplanationOfBenefit") {
		t.Errorf("TypesFor(dstu2) = %v, want MedicationOrder and no MedicationRequest or ExplanationOfBenefit", dstu2)
	}
	if got := generate.TypesFor("r6"); got != nil {
		t.Errorf("TypesFor(r6) = %v, want nil", got)
	}
}

func TestStream_UnknownFHIRVersion(t *testing.T) {
	_, err := generate.Stream(t.Context(), generate.Options{Patients: 1, FHIRVersion: "r6"}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "r6") {
		t.Errorf("Stream(FHIRVersion r6) error = %v, want one naming r6", err)
	}
}

// TestDir_FHIRVersionReplacesOther: a run into a directory that holds
// another release's run leaves only its own types' files.
func TestDir_FHIRVersionReplacesOther(t *testing.T) {
	dir := t.TempDir()
	for _, v := range []defs.Version{defs.R4, defs.DSTU2, defs.R5} {
		if _, err := generate.Dir(t.Context(), generate.Options{Patients: 5, Seed: 1, FHIRVersion: v}, dir, nil); err != nil {
			t.Fatal(err)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range entries {
			got = append(got, strings.TrimSuffix(e.Name(), ".ndjson"))
		}
		if want := slices.Sorted(slices.Values(generate.TypesFor(v))); !slices.Equal(got, want) {
			t.Errorf("after a %s run the directory holds %v, want %v", v, got, want)
		}
	}
}

// checkTopLevel checks r against defs: the type exists, every key is a
// top-level element (or a variant of a choice element), every mandatory
// element is present.
func checkTopLevel(t *testing.T, d *defs.Defs, key string, r resource) {
	t.Helper()
	typ := d.Type(r.typ)
	if typ == nil {
		t.Errorf("%s: %s has no resource type %s", key, d.Version, r.typ)
		return
	}
	present := map[string]bool{}
	for k := range r.body {
		if k == "resourceType" {
			continue
		}
		name, ok := topElement(d, r.typ, k)
		if !ok {
			t.Errorf("%s: %s %s has no element %q", key, d.Version, r.typ, k)
		}
		present[name] = true
	}
	for _, m := range typ.Mandatory {
		if !present[m] {
			t.Errorf("%s: mandatory %s.%s is missing", key, r.typ, m)
		}
	}
}

// topElement returns the element of typ that JSON key k is, by name or as
// a choice variant ("valueQuantity" is "value[x]" if Quantity is one of
// its types).
func topElement(d *defs.Defs, typ, k string) (string, bool) {
	for _, e := range d.Type(typ).Elements {
		if e.Name == k {
			return k, true
		}
		if base, ok := strings.CutSuffix(e.Name, "[x]"); ok && strings.HasPrefix(k, base) {
			for _, ct := range e.Types {
				if k == base+upperFirst(ct) {
					return e.Name, true
				}
			}
		}
	}
	return "", false
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// compartmentPatients returns, sorted and without repeats, the Patients
// that r's compartment paths reference.
func compartmentPatients(d *defs.Defs, r resource) []string {
	seen := map[string]bool{}
	for _, cp := range d.CompartmentParams(r.typ) {
		for _, path := range cp.Paths {
			for _, v := range at(r.body, strings.Split(path, ".")) {
				m, _ := v.(map[string]any)
				if ref, _ := m["reference"].(string); strings.HasPrefix(ref, "Patient/") {
					seen[ref] = true
				}
			}
		}
	}
	return slices.Sorted(maps.Keys(seen))
}

// at returns the values at path in v, crossing arrays at any level.
func at(v any, path []string) []any {
	if a, ok := v.([]any); ok {
		var out []any
		for _, e := range a {
			out = append(out, at(e, path)...)
		}
		return out
	}
	if len(path) == 0 {
		return []any{v}
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	e, ok := m[path[0]]
	if !ok {
		return nil
	}
	return at(e, path[1:])
}

// validator checks resources element by element against a release's
// StructureDefinitions (the trimmed official ones in
// internal/fhir/defs/spec/<version>/structuredefinitions.json.gz). Those
// define resources only, so the few datatypes the generator writes are
// described by datatypes below, per release, from the specification's
// datatype pages; an element the generator writes that neither knows is an
// error.
type validator struct {
	v        defs.Version
	elems    map[string]map[string]*sdElement // type -> element path (no type prefix) -> definition
	children map[string]map[string][]*sdElement
	variants map[string]map[string]variant // type -> choice variant path ("valueQuantity") -> its element
	dt       map[string]map[string]string  // datatype -> element -> type ("Coding*" for a list)
}

type variant struct {
	el *sdElement
	ty sdType
}

type sdElement struct {
	Path           string
	Min            int
	Max            string
	Type           []sdType
	ContentRef     string `json:"contentReference"`
	NameReference  string `json:"nameReference"` // DSTU2
	choiceBase     string // "value" for value[x]
	resolvedTarget string // path a contentReference points at
}

type sdType struct {
	Code          string
	Profile       stringList
	TargetProfile stringList
}

// stringList reads a string or a list of strings (STU3 has single
// profile/targetProfile URLs, the others lists).
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		*l = []string{s}
		return nil
	}
	return json.Unmarshal(b, (*[]string)(l))
}

// code is the type's name as the JSON shape goes: a profile on Quantity
// (DSTU2's Money, SimpleQuantity) is that profile.
func (t sdType) code() string {
	if strings.HasPrefix(t.Code, "http://hl7.org/fhirpath/System.") {
		return "string"
	}
	if t.Code == "Quantity" && len(t.Profile) > 0 {
		return lastSegment(t.Profile[0])
	}
	return t.Code
}

func (t sdType) targets() []string {
	var out []string
	list := t.TargetProfile
	if t.Code == "Reference" && len(list) == 0 {
		list = t.Profile // DSTU2
	}
	for _, p := range list {
		out = append(out, lastSegment(p))
	}
	return out
}

func lastSegment(url string) string { return url[strings.LastIndexByte(url, '/')+1:] }

func loadValidator(t *testing.T, v defs.Version) *validator {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "fhir", "defs", "spec", string(v), "structuredefinitions.json.gz"))
	if err != nil {
		t.Fatalf("the %s StructureDefinitions: %v", v, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var bundle struct {
		Entry []struct {
			Resource struct {
				ID, Type string
				Snapshot struct{ Element []*sdElement }
			}
		}
	}
	if err := json.NewDecoder(zr).Decode(&bundle); err != nil {
		t.Fatalf("the %s StructureDefinitions: %v", v, err)
	}
	val := &validator{v: v, elems: map[string]map[string]*sdElement{}, dt: datatypes(v),
		children: map[string]map[string][]*sdElement{}, variants: map[string]map[string]variant{}}
	for _, e := range bundle.Entry {
		typ := e.Resource.Type
		if typ == "" {
			typ = e.Resource.ID // DSTU2 names the type by id
		}
		m := map[string]*sdElement{}
		for _, el := range e.Resource.Snapshot.Element {
			rel, ok := strings.CutPrefix(el.Path, typ+".")
			if !ok {
				continue
			}
			el.Path = rel
			if base, ok := strings.CutSuffix(rel, "[x]"); ok {
				el.choiceBase = base
			}
			m[rel] = el
		}
		for _, el := range m {
			switch {
			case el.ContentRef != "":
				el.resolvedTarget = strings.TrimPrefix(strings.TrimPrefix(el.ContentRef, "#"), typ+".")
			case el.NameReference != "":
				// DSTU2 names the target element; it is the shortest path
				// ending in that name.
				for p := range m {
					if (p == el.NameReference || strings.HasSuffix(p, "."+el.NameReference)) && m[p].NameReference == "" &&
						(el.resolvedTarget == "" || len(p) < len(el.resolvedTarget)) {
						el.resolvedTarget = p
					}
				}
			}
		}
		val.elems[typ] = m
		kids, vars := map[string][]*sdElement{}, map[string]variant{}
		for p, el := range m {
			parent := ""
			if i := strings.LastIndexByte(p, '.'); i >= 0 {
				parent = p[:i]
			}
			kids[parent] = append(kids[parent], el)
			if el.choiceBase != "" {
				for _, ty := range el.Type {
					vars[el.choiceBase+upperFirst(ty.Code)] = variant{el, ty}
				}
			}
		}
		val.children[typ], val.variants[typ] = kids, vars
	}
	return val
}

// datatypes describes, per release, the datatypes the generator writes:
// element -> type, with a trailing * for a list (0..*).
func datatypes(v defs.Version) map[string]map[string]string {
	dt := map[string]map[string]string{
		"Coding":          {"system": "uri", "version": "string", "code": "code", "display": "string"},
		"CodeableConcept": {"coding": "Coding*", "text": "string"},
		"Reference":       {"reference": "string", "display": "string"},
		"Period":          {"start": "dateTime", "end": "dateTime"},
		"Quantity":        {"value": "decimal", "comparator": "code", "unit": "string", "system": "uri", "code": "code"},
		"Money":           {"value": "decimal", "currency": "code"},
		"Identifier":      {"use": "code", "type": "CodeableConcept", "system": "uri", "value": "string"},
		"HumanName":       {"use": "code", "text": "string", "family": "string", "given": "string*", "prefix": "string*"},
		"ContactPoint":    {"system": "code", "value": "string", "use": "code"},
		"Address":         {"use": "code", "line": "string*", "city": "string", "state": "string", "postalCode": "string", "country": "string"},
		"Meta":            {"lastUpdated": "instant"},
		"Timing":          {"repeat": "Timing.repeat"},
		"Timing.repeat":   {"frequency": "positiveInt", "period": "decimal", "periodUnit": "code"},
		"Dosage":          {"sequence": "integer", "timing": "Timing", "asNeededBoolean": "boolean", "doseAndRate": "Dosage.doseAndRate*"},
		// R4's Dosage.doseAndRate.dose[x].
		"Dosage.doseAndRate": {"doseQuantity": "SimpleQuantity"},
	}
	for _, q := range []string{"SimpleQuantity", "Age", "Duration"} {
		dt[q] = dt["Quantity"]
	}
	switch v {
	case defs.DSTU2:
		// HumanName.family is 0..*, Timing.repeat has periodUnits, Money is
		// a Quantity; Dosage is not a datatype yet.
		dt["HumanName"] = map[string]string{"use": "code", "text": "string", "family": "string*", "given": "string*", "prefix": "string*"}
		dt["Timing.repeat"] = map[string]string{"frequency": "integer", "period": "decimal", "periodUnits": "code"}
		dt["Money"] = dt["Quantity"]
		delete(dt, "Dosage")
		delete(dt, "Dosage.doseAndRate")
	case defs.STU3:
		// Money is a Quantity; Dosage has dose[x] itself.
		dt["Money"] = dt["Quantity"]
		dt["Dosage"] = map[string]string{"sequence": "integer", "timing": "Timing", "asNeededBoolean": "boolean", "doseQuantity": "SimpleQuantity"}
		delete(dt, "Dosage.doseAndRate")
	case defs.R5:
		// Dosage.asNeeded is a boolean (asNeededFor the reasons); new
		// CodeableReference and ExtendedContactDetail.
		dt["Dosage"] = map[string]string{"sequence": "integer", "timing": "Timing", "asNeeded": "boolean", "doseAndRate": "Dosage.doseAndRate*"}
		dt["CodeableReference"] = map[string]string{"concept": "CodeableConcept", "reference": "Reference"}
		dt["ExtendedContactDetail"] = map[string]string{"purpose": "CodeableConcept", "telecom": "ContactPoint*", "address": "Address"}
	}
	return dt
}

var (
	dateRE     = regexp.MustCompile(`^\d{4}-\d\d-\d\d$`)
	dateTimeRE = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$`)
)

// resource checks a whole resource.
func (val *validator) resource(t reporter, key string, body map[string]any) {
	t.Helper()
	typ, _ := body["resourceType"].(string)
	m := val.elems[typ]
	if m == nil {
		t.Errorf("%s: no %s StructureDefinition for %s", key, val.v, typ)
		return
	}
	if id, _ := body["id"].(string); id == "" {
		t.Errorf("%s: no id", key)
	}
	for k, v := range body {
		if k == "resourceType" || k == "id" {
			continue
		}
		val.element(t, key, typ, "", k, v)
	}
	val.mandatory(t, key, typ, "", body)
}

// backbone checks an object that is an element of typ at path.
func (val *validator) backbone(t reporter, where, typ, path string, obj map[string]any) {
	t.Helper()
	for k, v := range obj {
		val.element(t, where, typ, path, k, v)
	}
	val.mandatory(t, where, typ, path, obj)
}

// mandatory checks that every child of path with min >= 1 is in obj.
func (val *validator) mandatory(t reporter, where, typ, path string, obj map[string]any) {
	t.Helper()
	prefix := ""
	if path != "" {
		prefix = path + "."
	}
	for _, el := range val.children[typ][path] {
		rest := strings.TrimPrefix(el.Path, prefix)
		if el.Min < 1 {
			continue
		}
		found := obj[rest] != nil
		if el.choiceBase != "" {
			base := strings.TrimSuffix(rest, "[x]")
			for k := range obj {
				if strings.HasPrefix(k, base) {
					found = true
				}
			}
		}
		if !found {
			t.Errorf("%s: %s.%s%s is mandatory (min %d) and missing", where, typ, prefix, rest, el.Min)
		}
	}
}

// element checks obj[k] = v, a child of typ's element path.
func (val *validator) element(t reporter, where, typ, path, k string, v any) {
	t.Helper()
	full := k
	if path != "" {
		full = path + "." + k
	}
	if k == "meta" && path == "" {
		val.datatype(t, where+" meta", "Meta", v, nil)
		return
	}
	el, variant := val.lookup(typ, full)
	if el == nil {
		t.Errorf("%s: %s %s has no element %s", where, val.v, typ, full)
		return
	}
	at := where + " " + full
	list, isList := v.([]any)
	switch {
	case el.Max == "*" && !isList:
		t.Errorf("%s: %s is 0..* and must be a JSON array, got %s", at, full, compactJSON(v))
		return
	case el.Max != "*" && isList:
		t.Errorf("%s: %s is ..%s and must not be an array, got %s", at, full, el.Max, compactJSON(v))
		return
	}
	if !isList {
		list = []any{v}
	} else if len(list) == 0 {
		t.Errorf("%s: empty array", at)
	}
	for _, item := range list {
		if el.resolvedTarget != "" {
			obj, ok := item.(map[string]any)
			if !ok {
				t.Errorf("%s: want an object, got %s", at, compactJSON(item))
				continue
			}
			val.backbone(t, at, typ, el.resolvedTarget, obj)
			continue
		}
		code, targets := variant.code(), variant.targets()
		if el.choiceBase == "" && len(el.Type) > 1 {
			for _, ty := range el.Type[1:] {
				targets = append(targets, ty.targets()...)
			}
		}
		switch code {
		case "BackboneElement", "Element":
			obj, ok := item.(map[string]any)
			if !ok {
				t.Errorf("%s: want an object, got %s", at, compactJSON(item))
				continue
			}
			val.backbone(t, at, typ, strings.TrimSuffix(full, "[x]"), obj)
		default:
			val.datatype(t, at, code, item, targets)
		}
	}
}

// lookup finds the definition of the element at full path, directly or as
// a choice variant, and the type that variant is.
func (val *validator) lookup(typ, full string) (*sdElement, sdType) {
	m := val.elems[typ]
	if el := m[full]; el != nil {
		var ty sdType
		if len(el.Type) > 0 {
			ty = el.Type[0]
		}
		return el, ty
	}
	if vr, ok := val.variants[typ][full]; ok {
		return vr.el, vr.ty
	}
	return nil, sdType{}
}

// datatype checks v, a value of type code (a primitive or a datatype of
// val.dt); a Reference's target must be one of targets.
func (val *validator) datatype(t reporter, where, code string, v any, targets []string) {
	t.Helper()
	switch code {
	case "boolean":
		if _, ok := v.(bool); !ok {
			t.Errorf("%s: want a boolean, got %s", where, compactJSON(v))
		}
		return
	case "integer", "positiveInt", "unsignedInt", "decimal":
		n, ok := v.(float64)
		if !ok || (code != "decimal" && n != float64(int64(n))) || (code == "positiveInt" && n < 1) || (code == "unsignedInt" && n < 0) {
			t.Errorf("%s: want a %s, got %s", where, code, compactJSON(v))
		}
		return
	case "string", "code", "id", "uri", "url", "canonical", "markdown", "oid", "uuid":
		if s, ok := v.(string); !ok || s == "" || strings.TrimSpace(s) != s {
			t.Errorf("%s: want a %s, got %s", where, code, compactJSON(v))
		}
		return
	case "date", "dateTime", "instant":
		s, _ := v.(string)
		ok := dateTimeRE.MatchString(s)
		if code == "date" {
			ok = dateRE.MatchString(s)
		} else if code == "dateTime" {
			ok = ok || dateRE.MatchString(s)
		}
		if !ok {
			t.Errorf("%s: want a %s, got %s", where, code, compactJSON(v))
		}
		return
	}
	fields := val.dt[code]
	if fields == nil {
		t.Errorf("%s: the test knows no %s datatype %s (value %s)", where, val.v, code, compactJSON(v))
		return
	}
	obj, ok := v.(map[string]any)
	if !ok || len(obj) == 0 {
		t.Errorf("%s: want a non-empty %s object, got %s", where, code, compactJSON(v))
		return
	}
	for k, fv := range obj {
		ft, ok := fields[k]
		if !ok {
			t.Errorf("%s: %s %s has no element %s", where, val.v, code, k)
			continue
		}
		elemType, many := strings.CutSuffix(ft, "*")
		list, isList := fv.([]any)
		if many != isList {
			t.Errorf("%s.%s: list %v, got %s", where, k, many, compactJSON(fv))
			continue
		}
		if !isList {
			list = []any{fv}
		}
		for _, item := range list {
			sub := targets
			if code != "CodeableReference" {
				sub = nil
			}
			val.datatype(t, where+"."+k, elemType, item, sub)
		}
	}
	if code == "Reference" {
		ref, _ := obj["reference"].(string)
		if ref == "" {
			if obj["display"] == nil {
				t.Errorf("%s: Reference without reference or display", where)
			}
			return
		}
		typ, _, _ := strings.Cut(ref, "/")
		if len(targets) > 0 && !slices.Contains(targets, typ) && !slices.Contains(targets, "Resource") && !slices.Contains(targets, "Any") {
			t.Errorf("%s: reference %s, want one of %v", where, ref, targets)
		}
	}
}

func compactJSON(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

// TestValidator_CatchesMistakes keeps the validator honest: shapes of
// another release, wrong cardinality, unknown elements, bad Reference
// targets and missing mandatory children are all reported.
func TestValidator_CatchesMistakes(t *testing.T) {
	for _, tc := range []struct {
		v    defs.Version
		json string
		want string // in the first error
	}{
		{defs.DSTU2, `{"resourceType":"Condition","id":"x","patient":{"reference":"Patient/p"},"code":{"text":"c"},"verificationStatus":"confirmed","clinicalStatus":{"coding":[{"code":"active"}]}}`, "want a code"},
		{defs.DSTU2, `{"resourceType":"Practitioner","id":"x","name":[{"family":["F"]}]}`, "must not be an array"},
		{defs.DSTU2, `{"resourceType":"Practitioner","id":"x","name":{"family":"F"}}`, "family: list true"},
		{defs.DSTU2, `{"resourceType":"Immunization","id":"x","status":"completed","vaccineCode":{"text":"v"},"patient":{"reference":"Patient/p"},"wasNotGiven":false}`, "reported is mandatory"},
		{defs.STU3, `{"resourceType":"Condition","id":"x","subject":{"reference":"Patient/p"},"encounter":{"reference":"Encounter/e"}}`, "no element encounter"},
		{defs.STU3, `{"resourceType":"Claim","id":"x","total":{"value":1,"currency":"USD"}}`, "Money has no element currency"},
		{defs.R4, `{"resourceType":"Observation","id":"x","status":"final","code":{"text":"c"},"subject":{"reference":"Practitioner/p"}}`, "want one of"},
		{defs.R4, `{"resourceType":"Observation","id":"x","status":"final","code":{"text":"c"},"valueWhatever":1}`, "no element valueWhatever"},
		{defs.R4, `{"resourceType":"Claim","id":"x","insurance":[{"focal":true,"coverage":{"display":"c"}}]}`, "insurance.sequence is mandatory"},
		{defs.R4, `{"resourceType":"Observation","id":"x","status":"final","code":{"text":"c"},"effectiveDateTime":"yesterday"}`, "want a dateTime"},
		{defs.R5, `{"resourceType":"Encounter","id":"x","status":"completed","class":{"coding":[{"code":"AMB"}]}}`, "must be a JSON array"},
		{defs.R5, `{"resourceType":"Group","id":"x","type":"person","membership":"enumerated","actual":true}`, "no element actual"},
	} {
		var body map[string]any
		if err := json.Unmarshal([]byte(tc.json), &body); err != nil {
			t.Fatal(err)
		}
		rec := &recorder{}
		loadValidator(t, tc.v).resource(rec, "", body)
		if len(rec.errs) == 0 || !strings.Contains(rec.errs[0], tc.want) {
			t.Errorf("%s %s: errors %q, want the first to mention %q", tc.v, tc.json, rec.errs, tc.want)
		}
	}
}

// reporter is the part of testing.T the validator reports through.
type reporter interface {
	Helper()
	Errorf(format string, args ...any)
}

type recorder struct{ errs []string }

func (r *recorder) Helper() {}
func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
