package generate

import (
	"strconv"
	"strings"
)

// This file holds the DSTU2 and STU3 shapes of the resources whose
// elements differ from R4's by more than a key or two. Each function
// appends a resource's elements after its header, from values the R4
// writer has already drawn, so the releases describe the same data. Both
// releases name HL7's code systems http://hl7.org/fhir/… (terminology.hl7.org
// came with R4), and code statuses that R4 made CodeableConcepts.

// encounterPreR4: DSTU2 has Encounter.patient, class as a code and the
// reason as indication; STU3 has subject, class as a Coding and the reason
// as a diagnosis (its reason is CodeableConcepts only).
func (g *gen) encounterPreR4(b []byte, k *encKind) []byte {
	dstu2 := g.p.v == vDSTU2
	b = append(b, `,"status":"finished","class":`...)
	if dstu2 {
		b = append(b, encounterClassesDSTU2[k.class]...)
	} else {
		b = append(b, encounterClassesSTU3[k.class]...)
	}
	b = append(b, `,"type":[`...)
	b = append(b, k.cc...)
	b = append(b, ']')
	if dstu2 {
		b = g.p.ref(b, "patient", tPatient, &g.pid)
	} else {
		b = g.p.ref(b, "subject", tPatient, &g.pid)
	}
	b = append(b, `,"participant":[{"type":[{"coding":[{"system":"http://hl7.org/fhir/v3/ParticipationType","code":"PPRF","display":"primary performer"}],"text":"primary performer"}],"period":`...)
	b = g.appendPeriod(b)
	b = append(b, `,"individual":{"reference":"Practitioner/`...)
	b = append(b, g.p.pracIDs[g.org][:]...)
	b = append(b, `"}}],"period":`...)
	b = g.appendPeriod(b)
	if g.reason != nil {
		if dstu2 {
			b = append(b, `,"indication":[{"reference":"Condition/`...)
			b = append(b, g.reason[:]...)
			b = append(b, `"}]`...)
		} else {
			b = append(b, `,"diagnosis":[{"condition":{"reference":"Condition/`...)
			b = append(b, g.reason[:]...)
			b = append(b, `"}}]`...)
		}
	}
	b = append(b, `,"location":[{"location":{"reference":"Location/`...)
	b = append(b, g.p.locIDs[g.org][:]...)
	b = append(b, `"}}]`...)
	return g.p.ref(b, "serviceProvider", tOrganization, &g.p.orgIDs[g.org])
}

// conditionPreR4: clinical and verification status are codes, the
// asserter records it; DSTU2 has Condition.patient, one category and
// dateRecorded (a date), STU3 subject, context and assertedDate.
func (g *gen) conditionPreR4(b []byte, d *condDef, onset, abate int64, resolved bool) []byte {
	dstu2 := g.p.v == vDSTU2
	if resolved {
		b = append(b, `,"clinicalStatus":"resolved","verificationStatus":"confirmed"`...)
	} else {
		b = append(b, `,"clinicalStatus":"active","verificationStatus":"confirmed"`...)
	}
	switch {
	case dstu2:
		b = append(b, `,"category":{"coding":[{"system":"http://hl7.org/fhir/condition-category","code":"diagnosis","display":"Diagnosis"}]}`...)
	case d.chronic:
		b = append(b, `,"category":[{"coding":[{"system":"http://hl7.org/fhir/condition-category","code":"problem-list-item","display":"Problem List Item"}]}]`...)
	default:
		b = append(b, `,"category":[{"coding":[{"system":"http://hl7.org/fhir/condition-category","code":"encounter-diagnosis","display":"Encounter Diagnosis"}]}]`...)
	}
	b = append(b, `,"code":`...)
	b = append(b, d.cc...)
	if dstu2 {
		b = g.p.ref(b, "patient", tPatient, &g.pid)
		b = g.p.ref(b, "encounter", tEncounter, &g.eid)
	} else {
		b = g.p.ref(b, "subject", tPatient, &g.pid)
		b = g.p.ref(b, "context", tEncounter, &g.eid)
	}
	b = append(b, `,"onsetDateTime":"`...)
	b = appendDateTime(b, onset)
	if resolved {
		b = append(b, `","abatementDateTime":"`...)
		b = appendDateTime(b, abate)
	}
	if dstu2 {
		b = append(b, `","dateRecorded":"`...)
		days, _ := floorDiv(g.start, day)
		b = appendDate(b, days)
	} else {
		b = append(b, `","assertedDate":"`...)
		b = appendDateTime(b, g.start)
	}
	b = append(b, '"')
	return g.p.ref(b, "asserter", tPractitioner, &g.p.pracIDs[g.org])
}

// allergyPreR4: no encounter. DSTU2 has status, one category, criticality
// CRITL/CRITH and the substance; STU3 status codes, a code and
// assertedDate.
func (g *gen) allergyPreR4(b []byte, d *allergyDef) []byte {
	if g.p.v == vDSTU2 {
		b = append(b, `,"status":"confirmed","type":"allergy","category":"`...)
		b = append(b, d.category...)
		if d.criticality == "high" {
			b = append(b, `","criticality":"CRITH","substance":`...)
		} else {
			b = append(b, `","criticality":"CRITL","substance":`...)
		}
		b = append(b, d.cc...)
		b = g.p.ref(b, "patient", tPatient, &g.pid)
		b = append(b, `,"recordedDate":"`...)
	} else {
		b = append(b, `,"clinicalStatus":"active","verificationStatus":"confirmed","type":"allergy","category":["`...)
		b = append(b, d.category...)
		b = append(b, `"],"criticality":"`...)
		b = append(b, d.criticality...)
		b = append(b, `","code":`...)
		b = append(b, d.cc...)
		b = g.p.ref(b, "patient", tPatient, &g.pid)
		b = append(b, `,"assertedDate":"`...)
	}
	b = appendDateTime(b, g.start)
	b = append(b, '"')
	return g.p.ref(b, "recorder", tPractitioner, &g.p.pracIDs[g.org])
}

// medicationOrder is DSTU2's MedicationOrder: patient, prescriber,
// dateWritten, one reason, and its own dosageInstruction (Timing's
// periodUnits, doseQuantity).
func (g *gen) medicationOrder(b []byte, d *medDef, status string, authored int64, chronic bool) []byte {
	b = append(b, `,"dateWritten":"`...)
	b = appendDateTime(b, authored)
	b = append(b, `","status":"`...)
	b = append(b, status...)
	b = append(b, '"')
	b = g.p.ref(b, "patient", tPatient, &g.pid)
	b = g.p.ref(b, "prescriber", tPractitioner, &g.p.pracIDs[g.org])
	b = g.p.ref(b, "encounter", tEncounter, &g.eid)
	if g.reason != nil {
		b = g.appendReason(b)
	}
	b = append(b, `,"medicationCodeableConcept":`...)
	b = append(b, d.cc...)
	b = append(b, `,"dosageInstruction":[{"timing":{"repeat":{"frequency":`...)
	b = strconv.AppendInt(b, int64(d.perDay), 10)
	b = append(b, `,"period":1,"periodUnits":"d"}},"asNeededBoolean":`...)
	b = strconv.AppendBool(b, !chronic)
	return append(b, `,"doseQuantity":{"value":1}}]`...)
}

// medicationRequestSTU3: context, requester.agent, and a Dosage with
// dose[x] itself.
func (g *gen) medicationRequestSTU3(b []byte, d *medDef, status string, authored int64, chronic bool) []byte {
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	b = append(b, `","intent":"order","medicationCodeableConcept":`...)
	b = append(b, d.cc...)
	b = g.p.ref(b, "subject", tPatient, &g.pid)
	b = g.p.ref(b, "context", tEncounter, &g.eid)
	b = append(b, `,"authoredOn":"`...)
	b = appendDateTime(b, authored)
	b = append(b, `","requester":{"agent":{"reference":"Practitioner/`...)
	b = append(b, g.p.pracIDs[g.org][:]...)
	b = append(b, `"}}`...)
	if g.reason != nil {
		b = g.appendReason(b)
	}
	b = append(b, `,"dosageInstruction":[{"sequence":1,"timing":{"repeat":{"frequency":`...)
	b = strconv.AppendInt(b, int64(d.perDay), 10)
	b = append(b, `,"period":1,"periodUnit":"d"}},"asNeededBoolean":`...)
	b = strconv.AppendBool(b, !chronic)
	return append(b, `,"doseQuantity":{"value":1}}]`...)
}

// immunizationPreR4: date instead of occurrence; DSTU2 has wasNotGiven,
// reported and one performer, STU3 notGiven, primarySource and
// practitioner.actor.
func (g *gen) immunizationPreR4(b []byte, d *vaxDef, at int64) []byte {
	if g.p.v == vDSTU2 {
		b = append(b, `,"status":"completed","date":"`...)
		b = appendDateTime(b, at)
		b = append(b, `","vaccineCode":`...)
		b = append(b, d.cc...)
		b = g.p.ref(b, "patient", tPatient, &g.pid)
		b = append(b, `,"wasNotGiven":false,"reported":false`...)
		b = g.p.ref(b, "performer", tPractitioner, &g.p.pracIDs[g.org])
		b = g.p.ref(b, "encounter", tEncounter, &g.eid)
		return g.p.ref(b, "location", tLocation, &g.p.locIDs[g.org])
	}
	b = append(b, `,"status":"completed","notGiven":false,"vaccineCode":`...)
	b = append(b, d.cc...)
	b = g.p.ref(b, "patient", tPatient, &g.pid)
	b = g.p.ref(b, "encounter", tEncounter, &g.eid)
	b = append(b, `,"date":"`...)
	b = appendDateTime(b, at)
	b = append(b, `","primarySource":true`...)
	b = g.p.ref(b, "location", tLocation, &g.p.locIDs[g.org])
	b = append(b, `,"practitioner":[{"actor":{"reference":"Practitioner/`...)
	b = append(b, g.p.pracIDs[g.org][:]...)
	return append(b, `"}}]`...)
}

// appendMoneyQuantity appends DSTU2's and STU3's Money, a Quantity in ISO
// 4217 units.
func appendMoneyQuantity(b []byte, cents int64) []byte {
	b = append(b, `{"value":`...)
	b = appendFixed(b, cents, 2)
	return append(b, `,"system":"urn:iso:std:iso:4217","code":"USD"}`...)
}

// codingOf returns the single Coding of a concept() CodeableConcept, for
// DSTU2's Claim, which codes with Codings.
func codingOf(cc string) string {
	const open = `{"coding":[`
	return cc[len(open):strings.LastIndex(cc, `],"text":`)]
}

// claimDSTU2: type is a code, provider a Practitioner beside the
// organization, priority a Coding, the diagnoses and items Codings; one
// coverage; DSTU2's Claim has no billable period, procedures, encounter
// links or total.
func (g *gen) claimDSTU2(b []byte, k *encKind, created int64) []byte {
	if k.class == classEMER || k.class == classIMP {
		b = append(b, `,"type":"institutional","created":"`...)
	} else {
		b = append(b, `,"type":"professional","created":"`...)
	}
	b = appendDateTime(b, created)
	b = append(b, '"')
	b = g.p.ref(b, "provider", tPractitioner, &g.p.pracIDs[g.org])
	b = g.p.ref(b, "organization", tOrganization, &g.p.orgIDs[g.org])
	b = append(b, `,"use":"complete","priority":{"system":"http://hl7.org/fhir/processpriority","code":"normal"}`...)
	if len(g.medIDs) > 0 {
		b = g.p.ref(b, "prescription", tMedicationRequest, &g.medIDs[0])
	}
	if len(g.diags) > 0 {
		b = append(b, `,"diagnosis":[`...)
		first := true
		for _, l := range g.lines {
			if l.diag == 0 {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, `{"sequence":`...)
			b = strconv.AppendInt(b, int64(l.diag), 10)
			b = append(b, `,"diagnosis":`...)
			b = append(b, codingOf(l.cc)...)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = g.p.ref(b, "patient", tPatient, &g.pid)
	b = append(b, `,"coverage":[{"sequence":1,"focal":true,"coverage":{"display":"`...)
	b = append(b, g.payer...)
	b = append(b, `"},"relationship":{"system":"http://hl7.org/fhir/relationship","code":"1","display":"Self"}}],"item":[`...)
	days, _ := floorDiv(g.start, day)
	for i, l := range g.lines {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"sequence":`...)
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(b, `,"type":{"system":"http://hl7.org/fhir/v3/ActCode","code":"CSINV","display":"clinical service invoice"}`...)
		if l.diag > 0 {
			b = append(b, `,"diagnosisLinkId":[`...)
			b = strconv.AppendInt(b, int64(l.diag), 10)
			b = append(b, ']')
		}
		b = append(b, `,"service":`...)
		b = append(b, codingOf(l.cc)...)
		b = append(b, `,"serviceDate":"`...)
		b = appendDate(b, days)
		b = append(b, '"')
		if l.cents > 0 {
			b = append(b, `,"net":`...)
			b = appendMoneyQuantity(b, l.cents)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

func claimTypeSTU3(k *encKind) string {
	if k.class == classEMER || k.class == classIMP {
		return `{"coding":[{"system":"http://hl7.org/fhir/ex-claimtype","code":"institutional"}]}`
	}
	return `{"coding":[{"system":"http://hl7.org/fhir/ex-claimtype","code":"professional"}]}`
}

// claimSTU3: use "complete", provider a Practitioner beside the
// organization, items by service and *LinkId, Money as a Quantity.
func (g *gen) claimSTU3(b []byte, k *encKind, created int64) []byte {
	return g.appendClaim(b, created, claimShape{
		typ: claimTypeSTU3(k), use: "complete",
		providers: func(b []byte) []byte {
			b = g.p.ref(b, "provider", tPractitioner, &g.p.pracIDs[g.org])
			return g.p.ref(b, "organization", tOrganization, &g.p.orgIDs[g.org])
		},
		prioritySystem: "http://hl7.org/fhir/processpriority",
		itemStart:      g.appendItemStartSTU3, money: appendMoneyQuantity,
	})
}

// appendItemStartSTU3 is appendItemStart in STU3's names (diagnosisLinkId,
// procedureLinkId, service).
func (g *gen) appendItemStartSTU3(b []byte, i int, l claimLine) []byte {
	b = append(b, `{"sequence":`...)
	b = strconv.AppendInt(b, int64(i+1), 10)
	if l.diag > 0 {
		b = append(b, `,"diagnosisLinkId":[`...)
		b = strconv.AppendInt(b, int64(l.diag), 10)
		b = append(b, ']')
	}
	if l.proc > 0 {
		b = append(b, `,"procedureLinkId":[`...)
		b = strconv.AppendInt(b, int64(l.proc), 10)
		b = append(b, ']')
	}
	b = append(b, `,"service":`...)
	b = append(b, l.cc...)
	if i == 0 {
		b = append(b, `,"encounter":[{"reference":"Encounter/`...)
		b = append(b, g.eid[:]...)
		b = append(b, `"}]`...)
	}
	return b
}

// eobSTU3: no use, outcome a CodeableConcept, one insurance, items as in
// claimSTU3, totalCost and totalBenefit for R4's totals.
func (g *gen) eobSTU3(b []byte, k *encKind, cid *id, covered, created int64) []byte {
	b = append(b, `,"identifier":[{"system":"https://bluebutton.cms.gov/resources/variables/clm_id","value":"`...)
	b = append(b, cid[:]...)
	b = append(b, `"}],"status":"active","type":`...)
	b = append(b, claimTypeSTU3(k)...)
	b = g.p.ref(b, "patient", tPatient, &g.pid)
	b = append(b, `,"billablePeriod":`...)
	b = g.appendPeriod(b)
	b = append(b, `,"created":"`...)
	b = appendDateTime(b, created)
	b = append(b, `","insurer":{"display":"`...)
	b = append(b, g.payer...)
	b = append(b, `"}`...)
	b = g.p.ref(b, "provider", tPractitioner, &g.p.pracIDs[g.org])
	b = g.p.ref(b, "claim", tClaim, cid)
	b = append(b, `,"outcome":{"coding":[{"system":"http://hl7.org/fhir/remittance-outcome","code":"complete"}]},"careTeam":[{"sequence":1,"provider":{"reference":"Practitioner/`...)
	b = append(b, g.p.pracIDs[g.org][:]...)
	b = append(b, `"},"role":{"coding":[{"system":"http://hl7.org/fhir/claimcareteamrole","code":"primary","display":"Primary provider"}]}}]`...)
	b = g.appendDiagnoses(b)
	b = append(b, `,"insurance":{"coverage":{"display":"`...)
	b = append(b, g.payer...)
	b = append(b, `"}},"item":[`...)
	for i, l := range g.lines {
		if i > 0 {
			b = append(b, ',')
		}
		b = g.appendItemStartSTU3(b, i, l)
		b = append(b, `,"servicedPeriod":`...)
		b = g.appendPeriod(b)
		b = g.p.ref(b, "locationReference", tLocation, &g.p.locIDs[g.org])
		if l.cents > 0 {
			b = append(b, `,"net":`...)
			b = appendMoneyQuantity(b, l.cents)
			b = append(b, `,"adjudication":[{"category":{"coding":[{"system":"http://hl7.org/fhir/adjudication","code":"eligible","display":"Eligible Amount"}]},"amount":`...)
			b = appendMoneyQuantity(b, l.cents)
			b = append(b, `},{"category":{"coding":[{"system":"http://hl7.org/fhir/adjudication","code":"benefit","display":"Benefit Amount"}]},"amount":`...)
			b = appendMoneyQuantity(b, l.cents*covered/100)
			b = append(b, "}]"...)
		}
		b = append(b, '}')
	}
	total := g.claimTotal()
	paid := total * covered / 100
	b = append(b, `],"totalCost":`...)
	b = appendMoneyQuantity(b, total)
	b = append(b, `,"totalBenefit":`...)
	b = appendMoneyQuantity(b, paid)
	b = append(b, `,"payment":{"amount":`...)
	b = appendMoneyQuantity(b, paid)
	return append(b, '}')
}
