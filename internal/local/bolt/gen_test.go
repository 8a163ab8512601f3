package bolt_test

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// genStart is the start of generated lastUpdated times.
var genStart = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)

// generator makes generated-looking patient records: a Patient, then
// Encounters, Conditions and Observations about it, with UUID ids and bodies
// of about bodySize bytes. Seeded, so runs are comparable.
type generator struct {
	rng      *rand.Rand
	bodySize int
	// importTime stamps resources in increasing order, as an import that
	// sets lastUpdated does; otherwise times are spread over a year.
	importTime bool
	clock      time.Time
}

func newGenerator(seed uint64, bodySize int, importTime bool) *generator {
	return &generator{rng: rand.New(rand.NewPCG(seed, seed)), bodySize: bodySize, importTime: importTime, clock: genStart}
}

func (g *generator) uuid() string {
	a, b := g.rng.Uint64(), g.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, a>>16&0xffff, a&0xfff, b>>48&0x3fff|0x8000, b&0xffffffffffff)
}

func (g *generator) when() time.Time {
	if g.importTime {
		g.clock = g.clock.Add(time.Duration(1+g.rng.IntN(1000)) * time.Microsecond)
		return g.clock
	}
	return genStart.Add(time.Duration(g.rng.Int64N(int64(365 * 24 * time.Hour))))
}

// patient returns one patient's record: the Patient and perPatient-1 other
// resources in its compartment.
func (g *generator) patient(perPatient int) []*bulk.Resource {
	pid := g.uuid()
	rs := []*bulk.Resource{g.resource("Patient", pid, pid)}
	for i := 1; i < perPatient; i++ {
		typ := "Observation"
		switch i % 10 {
		case 1:
			typ = "Encounter"
		case 2:
			typ = "Condition"
		}
		rs = append(rs, g.resource(typ, g.uuid(), pid))
	}
	return rs
}

func (g *generator) resource(typ, id, patient string) *bulk.Resource {
	lu := g.when()
	body := fmt.Appendf(make([]byte, 0, g.bodySize+64),
		`{"resourceType":%q,"id":%q,"meta":{"lastUpdated":%q},"status":"final","subject":{"reference":"Patient/%s"},"code":{"coding":[{"system":"http://loinc.org","code":"%d-%d","display":"Generated measurement"}]},"valueQuantity":{"value":%.2f,"unit":"mg/dL"},"note":[{"text":"`,
		typ, id, lu.Format(time.RFC3339Nano), patient, g.rng.IntN(99999), g.rng.IntN(9), g.rng.Float64()*200)
	const letters = "abcdefghijklmnopqrstuvwxyz      "
	for len(body) < g.bodySize-4 {
		body = append(body, letters[g.rng.IntN(len(letters))])
	}
	body = append(body, `"}]}`...)
	return &bulk.Resource{Type: typ, ID: id, LastUpdated: lu, Body: body, Patients: []string{patient}}
}

// records returns n resources, perPatient per patient, and the patient ids.
func (g *generator) records(n, perPatient int) ([]*bulk.Resource, []string) {
	var (
		rs       []*bulk.Resource
		patients []string
	)
	for len(rs) < n {
		p := g.patient(min(perPatient, n-len(rs)))
		patients = append(patients, p[0].ID)
		rs = append(rs, p...)
	}
	return rs, patients
}
