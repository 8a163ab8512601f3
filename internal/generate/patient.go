package generate

import (
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
)

// gen generates patients. One gen per goroutine; everything it needs across
// patients is scratch space, so a patient's output depends only on the plan
// and its index.
type gen struct {
	p   *plan
	pcg *rand.PCG
	r   *rand.Rand
	out *batch

	// The current patient.
	pi      int
	seq     uint64
	pid     id
	female  bool
	age     int
	birth   int64 // days since the epoch
	home    int   // pool index of the usual Organization/Location/Practitioner
	payer   string
	heightC float64 // cm
	weightK float64 // kg
	sysBP   float64
	diaBP   float64
	chronic []chronicCond
	times   []int64
	// lastWell is when the last wellness visit was; postOpDue is set by
	// surgery and makes the next visit likely a post-operative one.
	lastWell  int64
	postOpDue bool

	// The current encounter.
	eid     id
	start   int64 // seconds
	end     int64
	org     int
	reason  *id // Encounter.reasonReference, if any
	acute   id  // a condition diagnosed at this encounter
	diags   []id
	procIDs []id
	medIDs  []id
	lines   []claimLine
	results []resultRef
}

// chronicCond is one of the patient's long-term conditions.
type chronicCond struct {
	def   int // index into conditions
	cid   id
	enc   int   // the encounter where it is recorded
	onset int64 // seconds
}

// claimLine is one billed item of an encounter.
type claimLine struct {
	cc    string
	cents int64
	diag  int // 1-based Claim.diagnosis sequence, or 0
	proc  int // 1-based Claim.procedure sequence, or 0
}

type resultRef struct {
	oid id
	obs int
}

func newGen(p *plan) *gen {
	pcg := rand.NewPCG(0, 0)
	return &gen{p: p, pcg: pcg, r: rand.New(pcg)}
}

// newID allocates the patient's next resource id.
func (g *gen) newID() id {
	g.seq++
	return g.p.keys.make(uint64(g.pi+1)<<24 | g.seq)
}

// lu turns a clinical time (seconds) into a lastUpdated (milliseconds) a
// little after it, kept within the run's window.
func (g *gen) lu(sec int64, maxDelayMs int64) int64 {
	ms := sec*1000 + g.r.Int64N(maxDelayMs+1)
	return min(max(ms, g.p.lo), g.p.hi)
}

func (g *gen) begin(t int, rid *id, lastUpdated int64) []byte {
	return g.p.header(g.out.data[t], t, rid, lastUpdated)
}

func (g *gen) finish(t int, b []byte) {
	b = append(b, "}\n"...)
	g.out.data[t] = b
	g.out.ends[t] = append(g.out.ends[t], len(b))
}

func (g *gen) chance(p float64) bool { return g.r.Float64() < p }

// normal draws from N(mean, sd²) clamped to [lo, hi]. The explicit
// float64() conversion keeps the compiler from fusing x*y+z into an FMA
// (allowed by the spec, done on arm64 or GOAMD64=v3), whose different
// rounding would change the output bytes.
func (g *gen) normal(mean, sd, lo, hi float64) float64 {
	v := float64(sd*g.r.NormFloat64()) + mean
	return min(max(v, lo), hi)
}

func scaled(v float64, dec int) int64 { return int64(math.Round(v * float64(pow10[dec]))) }

var ageWeights = [...]int{12, 12, 13, 13, 12, 13, 12, 8, 5} // per decade, last is 80–99

func sampleAge(r *rand.Rand) int {
	n := r.IntN(100)
	for d, w := range ageWeights {
		if n < w {
			if d == len(ageWeights)-1 {
				return d*10 + r.IntN(20)
			}
			return d*10 + r.IntN(10)
		}
		n -= w
	}
	return 40
}

const (
	condHypertension = 0
	condPrediabetes  = 2
	condDiabetes     = 3
	condObesity      = 4
	condAsthma       = 6
)

// patient appends patient pi and everything in their compartment to g.out.
func (g *gen) patient(pi int) {
	p := g.p
	g.pcg.Seed(seeds(p.seed, streamPatient, uint64(pi)))
	g.pi, g.seq = pi, 0
	g.pid = p.patientID(pi)

	// The steps draw from g.r in this order: changing it changes every
	// byte after (TestDir_Golden).
	hiSec := p.hi / 1000
	loSec := (p.lo + 999) / 1000
	birthSec := g.demographics(hiSec)
	bmi := g.body()
	g.chronicConditions(bmi)
	k := g.encounterTimes(max(loSec, birthSec), hiSec-10*day)
	g.chronicOnsets(k, birthSec)

	g.writePatient(max(p.lo, birthSec*1000))
	g.lastWell, g.postOpDue = math.MinInt64/2, false
	for e := range k {
		g.encounter(e)
	}
}

// demographics draws sex, age, home and payer; it returns the birth time
// (Unix seconds).
func (g *gen) demographics(hiSec int64) int64 {
	r := g.r
	today, _ := floorDiv(hiSec, day)
	g.female = r.IntN(2) == 0
	g.age = sampleAge(r)
	g.birth = today - int64(g.age)*365 - int64(g.age/4) - int64(r.IntN(365))
	g.home = r.IntN(g.p.pool)
	g.payer = payerMedicare
	if g.age < 65 {
		g.payer = payers[r.IntN(len(payers))]
	}
	return g.birth * day
}

// body draws height, weight and blood pressure: adults by sex, children by
// a rough growth curve. It returns the BMI.
func (g *gen) body() float64 {
	var bmi float64
	if g.age >= 18 {
		if g.female {
			g.heightC = g.normal(162, 6.5, 140, 190)
		} else {
			g.heightC = g.normal(176, 7, 150, 205)
		}
		bmi = g.normal(27, 5, 16, 50)
	} else {
		g.heightC = g.normal(float64(550+63*g.age)/10, 4, 45, 195)
		bmi = g.normal(17, 2, 12, 30)
	}
	hm := g.heightC / 100
	g.weightK = bmi * hm * hm
	g.sysBP = g.normal(116, 9, 95, 140)
	g.diaBP = g.normal(75, 6, 60, 90)
	return bmi
}

// chronicConditions draws the long-term conditions, more likely with age.
func (g *gen) chronicConditions(bmi float64) {
	g.chronic = g.chronic[:0]
	for c := range firstAcute {
		d := &conditions[c]
		if g.age < d.minAge {
			continue
		}
		var has bool
		if c == condObesity {
			has = bmi >= 30 && g.age >= 18
		} else {
			f := 1.0
			if d.minAge >= 18 {
				f = min(max(float64(g.age)/50, 0.3), 2)
			}
			has = g.chance(d.p * f)
		}
		if has && len(g.chronic) < 6 {
			g.chronic = append(g.chronic, chronicCond{def: c})
		}
	}
	if g.hasChronic(condHypertension) {
		g.sysBP += 18
		g.diaBP += 9
	}
}

// encounterTimes draws the encounters' times in [winLo, winHi] into
// g.times, sorted, and returns how many: most patients are seen a few
// times a year, a minority (older, chronically ill) much more often.
func (g *gen) encounterTimes(winLo, winHi int64) int {
	r := g.r
	u := r.Float64()
	if g.age >= 60 {
		u = 0.35 + float64(0.65*u) // float64() forbids FMA fusion, see normal
	}
	var k int
	switch {
	case u < 0.55:
		k = 1 + r.IntN(4)
	case u < 0.9:
		k = 4 + r.IntN(8)
	default:
		k = 12 + r.IntN(20)
	}
	k += len(g.chronic)
	if winLo >= winHi {
		k = 0
	}
	g.times = g.times[:0]
	for range k {
		// A random day, during clinic hours (8:00 to 17:00 US Eastern).
		t := winLo + r.Int64N(winHi-winLo)
		t = t - t%day + 13*3600 + r.Int64N(9*3600)
		g.times = append(g.times, min(max(t, winLo), winHi))
	}
	slices.Sort(g.times)
	return k
}

// chronicOnsets gives each long-term condition its id, onset and the
// encounter that records it (none without encounters).
func (g *gen) chronicOnsets(k int, birthSec int64) {
	r := g.r
	if k == 0 {
		g.chronic = g.chronic[:0]
	}
	for i := range g.chronic {
		c := &g.chronic[i]
		c.cid = g.newID()
		if g.chance(0.75) { // known before the window: recorded at the first visit
			c.enc = 0
			earliest := birthSec + int64(conditions[c.def].minAge)*365*day
			c.onset = min(max(g.times[0]-int64(30+r.IntN(3650))*day, earliest), g.times[0])
		} else {
			c.enc = r.IntN(k)
			c.onset = g.times[c.enc]
		}
	}
}

func (g *gen) hasChronic(def int) bool {
	for _, c := range g.chronic {
		if c.def == def {
			return true
		}
	}
	return false
}

func (g *gen) writePatient(earliest int64) {
	r := g.r
	v := g.p.v
	// DSTU2 and STU3 name HL7's code systems http://hl7.org/fhir/v2/…,
	// and DSTU2's HumanName.family is a list.
	b := g.begin(tPatient, &g.pid, earliest+r.Int64N(g.p.hi-earliest+1))
	if v == vDSTU2 || v == vSTU3 {
		b = append(b, `,"identifier":[{"type":{"coding":[{"system":"http://hl7.org/fhir/v2/0203","code":"MR","display":"Medical Record Number"}],"text":"Medical Record Number"},"system":"http://hospital.example.org/mrn","value":"`...)
		b = append(b, g.pid[:]...)
		b = append(b, `"},{"type":{"coding":[{"system":"http://hl7.org/fhir/v2/0203","code":"SS","display":"Social Security Number"}],"text":"Social Security Number"},"system":"http://hl7.org/fhir/sid/us-ssn","value":"999-`...)
	} else {
		b = append(b, `,"identifier":[{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"MR","display":"Medical Record Number"}],"text":"Medical Record Number"},"system":"http://hospital.example.org/mrn","value":"`...)
		b = append(b, g.pid[:]...)
		b = append(b, `"},{"type":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0203","code":"SS","display":"Social Security Number"}],"text":"Social Security Number"},"system":"http://hl7.org/fhir/sid/us-ssn","value":"999-`...)
	}
	b = appendPadded(b, int64(r.IntN(100)), 2)
	b = append(b, '-')
	b = appendPadded(b, int64(r.IntN(10000)), 4)
	if v == vDSTU2 {
		b = append(b, `"}],"name":[{"use":"official","family":["`...)
		b = append(b, families[r.IntN(len(families))]...)
		b = append(b, `"],"given":["`...)
	} else {
		b = append(b, `"}],"name":[{"use":"official","family":"`...)
		b = append(b, families[r.IntN(len(families))]...)
		b = append(b, `","given":["`...)
	}
	if g.female {
		b = append(b, givenFemale[r.IntN(len(givenFemale))]...)
	} else {
		b = append(b, givenMale[r.IntN(len(givenMale))]...)
	}
	b = append(b, `"]}],"telecom":[{"system":"phone","value":"555-`...)
	b = appendPadded(b, int64(r.IntN(1000)), 3)
	b = append(b, '-')
	b = appendPadded(b, int64(r.IntN(10000)), 4)
	b = append(b, `","use":"home"}],"gender":"`...)
	if g.female {
		b = append(b, "female"...)
	} else {
		b = append(b, "male"...)
	}
	b = append(b, `","birthDate":"`...)
	b = appendDate(b, g.birth)
	c := &cities[r.IntN(len(cities))]
	b = append(b, `","address":[{"line":["`...)
	b = strconv.AppendInt(b, int64(1+r.IntN(9999)), 10)
	b = append(b, ' ')
	b = append(b, streets[r.IntN(len(streets))]...)
	b = append(b, ' ')
	b = append(b, streetSuffixes[r.IntN(len(streetSuffixes))]...)
	b = append(b, `"],"city":"`...)
	b = append(b, c.name...)
	b = append(b, `","state":"MA","postalCode":"`...)
	b = append(b, c.zip...)
	b = append(b, `","country":"US"}]`...)
	if g.age >= 18 {
		b = append(b, `,"maritalStatus":`...)
		if v == vDSTU2 || v == vSTU3 {
			b = append(b, maritalStatusesV3[r.IntN(len(maritalStatusesV3))]...)
		} else {
			b = append(b, maritalStatuses[r.IntN(len(maritalStatuses))]...)
		}
	}
	b = append(b, `,"communication":[{"language":`...)
	lang := 0
	if n := r.IntN(10); n >= 8 {
		lang = 1 + r.IntN(len(languages)-1)
	}
	b = append(b, languages[lang]...)
	if v == vDSTU2 {
		b = append(b, `}],"careProvider":[{"reference":"Practitioner/`...)
	} else {
		b = append(b, `}],"generalPractitioner":[{"reference":"Practitioner/`...)
	}
	b = append(b, g.p.pracIDs[g.home][:]...)
	b = append(b, `"}]`...)
	b = g.p.ref(b, "managingOrganization", tOrganization, &g.p.orgIDs[g.home])
	g.finish(tPatient, b)
}

// Non-wellness visit kinds and their weights, plus a weight for chronic
// follow-ups when the patient has a diagnosed long-term condition.
var (
	visitKinds []int
	visitTotal int
	acuteTotal float64
)

const followUpWgt = 30

func init() {
	for k := range encKinds {
		if w := encKinds[k].weight; w > 0 {
			visitKinds = append(visitKinds, k)
			visitTotal += w
		}
	}
	for c := firstAcute; c < len(conditions); c++ {
		acuteTotal += conditions[c].p
	}
}

// pickKind chooses the kind of encounter e; for a follow-up it also sets
// g.reason to the chronic condition followed up.
func (g *gen) pickKind(e int) int {
	var diagnosed int
	for _, c := range g.chronic {
		if c.enc <= e {
			diagnosed++
		}
	}
	total := visitTotal
	if diagnosed > 0 {
		total += followUpWgt
	}
	n := g.r.IntN(total)
	if n >= visitTotal {
		pick := g.r.IntN(diagnosed)
		for i := range g.chronic {
			c := &g.chronic[i]
			if c.enc > e {
				continue
			}
			if pick == 0 {
				g.reason = &c.cid
				if c.def == condAsthma {
					return kindAsthmaFollowUp
				}
				return kindFollowUp
			}
			pick--
		}
	}
	for _, k := range visitKinds {
		if n < encKinds[k].weight {
			return k
		}
		n -= encKinds[k].weight
	}
	return kindCheckUp
}

func (g *gen) pickAcute() int {
	x := float64(g.r.Float64() * acuteTotal)
	for c := firstAcute; c < len(conditions); c++ {
		if x < conditions[c].p {
			return c
		}
		x -= conditions[c].p
	}
	return firstAcute
}

// encounter appends encounter e of the current patient with everything
// recorded during it, and its Claim and ExplanationOfBenefit.
func (g *gen) encounter(e int) {
	r := g.r
	g.start = g.times[e]
	g.reason = nil
	g.diags, g.procIDs, g.medIDs = g.diags[:0], g.procIDs[:0], g.medIDs[:0]
	g.lines = g.lines[:0]
	g.eid = g.newID()

	// A yearly wellness visit; otherwise whatever brought the patient in.
	var kind int
	switch {
	case g.postOpDue && g.chance(0.7):
		kind = kindPostOp
	case g.start-g.lastWell >= 330*day && g.chance(0.75):
		kind = kindWellAdult
		if g.age < 18 {
			kind = kindWellChild
		}
		g.lastWell = g.start
	default:
		kind = g.pickKind(e)
	}
	g.postOpDue = false
	k := &encKinds[kind]
	g.org = g.home
	if ((k.class == classEMER || k.class == classIMP || kind == kindUrgent) && r.IntN(2) == 0) || r.IntN(8) == 0 {
		g.org = r.IntN(g.p.pool)
	}
	g.end = g.start + int64(k.minMin+r.IntN(k.maxMin-k.minMin+1))*60
	g.lines = append(g.lines, claimLine{cc: k.cc, cents: g.jitter(k.cents)})
	if e == 0 {
		g.allergies()
	}

	// Long-term conditions recorded at this visit.
	for i := range g.chronic {
		c := &g.chronic[i]
		if c.enc == e {
			g.condition(c.def, &c.cid, c.onset, 0)
			if g.reason == nil {
				g.reason = &c.cid
			}
		}
	}

	// A new acute problem, with its usual procedure and prescription.
	if g.chance(k.acuteP) {
		a := g.pickAcute()
		d := &conditions[a]
		g.acute = g.newID()
		abate := g.start + int64(d.days/2+r.IntN(d.days+1))*day
		g.condition(a, &g.acute, g.start, abate)
		g.reason = &g.acute
		if d.proc >= 0 && g.chance(0.7) {
			g.procedure(d.proc)
		}
		if d.med >= 0 && g.chance(0.8) {
			g.medication(d.med, false)
		}
	}

	g.vitals(kind)
	g.labs(kind)
	g.procedures(kind, e)
	g.chronicMeds(kind, e)
	if kind == kindWellAdult || kind == kindWellChild {
		g.immunizations()
	}

	claimID, eobID := g.newID(), g.newID()
	g.writeEncounter(k)
	g.writeClaim(k, &claimID)
	g.writeEOB(k, &claimID, &eobID)
}

func (g *gen) jitter(cents int64) int64 {
	return cents * int64(80+g.r.IntN(41)) / 100
}

// condition appends a Condition recorded at the current encounter; abate
// (seconds, 0 for none) resolves it if it lies before the data's Base.
func (g *gen) condition(def int, cid *id, onset, abate int64) {
	d := &conditions[def]
	resolved := abate > 0 && abate*1000 <= g.p.hi
	last := g.end
	if resolved {
		last = abate
	}
	b := g.begin(tCondition, cid, g.lu(last, 3_600_000))
	if g.p.v == vDSTU2 || g.p.v == vSTU3 {
		b = g.conditionPreR4(b, d, onset, abate, resolved)
	} else {
		b = g.conditionR4(b, d, onset, abate, resolved)
	}
	g.finish(tCondition, b)
	g.diags = append(g.diags, *cid)
	g.lines = append(g.lines, claimLine{cc: d.cc, diag: len(g.diags)})
}

// conditionR4 is the R4 and R5 Condition after its header.
func (g *gen) conditionR4(b []byte, d *condDef, onset, abate int64, resolved bool) []byte {
	if resolved {
		b = append(b, `,"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"resolved"}]}`...)
	} else {
		b = append(b, `,"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]}`...)
	}
	b = append(b, `,"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"}]}`...)
	if d.chronic {
		b = append(b, `,"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"problem-list-item","display":"Problem List Item"}]}]`...)
	} else {
		b = append(b, `,"category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-category","code":"encounter-diagnosis","display":"Encounter Diagnosis"}]}]`...)
	}
	b = append(b, `,"code":`...)
	b = append(b, d.cc...)
	b = g.p.ref(b, "subject", tPatient, &g.pid)
	b = g.p.ref(b, "encounter", tEncounter, &g.eid)
	b = append(b, `,"onsetDateTime":"`...)
	b = appendDateTime(b, onset)
	if resolved {
		b = append(b, `","abatementDateTime":"`...)
		b = appendDateTime(b, abate)
	}
	b = append(b, `","recordedDate":"`...)
	b = appendDateTime(b, g.start)
	b = append(b, '"')
	if g.p.v == vR5 { // recorder became a participant
		return g.appendAuthor(b)
	}
	return g.p.ref(b, "recorder", tPractitioner, &g.p.pracIDs[g.org])
}

// allergies appends the patient's allergies (one in five patients has some),
// recorded at their first visit, and an epinephrine auto-injector for some
// of the severe ones.
func (g *gen) allergies() {
	r := g.r
	if !g.chance(0.2) {
		return
	}
	reason := g.reason
	g.reason = nil // reasonReference may not point at an AllergyIntolerance
	var seen uint64
	for range 1 + r.IntN(3) {
		a := r.IntN(len(allergies))
		if seen&(1<<a) != 0 {
			continue
		}
		seen |= 1 << a
		d := &allergies[a]
		aid := g.newID()
		b := g.begin(tAllergyIntolerance, &aid, g.lu(g.end, 3_600_000))
		switch g.p.v {
		case vDSTU2, vSTU3:
			b = g.allergyPreR4(b, d)
		case vR5: // type is a CodeableConcept, recorder a participant
			b = append(b, `,"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"confirmed"}]},"type":{"coding":[{"system":"http://hl7.org/fhir/allergy-intolerance-type","code":"allergy","display":"Allergy"}]},"category":["`...)
			b = append(b, d.category...)
			b = append(b, `"],"criticality":"`...)
			b = append(b, d.criticality...)
			b = append(b, `","code":`...)
			b = append(b, d.cc...)
			b = g.p.ref(b, "patient", tPatient, &g.pid)
			b = g.p.ref(b, "encounter", tEncounter, &g.eid)
			b = append(b, `,"recordedDate":"`...)
			b = appendDateTime(b, g.start)
			b = append(b, '"')
			b = g.appendAuthor(b)
		default:
			b = g.allergyR4(b, d)
		}
		g.finish(tAllergyIntolerance, b)
		if d.criticality == "high" && d.category != "medication" && g.chance(0.5) {
			g.medication(medEpinephrine, true)
		}
	}
	g.reason = reason
}

func (g *gen) allergyR4(b []byte, d *allergyDef) []byte {
	b = append(b, `,"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical","code":"active"}]},"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification","code":"confirmed"}]},"type":"allergy","category":["`...)
	b = append(b, d.category...)
	b = append(b, `"],"criticality":"`...)
	b = append(b, d.criticality...)
	b = append(b, `","code":`...)
	b = append(b, d.cc...)
	b = g.p.ref(b, "patient", tPatient, &g.pid)
	b = g.p.ref(b, "encounter", tEncounter, &g.eid)
	b = append(b, `,"recordedDate":"`...)
	b = appendDateTime(b, g.start)
	b = append(b, '"')
	return g.p.ref(b, "recorder", tPractitioner, &g.p.pracIDs[g.org])
}

// appendAuthor appends R5's participant that replaced recorder: the
// encounter's practitioner as author.
func (g *gen) appendAuthor(b []byte) []byte {
	b = append(b, `,"participant":[{"function":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/provenance-participant-type","code":"author","display":"Author"}]},"actor":{"reference":"Practitioner/`...)
	b = append(b, g.p.pracIDs[g.org][:]...)
	return append(b, `"}}]`...)
}

// vitals appends the vital-sign Observations taken at the encounter.
func (g *gen) vitals(kind int) {
	k := &encKinds[kind]
	if k.vitals == vitalsNone {
		return
	}
	r := g.r
	at := g.start + int64(2+r.IntN(10))*60
	full := k.vitals == vitalsFull
	if full {
		bmi := g.weightK / (g.heightC * g.heightC / 10000)
		g.quantity(obsHeight, at, 0, scaled(g.heightC, 1))
		g.quantity(obsWeight, at, 0, scaled(g.weightK+g.normal(0, 0.8, -3, 3), 1))
		g.quantity(obsBMI, at, 0, scaled(bmi, 2))
	} else if g.chance(0.3) {
		g.quantity(obsWeight, at, 0, scaled(g.weightK+g.normal(0, 0.8, -3, 3), 1))
	}
	g.bloodPressure(at)
	g.sample(obsHeartRate, at, 0)
	if full || g.chance(0.5) {
		g.sample(obsRespRate, at, 0)
	}
	if kind != kindWellAdult && kind != kindWellChild && g.chance(0.6) {
		g.sample(obsTemp, at, 0)
	}
	if k.class == classEMER || k.class == classIMP {
		g.sample(obsO2Sat, at, 0)
	}
	g.sample(obsPain, at, 0)
}

// labs appends lab panels (a DiagnosticReport over its Observations) and
// HbA1c for patients with (pre)diabetes.
func (g *gen) labs(kind int) {
	k := &encKinds[kind]
	r := g.r
	diabetic := g.hasChronic(condDiabetes) || g.hasChronic(condPrediabetes)
	wellness := kind == kindWellAdult || kind == kindWellChild
	if g.chance(k.labP) {
		drawn := g.start + int64(10+r.IntN(20))*60
		switch {
		case kind == kindWellAdult:
			some := false
			if g.age >= 20 && g.chance(0.5) {
				g.panel(panelLipid, drawn)
				some = true
			}
			if g.chance(0.4) {
				g.panel(panelBMP, drawn)
				some = true
			}
			if g.chance(0.25) || !some {
				g.panel(panelCBC, drawn)
			}
		case kind == kindInpatient:
			g.panel(panelBMP, drawn)
			g.panel(panelCBC, drawn)
		case g.chance(0.6):
			g.panel(panelBMP, drawn)
		default:
			g.panel(panelCBC, drawn)
		}
	}
	if diabetic && (wellness || kind == kindFollowUp) && g.chance(0.7) {
		drawn := g.start + int64(10+r.IntN(20))*60
		mean := 5.9
		if g.hasChronic(condDiabetes) {
			mean = 7.4
		}
		o := &observations[obsA1c]
		g.quantity(obsA1c, drawn, drawn+int64(1+r.IntN(6))*3600, scaled(g.normal(mean, 0.6, o.min, o.max), o.dec))
	}
}

func (g *gen) panel(pn int, drawn int64) {
	pd := &panels[pn]
	issued := drawn + int64(1+g.r.IntN(6))*3600
	g.results = g.results[:0]
	for _, o := range pd.members {
		g.results = append(g.results, resultRef{g.sample(o, drawn, issued), o})
	}
	rid := g.newID()
	issuedMs := issued*1000 + g.r.Int64N(1000)
	b := g.begin(tDiagnosticReport, &rid, min(max(issuedMs, g.p.lo), g.p.hi))
	if g.p.v == vDSTU2 || g.p.v == vSTU3 { // category is 0..1
		b = append(b, `,"status":"final","category":{"coding":[{"system":"http://hl7.org/fhir/v2/0074","code":"LAB","display":"Laboratory"}]},"code":`...)
	} else {
		b = append(b, `,"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v2-0074","code":"LAB","display":"Laboratory"}]}],"code":`...)
	}
	b = append(b, pd.cc...)
	b = g.p.ref(b, "subject", tPatient, &g.pid)
	b = g.p.ref(b, g.p.encKey, tEncounter, &g.eid)
	b = append(b, `,"effectiveDateTime":"`...)
	b = appendDateTime(b, drawn)
	b = append(b, `","issued":"`...)
	b = appendInstant(b, issuedMs)
	switch g.p.v {
	case vDSTU2: // performer is 1..1
		b = append(b, `","performer":{"reference":"Organization/`...)
		b = append(b, g.p.orgIDs[g.org][:]...)
		b = append(b, `"},"result":[`...)
	case vSTU3: // performer is a BackboneElement
		b = append(b, `","performer":[{"actor":{"reference":"Organization/`...)
		b = append(b, g.p.orgIDs[g.org][:]...)
		b = append(b, `"}}],"result":[`...)
	default:
		b = append(b, `","performer":[{"reference":"Organization/`...)
		b = append(b, g.p.orgIDs[g.org][:]...)
		b = append(b, `"}],"result":[`...)
	}
	for i, res := range g.results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"reference":"Observation/`...)
		b = append(b, res.oid[:]...)
		b = append(b, `","display":"`...)
		b = append(b, observations[res.obs].display...)
		b = append(b, `"}`...)
	}
	b = append(b, ']')
	g.finish(tDiagnosticReport, b)
	g.lines = append(g.lines, claimLine{cc: pd.cc, cents: g.jitter(6218)})
}

// sample appends Observation o with a value drawn from its distribution.
func (g *gen) sample(o int, at, issued int64) id {
	d := &observations[o]
	return g.quantity(o, at, issued, scaled(g.normal(d.mean, d.sd, d.min, d.max), d.dec))
}

// obsStart appends an Observation up to and including its issued instant.
func (g *gen) obsStart(o int, oid *id, at, issued int64) []byte {
	if issued == 0 {
		issued = at
	}
	issuedMs := issued*1000 + g.r.Int64N(1000)
	b := g.begin(tObservation, oid, min(max(issuedMs+g.r.Int64N(60_000), g.p.lo), g.p.hi))
	b = append(b, observations[o].head[g.p.v]...)
	b = g.p.ref(b, "subject", tPatient, &g.pid)
	b = g.p.ref(b, g.p.encKey, tEncounter, &g.eid)
	b = append(b, `,"effectiveDateTime":"`...)
	b = appendDateTime(b, at)
	b = append(b, `","issued":"`...)
	b = appendInstant(b, issuedMs)
	return append(b, '"')
}

// quantity appends Observation o with valueQuantity v (scaled by 10^dec).
func (g *gen) quantity(o int, at, issued int64, v int64) id {
	oid := g.newID()
	b := g.obsStart(o, &oid, at, issued)
	b = append(b, `,"valueQuantity":{"value":`...)
	b = appendFixed(b, v, observations[o].dec)
	b = append(b, observations[o].tail...)
	g.finish(tObservation, b)
	return oid
}

// bloodPressure appends the blood-pressure panel with its two components.
func (g *gen) bloodPressure(at int64) {
	oid := g.newID()
	b := g.obsStart(obsBP, &oid, at, 0)
	dia, sys := &observations[obsDiastolic], &observations[obsSystolic]
	b = append(b, `,"component":[{"code":`...)
	b = append(b, dia.cc...)
	b = append(b, `,"valueQuantity":{"value":`...)
	b = strconv.AppendInt(b, scaled(g.normal(g.diaBP, 5, dia.min, dia.max), 0), 10)
	b = append(b, dia.tail...)
	b = append(b, `},{"code":`...)
	b = append(b, sys.cc...)
	b = append(b, `,"valueQuantity":{"value":`...)
	b = strconv.AppendInt(b, scaled(g.normal(g.sysBP, 7, sys.min, sys.max), 0), 10)
	b = append(b, sys.tail...)
	b = append(b, "}]"...)
	g.finish(tObservation, b)
}

// procedures appends the screenings and interventions of the encounter
// (acute-problem procedures are added by encounter itself).
func (g *gen) procedures(kind, e int) {
	r := g.r
	switch kind {
	case kindWellAdult, kindWellChild:
		if g.onMedication(e) && g.chance(0.8) {
			g.procedure(procMedRecon)
		}
		if g.age >= 12 && g.chance(0.25) {
			g.procedure(procDepressionScreen)
		}
		if g.female && g.age >= 40 && g.chance(0.25) {
			g.procedure(procMammography)
		}
		if g.age >= 50 && g.chance(0.05) {
			g.procedure(procColonoscopy)
		}
		if g.female && g.age >= 21 && g.age <= 65 && g.chance(0.15) {
			g.procedure(procPapSmear)
		}
		if g.age >= 15 && g.age <= 65 && g.chance(0.08) {
			g.procedure(procHIVTest)
		}
		if g.age >= 18 && g.age < 80 && g.chance(0.05) {
			g.procedure(procHepCTest)
		}
	case kindFollowUp, kindAsthmaFollowUp:
		for i := range g.chronic {
			c := &g.chronic[i]
			if g.reason == &c.cid {
				if pr := conditions[c.def].proc; pr >= 0 && g.chance(0.3) {
					g.procedure(pr)
				}
				break
			}
		}
	case kindOutpatientProc:
		g.procedure(outpatientProcs[r.IntN(len(outpatientProcs))])
	case kindInpatient:
		for range 1 + r.IntN(2) {
			g.procedure(inpatientProcs[r.IntN(len(inpatientProcs))])
		}
	case kindPatientProc:
		if g.chance(0.5) {
			g.procedure(procInjection)
		} else {
			g.procedure(procBriefExam)
		}
	}
}

func (g *gen) onMedication(e int) bool {
	for _, c := range g.chronic {
		if c.enc <= e && conditions[c.def].med >= 0 {
			return true
		}
	}
	return false
}

// procedure appends a completed Procedure done during the encounter.
func (g *gen) procedure(pr int) {
	d := &procs[pr]
	pid := g.newID()
	from := g.start + int64(g.r.IntN(15))*60
	to := from + int64(d.minutes)*60
	b := g.begin(tProcedure, &pid, g.lu(to, 7_200_000))
	b = append(b, `,"status":"completed","code":`...)
	b = append(b, d.cc...)
	b = g.p.ref(b, "subject", tPatient, &g.pid)
	b = g.p.ref(b, g.p.encKey, tEncounter, &g.eid)
	if g.p.v == vR5 {
		b = append(b, `,"occurrencePeriod":{"start":"`...)
	} else {
		b = append(b, `,"performedPeriod":{"start":"`...)
	}
	b = appendDateTime(b, from)
	b = append(b, `","end":"`...)
	b = appendDateTime(b, to)
	b = append(b, `"},"performer":[{"actor":{"reference":"Practitioner/`...)
	b = append(b, g.p.pracIDs[g.org][:]...)
	b = append(b, `"}}]`...)
	b = g.p.ref(b, "location", tLocation, &g.p.locIDs[g.org])
	if g.reason != nil {
		b = g.appendReason(b)
	}
	g.finish(tProcedure, b)
	switch pr {
	case procAppendectomy, procWisdomTooth, procPolypectomy, procColonoscopy:
		g.postOpDue = true
	}
	g.procIDs = append(g.procIDs, pid)
	g.lines = append(g.lines, claimLine{cc: d.cc, cents: g.jitter(d.cents), proc: len(g.procIDs)})
}

// chronicMeds renews prescriptions for diagnosed long-term conditions.
func (g *gen) chronicMeds(kind, e int) {
	var p float64
	switch kind {
	case kindWellAdult, kindWellChild:
		p = 0.6
	case kindFollowUp, kindAsthmaFollowUp, kindCheckUp:
		p = 0.4
	default:
		p = 0.03
	}
	reason := g.reason
	for i := range g.chronic {
		c := &g.chronic[i]
		m := conditions[c.def].med
		if c.enc > e || m < 0 {
			continue
		}
		q := p
		if reason != nil && *reason == c.cid {
			q = 0.9
		}
		if g.chance(q) {
			g.reason = &c.cid
			g.medication(m, true)
			if c.def == condAsthma && g.chance(0.3) {
				g.medication(medAlbuterol, true)
			}
		}
	}
	g.reason = reason
}

// medication appends a MedicationRequest written at the encounter.
func (g *gen) medication(m int, chronic bool) {
	d := &meds[m]
	mid := g.newID()
	authored := g.end - int64(g.r.IntN(300))
	hiSec := g.p.hi / 1000
	var status string
	switch {
	case chronic && hiSec-authored < 180*day, !chronic && hiSec-authored < 14*day:
		status = "active"
	case g.chance(0.1):
		status = "stopped"
	default:
		status = "completed"
	}
	b := g.begin(tMedicationRequest, &mid, g.lu(authored, 600_000))
	switch g.p.v {
	case vDSTU2:
		b = g.medicationOrder(b, d, status, authored, chronic)
	case vSTU3:
		b = g.medicationRequestSTU3(b, d, status, authored, chronic)
	default:
		b = g.medicationRequest(b, d, status, authored, chronic)
	}
	g.finish(tMedicationRequest, b)
	g.medIDs = append(g.medIDs, mid)
	g.lines = append(g.lines, claimLine{cc: d.cc, cents: g.jitter(d.cents)})
}

// medicationRequest is the R4 and R5 MedicationRequest after its header.
func (g *gen) medicationRequest(b []byte, d *medDef, status string, authored int64, chronic bool) []byte {
	r5 := g.p.v == vR5
	b = append(b, `,"status":"`...)
	b = append(b, status...)
	if r5 { // medication is a CodeableReference
		b = append(b, `","intent":"order","medication":{"concept":`...)
		b = append(b, d.cc...)
		b = append(b, '}')
	} else {
		b = append(b, `","intent":"order","medicationCodeableConcept":`...)
		b = append(b, d.cc...)
	}
	b = g.p.ref(b, "subject", tPatient, &g.pid)
	b = g.p.ref(b, "encounter", tEncounter, &g.eid)
	b = append(b, `,"authoredOn":"`...)
	b = appendDateTime(b, authored)
	b = append(b, '"')
	b = g.p.ref(b, "requester", tPractitioner, &g.p.pracIDs[g.org])
	if g.reason != nil {
		b = g.appendReason(b)
	}
	b = append(b, `,"dosageInstruction":[{"sequence":1,"timing":{"repeat":{"frequency":`...)
	b = strconv.AppendInt(b, int64(d.perDay), 10)
	if r5 { // asNeeded[x] became asNeeded and asNeededFor
		b = append(b, `,"period":1,"periodUnit":"d"}},"asNeeded":`...)
	} else {
		b = append(b, `,"period":1,"periodUnit":"d"}},"asNeededBoolean":`...)
	}
	if chronic {
		b = append(b, "false"...)
	} else {
		b = append(b, "true"...)
	}
	return append(b, `,"doseAndRate":[{"doseQuantity":{"value":1}}]}]`...)
}

// appendReason appends the reason of a Procedure or a medication order:
// the Condition g.reason, as the release spells it.
func (g *gen) appendReason(b []byte) []byte {
	switch g.p.v {
	case vDSTU2: // reason[x], 0..1
		b = append(b, `,"reasonReference":{"reference":"Condition/`...)
		b = append(b, g.reason[:]...)
		return append(b, `"}`...)
	case vR5: // a CodeableReference
		b = append(b, `,"reason":[{"reference":{"reference":"Condition/`...)
		b = append(b, g.reason[:]...)
		return append(b, `"}}]`...)
	}
	b = append(b, `,"reasonReference":[{"reference":"Condition/`...)
	b = append(b, g.reason[:]...)
	return append(b, `"}]`...)
}

// immunizations appends the age-appropriate vaccines given at a wellness
// visit.
func (g *gen) immunizations() {
	for v := range vaccines {
		d := &vaccines[v]
		if g.age < d.minAge || g.age > d.maxAge || !g.chance(d.p) {
			continue
		}
		iid := g.newID()
		at := g.start + int64(5+g.r.IntN(20))*60
		b := g.begin(tImmunization, &iid, g.lu(at, 3_600_000))
		if g.p.v == vDSTU2 || g.p.v == vSTU3 {
			b = g.immunizationPreR4(b, d, at)
		} else {
			b = g.immunizationR4(b, d, at)
		}
		g.finish(tImmunization, b)
		g.lines = append(g.lines, claimLine{cc: d.cc, cents: g.jitter(14052)})
	}
}

// immunizationR4 is the R4 and R5 Immunization after its header.
func (g *gen) immunizationR4(b []byte, d *vaxDef, at int64) []byte {
	b = append(b, `,"status":"completed","vaccineCode":`...)
	b = append(b, d.cc...)
	b = g.p.ref(b, "patient", tPatient, &g.pid)
	b = g.p.ref(b, "encounter", tEncounter, &g.eid)
	b = append(b, `,"occurrenceDateTime":"`...)
	b = appendDateTime(b, at)
	b = append(b, `","primarySource":true`...)
	b = g.p.ref(b, "location", tLocation, &g.p.locIDs[g.org])
	b = append(b, `,"performer":[{"actor":{"reference":"Practitioner/`...)
	b = append(b, g.p.pracIDs[g.org][:]...)
	return append(b, `"}}]`...)
}

func (g *gen) writeEncounter(k *encKind) {
	b := g.begin(tEncounter, &g.eid, g.lu(g.end, 1_800_000))
	if g.p.v == vDSTU2 || g.p.v == vSTU3 {
		g.finish(tEncounter, g.encounterPreR4(b, k))
		return
	}
	r5 := g.p.v == vR5
	if r5 { // class is a list of CodeableConcepts; status codes changed
		b = append(b, `,"status":"completed","class":[{"coding":[`...)
		b = append(b, encounterClasses[k.class]...)
		b = append(b, `]}],"type":[`...)
	} else {
		b = append(b, `,"status":"finished","class":`...)
		b = append(b, encounterClasses[k.class]...)
		b = append(b, `,"type":[`...)
	}
	b = append(b, k.cc...)
	b = append(b, ']')
	b = g.p.ref(b, "subject", tPatient, &g.pid)
	b = append(b, `,"participant":[{"type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/v3-ParticipationType","code":"PPRF","display":"primary performer"}],"text":"primary performer"}],"period":`...)
	b = g.appendPeriod(b)
	if r5 { // individual became actor, period actualPeriod
		b = append(b, `,"actor":{"reference":"Practitioner/`...)
		b = append(b, g.p.pracIDs[g.org][:]...)
		b = append(b, `"}}],"actualPeriod":`...)
	} else {
		b = append(b, `,"individual":{"reference":"Practitioner/`...)
		b = append(b, g.p.pracIDs[g.org][:]...)
		b = append(b, `"}}],"period":`...)
	}
	b = g.appendPeriod(b)
	if g.reason != nil {
		if r5 { // reason.value is a CodeableReference
			b = append(b, `,"reason":[{"value":[{"reference":{"reference":"Condition/`...)
			b = append(b, g.reason[:]...)
			b = append(b, `"}}]}]`...)
		} else {
			b = append(b, `,"reasonReference":[{"reference":"Condition/`...)
			b = append(b, g.reason[:]...)
			b = append(b, `"}]`...)
		}
	}
	b = append(b, `,"location":[{"location":{"reference":"Location/`...)
	b = append(b, g.p.locIDs[g.org][:]...)
	b = append(b, `"}}]`...)
	b = g.p.ref(b, "serviceProvider", tOrganization, &g.p.orgIDs[g.org])
	g.finish(tEncounter, b)
}

func (g *gen) appendPeriod(b []byte) []byte {
	b = append(b, `{"start":"`...)
	b = appendDateTime(b, g.start)
	b = append(b, `","end":"`...)
	b = appendDateTime(b, g.end)
	return append(b, `"}`...)
}

func claimType(k *encKind) string {
	if k.class == classEMER || k.class == classIMP {
		return `{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"institutional"}]}`
	}
	return `{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claim-type","code":"professional"}]}`
}

func appendMoney(b []byte, cents int64) []byte {
	b = append(b, `{"value":`...)
	b = appendFixed(b, cents, 2)
	return append(b, `,"currency":"USD"}`...)
}

func (g *gen) claimTotal() int64 {
	var total int64
	for _, l := range g.lines {
		total += l.cents
	}
	return total
}

// writeClaim appends the encounter's Claim, billed by its Organization.
func (g *gen) writeClaim(k *encKind, cid *id) {
	created := g.end + int64(g.r.IntN(3600))
	b := g.begin(tClaim, cid, g.lu(created, 600_000))
	switch g.p.v {
	case vDSTU2:
		g.finish(tClaim, g.claimDSTU2(b, k, created))
		return
	case vSTU3:
		g.finish(tClaim, g.claimSTU3(b, k, created))
		return
	}
	g.finish(tClaim, g.appendClaim(b, created, claimShape{
		typ: claimType(k), use: "claim",
		providers: func(b []byte) []byte {
			return g.p.ref(b, "provider", tOrganization, &g.p.orgIDs[g.org])
		},
		prioritySystem: "http://terminology.hl7.org/CodeSystem/processpriority",
		itemStart:      g.appendItemStart, money: appendMoney,
	}))
}

// claimShape is what a Claim's JSON differs in between releases.
type claimShape struct {
	typ, use       string
	providers      func(b []byte) []byte // provider (and organization)
	prioritySystem string
	itemStart      func(b []byte, i int, l claimLine) []byte
	money          func(b []byte, cents int64) []byte
}

// appendClaim appends a Claim's elements after its id and meta.
func (g *gen) appendClaim(b []byte, created int64, c claimShape) []byte {
	b = append(b, `,"status":"active","type":`...)
	b = append(b, c.typ...)
	b = append(append(append(b, `,"use":"`...), c.use...), '"')
	b = g.p.ref(b, "patient", tPatient, &g.pid)
	b = append(b, `,"billablePeriod":`...)
	b = g.appendPeriod(b)
	b = append(b, `,"created":"`...)
	b = appendDateTime(b, created)
	b = append(b, '"')
	b = c.providers(b)
	b = append(append(append(b, `,"priority":{"coding":[{"system":"`...), c.prioritySystem...), `","code":"normal"}]}`...)
	if len(g.medIDs) > 0 {
		b = g.p.ref(b, "prescription", tMedicationRequest, &g.medIDs[0])
	}
	b = g.appendDiagnoses(b)
	b = g.appendProcedures(b)
	b = append(b, `,"insurance":[{"sequence":1,"focal":true,"coverage":{"display":"`...)
	b = append(b, g.payer...)
	b = append(b, `"}}],"item":[`...)
	for i, l := range g.lines {
		if i > 0 {
			b = append(b, ',')
		}
		b = c.itemStart(b, i, l)
		if l.cents > 0 {
			b = append(b, `,"net":`...)
			b = c.money(b, l.cents)
		}
		b = append(b, '}')
	}
	b = append(b, `],"total":`...)
	return c.money(b, g.claimTotal())
}

func (g *gen) appendProcedures(b []byte) []byte {
	return appendSequenced(b, "procedure", "procedureReference", "Procedure/", g.procIDs)
}

func (g *gen) appendDiagnoses(b []byte) []byte {
	return appendSequenced(b, "diagnosis", "diagnosisReference", "Condition/", g.diags)
}

// appendSequenced appends a Claim's list field of references, each entry
// with its sequence number: nothing when ids is empty.
func appendSequenced(b []byte, field, refField, refPrefix string, ids []id) []byte {
	if len(ids) == 0 {
		return b
	}
	b = append(append(append(b, `,"`...), field...), `":[`...)
	for i := range ids {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"sequence":`...)
		b = strconv.AppendInt(b, int64(i+1), 10)
		b = append(append(append(append(b, `,"`...), refField...), `":{"reference":"`...), refPrefix...)
		b = append(b, ids[i][:]...)
		b = append(b, `"}}`...)
	}
	return append(b, ']')
}

// appendItemStart appends a Claim/EOB item up to its productOrService and
// links; the first item is the encounter itself.
func (g *gen) appendItemStart(b []byte, i int, l claimLine) []byte {
	b = append(b, `{"sequence":`...)
	b = strconv.AppendInt(b, int64(i+1), 10)
	if l.diag > 0 {
		b = append(b, `,"diagnosisSequence":[`...)
		b = strconv.AppendInt(b, int64(l.diag), 10)
		b = append(b, ']')
	}
	if l.proc > 0 {
		b = append(b, `,"procedureSequence":[`...)
		b = strconv.AppendInt(b, int64(l.proc), 10)
		b = append(b, ']')
	}
	b = append(b, `,"productOrService":`...)
	b = append(b, l.cc...)
	if i == 0 {
		b = append(b, `,"encounter":[{"reference":"Encounter/`...)
		b = append(b, g.eid[:]...)
		b = append(b, `"}]`...)
	}
	return b
}

// writeEOB appends the payer's ExplanationOfBenefit for the Claim.
func (g *gen) writeEOB(k *encKind, cid, eid *id) {
	covered := int64(80)
	if g.payer == "NO_INSURANCE" {
		covered = 0
	}
	created := g.end + int64(1+g.r.IntN(5))*day/2
	lastUpdated := g.lu(created, 3_600_000)
	switch g.p.v {
	case vDSTU2: // none, but the same draws keep later ids and values as in R4
		return
	case vSTU3:
		b := g.begin(tExplanationOfBenefit, eid, lastUpdated)
		g.finish(tExplanationOfBenefit, g.eobSTU3(b, k, cid, covered, created))
		return
	}
	b := g.begin(tExplanationOfBenefit, eid, lastUpdated)
	b = append(b, `,"identifier":[{"system":"https://bluebutton.cms.gov/resources/variables/clm_id","value":"`...)
	b = append(b, cid[:]...)
	b = append(b, `"}],"status":"active","type":`...)
	b = append(b, claimType(k)...)
	b = append(b, `,"use":"claim"`...)
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
	b = append(b, `,"outcome":"complete","careTeam":[{"sequence":1,"provider":{"reference":"Practitioner/`...)
	b = append(b, g.p.pracIDs[g.org][:]...)
	b = append(b, `"},"role":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/claimcareteamrole","code":"primary","display":"Primary provider"}]}}]`...)
	b = g.appendDiagnoses(b)
	b = append(b, `,"insurance":[{"focal":true,"coverage":{"display":"`...)
	b = append(b, g.payer...)
	b = append(b, `"}}],"item":[`...)
	for i, l := range g.lines {
		if i > 0 {
			b = append(b, ',')
		}
		b = g.appendItemStart(b, i, l)
		b = append(b, `,"servicedPeriod":`...)
		b = g.appendPeriod(b)
		b = g.p.ref(b, "locationReference", tLocation, &g.p.locIDs[g.org])
		if l.cents > 0 {
			b = append(b, `,"net":`...)
			b = appendMoney(b, l.cents)
			b = append(b, `,"adjudication":[{"category":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/adjudication","code":"submitted"}]},"amount":`...)
			b = appendMoney(b, l.cents)
			b = append(b, `},{"category":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/adjudication","code":"benefit"}]},"amount":`...)
			b = appendMoney(b, l.cents*covered/100)
			b = append(b, "}]"...)
		}
		b = append(b, '}')
	}
	total := g.claimTotal()
	paid := total * covered / 100
	b = append(b, `],"total":[{"category":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/adjudication","code":"submitted","display":"Submitted Amount"}],"text":"Submitted Amount"},"amount":`...)
	b = appendMoney(b, total)
	b = append(b, `},{"category":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/adjudication","code":"benefit","display":"Benefit Amount"}],"text":"Benefit Amount"},"amount":`...)
	b = appendMoney(b, paid)
	b = append(b, `}],"payment":{"amount":`...)
	b = appendMoney(b, paid)
	b = append(b, '}')
	g.finish(tExplanationOfBenefit, b)
}
