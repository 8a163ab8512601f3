//go:build unix

package cohort_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/cohort"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// benchResources is the store size of BenchmarkCohortCreate (100k;
// TRANCHE_COHORT_BENCH_RESOURCES overrides it, e.g. 1000000).
var benchResources = 100_000

func init() {
	if v, err := strconv.Atoi(os.Getenv("TRANCHE_COHORT_BENCH_RESOURCES")); err == nil && v > 0 {
		benchResources = v
	}
}

// Per patient: 1 Patient, 2 Conditions, 12 Observations, 4 Encounters and
// 1 MedicationRequest (20 resources, of which 10% Conditions). One
// Condition in 20 is diabetes (44054006): about 10% of the patients have
// it.
const benchPerPatient = 20

var benchCodes = []string{"44054006", "38341003", "195967001", "15777000", "271737000", "40055000", "59621000", "233604007",
	"10509002", "162864005", "230690007", "55822004", "698754002", "87433001", "301011002", "90560007", "65363002", "444814009", "68496003", "72892002"}

// benchStore fills an embedded store (NoSync) with n resources. With
// TRANCHE_COHORT_BENCH_DIR set, the store is kept there and reused by the
// next run of the same size (writing 1M resources takes about a minute).
func benchStore(b *testing.B, n int) (*bolt.DB, map[string]int) {
	b.Helper()
	dir := b.TempDir()
	if d := os.Getenv("TRANCHE_COHORT_BENCH_DIR"); d != "" {
		dir = filepath.Join(d, strconv.Itoa(n))
	}
	db, err := bolt.Open(filepath.Join(dir, bolt.FileName), bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	counts := map[string]int{}
	if stored, err := db.Resources().Count(context.Background()); err == nil && stored["Patient"] > 0 {
		for t, c := range stored {
			counts[t] = int(c)
		}
		b.Logf("store: reusing %v in %s", counts, dir)
		return db, counts
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	var batch []*bulk.Resource
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	flush := func() {
		if err := db.Resources().Put(context.Background(), batch); err != nil {
			b.Fatal(err)
		}
		batch = batch[:0]
	}
	add := func(typ, id, body string) {
		at = at.Add(time.Millisecond)
		r := &bulk.Resource{Type: typ, ID: id, LastUpdated: at, Body: []byte(body), Patients: fhir.PatientCompartment(typ, id, []byte(body))}
		batch = append(batch, r)
		counts[typ]++
		if len(batch) == 5000 {
			flush()
		}
	}
	start := time.Now()
	for p := 0; p*benchPerPatient < n; p++ {
		pid := fmt.Sprintf("p%07d", p)
		gender := []string{"female", "male"}[rnd.IntN(2)]
		add("Patient", pid, fmt.Sprintf(`{"resourceType":"Patient","id":%q,"meta":{"lastUpdated":"2025-01-01T00:00:00.000Z"},"gender":%q,"birthDate":"19%02d-%02d-15","name":[{"use":"official","family":"Family%d","given":["Given%d"]}],"address":[{"line":["%d Main Street"],"city":"Springfield","state":"MA","postalCode":"01101"}]}`,
			pid, gender, 30+rnd.IntN(70), 1+rnd.IntN(12), p%997, p%389, p%1000))
		for c := range 2 {
			code := benchCodes[1+rnd.IntN(len(benchCodes)-1)]
			if rnd.IntN(10) == 0 {
				code = benchCodes[0]
			}
			add("Condition", fmt.Sprintf("%s-c%d", pid, c), fmt.Sprintf(`{"resourceType":"Condition","id":"%s-c%d","meta":{"lastUpdated":"2025-01-01T00:00:00.000Z"},"clinicalStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-clinical","code":"active"}]},"verificationStatus":{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/condition-ver-status","code":"confirmed"}]},"code":{"coding":[{"system":"http://snomed.info/sct","code":%q,"display":"Condition %s"}]},"subject":{"reference":"Patient/%s"},"onsetDateTime":"20%02d-%02d-01T00:00:00Z","recordedDate":"2024-01-01T00:00:00Z"}`,
				pid, c, code, code, pid, 10+rnd.IntN(16), 1+rnd.IntN(12)))
		}
		for o := range 12 {
			add("Observation", fmt.Sprintf("%s-o%d", pid, o), fmt.Sprintf(`{"resourceType":"Observation","id":"%s-o%d","meta":{"lastUpdated":"2025-01-01T00:00:00.000Z"},"status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body height"}]},"subject":{"reference":"Patient/%s"},"encounter":{"reference":"Encounter/%s-e%d"},"effectiveDateTime":"2024-%02d-01T10:00:00Z","valueQuantity":{"value":%d.%d,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}`,
				pid, o, pid, pid, o%4, 1+o%12, 150+rnd.IntN(50), rnd.IntN(10)))
		}
		for e := range 4 {
			add("Encounter", fmt.Sprintf("%s-e%d", pid, e), fmt.Sprintf(`{"resourceType":"Encounter","id":"%s-e%d","meta":{"lastUpdated":"2025-01-01T00:00:00.000Z"},"status":"finished","class":{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"},"type":[{"coding":[{"system":"http://snomed.info/sct","code":"185349003"}]}],"subject":{"reference":"Patient/%s"},"period":{"start":"2024-%02d-01T09:00:00Z","end":"2024-%02d-01T10:00:00Z"}}`,
				pid, e, pid, 1+e*3, 1+e*3))
		}
		add("MedicationRequest", pid+"-m0", fmt.Sprintf(`{"resourceType":"MedicationRequest","id":"%s-m0","meta":{"lastUpdated":"2025-01-01T00:00:00.000Z"},"status":"active","intent":"order","medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"860975"}]},"subject":{"reference":"Patient/%s"},"authoredOn":"2024-03-01"}`,
			pid, pid))
	}
	if len(batch) > 0 {
		flush()
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	b.Logf("store: %d resources (%v) written in %v", total, counts, time.Since(start).Round(time.Millisecond))
	return db, counts
}

type noWorkflow struct{}

func (noWorkflow) StartCohort(context.Context, bulk.CohortRun) error { return nil }

// BenchmarkCohortCreate measures a cohort of the patients with a given
// condition (Condition?code=http://snomed.info/sct|44054006) in an embedded
// store of TRANCHE_COHORT_BENCH_RESOURCES resources: one op is a request
// (Refresh) and its workflow run (Service.Run: snapshot, evaluation, the
// Group's write with its members and join times, the definition's
// update). It reports wall and CPU time (the machine may be shared), the
// members, the bodies read per op, and fails if the evaluation read
// anything but Conditions.
//
//	go test -run '^$' -bench BenchmarkCohortCreate -benchtime 10x ./internal/cohort/
//	TRANCHE_COHORT_BENCH_RESOURCES=1000000 go test -run '^$' -bench BenchmarkCohortCreate -benchtime 5x -timeout 30m ./internal/cohort/
func BenchmarkCohortCreate(b *testing.B) {
	db, counts := benchStore(b, benchResources)
	ctx := context.Background()
	if err := db.Clients().CreateClient(ctx, &bulk.Client{ID: "bench", Groups: []string{"*"}, Scopes: []string{"system/*.rs", "system/Group.cud"}}); err != nil && bulk.ErrorCode(err) != bulk.ECONFLICT {
		b.Fatal(err) // a reused store has it already
	}
	svc := &cohort.Service{Cohorts: db.Cohorts(), Resources: db.Resources(), Clock: db.Resources(), Clients: db.Clients(),
		Workflow: noWorkflow{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxPerClient: 1 << 30}
	c, err := svc.Create(ctx, bulk.CohortRequest{Owner: "bench", Body: []byte(cohortGroup("diabetes", []string{"Condition?code=http://snomed.info/sct|44054006"}))})
	if err != nil {
		b.Fatal(err)
	}
	run := bulk.CohortRun{Owner: "bench", CohortID: c.ID, Generation: c.Generation}
	// The first run (the creation) is timed on its own: cold pages.
	before := db.Stats()
	start, cpu := time.Now(), cpuTime()
	if err := svc.Run(ctx, run); err != nil {
		b.Fatal(err)
	}
	first, firstCPU := time.Since(start), cpuTime()-cpu
	firstBodies := db.Stats().BodiesRead - before.BodiesRead
	got, err := svc.Get(ctx, "bench", c.ID)
	if err != nil || got.Status != bulk.CohortReady {
		b.Fatalf("cohort after its first run: %+v, %v", got, err)
	}
	b.Logf("creation: %d members of %d patients in %v (%v of CPU), %d bodies read (%d Conditions stored)",
		got.Members, counts["Patient"], first.Round(time.Microsecond), firstCPU.Round(time.Microsecond), firstBodies, counts["Condition"])
	// Only Conditions (and the Group's own previous version) are read.
	if max := int64(counts["Condition"]) + 2; firstBodies > max {
		b.Errorf("the creation read %d bodies; the Conditions are %d: it read other types", firstBodies, counts["Condition"])
	}
	before, cpu = db.Stats(), cpuTime()
	n := 0
	for b.Loop() {
		c, err := svc.Refresh(ctx, "bench", c.ID)
		if err != nil {
			b.Fatal(err)
		}
		if err := svc.Run(ctx, bulk.CohortRun{Owner: "bench", CohortID: c.ID, Generation: c.Generation}); err != nil {
			b.Fatal(err)
		}
		n++
	}
	b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/1000/float64(max(n, 1)), "cpu-ms/op")
	b.ReportMetric(float64(db.Stats().BodiesRead-before.BodiesRead)/float64(max(n, 1)), "bodies/op")
	b.ReportMetric(float64(got.Members), "members")
	b.ReportMetric(float64(first.Microseconds())/1000, "first-ms")
	b.ReportMetric(float64(firstCPU.Microseconds())/1000, "first-cpu-ms")
	b.ReportMetric(float64(benchResources), "resources")
}

// cpuTime is the process's user and system CPU time so far: on a machine
// shared with other work, the wall time of an op says little.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
