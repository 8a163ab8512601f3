package fhir

import (
	"slices"
	"strings"
	"sync"

	"github.com/tidwall/gjson"

	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// Model is one FHIR release as Tranche applies it: its resource types and
// its Patient compartment, from the official definitions (internal/fhir/defs,
// generated from the release's core package). A store holds one release
// (issue 17); everything that reads or writes its resources uses its Model.
type Model struct {
	Version defs.Version
	// Name is the release as people write it: "DSTU2", "STU3", "R4", "R5".
	Name string
	// FHIRVersion is the release's version number, "4.0.1".
	FHIRVersion string

	defs             *defs.Defs
	types            map[string]bool
	compartment      map[string][]compartmentPath
	compartmentTypes []string // sorted, Patient included
}

var (
	modelsOnce sync.Once
	models     map[defs.Version]*Model
	// anyType holds every type of every release: references name types of
	// the release they were written in, which parsing need not know.
	anyType map[string]bool
)

// ModelFor returns the Model of v, or nil if v is not a supported release.
func ModelFor(v defs.Version) *Model {
	modelsOnce.Do(buildModels)
	return models[v]
}

// R4Model is the default release: what a store without a recorded release
// holds, and what the package-level functions apply.
func R4Model() *Model { return ModelFor(defs.R4) }

func buildModels() {
	models = map[defs.Version]*Model{}
	anyType = map[string]bool{}
	for _, v := range defs.Versions() {
		d := defs.For(v)
		m := &Model{Version: v, Name: strings.ToUpper(string(v)), FHIRVersion: d.FHIRVersion, defs: d,
			types: map[string]bool{}, compartment: map[string][]compartmentPath{}}
		for _, t := range d.Types {
			m.types[t.Name] = true
			anyType[t.Name] = true
			var seen []string
			for _, p := range t.Compartment {
				// Chained parameters (DSTU2, STU3: AuditEvent
				// participant.patient) name the Patient through another
				// resource; without that resource's body they link nothing.
				for _, path := range p.Paths {
					if slices.Contains(seen, path) {
						continue
					}
					seen = append(seen, path)
					segs := strings.Split(path, ".")
					m.compartment[t.Name] = append(m.compartment[t.Name], compartmentPath{first: segs[0], rest: segs[1:]})
				}
			}
			if t.Name == "Patient" || m.compartment[t.Name] != nil {
				m.compartmentTypes = append(m.compartmentTypes, t.Name)
			}
		}
		if m.compartment["Patient"] == nil {
			m.compartment["Patient"] = []compartmentPath{} // linked through itself
		}
		slices.Sort(m.compartmentTypes)
		models[v] = m
	}
}

// Defs returns the release's definitions.
func (m *Model) Defs() *defs.Defs { return m.defs }

// IsResourceType reports whether s is a resource type of the release
// (case-sensitive).
func (m *Model) IsResourceType(s string) bool { return m.types[s] }

// ResourceTypes lists the release's resource types, sorted.
func (m *Model) ResourceTypes() []string { return m.defs.ResourceTypes() }

// PatientCompartmentTypes lists, sorted, the types the release's Patient
// CompartmentDefinition links to a Patient through at least one search
// parameter whose paths are the resource's own, Patient included.
func (m *Model) PatientCompartmentTypes() []string { return m.compartmentTypes }

// IsPatientCompartmentType reports whether typ is in the Patient compartment.
func (m *Model) IsPatientCompartmentType(typ string) bool {
	_, ok := slices.BinarySearch(m.compartmentTypes, typ)
	return ok
}

// IsPatientExportType reports whether Patient- and Group-level exports
// return resources of typ: the Patient compartment's types except Group. A
// Group is in the compartment of each member (Group.member), but exporting
// one would hand a client the ids of every other member, including patients
// outside what it may see, and make a 10-patient export read each large
// Group's member list.
func (m *Model) IsPatientExportType(typ string) bool {
	return typ != "Group" && m.IsPatientCompartmentType(typ)
}

// PatientCompartment returns the sorted, distinct ids of the Patients whose
// compartment holds the resource typ/id with JSON body, or nil. A Patient is
// in its own compartment and in that of each Patient it links to
// (Patient.link.other). Only literal references to Patients count (see
// ParseReference); contained, urn:uuid: and identifier-only references do
// not. The returned strings never alias body.
func (m *Model) PatientCompartment(typ, id string, body []byte) []string {
	paths, ok := m.compartment[typ]
	if !ok {
		return nil
	}
	var ids []string
	if typ == "Patient" && id != "" {
		ids = append(ids, strings.Clone(id))
	}
	add := func(id string) { ids = append(ids, id) }
	for _, p := range paths {
		// GetBytes copies the selected value, so ids do not alias body.
		collectPatientRefs(gjson.GetBytes(body, p.first), p.rest, add)
	}
	return sortedDistinct(ids)
}
