package fhir

import (
	"slices"

	"github.com/tidwall/gjson"
)

// PatientCompartmentTypes lists, sorted, the resource types that the R4
// Patient CompartmentDefinition links to a Patient through at least one
// search parameter, Patient included (R4Model; a store of another release
// uses its Model's).
var PatientCompartmentTypes = R4Model().PatientCompartmentTypes()

// compartmentPath is a compiled path: its first element, looked up in the
// resource, and the rest, walked below it.
type compartmentPath struct {
	first string
	rest  []string
}

// PatientCompartment is R4Model().PatientCompartment.
func PatientCompartment(typ, id string, body []byte) []string {
	return R4Model().PatientCompartment(typ, id, body)
}

// GroupMembers returns the sorted, distinct ids of the Patients that a Group
// lists in Group.member.entity, or nil. Members that are other Groups,
// Practitioners or Devices are left out, as are references that are not
// literal (see ParseReference).
func GroupMembers(body []byte) []string {
	var ids []string
	gjson.GetBytes(body, "member").ForEach(func(_, m gjson.Result) bool {
		// member.inactive: the patient has left the Group; a Group export
		// covers current members only.
		if !m.Get("inactive").Bool() {
			collectPatientRefs(m.Get("entity"), nil, func(id string) { ids = append(ids, id) })
		}
		return true
	})
	return sortedDistinct(ids)
}

// collectPatientRefs walks path below v, descending into every element of
// each array on the way, and calls add with the id of each Reference at the
// end of the path that points at a Patient.
func collectPatientRefs(v gjson.Result, path []string, add func(id string)) {
	switch {
	case v.IsArray():
		v.ForEach(func(_, e gjson.Result) bool {
			collectPatientRefs(e, path, add)
			return true
		})
	case !v.IsObject():
		// Absent, or not an element that can hold a Reference.
	case len(path) > 0:
		collectPatientRefs(v.Get(path[0]), path[1:], add)
	default:
		ref := v.Get("reference")
		if ref.Type != gjson.String {
			return
		}
		if typ, id, ok := ParseReference(ref.Str); ok && typ == "Patient" {
			add(id)
		}
	}
}

func sortedDistinct(ids []string) []string {
	if len(ids) == 0 {
		return nil
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}
