package fhir

import (
	"slices"
	"sort"
	"strings"

	"github.com/tidwall/gjson"
)

// compartmentParam is one linking search parameter of a compartment and the
// element paths (dot-separated, relative to the resource) that its
// SearchParameter expression selects.
type compartmentParam struct {
	name  string
	paths []string
}

func param(name string, paths ...string) compartmentParam {
	return compartmentParam{name: name, paths: paths}
}

// patientCompartment is the R4 (4.0.1) Patient CompartmentDefinition
// (https://hl7.org/fhir/R4/compartmentdefinition-patient.html), keeping the
// types that have at least one linking parameter. The paths come from the R4
// SearchParameter expressions (https://hl7.org/fhir/R4/searchparameter-registry.html):
// "Encounter.subject.where(resolve() is Patient)" becomes "subject", because
// only references to Patients are ever collected. Paths may cross arrays at
// any level.
var patientCompartment = map[string][]compartmentParam{
	"Account":                     {param("subject", "subject")},
	"AdverseEvent":                {param("subject", "subject")},
	"AllergyIntolerance":          {param("patient", "patient"), param("recorder", "recorder"), param("asserter", "asserter")},
	"Appointment":                 {param("actor", "participant.actor")},
	"AppointmentResponse":         {param("actor", "actor")},
	"AuditEvent":                  {param("patient", "agent.who", "entity.what")},
	"Basic":                       {param("patient", "subject"), param("author", "author")},
	"BodyStructure":               {param("patient", "patient")},
	"CarePlan":                    {param("patient", "subject"), param("performer", "activity.detail.performer")},
	"CareTeam":                    {param("patient", "subject"), param("participant", "participant.member")},
	"ChargeItem":                  {param("subject", "subject")},
	"Claim":                       {param("patient", "patient"), param("payee", "payee.party")},
	"ClaimResponse":               {param("patient", "patient")},
	"ClinicalImpression":          {param("subject", "subject")},
	"Communication":               {param("subject", "subject"), param("sender", "sender"), param("recipient", "recipient")},
	"CommunicationRequest":        {param("subject", "subject"), param("sender", "sender"), param("recipient", "recipient"), param("requester", "requester")},
	"Composition":                 {param("subject", "subject"), param("author", "author"), param("attester", "attester.party")},
	"Condition":                   {param("patient", "subject"), param("asserter", "asserter")},
	"Consent":                     {param("patient", "patient")},
	"Coverage":                    {param("policy-holder", "policyHolder"), param("subscriber", "subscriber"), param("beneficiary", "beneficiary"), param("payor", "payor")},
	"CoverageEligibilityRequest":  {param("patient", "patient")},
	"CoverageEligibilityResponse": {param("patient", "patient")},
	"DetectedIssue":               {param("patient", "patient")},
	"DeviceRequest":               {param("subject", "subject"), param("performer", "performer")},
	"DeviceUseStatement":          {param("subject", "subject")},
	"DiagnosticReport":            {param("subject", "subject")},
	"DocumentManifest":            {param("subject", "subject"), param("author", "author"), param("recipient", "recipient")},
	"DocumentReference":           {param("subject", "subject"), param("author", "author")},
	"Encounter":                   {param("patient", "subject")},
	"EnrollmentRequest":           {param("subject", "candidate")},
	"EpisodeOfCare":               {param("patient", "patient")},
	"ExplanationOfBenefit":        {param("patient", "patient"), param("payee", "payee.party")},
	"FamilyMemberHistory":         {param("patient", "patient")},
	"Flag":                        {param("patient", "subject")},
	"Goal":                        {param("patient", "subject")},
	"Group":                       {param("member", "member.entity")},
	"ImagingStudy":                {param("patient", "subject")},
	"Immunization":                {param("patient", "patient")},
	"ImmunizationEvaluation":      {param("patient", "patient")},
	"ImmunizationRecommendation":  {param("patient", "patient")},
	"Invoice":                     {param("subject", "subject"), param("patient", "subject"), param("recipient", "recipient")},
	"List":                        {param("subject", "subject"), param("source", "source")},
	"MeasureReport":               {param("patient", "subject")},
	"Media":                       {param("subject", "subject")},
	"MedicationAdministration":    {param("patient", "subject"), param("performer", "performer.actor"), param("subject", "subject")},
	"MedicationDispense":          {param("subject", "subject"), param("patient", "subject"), param("receiver", "receiver")},
	"MedicationRequest":           {param("subject", "subject")},
	"MedicationStatement":         {param("subject", "subject")},
	"MolecularSequence":           {param("patient", "patient")},
	"NutritionOrder":              {param("patient", "patient")},
	"Observation":                 {param("subject", "subject"), param("performer", "performer")},
	"Patient":                     {param("link", "link.other")},
	"Person":                      {param("patient", "link.target")},
	"Procedure":                   {param("patient", "subject"), param("performer", "performer.actor")},
	"Provenance":                  {param("patient", "target")},
	"QuestionnaireResponse":       {param("subject", "subject"), param("author", "author")},
	"RelatedPerson":               {param("patient", "patient")},
	"RequestGroup":                {param("subject", "subject"), param("participant", "action.participant")},
	"ResearchSubject":             {param("individual", "individual")},
	"RiskAssessment":              {param("subject", "subject")},
	"Schedule":                    {param("actor", "actor")},
	"ServiceRequest":              {param("subject", "subject"), param("performer", "performer")},
	"Specimen":                    {param("subject", "subject")},
	"SupplyDelivery":              {param("patient", "patient")},
	"SupplyRequest":               {param("subject", "deliverTo")},
	"VisionPrescription":          {param("patient", "patient")},
}

// PatientCompartmentTypes lists, sorted, the resource types that the R4
// Patient CompartmentDefinition links to a Patient through at least one
// search parameter, Patient included.
var PatientCompartmentTypes = func() []string {
	types := make([]string, 0, len(patientCompartment))
	for t := range patientCompartment {
		types = append(types, t)
	}
	sort.Strings(types)
	return types
}()

// compartmentPath is a compiled path: its first element, looked up in the
// resource, and the rest, walked below it.
type compartmentPath struct {
	first string
	rest  []string
}

// compartmentPaths holds, per type, the distinct paths of all its parameters,
// compiled once: several parameters often share a path (Condition's patient
// is its subject).
var compartmentPaths = func() map[string][]compartmentPath {
	m := make(map[string][]compartmentPath, len(patientCompartment))
	for typ, params := range patientCompartment {
		var seen []string
		for _, p := range params {
			for _, path := range p.paths {
				if slices.Contains(seen, path) {
					continue
				}
				seen = append(seen, path)
				segs := strings.Split(path, ".")
				m[typ] = append(m[typ], compartmentPath{first: segs[0], rest: segs[1:]})
			}
		}
	}
	return m
}()

// PatientCompartment returns the sorted, distinct ids of the Patients whose
// compartment holds the resource typ/id with JSON body, or nil. A Patient is
// in its own compartment and in that of each Patient it links to
// (Patient.link.other). Only literal references to Patients count (see
// ParseReference); contained, urn:uuid: and identifier-only references do
// not. The returned strings never alias body.
func PatientCompartment(typ, id string, body []byte) []string {
	paths := compartmentPaths[typ]
	if paths == nil {
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
