package generate

// Fixed code tables. The codes and displays are real (most are taken from
// Synthea R4 output); every string here is plain text that needs no JSON
// escaping, which TestTablesNeedNoEscaping checks, so the hot path can copy
// them verbatim.

const (
	sysSNOMED = "http://snomed.info/sct"
	sysLOINC  = "http://loinc.org"
	sysRxNorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
	sysCVX    = "http://hl7.org/fhir/sid/cvx"
	sysUCUM   = "http://unitsofmeasure.org"
)

// concept renders a CodeableConcept with one coding and a text.
func concept(system, code, display string) string {
	return `{"coding":[{"system":"` + system + `","code":"` + code + `","display":"` + display + `"}],"text":"` + display + `"}`
}

// Encounter classes (v3 ActCode).
const (
	classAMB = iota
	classEMER
	classIMP
	classVR
)

var encounterClasses = [...]string{
	classAMB:  `{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB","display":"ambulatory"}`,
	classEMER: `{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"EMER","display":"emergency"}`,
	classIMP:  `{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"IMP","display":"inpatient encounter"}`,
	classVR:   `{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"VR","display":"virtual"}`,
}

// encounterClassesDSTU2 are the classes as DSTU2's Encounter.class codes,
// encounterClassesSTU3 as STU3's Codings.
var (
	encounterClassesDSTU2 = [...]string{classAMB: `"ambulatory"`, classEMER: `"emergency"`, classIMP: `"inpatient"`, classVR: `"virtual"`}
	encounterClassesSTU3  = [...]string{
		classAMB:  `{"system":"http://hl7.org/fhir/v3/ActCode","code":"AMB","display":"ambulatory"}`,
		classEMER: `{"system":"http://hl7.org/fhir/v3/ActCode","code":"EMER","display":"emergency"}`,
		classIMP:  `{"system":"http://hl7.org/fhir/v3/ActCode","code":"IMP","display":"inpatient encounter"}`,
		classVR:   `{"system":"http://hl7.org/fhir/v3/ActCode","code":"VR","display":"virtual"}`,
	}
)

// How many vital signs an encounter records.
const (
	vitalsNone = iota
	vitalsBasic
	vitalsFull
)

// encKind is a kind of encounter (SNOMED CT encounter type) and what
// typically happens during one.
type encKind struct {
	code, display string
	class         int
	minMin        int     // shortest duration, minutes
	maxMin        int     // longest duration, minutes
	vitals        int     // vitalsNone, vitalsBasic or vitalsFull
	labP          float64 // chance of a lab panel
	acuteP        float64 // chance of a new acute diagnosis
	weight        int     // relative frequency among non-wellness visits
	cents         int64   // base charge
	cc            string
}

const (
	kindWellAdult = iota
	kindWellChild
	kindFollowUp
	kindAsthmaFollowUp
	kindSymptom
	kindProblem
	kindCheckUp
	kindUrgent
	kindER
	kindInpatient
	kindOutpatientProc
	kindConsult
	kindTelemedicine
	kindPatientProc
	kindPatientInitiated
	kindPostOp
)

var encKinds = [...]encKind{
	kindWellAdult:        {code: "162673000", display: "General examination of patient (procedure)", class: classAMB, minMin: 20, maxMin: 45, vitals: vitalsFull, labP: 0.8, cents: 13652},
	kindWellChild:        {code: "410620009", display: "Well child visit (procedure)", class: classAMB, minMin: 15, maxMin: 40, vitals: vitalsFull, labP: 0.15, cents: 13652},
	kindFollowUp:         {code: "390906007", display: "Follow-up encounter", class: classAMB, minMin: 15, maxMin: 30, vitals: vitalsBasic, labP: 0.35, weight: 0, cents: 7864},
	kindAsthmaFollowUp:   {code: "394701000", display: "Asthma follow-up", class: classAMB, minMin: 15, maxMin: 30, vitals: vitalsBasic, labP: 0.05, weight: 0, cents: 7864},
	kindSymptom:          {code: "185345009", display: "Encounter for symptom", class: classAMB, minMin: 15, maxMin: 40, vitals: vitalsBasic, labP: 0.15, acuteP: 0.85, weight: 18, cents: 8769},
	kindProblem:          {code: "185347001", display: "Encounter for problem (procedure)", class: classAMB, minMin: 15, maxMin: 45, vitals: vitalsBasic, labP: 0.2, acuteP: 0.6, weight: 12, cents: 8769},
	kindCheckUp:          {code: "185349003", display: "Encounter for check up (procedure)", class: classAMB, minMin: 15, maxMin: 30, vitals: vitalsFull, labP: 0.1, acuteP: 0.05, weight: 6, cents: 8769},
	kindUrgent:           {code: "702927004", display: "Urgent care clinic (procedure)", class: classAMB, minMin: 30, maxMin: 120, vitals: vitalsBasic, labP: 0.1, acuteP: 0.9, weight: 6, cents: 17125},
	kindER:               {code: "50849002", display: "Emergency room admission (procedure)", class: classEMER, minMin: 60, maxMin: 360, vitals: vitalsBasic, labP: 0.5, acuteP: 0.9, weight: 5, cents: 104722},
	kindInpatient:        {code: "183452005", display: "Emergency hospital admission (procedure)", class: classIMP, minMin: 1440, maxMin: 7200, vitals: vitalsFull, labP: 0.9, acuteP: 0.5, weight: 2, cents: 842617},
	kindOutpatientProc:   {code: "371883000", display: "Outpatient procedure", class: classAMB, minMin: 30, maxMin: 180, vitals: vitalsBasic, weight: 5, cents: 21534},
	kindConsult:          {code: "698314001", display: "Consultation for treatment", class: classAMB, minMin: 20, maxMin: 60, vitals: vitalsBasic, labP: 0.1, acuteP: 0.2, weight: 4, cents: 11298},
	kindTelemedicine:     {code: "448337001", display: "Telemedicine consultation with patient (procedure)", class: classVR, minMin: 10, maxMin: 30, vitals: vitalsNone, acuteP: 0.4, weight: 4, cents: 5218},
	kindPatientProc:      {code: "308335008", display: "Patient encounter procedure", class: classAMB, minMin: 15, maxMin: 60, vitals: vitalsBasic, labP: 0.05, weight: 3, cents: 8769},
	kindPatientInitiated: {code: "270427003", display: "Patient-initiated encounter", class: classAMB, minMin: 15, maxMin: 30, vitals: vitalsBasic, acuteP: 0.5, weight: 2, cents: 8769},
	kindPostOp:           {code: "439740005", display: "Postoperative follow-up visit (procedure)", class: classAMB, minMin: 15, maxMin: 30, vitals: vitalsBasic, weight: 1, cents: 7864},
}

// condDef is a SNOMED CT condition. Chronic ones are drawn per patient by
// age-scaled prevalence and stay active; acute ones arise at visits and
// resolve after about days.
type condDef struct {
	code, display string
	chronic       bool
	minAge        int
	p             float64 // chronic: prevalence at age 50; acute: relative weight
	days          int     // acute: typical days until resolved
	med           int     // index into meds, or -1
	proc          int     // index into procs, or -1
	cc            string
}

var conditions = [...]condDef{
	// Chronic.
	{code: "59621000", display: "Hypertension", chronic: true, minAge: 18, p: 0.25, med: medHCTZ, proc: procHTNReferral},
	{code: "55822004", display: "Hyperlipidemia", chronic: true, minAge: 25, p: 0.18, med: medSimvastatin, proc: -1},
	{code: "15777000", display: "Prediabetes", chronic: true, minAge: 18, p: 0.15, med: -1, proc: procUrineGlucose},
	{code: "44054006", display: "Diabetes", chronic: true, minAge: 25, p: 0.09, med: medInsulin, proc: procUrineGlucose},
	{code: "162864005", display: "Body mass index 30+ - obesity (finding)", chronic: true, minAge: 10, p: 0.2, med: -1, proc: -1},
	{code: "271737000", display: "Anemia (disorder)", chronic: true, minAge: 0, p: 0.06, med: -1, proc: procBloodSmear},
	{code: "233678006", display: "Childhood asthma", chronic: true, minAge: 2, p: 0.05, med: medFluticasone, proc: procSpirometry},
	{code: "239873007", display: "Osteoarthritis of knee", chronic: true, minAge: 40, p: 0.06, med: medNaproxen, proc: procKneeXray},
	{code: "49436004", display: "Atrial Fibrillation", chronic: true, minAge: 50, p: 0.03, med: medWarfarin, proc: procCardioversion},
	{code: "53741008", display: "Coronary Heart Disease", chronic: true, minAge: 45, p: 0.04, med: medClopidogrel, proc: procEcho},
	{code: "40055000", display: "Chronic sinusitis (disorder)", chronic: true, minAge: 10, p: 0.05, med: -1, proc: procSinusEndoscopy},
	{code: "82423001", display: "Chronic pain", chronic: true, minAge: 18, p: 0.06, med: medAcetaminophen, proc: procCBT},
	{code: "124171000119105", display: "Chronic intractable migraine without aura", chronic: true, minAge: 12, p: 0.03, med: medIbuprofen, proc: -1},
	{code: "64859006", display: "Osteoporosis (disorder)", chronic: true, minAge: 50, p: 0.04, med: -1, proc: procBoneDensity},
	{code: "446096008", display: "Perennial allergic rhinitis", chronic: true, minAge: 3, p: 0.06, med: -1, proc: procImmunotherapy},
	// Acute.
	{code: "444814009", display: "Viral sinusitis (disorder)", p: 20, days: 14, med: -1, proc: -1},
	{code: "195662009", display: "Acute viral pharyngitis (disorder)", p: 14, days: 10, med: medAcetaminophen, proc: procThroatCulture},
	{code: "10509002", display: "Acute bronchitis (disorder)", p: 10, days: 14, med: medCoughSyrup, proc: procChestXray},
	{code: "65363002", display: "Otitis media", p: 6, days: 10, med: medAmoxicillin250, proc: -1},
	{code: "43878008", display: "Streptococcal sore throat (disorder)", p: 4, days: 10, med: medPenicillin, proc: procThroatCulture},
	{code: "75498004", display: "Acute bacterial sinusitis (disorder)", p: 3, days: 14, med: medAmoxClav, proc: -1},
	{code: "44465007", display: "Sprain of ankle", p: 4, days: 28, med: medIbuprofen, proc: procAnkleXray},
	{code: "70704007", display: "Sprain of wrist", p: 2, days: 28, med: medIbuprofen, proc: procBoneImmobilization},
	{code: "284551006", display: "Laceration of foot", p: 2, days: 21, med: -1, proc: procSuture},
	{code: "283371005", display: "Laceration of forearm", p: 2, days: 21, med: -1, proc: procSuture},
	{code: "403190006", display: "First degree burn", p: 2, days: 14, med: -1, proc: -1},
	{code: "39848009", display: "Whiplash injury to neck", p: 2, days: 21, med: medAcetaminophen, proc: -1},
	{code: "62106007", display: "Concussion with no loss of consciousness", p: 1, days: 21, med: -1, proc: -1},
	{code: "65966004", display: "Fracture of forearm", p: 1, days: 56, med: medHydrocodone, proc: procBoneImmobilization},
	{code: "301011002", display: "Escherichia coli urinary tract infection", p: 3, days: 10, med: medAmoxicillin500, proc: procUrineCulture},
	{code: "74400008", display: "Appendicitis", p: 0.5, days: 30, med: medOxycodone, proc: procAppendectomy},
}

// firstAcute is the index of the first acute entry of conditions.
const firstAcute = 15

// medDef is an RxNorm medication.
type medDef struct {
	code, display string
	perDay        int // doses per day
	cents         int64
	cc            string
}

const (
	medHCTZ = iota
	medSimvastatin
	medInsulin
	medFluticasone
	medAlbuterol
	medWarfarin
	medClopidogrel
	medNaproxen
	medAcetaminophen
	medIbuprofen
	medAmlodipine
	medDigoxin
	medNitroglycerin
	medPenicillin
	medAmoxicillin250
	medAmoxClav
	medCoughSyrup
	medHydrocodone
	medOxycodone
	medAmoxicillin500
	medEpinephrine
)

var meds = [...]medDef{
	medHCTZ:           {code: "310798", display: "Hydrochlorothiazide 25 MG Oral Tablet", perDay: 1, cents: 263},
	medSimvastatin:    {code: "314231", display: "Simvastatin 10 MG Oral Tablet", perDay: 1, cents: 1104},
	medInsulin:        {code: "106892", display: "insulin human, isophane 70 UNT/ML / Regular Insulin, Human 30 UNT/ML Injectable Suspension [Humulin]", perDay: 2, cents: 13689},
	medFluticasone:    {code: "895994", display: "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler", perDay: 2, cents: 21544},
	medAlbuterol:      {code: "2123111", display: "NDA020503 200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler", perDay: 4, cents: 4327},
	medWarfarin:       {code: "855332", display: "Warfarin Sodium 5 MG Oral Tablet", perDay: 1, cents: 1023},
	medClopidogrel:    {code: "309362", display: "Clopidogrel 75 MG Oral Tablet", perDay: 1, cents: 1566},
	medNaproxen:       {code: "849574", display: "Naproxen sodium 220 MG Oral Tablet", perDay: 2, cents: 932},
	medAcetaminophen:  {code: "313782", display: "Acetaminophen 325 MG Oral Tablet", perDay: 3, cents: 511},
	medIbuprofen:      {code: "310965", display: "Ibuprofen 200 MG Oral Tablet", perDay: 3, cents: 398},
	medAmlodipine:     {code: "197361", display: "Amlodipine 5 MG Oral Tablet", perDay: 1, cents: 739},
	medDigoxin:        {code: "197604", display: "Digoxin 0.125 MG Oral Tablet", perDay: 1, cents: 1320},
	medNitroglycerin:  {code: "705129", display: "Nitroglycerin 0.4 MG/ACTUAT Mucosal Spray", perDay: 1, cents: 16834},
	medPenicillin:     {code: "834102", display: "Penicillin V Potassium 500 MG Oral Tablet", perDay: 4, cents: 1266},
	medAmoxicillin250: {code: "308182", display: "Amoxicillin 250 MG Oral Capsule", perDay: 3, cents: 865},
	medAmoxClav:       {code: "562251", display: "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet", perDay: 2, cents: 2176},
	medCoughSyrup:     {code: "1043400", display: "Acetaminophen 21.7 MG/ML / Dextromethorphan Hydrobromide 1 MG/ML / doxylamine succinate 0.417 MG/ML Oral Solution", perDay: 3, cents: 617},
	medHydrocodone:    {code: "856987", display: "Acetaminophen 300 MG / HYDROcodone Bitartrate 5 MG Oral Tablet", perDay: 4, cents: 1875},
	medOxycodone:      {code: "1049221", display: "Acetaminophen 325 MG / Oxycodone Hydrochloride 5 MG Oral Tablet", perDay: 4, cents: 2145},
	medAmoxicillin500: {code: "308192", display: "Amoxicillin 500 MG Oral Tablet", perDay: 3, cents: 1032},
	medEpinephrine:    {code: "1870230", display: "NDA020800 0.3 ML Epinephrine 1 MG/ML Auto-Injector", perDay: 1, cents: 39425},
}

// procDef is a SNOMED CT procedure.
type procDef struct {
	code, display string
	minutes       int
	cents         int64
	cc            string
}

const (
	procMedRecon = iota
	procDepressionScreen
	procMammography
	procColonoscopy
	procPapSmear
	procHIVTest
	procHepCTest
	procThroatCulture
	procSuture
	procBoneImmobilization
	procAppendectomy
	procUrineCulture
	procSpirometry
	procCardioversion
	procEcho
	procBoneDensity
	procHTNReferral
	procWisdomTooth
	procKneeXray
	procSinusEndoscopy
	procPolypectomy
	procChestXray
	procInjection
	procCBT
	procAnkleXray
	procAllergyScreen
	procImmunotherapy
	procUrineGlucose
	procBloodSmear
	procBriefExam
)

var procs = [...]procDef{
	procMedRecon:           {code: "430193006", display: "Medication Reconciliation (procedure)", minutes: 15, cents: 72303},
	procDepressionScreen:   {code: "171207006", display: "Depression screening", minutes: 15, cents: 43140},
	procMammography:        {code: "71651007", display: "Mammography (procedure)", minutes: 30, cents: 47158},
	procColonoscopy:        {code: "73761001", display: "Colonoscopy", minutes: 45, cents: 1091213},
	procPapSmear:           {code: "90226004", display: "Cytopathology procedure, preparation of smear, genital source", minutes: 15, cents: 60213},
	procHIVTest:            {code: "31676001", display: "Human immunodeficiency virus antigen test", minutes: 10, cents: 47158},
	procHepCTest:           {code: "104375008", display: "Hepatitis C antibody test", minutes: 10, cents: 47158},
	procThroatCulture:      {code: "117015009", display: "Throat culture (procedure)", minutes: 10, cents: 247474},
	procSuture:             {code: "288086009", display: "Suture open wound", minutes: 30, cents: 143621},
	procBoneImmobilization: {code: "274474001", display: "Bone immobilization", minutes: 30, cents: 1135222},
	procAppendectomy:       {code: "80146002", display: "Appendectomy", minutes: 90, cents: 2438718},
	procUrineCulture:       {code: "117010004", display: "Urine culture", minutes: 10, cents: 47158},
	procSpirometry:         {code: "127783003", display: "Spirometry (procedure)", minutes: 20, cents: 51329},
	procCardioversion:      {code: "180325003", display: "Electrical cardioversion", minutes: 60, cents: 2154311},
	procEcho:               {code: "40701008", display: "Echocardiography (procedure)", minutes: 45, cents: 132411},
	procBoneDensity:        {code: "312681000", display: "Bone density scan (procedure)", minutes: 20, cents: 61742},
	procHTNReferral:        {code: "183856001", display: "Referral to hypertension clinic", minutes: 5, cents: 43140},
	procWisdomTooth:        {code: "65546002", display: "Extraction of wisdom tooth", minutes: 60, cents: 1136922},
	procKneeXray:           {code: "74016001", display: "Knee X-ray", minutes: 15, cents: 62375},
	procSinusEndoscopy:     {code: "112790001", display: "Nasal sinus endoscopy (procedure)", minutes: 30, cents: 975128},
	procPolypectomy:        {code: "274031008", display: "Rectal polypectomy", minutes: 45, cents: 1254411},
	procChestXray:          {code: "399208008", display: "Plain chest X-ray (procedure)", minutes: 15, cents: 62375},
	procInjection:          {code: "76601001", display: "Intramuscular injection", minutes: 5, cents: 41552},
	procCBT:                {code: "228557008", display: "Cognitive and behavioral therapy", minutes: 50, cents: 65720},
	procAnkleXray:          {code: "19490002", display: "Ankle X-ray", minutes: 15, cents: 62375},
	procAllergyScreen:      {code: "395142003", display: "Allergy screening test", minutes: 30, cents: 61742},
	procImmunotherapy:      {code: "180256009", display: "Subcutaneous immunotherapy", minutes: 20, cents: 182516},
	procUrineGlucose:       {code: "268556000", display: "Urine screening for glucose", minutes: 10, cents: 43140},
	procBloodSmear:         {code: "14768001", display: "Peripheral blood smear interpretation", minutes: 15, cents: 43140},
	procBriefExam:          {code: "162676008", display: "Brief general examination (procedure)", minutes: 15, cents: 43140},
}

// outpatientProcs are what an "Outpatient procedure" visit is for.
var outpatientProcs = [...]int{procWisdomTooth, procColonoscopy, procPolypectomy, procKneeXray, procSinusEndoscopy, procImmunotherapy, procInjection, procAllergyScreen}

// inpatientProcs are done during an unplanned admission.
var inpatientProcs = [...]int{procChestXray, procEcho, procBloodSmear, procBriefExam}

// vaxDef is a CVX vaccine given at wellness visits to patients of an age range.
type vaxDef struct {
	code, display  string
	minAge, maxAge int
	p              float64 // chance per eligible wellness visit
	cc             string
}

var vaccines = [...]vaxDef{
	{code: "140", display: "Influenza, seasonal, injectable, preservative free", minAge: 1, maxAge: 120, p: 0.6},
	{code: "20", display: "DTaP", minAge: 0, maxAge: 6, p: 0.5},
	{code: "10", display: "IPV", minAge: 0, maxAge: 6, p: 0.4},
	{code: "08", display: "Hep B, adolescent or pediatric", minAge: 0, maxAge: 1, p: 0.5},
	{code: "49", display: "Hib (PRP-OMP)", minAge: 0, maxAge: 2, p: 0.5},
	{code: "133", display: "Pneumococcal conjugate PCV 13", minAge: 0, maxAge: 2, p: 0.4},
	{code: "119", display: "rotavirus, monovalent", minAge: 0, maxAge: 1, p: 0.4},
	{code: "03", display: "MMR", minAge: 1, maxAge: 6, p: 0.4},
	{code: "21", display: "varicella", minAge: 1, maxAge: 6, p: 0.4},
	{code: "83", display: "Hep A, ped/adol, 2 dose", minAge: 1, maxAge: 3, p: 0.3},
	{code: "114", display: "meningococcal MCV4P", minAge: 11, maxAge: 18, p: 0.3},
	{code: "62", display: "HPV, quadrivalent", minAge: 11, maxAge: 26, p: 0.3},
	{code: "115", display: "Tdap", minAge: 11, maxAge: 18, p: 0.3},
	{code: "113", display: "Td (adult) preservative free", minAge: 19, maxAge: 120, p: 0.1},
	{code: "43", display: "Hep B, adult", minAge: 19, maxAge: 60, p: 0.05},
	{code: "52", display: "Hep A, adult", minAge: 19, maxAge: 60, p: 0.03},
	{code: "121", display: "zoster", minAge: 50, maxAge: 120, p: 0.15},
	{code: "33", display: "pneumococcal polysaccharide vaccine, 23 valent", minAge: 65, maxAge: 120, p: 0.2},
}

// allergyDef is a SNOMED CT allergy with its FHIR category and criticality.
type allergyDef struct {
	code, display, category, criticality string
	cc                                   string
}

var allergies = [...]allergyDef{
	{code: "419474003", display: "Allergy to mould", category: "environment", criticality: "low"},
	{code: "418689008", display: "Allergy to grass pollen", category: "environment", criticality: "low"},
	{code: "232347008", display: "Dander (animal) allergy", category: "environment", criticality: "low"},
	{code: "232350006", display: "House dust mite allergy", category: "environment", criticality: "low"},
	{code: "419263009", display: "Allergy to tree pollen", category: "environment", criticality: "low"},
	{code: "91934008", display: "Allergy to nut", category: "food", criticality: "high"},
	{code: "300913006", display: "Shellfish allergy", category: "food", criticality: "high"},
	{code: "425525006", display: "Allergy to dairy product", category: "food", criticality: "low"},
	{code: "91935009", display: "Allergy to peanuts", category: "food", criticality: "high"},
	{code: "424213003", display: "Allergy to bee venom", category: "environment", criticality: "high"},
	{code: "91930004", display: "Allergy to eggs", category: "food", criticality: "low"},
	{code: "417532002", display: "Allergy to fish", category: "food", criticality: "high"},
	{code: "714035009", display: "Allergy to soya", category: "food", criticality: "low"},
	{code: "300916003", display: "Latex allergy", category: "environment", criticality: "high"},
	{code: "91936005", display: "Allergy to penicillin", category: "medication", criticality: "high"},
}

// obsDef is a LOINC observation with a UCUM unit and a plausible value
// distribution (mean, sd, clamped to [min, max], rounded to dec decimals).
type obsDef struct {
	code, display, unit string
	mean, sd, min, max  float64
	dec                 int
	lab                 bool
	cc                  string
	head                [numVers]string // per release, `,"status":"final","category":[…],"code":{…}`
	tail                string          // valueQuantity after its value: `,"unit":…}`
}

const (
	obsHeight = iota
	obsWeight
	obsBMI
	obsBP
	obsDiastolic
	obsSystolic
	obsHeartRate
	obsRespRate
	obsTemp
	obsPain
	obsO2Sat
	obsCholesterol
	obsTriglycerides
	obsLDL
	obsHDL
	obsGlucose
	obsUrea
	obsCreatinine
	obsCalcium
	obsSodium
	obsPotassium
	obsChloride
	obsCO2
	obsLeukocytes
	obsErythrocytes
	obsHemoglobin
	obsHematocrit
	obsMCV
	obsMCH
	obsMCHC
	obsPlatelets
	obsA1c
)

var observations = [...]obsDef{
	obsHeight:        {code: "8302-2", display: "Body Height", unit: "cm", dec: 1},
	obsWeight:        {code: "29463-7", display: "Body Weight", unit: "kg", dec: 1},
	obsBMI:           {code: "39156-5", display: "Body Mass Index", unit: "kg/m2", dec: 2},
	obsBP:            {code: "85354-9", display: "Blood Pressure"},
	obsDiastolic:     {code: "8462-4", display: "Diastolic Blood Pressure", unit: "mm[Hg]", mean: 78, sd: 8, min: 50, max: 120},
	obsSystolic:      {code: "8480-6", display: "Systolic Blood Pressure", unit: "mm[Hg]", mean: 120, sd: 12, min: 85, max: 200},
	obsHeartRate:     {code: "8867-4", display: "Heart rate", unit: "/min", mean: 75, sd: 10, min: 45, max: 140},
	obsRespRate:      {code: "9279-1", display: "Respiratory rate", unit: "/min", mean: 15, sd: 2, min: 10, max: 30},
	obsTemp:          {code: "8310-5", display: "Body temperature", unit: "Cel", mean: 36.9, sd: 0.35, min: 35.5, max: 40, dec: 1},
	obsPain:          {code: "72514-3", display: "Pain severity - 0-10 verbal numeric rating [Score] - Reported", unit: "{score}", mean: 2, sd: 2, min: 0, max: 10},
	obsO2Sat:         {code: "2708-6", display: "Oxygen saturation in Arterial blood", unit: "%", mean: 97.5, sd: 1.2, min: 88, max: 100, dec: 1},
	obsCholesterol:   {code: "2093-3", display: "Total Cholesterol", unit: "mg/dL", mean: 190, sd: 35, min: 100, max: 320, dec: 1, lab: true},
	obsTriglycerides: {code: "2571-8", display: "Triglycerides", unit: "mg/dL", mean: 140, sd: 50, min: 40, max: 450, dec: 1, lab: true},
	obsLDL:           {code: "18262-6", display: "Low Density Lipoprotein Cholesterol", unit: "mg/dL", mean: 110, sd: 30, min: 40, max: 250, dec: 1, lab: true},
	obsHDL:           {code: "2085-9", display: "High Density Lipoprotein Cholesterol", unit: "mg/dL", mean: 55, sd: 12, min: 20, max: 110, dec: 1, lab: true},
	obsGlucose:       {code: "2339-0", display: "Glucose", unit: "mg/dL", mean: 92, sd: 12, min: 60, max: 400, dec: 1, lab: true},
	obsUrea:          {code: "6299-2", display: "Urea Nitrogen", unit: "mg/dL", mean: 14, sd: 4, min: 5, max: 40, dec: 1, lab: true},
	obsCreatinine:    {code: "38483-4", display: "Creatinine", unit: "mg/dL", mean: 0.95, sd: 0.2, min: 0.4, max: 3, dec: 2, lab: true},
	obsCalcium:       {code: "49765-1", display: "Calcium", unit: "mg/dL", mean: 9.4, sd: 0.4, min: 8, max: 11, dec: 1, lab: true},
	obsSodium:        {code: "2947-0", display: "Sodium", unit: "mmol/L", mean: 140, sd: 2, min: 130, max: 150, dec: 1, lab: true},
	obsPotassium:     {code: "6298-4", display: "Potassium", unit: "mmol/L", mean: 4.2, sd: 0.3, min: 3.2, max: 5.5, dec: 1, lab: true},
	obsChloride:      {code: "2069-3", display: "Chloride", unit: "mmol/L", mean: 104, sd: 2, min: 95, max: 112, dec: 1, lab: true},
	obsCO2:           {code: "20565-8", display: "Carbon Dioxide", unit: "mmol/L", mean: 25, sd: 2.5, min: 18, max: 32, dec: 1, lab: true},
	obsLeukocytes:    {code: "6690-2", display: "Leukocytes [#/volume] in Blood by Automated count", unit: "10*3/uL", mean: 7, sd: 2, min: 3, max: 15, dec: 1, lab: true},
	obsErythrocytes:  {code: "789-8", display: "Erythrocytes [#/volume] in Blood by Automated count", unit: "10*6/uL", mean: 4.7, sd: 0.4, min: 3.5, max: 6, dec: 2, lab: true},
	obsHemoglobin:    {code: "718-7", display: "Hemoglobin [Mass/volume] in Blood", unit: "g/dL", mean: 14, sd: 1.3, min: 9, max: 18, dec: 1, lab: true},
	obsHematocrit:    {code: "4544-3", display: "Hematocrit [Volume Fraction] of Blood by Automated count", unit: "%", mean: 42, sd: 4, min: 30, max: 54, dec: 1, lab: true},
	obsMCV:           {code: "787-2", display: "MCV [Entitic volume] by Automated count", unit: "fL", mean: 90, sd: 5, min: 75, max: 105, dec: 1, lab: true},
	obsMCH:           {code: "785-6", display: "MCH [Entitic mass] by Automated count", unit: "pg", mean: 30, sd: 2, min: 24, max: 36, dec: 1, lab: true},
	obsMCHC:          {code: "786-4", display: "MCHC [Mass/volume] by Automated count", unit: "g/dL", mean: 33.5, sd: 1, min: 30, max: 37, dec: 1, lab: true},
	obsPlatelets:     {code: "777-3", display: "Platelets [#/volume] in Blood by Automated count", unit: "10*3/uL", mean: 250, sd: 50, min: 120, max: 450, dec: 0, lab: true},
	obsA1c:           {code: "4548-4", display: "Hemoglobin A1c/Hemoglobin.total in Blood", unit: "%", mean: 5.5, sd: 0.4, min: 4, max: 14, dec: 1, lab: true},
}

// panelDef is a LOINC lab panel: one DiagnosticReport whose results are
// the member Observations.
type panelDef struct {
	code, display string
	members       []int
	cc            string
}

var panels = [...]panelDef{
	{code: "57698-3", display: "Lipid Panel", members: []int{obsCholesterol, obsTriglycerides, obsLDL, obsHDL}},
	{code: "51990-0", display: "Basic Metabolic Panel", members: []int{obsGlucose, obsUrea, obsCreatinine, obsCalcium, obsSodium, obsPotassium, obsChloride, obsCO2}},
	{code: "58410-2", display: "Complete blood count (hemogram) panel - Blood by Automated count", members: []int{obsLeukocytes, obsErythrocytes, obsHemoglobin, obsHematocrit, obsMCV, obsMCH, obsMCHC, obsPlatelets}},
}

const (
	panelLipid = iota
	panelBMP
	panelCBC
)

// Demographics and places.

var givenMale = [...]string{
	"James", "Robert", "John", "Michael", "David", "William", "Richard", "Joseph", "Thomas", "Charles",
	"Daniel", "Matthew", "Anthony", "Mark", "Steven", "Andrew", "Joshua", "Kevin", "Brian", "George",
	"José", "Luis", "Ramón", "Wei", "Ahmed",
}

var givenFemale = [...]string{
	"Mary", "Patricia", "Jennifer", "Linda", "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen",
	"Lisa", "Nancy", "Betty", "Sandra", "Margaret", "Ashley", "Emily", "Donna", "Michelle", "Carol",
	"María", "Ana", "Lucía", "Mei", "Fatima",
}

var families = [...]string{
	"Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
	"Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
	"Lee", "Perez", "Thompson", "White", "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson",
	"Walker", "Young", "Allen", "King", "Wright", "Scott", "Nguyen", "Hill", "Flores", "Núñez",
}

var streets = [...]string{
	"Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park",
	"Walnut", "Chestnut", "Spring", "North", "Ridge", "Church", "Willow", "Mill", "Union", "Highland",
}

var streetSuffixes = [...]string{"Street", "Avenue", "Road", "Lane", "Way", "Court", "Drive", "Terrace"}

// city is a Massachusetts city with a ZIP code and centre coordinates
// (micro-degrees), so Location.position is plausible.
type city struct {
	name, zip string
	lat, lon  int64
}

var cities = [...]city{
	{"Boston", "02115", 42360082, -71058880},
	{"Worcester", "01608", 42262593, -71802293},
	{"Springfield", "01103", 42101483, -72589811},
	{"Cambridge", "02139", 42373616, -71109733},
	{"Lowell", "01852", 42633425, -71316172},
	{"Brockton", "02301", 42083431, -71018379},
	{"Quincy", "02169", 42252877, -71002271},
	{"Lynn", "01901", 42466763, -70949494},
	{"New Bedford", "02740", 41636215, -70934205},
	{"Fall River", "02720", 41701490, -71155045},
	{"Newton", "02458", 42337041, -71209221},
	{"Somerville", "02143", 42387597, -71099497},
	{"Framingham", "01702", 42279286, -71416172},
	{"Haverhill", "01830", 42776202, -71077278},
	{"Waltham", "02451", 42376485, -71235611},
	{"Malden", "02148", 42425097, -71066163},
	{"Medford", "02155", 42418430, -71106164},
	{"Taunton", "02780", 41900101, -71089770},
	{"Chicopee", "01013", 42148704, -72607865},
	{"Weymouth", "02188", 42220936, -70939771},
}

var orgSuffixes = [...]string{
	"Medical Center", "Family Practice", "Health Center", "Community Hospital", "Primary Care",
	"Urgent Care", "Pediatrics", "Internal Medicine", "General Hospital", "Family Health",
}

var payers = [...]string{
	"Medicaid", "Aetna", "Blue Cross Blue Shield", "UnitedHealthcare", "Cigna Health", "Humana", "Anthem", "NO_INSURANCE",
}

const payerMedicare = "Medicare"

var maritalStatuses = [...]string{
	`{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"S","display":"Never Married"}],"text":"Never Married"}`,
	`{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"M","display":"Married"}],"text":"Married"}`,
	`{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"D","display":"Divorced"}],"text":"Divorced"}`,
	`{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-MaritalStatus","code":"W","display":"Widowed"}],"text":"Widowed"}`,
}

// maritalStatusesV3 are maritalStatuses with DSTU2's and STU3's system.
var maritalStatusesV3 = [...]string{
	`{"coding":[{"system":"http://hl7.org/fhir/v3/MaritalStatus","code":"S","display":"Never Married"}],"text":"Never Married"}`,
	`{"coding":[{"system":"http://hl7.org/fhir/v3/MaritalStatus","code":"M","display":"Married"}],"text":"Married"}`,
	`{"coding":[{"system":"http://hl7.org/fhir/v3/MaritalStatus","code":"D","display":"Divorced"}],"text":"Divorced"}`,
	`{"coding":[{"system":"http://hl7.org/fhir/v3/MaritalStatus","code":"W","display":"Widowed"}],"text":"Widowed"}`,
}

var languages = [...]string{
	`{"coding":[{"system":"urn:ietf:bcp:47","code":"en-US","display":"English (United States)"}],"text":"English"}`,
	`{"coding":[{"system":"urn:ietf:bcp:47","code":"es","display":"Spanish"}],"text":"Spanish"}`,
	`{"coding":[{"system":"urn:ietf:bcp:47","code":"zh","display":"Chinese"}],"text":"Chinese"}`,
	`{"coding":[{"system":"urn:ietf:bcp:47","code":"pt","display":"Portuguese"}],"text":"Portuguese"}`,
}

// Pre-rendered JSON fragments, built once from the tables above.
func init() {
	for i := range encKinds {
		k := &encKinds[i]
		k.cc = concept(sysSNOMED, k.code, k.display)
	}
	for i := range conditions {
		c := &conditions[i]
		c.cc = concept(sysSNOMED, c.code, c.display)
	}
	for i := range meds {
		m := &meds[i]
		m.cc = concept(sysRxNorm, m.code, m.display)
	}
	for i := range procs {
		p := &procs[i]
		p.cc = concept(sysSNOMED, p.code, p.display)
	}
	for i := range vaccines {
		v := &vaccines[i]
		v.cc = concept(sysCVX, v.code, v.display)
	}
	for i := range allergies {
		a := &allergies[i]
		a.cc = concept(sysSNOMED, a.code, a.display)
	}
	for i := range panels {
		p := &panels[i]
		p.cc = concept(sysLOINC, p.code, p.display)
	}
	for i := range observations {
		o := &observations[i]
		o.cc = concept(sysLOINC, o.code, o.display)
		cat := `"vital-signs","display":"Vital Signs"`
		if o.lab {
			cat = `"laboratory","display":"Laboratory"`
		}
		o.head[vR4] = `,"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":` + cat + `}]}],"code":` + o.cc
		o.head[vR5] = o.head[vR4]
		o.head[vSTU3] = `,"status":"final","category":[{"coding":[{"system":"http://hl7.org/fhir/observation-category","code":` + cat + `}]}],"code":` + o.cc
		o.head[vDSTU2] = `,"status":"final","category":{"coding":[{"system":"http://hl7.org/fhir/observation-category","code":` + cat + `}]},"code":` + o.cc // 0..1
		o.tail = `,"unit":"` + o.unit + `","system":"` + sysUCUM + `","code":"` + o.unit + `"}`
	}
}
