package generate

import (
	"math/rand/v2"
	"strconv"
)

// Random streams. Every resource or patient draws from its own PCG seeded
// from (Seed, stream, index), so output never depends on generation order.
const (
	streamPatient uint64 = iota + 1
	streamOrg
	streamPractitioner
	streamGroup
)

func seeds(seed, stream, index uint64) (uint64, uint64) {
	h := mix64(seed ^ mix64(stream*0x9e3779b97f4a7c15))
	s1 := mix64(h ^ index)
	return s1, mix64(s1 ^ 0xda942042e4dd58b5)
}

func (p *plan) rng(stream, index uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seeds(p.seed, stream, index)))
}

// lastUpdated draws an instant uniformly from [lo, hi].
func (p *plan) lastUpdated(r *rand.Rand) int64 {
	return p.lo + r.Int64N(p.hi-p.lo+1)
}

// site is where an Organization and its Location are.
type site struct {
	name       string // e.g. "Worcester Family Practice"
	city       *city
	number     int
	street     string
	suffix     string
	phone      int
	latE6      int64
	lonE6      int64
	updated    int64 // Organization's lastUpdated
	locUpdated int64 // Location's lastUpdated
}

// site derives Organization i's attributes; the Location and the
// Practitioner with the same pool index work there.
func (p *plan) site(i int) site {
	r := p.rng(streamOrg, uint64(i))
	c := &cities[r.IntN(len(cities))]
	return site{
		name:       c.name + " " + orgSuffixes[r.IntN(len(orgSuffixes))],
		city:       c,
		number:     1 + r.IntN(999),
		street:     streets[r.IntN(len(streets))],
		suffix:     streetSuffixes[r.IntN(len(streetSuffixes))],
		phone:      r.IntN(10000),
		latE6:      c.lat + int64(r.IntN(40000)) - 20000,
		lonE6:      c.lon + int64(r.IntN(40000)) - 20000,
		updated:    p.lastUpdated(r),
		locUpdated: p.lastUpdated(r),
	}
}

func appendAddress(b []byte, s *site) []byte {
	b = append(b, `{"line":["`...)
	b = strconv.AppendInt(b, int64(s.number), 10)
	b = append(b, ' ')
	b = append(b, s.street...)
	b = append(b, ' ')
	b = append(b, s.suffix...)
	b = append(b, `"],"city":"`...)
	b = append(b, s.city.name...)
	b = append(b, `","state":"MA","postalCode":"`...)
	b = append(b, s.city.zip...)
	return append(b, `","country":"US"}`...)
}

// header opens a resource of type t: resourceType, id and meta.lastUpdated.
func (p *plan) header(b []byte, t int, rid *id, lastUpdated int64) []byte {
	b = append(b, `{"resourceType":"`...)
	b = append(b, p.names[t]...)
	b = append(b, `","id":"`...)
	b = append(b, rid[:]...)
	b = append(b, `","meta":{"lastUpdated":"`...)
	b = appendInstant(b, lastUpdated)
	return append(b, `"}`...)
}

// ref appends `,"key":{"reference":"Type/id"}` for a resource of type t.
func (p *plan) ref(b []byte, key string, t int, rid *id) []byte {
	b = append(b, `,"`...)
	b = append(b, key...)
	b = append(b, `":{"reference":"`...)
	b = append(b, p.names[t]...)
	b = append(b, '/')
	b = append(b, rid[:]...)
	return append(b, `"}`...)
}

// shared appends pool members [start, end) of type t (Organization,
// Location or Practitioner) to b.
func (p *plan) shared(b *batch, t, start, end int) {
	out := b.data[t]
	for i := start; i < end; i++ {
		s := p.site(i)
		switch t {
		case tOrganization:
			out = p.header(out, t, &p.orgIDs[i], s.updated)
			out = append(out, `,"identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"1`...)
			out = appendPadded(out, int64(i), 9)
			switch p.v {
			case vDSTU2: // type is 0..1
				out = append(out, `"}],"active":true,"type":{"coding":[{"system":"http://hl7.org/fhir/organization-type","code":"prov","display":"Healthcare Provider"}],"text":"Healthcare Provider"},"name":"`...)
			case vSTU3:
				out = append(out, `"}],"active":true,"type":[{"coding":[{"system":"http://hl7.org/fhir/organization-type","code":"prov","display":"Healthcare Provider"}],"text":"Healthcare Provider"}],"name":"`...)
			default:
				out = append(out, `"}],"active":true,"type":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/organization-type","code":"prov","display":"Healthcare Provider"}],"text":"Healthcare Provider"}],"name":"`...)
			}
			out = append(out, s.name...)
			if p.v == vR5 { // telecom and address moved into contact
				out = append(out, `","contact":[{"telecom":[{"system":"phone","value":"508-555-`...)
				out = appendPadded(out, int64(s.phone), 4)
				out = append(out, `"}],"address":`...)
				out = appendAddress(out, &s)
				out = append(out, "}]"...)
				break
			}
			out = append(out, `","telecom":[{"system":"phone","value":"508-555-`...)
			out = appendPadded(out, int64(s.phone), 4)
			out = append(out, `"}],"address":[`...)
			out = appendAddress(out, &s)
			out = append(out, ']')
		case tLocation:
			out = p.header(out, t, &p.locIDs[i], s.locUpdated)
			out = append(out, `,"status":"active","name":"`...)
			out = append(out, s.name...)
			if p.v == vR5 { // telecom moved into contact
				out = append(out, `","mode":"instance","contact":[{"telecom":[{"system":"phone","value":"508-555-`...)
				out = appendPadded(out, int64(s.phone), 4)
				out = append(out, `"}]}],"address":`...)
			} else {
				out = append(out, `","mode":"instance","telecom":[{"system":"phone","value":"508-555-`...)
				out = appendPadded(out, int64(s.phone), 4)
				out = append(out, `"}],"address":`...)
			}
			out = appendAddress(out, &s)
			out = append(out, `,"position":{"longitude":`...)
			out = appendFixed(out, s.lonE6, 6)
			out = append(out, `,"latitude":`...)
			out = appendFixed(out, s.latE6, 6)
			out = append(out, '}')
			out = p.ref(out, "managingOrganization", tOrganization, &p.orgIDs[i])
		case tPractitioner:
			r := p.rng(streamPractitioner, uint64(i))
			female := r.IntN(2) == 0
			given := givenMale[r.IntN(len(givenMale))]
			if female {
				given = givenFemale[r.IntN(len(givenFemale))]
			}
			family := families[r.IntN(len(families))]
			out = p.header(out, t, &p.pracIDs[i], p.lastUpdated(r))
			out = append(out, `,"identifier":[{"system":"http://hl7.org/fhir/sid/us-npi","value":"2`...)
			out = appendPadded(out, int64(i), 9)
			if p.v == vDSTU2 { // name is 0..1, HumanName.family 0..*
				out = append(out, `"}],"active":true,"name":{"family":["`...)
				out = append(out, family...)
				out = append(out, `"],"given":["`...)
				out = append(out, given...)
				out = append(out, `"],"prefix":["Dr."]},"telecom":[{"system":"email","value":"`...)
			} else {
				out = append(out, `"}],"active":true,"name":[{"family":"`...)
				out = append(out, family...)
				out = append(out, `","given":["`...)
				out = append(out, given...)
				out = append(out, `"],"prefix":["Dr."]}],"telecom":[{"system":"email","value":"`...)
			}
			out = append(out, given...)
			out = append(out, '.')
			out = append(out, family...)
			out = strconv.AppendInt(out, int64(i), 10)
			out = append(out, `@example.com","use":"work"}],"address":[`...)
			out = appendAddress(out, &s)
			out = append(out, `],"gender":"`...)
			if female {
				out = append(out, "female"...)
			} else {
				out = append(out, "male"...)
			}
			out = append(out, '"')
		}
		out = append(out, "}\n"...)
		b.ends[t] = append(b.ends[t], len(out))
	}
	b.data[t] = out
}

// groupSpec describes one generated Group; its members are a uniform
// sample of size patients.
type groupSpec struct {
	id, name string
	size     int
}

// groupSpecs lists the Groups of a run of n patients (see the package doc).
func (p *plan) groupSpecs() []groupSpec {
	n := p.n
	specs := []groupSpec{
		{id: "group-10", name: "Sample of 10 patients", size: min(n, 10)},
		{id: "group-quarter", name: "Sample of a quarter of the patients", size: (n + 3) / 4},
		{id: "group-all", name: "All patients", size: n},
	}
	r := p.rng(streamGroup, 0)
	for k := 1; k <= n/500-3; k++ {
		name := payers[r.IntN(len(payers))]
		if name == "NO_INSURANCE" {
			name = payerMedicare
		}
		specs = append(specs, groupSpec{
			id:   "group-cohort-" + strconv.Itoa(k),
			name: name + " members, cohort " + strconv.Itoa(k),
			size: max(1, n*(1+r.IntN(10))/100),
		})
	}
	return specs
}

const memberPrefix = `{"entity":{"reference":"Patient/`

// memberLen is the length of one member entry; ids have a fixed length, so
// a Group line's size is known before it is written.
const memberLen = len(memberPrefix) + len(id{}) + len(`"}}`)

// groups writes the Groups, streaming each member list so that even
// group-all of a huge run needs no line-sized buffer.
func (p *plan) groups(s *sink) error {
	var buf []byte
	for k, g := range p.groupSpecs() {
		r := p.rng(streamGroup, uint64(k+1))
		updated := max(p.lo, p.hi-r.Int64N(30*day*1000))
		gid := []byte(g.id)
		head := append(buf[:0], `{"resourceType":"Group","id":"`...)
		head = append(head, gid...)
		head = append(head, `","meta":{"lastUpdated":"`...)
		head = appendInstant(head, updated)
		head = append(head, `"},"identifier":[{"system":"`+GroupIdentifierSystem+`","value":"`...)
		head = append(head, gid...)
		switch p.v {
		case vDSTU2: // no active
			head = append(head, `"}],"type":"person","actual":true,"name":"`...)
		case vR5: // membership replaces actual
			head = append(head, `"}],"active":true,"type":"person","membership":"enumerated","name":"`...)
		default:
			head = append(head, `"}],"active":true,"type":"person","actual":true,"name":"`...)
		}
		head = append(head, g.name...)
		head = append(head, `","quantity":`...)
		head = strconv.AppendInt(head, int64(g.size), 10)
		tail := "}\n"
		size := int64(len(head) + len(tail))
		if g.size > 0 {
			head = append(head, `,"member":[`...)
			tail = "]}\n"
			size = int64(len(head)+len(tail)) + int64(g.size)*int64(memberLen+1) - 1
		}
		buf = head
		err := s.writeLine(tGroup, size, func() error {
			if err := s.write(tGroup, head); err != nil {
				return err
			}
			var chunk []byte
			first := true
			if err := p.eachMember(r, g.size, func(i int) error {
				if !first {
					chunk = append(chunk, ',')
				}
				first = false
				pid := p.patientID(i)
				chunk = append(chunk, memberPrefix...)
				chunk = append(chunk, pid[:]...)
				chunk = append(chunk, `"}}`...)
				if len(chunk) >= 64<<10 {
					err := s.write(tGroup, chunk)
					chunk = chunk[:0]
					return err
				}
				return nil
			}); err != nil {
				return err
			}
			if err := s.write(tGroup, chunk); err != nil {
				return err
			}
			return s.write(tGroup, []byte(tail))
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// eachMember calls fn with a uniform sample of n of the p.n patient indexes,
// in increasing order (selection sampling, Knuth's Algorithm S: O(p.n) time,
// O(1) memory, exactly n members).
func (p *plan) eachMember(r *rand.Rand, n int, fn func(i int) error) error {
	need := n
	for i := 0; i < p.n && need > 0; i++ {
		if need == p.n-i || r.IntN(p.n-i) < need {
			if err := fn(i); err != nil {
				return err
			}
			need--
		}
	}
	return nil
}
