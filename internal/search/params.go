package search

// This file is the search parameter table: R4 (4.0.1) SearchParameter
// definitions transcribed by hand from the registry
// (https://hl7.org/fhir/R4/searchparameter-registry.html, the Bundle
// https://hl7.org/fhir/R4/search-parameters.json). Each entry keeps the
// definition's id, code, type and FHIRPath expression verbatim; the engine
// compiles the expressions (fhirpath.go) and derives each parameter's base
// types from them, so a shared definition such as clinical-patient serves
// every type its expression names. Only the alternatives rooted at a
// supported type are kept.
//
// Left out on purpose: composite and special parameters (code-value-quantity,
// near), number parameters, _text, _content, _query, _filter, _has, _list,
// phonetic matching and Patient.deceased (its expression is not a path).
// Asking for any of them is EUNSUPPORTED.

// Param describes one search parameter usable in _typeFilter, in the shape
// of CapabilityStatement.rest.resource.searchParam.
type Param struct {
	Name       string // the code used in queries, e.g. "clinical-status"
	Type       string // token, date, reference, string, uri or quantity
	Definition string // canonical URL of the R4 SearchParameter
}

// definition is an R4 SearchParameter: id, code, type and expression.
type definition struct {
	id, code, typ, expr string
}

// supportedTypes are the resource types with type-specific parameters; every
// R4 type gets the common parameters (_id, _lastUpdated, _tag, _profile,
// _security, _source).
var supportedTypes = []string{
	"AllergyIntolerance", "CarePlan", "CareTeam", "Claim", "Condition", "Coverage",
	"Device", "DiagnosticReport", "DocumentReference", "Encounter", "ExplanationOfBenefit",
	"Group", "ImagingStudy", "Immunization", "Location", "MedicationAdministration",
	"MedicationRequest", "MedicationStatement", "Observation", "Organization", "Patient",
	"Practitioner", "Procedure", "Provenance", "ServiceRequest",
}

// Shared R4 expressions, verbatim.
const (
	clinicalCode = "AllergyIntolerance.code | AllergyIntolerance.reaction.substance | Condition.code | (DeviceRequest.code as CodeableConcept) | DiagnosticReport.code | FamilyMemberHistory.condition.code | List.code | Medication.code | (MedicationAdministration.medication as CodeableConcept) | (MedicationDispense.medication as CodeableConcept) | (MedicationRequest.medication as CodeableConcept) | (MedicationStatement.medication as CodeableConcept) | Observation.code | Procedure.code | ServiceRequest.code"

	clinicalDate = "AllergyIntolerance.recordedDate | CarePlan.period | CareTeam.period | ClinicalImpression.date | Composition.date | Consent.dateTime | DiagnosticReport.effective | Encounter.period | EpisodeOfCare.period | FamilyMemberHistory.date | Flag.period | Immunization.occurrence | List.date | Observation.effective | Procedure.performed | (RiskAssessment.occurrence as dateTime) | SupplyRequest.authoredOn"

	clinicalEncounter = "Composition.encounter | DeviceRequest.encounter | DiagnosticReport.encounter | DocumentReference.context.encounter | Flag.encounter | List.encounter | NutritionOrder.encounter | Observation.encounter | Procedure.encounter | RiskAssessment.encounter | ServiceRequest.encounter | VisionPrescription.encounter"

	clinicalIdentifier = "AllergyIntolerance.identifier | CarePlan.identifier | CareTeam.identifier | Composition.identifier | Condition.identifier | Consent.identifier | DetectedIssue.identifier | DeviceRequest.identifier | DiagnosticReport.identifier | DocumentManifest.masterIdentifier | DocumentManifest.identifier | DocumentReference.masterIdentifier | DocumentReference.identifier | Encounter.identifier | EpisodeOfCare.identifier | FamilyMemberHistory.identifier | Goal.identifier | ImagingStudy.identifier | Immunization.identifier | List.identifier | MedicationAdministration.identifier | MedicationDispense.identifier | MedicationRequest.identifier | MedicationStatement.identifier | NutritionOrder.identifier | Observation.identifier | Procedure.identifier | RiskAssessment.identifier | ServiceRequest.identifier | SupplyDelivery.identifier | SupplyRequest.identifier | VisionPrescription.identifier"

	clinicalPatient = "AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient) | CareTeam.subject.where(resolve() is Patient) | ClinicalImpression.subject.where(resolve() is Patient) | Composition.subject.where(resolve() is Patient) | Condition.subject.where(resolve() is Patient) | Consent.patient | DetectedIssue.patient | DeviceRequest.subject.where(resolve() is Patient) | DeviceUseStatement.subject | DiagnosticReport.subject.where(resolve() is Patient) | DocumentManifest.subject.where(resolve() is Patient) | DocumentReference.subject.where(resolve() is Patient) | Encounter.subject.where(resolve() is Patient) | EpisodeOfCare.patient | FamilyMemberHistory.patient | Flag.subject.where(resolve() is Patient) | Goal.subject.where(resolve() is Patient) | ImagingStudy.subject.where(resolve() is Patient) | Immunization.patient | List.subject.where(resolve() is Patient) | MedicationAdministration.subject.where(resolve() is Patient) | MedicationDispense.subject.where(resolve() is Patient) | MedicationRequest.subject.where(resolve() is Patient) | MedicationStatement.subject.where(resolve() is Patient) | NutritionOrder.patient | Observation.subject.where(resolve() is Patient) | Procedure.subject.where(resolve() is Patient) | RiskAssessment.subject.where(resolve() is Patient) | ServiceRequest.subject.where(resolve() is Patient) | SupplyDelivery.patient | VisionPrescription.patient"

	clinicalType = "AllergyIntolerance.type | Composition.type | DocumentManifest.type | DocumentReference.type | Encounter.type | EpisodeOfCare.type"

	medicationsMedication = "(MedicationAdministration.medication as Reference) | (MedicationDispense.medication as Reference) | (MedicationRequest.medication as Reference) | (MedicationStatement.medication as Reference)"

	medicationsStatus = "MedicationAdministration.status | MedicationDispense.status | MedicationRequest.status | MedicationStatement.status"
)

// definitions is the table. Order does not matter; Supported sorts.
var definitions = []definition{
	// Resource (every type).
	{"Resource-id", "_id", "token", "Resource.id"},
	{"Resource-lastUpdated", "_lastUpdated", "date", "Resource.meta.lastUpdated"},
	{"Resource-profile", "_profile", "uri", "Resource.meta.profile"},
	{"Resource-security", "_security", "token", "Resource.meta.security"},
	{"Resource-source", "_source", "uri", "Resource.meta.source"},
	{"Resource-tag", "_tag", "token", "Resource.meta.tag"},

	// Shared clinical definitions.
	{"clinical-code", "code", "token", clinicalCode},
	{"clinical-date", "date", "date", clinicalDate},
	{"clinical-encounter", "encounter", "reference", clinicalEncounter},
	{"clinical-identifier", "identifier", "token", clinicalIdentifier},
	{"clinical-patient", "patient", "reference", clinicalPatient},
	{"clinical-type", "type", "token", clinicalType},
	{"medications-medication", "medication", "reference", medicationsMedication},
	{"medications-status", "status", "token", medicationsStatus},

	// Shared person definitions (individual-*): Patient, Practitioner.
	{"individual-address", "address", "string", "Patient.address | Person.address | Practitioner.address | RelatedPerson.address"},
	{"individual-address-city", "address-city", "string", "Patient.address.city | Person.address.city | Practitioner.address.city | RelatedPerson.address.city"},
	{"individual-address-country", "address-country", "string", "Patient.address.country | Person.address.country | Practitioner.address.country | RelatedPerson.address.country"},
	{"individual-address-postalcode", "address-postalcode", "string", "Patient.address.postalCode | Person.address.postalCode | Practitioner.address.postalCode | RelatedPerson.address.postalCode"},
	{"individual-address-state", "address-state", "string", "Patient.address.state | Person.address.state | Practitioner.address.state | RelatedPerson.address.state"},
	{"individual-address-use", "address-use", "token", "Patient.address.use | Person.address.use | Practitioner.address.use | RelatedPerson.address.use"},
	{"individual-birthdate", "birthdate", "date", "Patient.birthDate | Person.birthDate | RelatedPerson.birthDate"},
	{"individual-email", "email", "token", "Patient.telecom.where(system='email') | Person.telecom.where(system='email') | Practitioner.telecom.where(system='email') | PractitionerRole.telecom.where(system='email') | RelatedPerson.telecom.where(system='email')"},
	{"individual-family", "family", "string", "Patient.name.family | Practitioner.name.family"},
	{"individual-gender", "gender", "token", "Patient.gender | Person.gender | Practitioner.gender | RelatedPerson.gender"},
	{"individual-given", "given", "string", "Patient.name.given | Practitioner.name.given"},
	{"individual-phone", "phone", "token", "Patient.telecom.where(system='phone') | Person.telecom.where(system='phone') | Practitioner.telecom.where(system='phone') | PractitionerRole.telecom.where(system='phone') | RelatedPerson.telecom.where(system='phone')"},
	{"individual-telecom", "telecom", "token", "Patient.telecom | Person.telecom | Practitioner.telecom | PractitionerRole.telecom | RelatedPerson.telecom"},

	// AllergyIntolerance.
	{"AllergyIntolerance-asserter", "asserter", "reference", "AllergyIntolerance.asserter"},
	{"AllergyIntolerance-category", "category", "token", "AllergyIntolerance.category"},
	{"AllergyIntolerance-clinical-status", "clinical-status", "token", "AllergyIntolerance.clinicalStatus"},
	{"AllergyIntolerance-criticality", "criticality", "token", "AllergyIntolerance.criticality"},
	{"AllergyIntolerance-last-date", "last-date", "date", "AllergyIntolerance.lastOccurrence"},
	{"AllergyIntolerance-manifestation", "manifestation", "token", "AllergyIntolerance.reaction.manifestation"},
	{"AllergyIntolerance-onset", "onset", "date", "AllergyIntolerance.reaction.onset"},
	{"AllergyIntolerance-recorder", "recorder", "reference", "AllergyIntolerance.recorder"},
	{"AllergyIntolerance-route", "route", "token", "AllergyIntolerance.reaction.exposureRoute"},
	{"AllergyIntolerance-severity", "severity", "token", "AllergyIntolerance.reaction.severity"},
	{"AllergyIntolerance-verification-status", "verification-status", "token", "AllergyIntolerance.verificationStatus"},

	// CarePlan.
	{"CarePlan-activity-code", "activity-code", "token", "CarePlan.activity.detail.code"},
	{"CarePlan-activity-date", "activity-date", "date", "CarePlan.activity.detail.scheduled"},
	{"CarePlan-activity-reference", "activity-reference", "reference", "CarePlan.activity.reference"},
	{"CarePlan-based-on", "based-on", "reference", "CarePlan.basedOn"},
	{"CarePlan-care-team", "care-team", "reference", "CarePlan.careTeam"},
	{"CarePlan-category", "category", "token", "CarePlan.category"},
	{"CarePlan-condition", "condition", "reference", "CarePlan.addresses"},
	{"CarePlan-encounter", "encounter", "reference", "CarePlan.encounter"},
	{"CarePlan-goal", "goal", "reference", "CarePlan.goal"},
	{"CarePlan-instantiates-canonical", "instantiates-canonical", "reference", "CarePlan.instantiatesCanonical"},
	{"CarePlan-instantiates-uri", "instantiates-uri", "uri", "CarePlan.instantiatesUri"},
	{"CarePlan-intent", "intent", "token", "CarePlan.intent"},
	{"CarePlan-part-of", "part-of", "reference", "CarePlan.partOf"},
	{"CarePlan-performer", "performer", "reference", "CarePlan.activity.detail.performer"},
	{"CarePlan-replaces", "replaces", "reference", "CarePlan.replaces"},
	{"CarePlan-status", "status", "token", "CarePlan.status"},
	{"CarePlan-subject", "subject", "reference", "CarePlan.subject"},

	// CareTeam.
	{"CareTeam-category", "category", "token", "CareTeam.category"},
	{"CareTeam-encounter", "encounter", "reference", "CareTeam.encounter"},
	{"CareTeam-participant", "participant", "reference", "CareTeam.participant.member"},
	{"CareTeam-status", "status", "token", "CareTeam.status"},
	{"CareTeam-subject", "subject", "reference", "CareTeam.subject"},

	// Claim.
	{"Claim-care-team", "care-team", "reference", "Claim.careTeam.provider"},
	{"Claim-created", "created", "date", "Claim.created"},
	{"Claim-detail-udi", "detail-udi", "reference", "Claim.item.detail.udi"},
	{"Claim-encounter", "encounter", "reference", "Claim.item.encounter"},
	{"Claim-enterer", "enterer", "reference", "Claim.enterer"},
	{"Claim-facility", "facility", "reference", "Claim.facility"},
	{"Claim-identifier", "identifier", "token", "Claim.identifier"},
	{"Claim-insurer", "insurer", "reference", "Claim.insurer"},
	{"Claim-item-udi", "item-udi", "reference", "Claim.item.udi"},
	{"Claim-patient", "patient", "reference", "Claim.patient"},
	{"Claim-payee", "payee", "reference", "Claim.payee.party"},
	{"Claim-priority", "priority", "token", "Claim.priority"},
	{"Claim-procedure-udi", "procedure-udi", "reference", "Claim.procedure.udi"},
	{"Claim-provider", "provider", "reference", "Claim.provider"},
	{"Claim-status", "status", "token", "Claim.status"},
	{"Claim-subdetail-udi", "subdetail-udi", "reference", "Claim.item.detail.subDetail.udi"},
	{"Claim-use", "use", "token", "Claim.use"},

	// Condition.
	{"Condition-abatement-age", "abatement-age", "quantity", "Condition.abatement.as(Age) | Condition.abatement.as(Range)"},
	{"Condition-abatement-date", "abatement-date", "date", "Condition.abatement.as(dateTime) | Condition.abatement.as(Period)"},
	{"Condition-abatement-string", "abatement-string", "string", "Condition.abatement.as(string)"},
	{"Condition-asserter", "asserter", "reference", "Condition.asserter"},
	{"Condition-body-site", "body-site", "token", "Condition.bodySite"},
	{"Condition-category", "category", "token", "Condition.category"},
	{"Condition-clinical-status", "clinical-status", "token", "Condition.clinicalStatus"},
	{"Condition-encounter", "encounter", "reference", "Condition.encounter"},
	{"Condition-evidence", "evidence", "token", "Condition.evidence.code"},
	{"Condition-evidence-detail", "evidence-detail", "reference", "Condition.evidence.detail"},
	{"Condition-onset-age", "onset-age", "quantity", "Condition.onset.as(Age) | Condition.onset.as(Range)"},
	{"Condition-onset-date", "onset-date", "date", "Condition.onset.as(dateTime) | Condition.onset.as(Period)"},
	{"Condition-onset-info", "onset-info", "string", "Condition.onset.as(string)"},
	{"Condition-recorded-date", "recorded-date", "date", "Condition.recordedDate"},
	{"Condition-severity", "severity", "token", "Condition.severity"},
	{"Condition-stage", "stage", "token", "Condition.stage.summary"},
	{"Condition-subject", "subject", "reference", "Condition.subject"},
	{"Condition-verification-status", "verification-status", "token", "Condition.verificationStatus"},

	// Coverage.
	{"Coverage-beneficiary", "beneficiary", "reference", "Coverage.beneficiary"},
	{"Coverage-class-type", "class-type", "token", "Coverage.class.type"},
	{"Coverage-class-value", "class-value", "string", "Coverage.class.value"},
	{"Coverage-dependent", "dependent", "string", "Coverage.dependent"},
	{"Coverage-identifier", "identifier", "token", "Coverage.identifier"},
	{"Coverage-patient", "patient", "reference", "Coverage.beneficiary"},
	{"Coverage-payor", "payor", "reference", "Coverage.payor"},
	{"Coverage-policy-holder", "policy-holder", "reference", "Coverage.policyHolder"},
	{"Coverage-status", "status", "token", "Coverage.status"},
	{"Coverage-subscriber", "subscriber", "reference", "Coverage.subscriber"},
	{"Coverage-type", "type", "token", "Coverage.type"},

	// Device.
	{"Device-device-name", "device-name", "string", "Device.deviceName.name | Device.type.coding.display | Device.type.text"},
	{"Device-identifier", "identifier", "token", "Device.identifier"},
	{"Device-location", "location", "reference", "Device.location"},
	{"Device-manufacturer", "manufacturer", "string", "Device.manufacturer"},
	{"Device-model", "model", "string", "Device.modelNumber"},
	{"Device-organization", "organization", "reference", "Device.owner"},
	{"Device-patient", "patient", "reference", "Device.patient"},
	{"Device-status", "status", "token", "Device.status"},
	{"Device-type", "type", "token", "Device.type"},
	{"Device-udi-carrier", "udi-carrier", "string", "Device.udiCarrier.carrierHRF"},
	{"Device-udi-di", "udi-di", "string", "Device.udiCarrier.deviceIdentifier"},
	{"Device-url", "url", "uri", "Device.url"},

	// DiagnosticReport.
	{"DiagnosticReport-based-on", "based-on", "reference", "DiagnosticReport.basedOn"},
	{"DiagnosticReport-category", "category", "token", "DiagnosticReport.category"},
	{"DiagnosticReport-conclusion", "conclusion", "token", "DiagnosticReport.conclusionCode"},
	{"DiagnosticReport-issued", "issued", "date", "DiagnosticReport.issued"},
	{"DiagnosticReport-media", "media", "reference", "DiagnosticReport.media.link"},
	{"DiagnosticReport-performer", "performer", "reference", "DiagnosticReport.performer"},
	{"DiagnosticReport-result", "result", "reference", "DiagnosticReport.result"},
	{"DiagnosticReport-results-interpreter", "results-interpreter", "reference", "DiagnosticReport.resultsInterpreter"},
	{"DiagnosticReport-specimen", "specimen", "reference", "DiagnosticReport.specimen"},
	{"DiagnosticReport-status", "status", "token", "DiagnosticReport.status"},
	{"DiagnosticReport-subject", "subject", "reference", "DiagnosticReport.subject"},

	// DocumentReference.
	{"DocumentReference-authenticator", "authenticator", "reference", "DocumentReference.authenticator"},
	{"DocumentReference-author", "author", "reference", "DocumentReference.author"},
	{"DocumentReference-category", "category", "token", "DocumentReference.category"},
	{"DocumentReference-contenttype", "contenttype", "token", "DocumentReference.content.attachment.contentType"},
	{"DocumentReference-custodian", "custodian", "reference", "DocumentReference.custodian"},
	{"DocumentReference-date", "date", "date", "DocumentReference.date"},
	{"DocumentReference-description", "description", "string", "DocumentReference.description"},
	{"DocumentReference-event", "event", "token", "DocumentReference.context.event"},
	{"DocumentReference-facility", "facility", "token", "DocumentReference.context.facilityType"},
	{"DocumentReference-format", "format", "token", "DocumentReference.content.format"},
	{"DocumentReference-language", "language", "token", "DocumentReference.content.attachment.language"},
	{"DocumentReference-location", "location", "uri", "DocumentReference.content.attachment.url"},
	{"DocumentReference-period", "period", "date", "DocumentReference.context.period"},
	{"DocumentReference-related", "related", "reference", "DocumentReference.context.related"},
	{"DocumentReference-relatesto", "relatesto", "reference", "DocumentReference.relatesTo.target"},
	{"DocumentReference-relation", "relation", "token", "DocumentReference.relatesTo.code"},
	{"DocumentReference-security-label", "security-label", "token", "DocumentReference.securityLabel"},
	{"DocumentReference-setting", "setting", "token", "DocumentReference.context.practiceSetting"},
	{"DocumentReference-status", "status", "token", "DocumentReference.status"},
	{"DocumentReference-subject", "subject", "reference", "DocumentReference.subject"},

	// Encounter.
	{"Encounter-account", "account", "reference", "Encounter.account"},
	{"Encounter-appointment", "appointment", "reference", "Encounter.appointment"},
	{"Encounter-based-on", "based-on", "reference", "Encounter.basedOn"},
	{"Encounter-class", "class", "token", "Encounter.class"},
	{"Encounter-diagnosis", "diagnosis", "reference", "Encounter.diagnosis.condition"},
	{"Encounter-episode-of-care", "episode-of-care", "reference", "Encounter.episodeOfCare"},
	{"Encounter-length", "length", "quantity", "Encounter.length"},
	{"Encounter-location", "location", "reference", "Encounter.location.location"},
	{"Encounter-location-period", "location-period", "date", "Encounter.location.period"},
	{"Encounter-part-of", "part-of", "reference", "Encounter.partOf"},
	{"Encounter-participant", "participant", "reference", "Encounter.participant.individual"},
	{"Encounter-participant-type", "participant-type", "token", "Encounter.participant.type"},
	{"Encounter-practitioner", "practitioner", "reference", "Encounter.participant.individual.where(resolve() is Practitioner)"},
	{"Encounter-reason-code", "reason-code", "token", "Encounter.reasonCode"},
	{"Encounter-reason-reference", "reason-reference", "reference", "Encounter.reasonReference"},
	{"Encounter-service-provider", "service-provider", "reference", "Encounter.serviceProvider"},
	{"Encounter-special-arrangement", "special-arrangement", "token", "Encounter.hospitalization.specialArrangement"},
	{"Encounter-status", "status", "token", "Encounter.status"},
	{"Encounter-subject", "subject", "reference", "Encounter.subject"},

	// ExplanationOfBenefit.
	{"ExplanationOfBenefit-care-team", "care-team", "reference", "ExplanationOfBenefit.careTeam.provider"},
	{"ExplanationOfBenefit-claim", "claim", "reference", "ExplanationOfBenefit.claim"},
	{"ExplanationOfBenefit-coverage", "coverage", "reference", "ExplanationOfBenefit.insurance.coverage"},
	{"ExplanationOfBenefit-created", "created", "date", "ExplanationOfBenefit.created"},
	{"ExplanationOfBenefit-detail-udi", "detail-udi", "reference", "ExplanationOfBenefit.item.detail.udi"},
	{"ExplanationOfBenefit-disposition", "disposition", "string", "ExplanationOfBenefit.disposition"},
	{"ExplanationOfBenefit-encounter", "encounter", "reference", "ExplanationOfBenefit.item.encounter"},
	{"ExplanationOfBenefit-enterer", "enterer", "reference", "ExplanationOfBenefit.enterer"},
	{"ExplanationOfBenefit-facility", "facility", "reference", "ExplanationOfBenefit.facility"},
	{"ExplanationOfBenefit-identifier", "identifier", "token", "ExplanationOfBenefit.identifier"},
	{"ExplanationOfBenefit-item-udi", "item-udi", "reference", "ExplanationOfBenefit.item.udi"},
	{"ExplanationOfBenefit-patient", "patient", "reference", "ExplanationOfBenefit.patient"},
	{"ExplanationOfBenefit-payee", "payee", "reference", "ExplanationOfBenefit.payee.party"},
	{"ExplanationOfBenefit-procedure-udi", "procedure-udi", "reference", "ExplanationOfBenefit.procedure.udi"},
	{"ExplanationOfBenefit-provider", "provider", "reference", "ExplanationOfBenefit.provider"},
	{"ExplanationOfBenefit-status", "status", "token", "ExplanationOfBenefit.status"},
	{"ExplanationOfBenefit-subdetail-udi", "subdetail-udi", "reference", "ExplanationOfBenefit.item.detail.subDetail.udi"},

	// Group.
	{"Group-actual", "actual", "token", "Group.actual"},
	{"Group-characteristic", "characteristic", "token", "Group.characteristic.code"},
	{"Group-code", "code", "token", "Group.code"},
	{"Group-exclude", "exclude", "token", "Group.characteristic.exclude"},
	{"Group-identifier", "identifier", "token", "Group.identifier"},
	{"Group-managing-entity", "managing-entity", "reference", "Group.managingEntity"},
	{"Group-member", "member", "reference", "Group.member.entity"},
	{"Group-type", "type", "token", "Group.type"},
	{"Group-value", "value", "token", "(Group.characteristic.value as CodeableConcept) | (Group.characteristic.value as boolean)"},

	// ImagingStudy.
	{"ImagingStudy-basedon", "basedon", "reference", "ImagingStudy.basedOn"},
	{"ImagingStudy-bodysite", "bodysite", "token", "ImagingStudy.series.bodySite"},
	{"ImagingStudy-dicom-class", "dicom-class", "token", "ImagingStudy.series.instance.sopClass"},
	{"ImagingStudy-encounter", "encounter", "reference", "ImagingStudy.encounter"},
	{"ImagingStudy-endpoint", "endpoint", "reference", "ImagingStudy.endpoint | ImagingStudy.series.endpoint"},
	{"ImagingStudy-instance", "instance", "token", "ImagingStudy.series.instance.uid"},
	{"ImagingStudy-interpreter", "interpreter", "reference", "ImagingStudy.interpreter"},
	{"ImagingStudy-modality", "modality", "token", "ImagingStudy.series.modality"},
	{"ImagingStudy-performer", "performer", "reference", "ImagingStudy.series.performer.actor"},
	{"ImagingStudy-reason", "reason", "token", "ImagingStudy.reasonCode"},
	{"ImagingStudy-referrer", "referrer", "reference", "ImagingStudy.referrer"},
	{"ImagingStudy-series", "series", "token", "ImagingStudy.series.uid"},
	{"ImagingStudy-started", "started", "date", "ImagingStudy.started"},
	{"ImagingStudy-status", "status", "token", "ImagingStudy.status"},
	{"ImagingStudy-subject", "subject", "reference", "ImagingStudy.subject"},

	// Immunization.
	{"Immunization-location", "location", "reference", "Immunization.location"},
	{"Immunization-lot-number", "lot-number", "string", "Immunization.lotNumber"},
	{"Immunization-manufacturer", "manufacturer", "reference", "Immunization.manufacturer"},
	{"Immunization-performer", "performer", "reference", "Immunization.performer.actor"},
	{"Immunization-reaction", "reaction", "reference", "Immunization.reaction.detail"},
	{"Immunization-reaction-date", "reaction-date", "date", "Immunization.reaction.date"},
	{"Immunization-reason-code", "reason-code", "token", "Immunization.reasonCode"},
	{"Immunization-reason-reference", "reason-reference", "reference", "Immunization.reasonReference"},
	{"Immunization-series", "series", "string", "Immunization.protocolApplied.series"},
	{"Immunization-status", "status", "token", "Immunization.status"},
	{"Immunization-status-reason", "status-reason", "token", "Immunization.statusReason"},
	{"Immunization-target-disease", "target-disease", "token", "Immunization.protocolApplied.targetDisease"},
	{"Immunization-vaccine-code", "vaccine-code", "token", "Immunization.vaccineCode"},

	// Location.
	{"Location-address", "address", "string", "Location.address"},
	{"Location-address-city", "address-city", "string", "Location.address.city"},
	{"Location-address-country", "address-country", "string", "Location.address.country"},
	{"Location-address-postalcode", "address-postalcode", "string", "Location.address.postalCode"},
	{"Location-address-state", "address-state", "string", "Location.address.state"},
	{"Location-address-use", "address-use", "token", "Location.address.use"},
	{"Location-endpoint", "endpoint", "reference", "Location.endpoint"},
	{"Location-identifier", "identifier", "token", "Location.identifier"},
	{"Location-name", "name", "string", "Location.name | Location.alias"},
	{"Location-operational-status", "operational-status", "token", "Location.operationalStatus"},
	{"Location-organization", "organization", "reference", "Location.managingOrganization"},
	{"Location-partof", "partof", "reference", "Location.partOf"},
	{"Location-status", "status", "token", "Location.status"},
	{"Location-type", "type", "token", "Location.type"},

	// MedicationAdministration.
	{"MedicationAdministration-context", "context", "reference", "MedicationAdministration.context"},
	{"MedicationAdministration-device", "device", "reference", "MedicationAdministration.device"},
	{"MedicationAdministration-effective-time", "effective-time", "date", "MedicationAdministration.effective"},
	{"MedicationAdministration-performer", "performer", "reference", "MedicationAdministration.performer.actor"},
	{"MedicationAdministration-reason-given", "reason-given", "token", "MedicationAdministration.reasonCode"},
	{"MedicationAdministration-reason-not-given", "reason-not-given", "token", "MedicationAdministration.statusReason"},
	{"MedicationAdministration-request", "request", "reference", "MedicationAdministration.request"},
	{"MedicationAdministration-subject", "subject", "reference", "MedicationAdministration.subject"},

	// MedicationRequest.
	{"MedicationRequest-authoredon", "authoredon", "date", "MedicationRequest.authoredOn"},
	{"MedicationRequest-category", "category", "token", "MedicationRequest.category"},
	{"medications-date", "date", "date", "MedicationRequest.dosageInstruction.timing.event"},
	{"medications-encounter", "encounter", "reference", "MedicationRequest.encounter"},
	{"MedicationRequest-intended-dispenser", "intended-dispenser", "reference", "MedicationRequest.dispenseRequest.performer"},
	{"MedicationRequest-intended-performer", "intended-performer", "reference", "MedicationRequest.performer"},
	{"MedicationRequest-intended-performertype", "intended-performertype", "token", "MedicationRequest.performerType"},
	{"MedicationRequest-intent", "intent", "token", "MedicationRequest.intent"},
	{"MedicationRequest-priority", "priority", "token", "MedicationRequest.priority"},
	{"MedicationRequest-requester", "requester", "reference", "MedicationRequest.requester"},
	{"MedicationRequest-subject", "subject", "reference", "MedicationRequest.subject"},

	// MedicationStatement.
	{"MedicationStatement-category", "category", "token", "MedicationStatement.category"},
	{"MedicationStatement-context", "context", "reference", "MedicationStatement.context"},
	{"MedicationStatement-effective", "effective", "date", "MedicationStatement.effective"},
	{"MedicationStatement-part-of", "part-of", "reference", "MedicationStatement.partOf"},
	{"MedicationStatement-source", "source", "reference", "MedicationStatement.informationSource"},
	{"MedicationStatement-subject", "subject", "reference", "MedicationStatement.subject"},

	// Observation.
	{"Observation-based-on", "based-on", "reference", "Observation.basedOn"},
	{"Observation-category", "category", "token", "Observation.category"},
	{"Observation-combo-code", "combo-code", "token", "Observation.code | Observation.component.code"},
	{"Observation-combo-data-absent-reason", "combo-data-absent-reason", "token", "Observation.dataAbsentReason | Observation.component.dataAbsentReason"},
	{"Observation-combo-value-concept", "combo-value-concept", "token", "(Observation.value as CodeableConcept) | (Observation.component.value as CodeableConcept)"},
	{"Observation-combo-value-quantity", "combo-value-quantity", "quantity", "(Observation.value as Quantity) | (Observation.value as SampledData) | (Observation.component.value as Quantity) | (Observation.component.value as SampledData)"},
	{"Observation-component-code", "component-code", "token", "Observation.component.code"},
	{"Observation-component-data-absent-reason", "component-data-absent-reason", "token", "Observation.component.dataAbsentReason"},
	{"Observation-component-value-concept", "component-value-concept", "token", "(Observation.component.value as CodeableConcept)"},
	{"Observation-component-value-quantity", "component-value-quantity", "quantity", "(Observation.component.value as Quantity) | (Observation.component.value as SampledData)"},
	{"Observation-data-absent-reason", "data-absent-reason", "token", "Observation.dataAbsentReason"},
	{"Observation-derived-from", "derived-from", "reference", "Observation.derivedFrom"},
	{"Observation-device", "device", "reference", "Observation.device"},
	{"Observation-focus", "focus", "reference", "Observation.focus"},
	{"Observation-has-member", "has-member", "reference", "Observation.hasMember"},
	{"Observation-method", "method", "token", "Observation.method"},
	{"Observation-part-of", "part-of", "reference", "Observation.partOf"},
	{"Observation-performer", "performer", "reference", "Observation.performer"},
	{"Observation-specimen", "specimen", "reference", "Observation.specimen"},
	{"Observation-status", "status", "token", "Observation.status"},
	{"Observation-subject", "subject", "reference", "Observation.subject"},
	{"Observation-value-concept", "value-concept", "token", "(Observation.value as CodeableConcept)"},
	{"Observation-value-date", "value-date", "date", "(Observation.value as dateTime) | (Observation.value as Period)"},
	{"Observation-value-quantity", "value-quantity", "quantity", "(Observation.value as Quantity) | (Observation.value as SampledData)"},
	{"Observation-value-string", "value-string", "string", "(Observation.value as string) | (Observation.value as CodeableConcept).text"},

	// Organization.
	{"Organization-active", "active", "token", "Organization.active"},
	{"Organization-address", "address", "string", "Organization.address"},
	{"Organization-address-city", "address-city", "string", "Organization.address.city"},
	{"Organization-address-country", "address-country", "string", "Organization.address.country"},
	{"Organization-address-postalcode", "address-postalcode", "string", "Organization.address.postalCode"},
	{"Organization-address-state", "address-state", "string", "Organization.address.state"},
	{"Organization-address-use", "address-use", "token", "Organization.address.use"},
	{"Organization-endpoint", "endpoint", "reference", "Organization.endpoint"},
	{"Organization-identifier", "identifier", "token", "Organization.identifier"},
	{"Organization-name", "name", "string", "Organization.name | Organization.alias"},
	{"Organization-partof", "partof", "reference", "Organization.partOf"},
	{"Organization-type", "type", "token", "Organization.type"},

	// Patient.
	{"Patient-active", "active", "token", "Patient.active"},
	{"Patient-death-date", "death-date", "date", "(Patient.deceased as dateTime)"},
	{"Patient-general-practitioner", "general-practitioner", "reference", "Patient.generalPractitioner"},
	{"Patient-identifier", "identifier", "token", "Patient.identifier"},
	{"Patient-language", "language", "token", "Patient.communication.language"},
	{"Patient-link", "link", "reference", "Patient.link.other"},
	{"Patient-name", "name", "string", "Patient.name"},
	{"Patient-organization", "organization", "reference", "Patient.managingOrganization"},

	// Practitioner.
	{"Practitioner-active", "active", "token", "Practitioner.active"},
	{"Practitioner-communication", "communication", "token", "Practitioner.communication"},
	{"Practitioner-identifier", "identifier", "token", "Practitioner.identifier"},
	{"Practitioner-name", "name", "string", "Practitioner.name"},

	// Procedure.
	{"Procedure-based-on", "based-on", "reference", "Procedure.basedOn"},
	{"Procedure-category", "category", "token", "Procedure.category"},
	{"Procedure-instantiates-canonical", "instantiates-canonical", "reference", "Procedure.instantiatesCanonical"},
	{"Procedure-instantiates-uri", "instantiates-uri", "uri", "Procedure.instantiatesUri"},
	{"Procedure-location", "location", "reference", "Procedure.location"},
	{"Procedure-part-of", "part-of", "reference", "Procedure.partOf"},
	{"Procedure-performer", "performer", "reference", "Procedure.performer.actor"},
	{"Procedure-reason-code", "reason-code", "token", "Procedure.reasonCode"},
	{"Procedure-reason-reference", "reason-reference", "reference", "Procedure.reasonReference"},
	{"Procedure-status", "status", "token", "Procedure.status"},
	{"Procedure-subject", "subject", "reference", "Procedure.subject"},

	// Provenance.
	{"Provenance-agent", "agent", "reference", "Provenance.agent.who"},
	{"Provenance-agent-role", "agent-role", "token", "Provenance.agent.role"},
	{"Provenance-agent-type", "agent-type", "token", "Provenance.agent.type"},
	{"Provenance-entity", "entity", "reference", "Provenance.entity.what"},
	{"Provenance-location", "location", "reference", "Provenance.location"},
	{"Provenance-patient", "patient", "reference", "Provenance.target.where(resolve() is Patient)"},
	{"Provenance-recorded", "recorded", "date", "Provenance.recorded"},
	{"Provenance-signature-type", "signature-type", "token", "Provenance.signature.type"},
	{"Provenance-target", "target", "reference", "Provenance.target"},
	{"Provenance-when", "when", "date", "(Provenance.occurred as dateTime)"},

	// ServiceRequest.
	{"ServiceRequest-authored", "authored", "date", "ServiceRequest.authoredOn"},
	{"ServiceRequest-based-on", "based-on", "reference", "ServiceRequest.basedOn"},
	{"ServiceRequest-body-site", "body-site", "token", "ServiceRequest.bodySite"},
	{"ServiceRequest-category", "category", "token", "ServiceRequest.category"},
	{"ServiceRequest-instantiates-canonical", "instantiates-canonical", "reference", "ServiceRequest.instantiatesCanonical"},
	{"ServiceRequest-instantiates-uri", "instantiates-uri", "uri", "ServiceRequest.instantiatesUri"},
	{"ServiceRequest-intent", "intent", "token", "ServiceRequest.intent"},
	{"ServiceRequest-occurrence", "occurrence", "date", "ServiceRequest.occurrence"},
	{"ServiceRequest-performer", "performer", "reference", "ServiceRequest.performer"},
	{"ServiceRequest-performer-type", "performer-type", "token", "ServiceRequest.performerType"},
	{"ServiceRequest-priority", "priority", "token", "ServiceRequest.priority"},
	{"ServiceRequest-replaces", "replaces", "reference", "ServiceRequest.replaces"},
	{"ServiceRequest-requester", "requester", "reference", "ServiceRequest.requester"},
	{"ServiceRequest-requisition", "requisition", "token", "ServiceRequest.requisition"},
	{"ServiceRequest-specimen", "specimen", "reference", "ServiceRequest.specimen"},
	{"ServiceRequest-status", "status", "token", "ServiceRequest.status"},
	{"ServiceRequest-subject", "subject", "reference", "ServiceRequest.subject"},
}

// choiceTypes lists the choice elements ([x]) that the expressions above
// reach, by path from the resource, with the R4 types each allows
// (StructureDefinitions, https://hl7.org/fhir/R4/). An expression naming a
// choice without a cast reaches every variant (Observation.effective →
// effectiveDateTime, effectivePeriod, effectiveTiming, effectiveInstant).
var choiceTypes = map[string][]string{
	"CarePlan.activity.detail.scheduled":  {"Timing", "Period", "string"},
	"Condition.abatement":                 {"dateTime", "Age", "Period", "Range", "string"},
	"Condition.onset":                     {"dateTime", "Age", "Period", "Range", "string"},
	"DiagnosticReport.effective":          {"dateTime", "Period"},
	"Group.characteristic.value":          {"CodeableConcept", "boolean", "Quantity", "Range", "Reference"},
	"Immunization.occurrence":             {"dateTime", "string"},
	"MedicationAdministration.effective":  {"dateTime", "Period"},
	"MedicationAdministration.medication": {"CodeableConcept", "Reference"},
	"MedicationRequest.medication":        {"CodeableConcept", "Reference"},
	"MedicationStatement.effective":       {"dateTime", "Period"},
	"MedicationStatement.medication":      {"CodeableConcept", "Reference"},
	"Observation.component.value":         {"Quantity", "CodeableConcept", "string", "boolean", "integer", "Range", "Ratio", "SampledData", "time", "dateTime", "Period"},
	"Observation.effective":               {"dateTime", "Period", "Timing", "instant"},
	"Observation.value":                   {"Quantity", "CodeableConcept", "string", "boolean", "integer", "Range", "Ratio", "SampledData", "time", "dateTime", "Period"},
	"Patient.deceased":                    {"boolean", "dateTime"},
	"Procedure.performed":                 {"dateTime", "Period", "string", "Age", "Range"},
	"Provenance.occurred":                 {"Period", "dateTime"},
	"ServiceRequest.occurrence":           {"dateTime", "Period", "Timing"},
}
