// Package generate writes deterministic, realistic synthetic FHIR data as
// NDJSON, one stream per resource type, for tests, demos and benchmarks:
// FHIR R4 by default, or DSTU2, STU3 or R5 (Options.FHIRVersion).
//
// The data imitates Synthea output: Patients with a few encounters a year,
// each with vital signs and lab Observations (LOINC, UCUM units),
// DiagnosticReports over lab panels, Conditions (SNOMED CT), Procedures,
// MedicationRequests (RxNorm), Immunizations (CVX), a Claim and an
// ExplanationOfBenefit, plus AllergyIntolerances; shared Practitioners,
// Organizations and Locations; and a few Groups of patients. Every resource
// is compact single-line JSON with resourceType, id and meta.lastUpdated, and
// every reference is a relative "Type/id" to a resource the same run writes.
//
// The output depends only on Options: the same Options give byte-identical
// files whatever the number of CPUs (for a given version of this package and
// of Go's math/rand/v2).
//
// # FHIR versions
//
// Options.FHIRVersion changes the shapes only: the same Options with another
// version describe the same patients, encounters, codes, dates and ids, each
// resource in the elements its release defines (R4's output is the
// original, unchanged). Every clinical resource links to its Patient through
// a path of that release's Patient CompartmentDefinition, so a Patient-level
// export returns all of it. The differences, in short:
//
//   - DSTU2 (1.0.2): MedicationOrder (patient, prescriber, dateWritten)
//     instead of MedicationRequest; no ExplanationOfBenefit (DSTU2's has no
//     patient, nor anything to adjudicate); Encounter.patient and class as a
//     code, indication for the reason; Condition.patient with clinical and
//     verification status as codes, dateRecorded and asserter;
//     AllergyIntolerance.substance and status; Immunization.date,
//     wasNotGiven and reported; Claim with a type code, Coding diagnoses and
//     items, coverage and no totals; Patient.careProvider; single
//     Observation/DiagnosticReport categories; Practitioner.name a single
//     HumanName, HumanName.family a list; Money as a Quantity; Groups without
//     active; http://hl7.org/fhir/… code systems.
//   - STU3 (3.0.2): context instead of encounter on Condition, Observation,
//     DiagnosticReport, Procedure and MedicationRequest; status codes instead
//     of CodeableConcepts on Condition and AllergyIntolerance (assertedDate,
//     asserter); Encounter.diagnosis for the reason; MedicationRequest
//     requester.agent and Dosage.doseQuantity; Immunization.date, notGiven
//     and practitioner; Claim and ExplanationOfBenefit items by service and
//     *LinkId, Claim.organization, EOB outcome CodeableConcept, single
//     insurance, totalCost/totalBenefit; Money as a Quantity;
//     DiagnosticReport performer.actor; http://hl7.org/fhir/… code systems.
//   - R5 (5.0.0): Encounter class as CodeableConcepts, actualPeriod,
//     participant.actor, reason.value and status "completed"; Condition and
//     AllergyIntolerance participant instead of recorder (and a coded
//     AllergyIntolerance.type); Procedure occurrencePeriod; MedicationRequest
//     medication as a CodeableReference and Dosage.asNeeded; reason as
//     CodeableReferences; Organization and Location contact
//     (ExtendedContactDetail) instead of telecom/address; Group membership
//     instead of actual.
//
// # Groups
//
// Every run writes these Groups (type person, actual true; in R5
// membership enumerated), whose members are a deterministic sample of the
// patients:
//
//   - "group-10": 10 patients (all of them when Patients < 10); benchmarks
//     use it as the small Group export.
//   - "group-quarter": a quarter of the patients (rounded up).
//   - "group-all": every patient.
//   - "group-cohort-1" … "group-cohort-K" with K = Patients/500 - 3 when that
//     is positive: payer cohorts holding 1–10 % of the patients each.
//
// So a run has max(3, Patients/500) Groups. Each has an identifier with
// system GroupIdentifierSystem and the Group id as value.
package generate

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// Options select what to generate. The zero value of each field except
// Patients has a sensible meaning.
type Options struct {
	// Patients is the number of patients (N >= 0).
	Patients int
	// Seed makes the output reproducible: equal Options give equal bytes.
	Seed int64
	// Base is the instant the data is "as of": every meta.lastUpdated lies in
	// [Base-2 years, Base] (to the millisecond), and every clinical date is at
	// or before Base. The zero value means DefaultBase; it is never the wall
	// clock, so output stays reproducible. Only the instant counts, not its
	// time zone.
	Base time.Time
	// MaxFileBytes rolls output files: when a line would take a file past
	// MaxFileBytes, a new file of the same type is started (a single line
	// larger than the limit gets a file of its own). 0 means one file per type.
	MaxFileBytes int64
	// FHIRVersion is the release whose resource shapes the run writes (see
	// the package doc); the zero value means defs.R4.
	FHIRVersion defs.Version
}

// DefaultBase is the Base used when Options.Base is zero.
var DefaultBase = time.Date(2025, time.January, 1, 0, 0, 0, 0, time.UTC)

// Stats reports what a run wrote.
type Stats struct {
	// Resources counts resources by type; every type of TypesFor(the
	// run's FHIRVersion) is present.
	Resources map[string]int64
	// Bytes is the total NDJSON size over all files.
	Bytes int64
}

// Total is the number of resources over all types.
func (s Stats) Total() int64 {
	var n int64
	for _, c := range s.Resources {
		n += c
	}
	return n
}

// ResourcesPerPatient is the average number of resources a run writes per
// patient, including the patient's share of the Practitioner, Organization
// and Location pools, so Patients = target/ResourcesPerPatient gives about
// target resources (10,000 patients ≈ 1 M resources). That is an R4 run's
// (STU3 and R5 write as many resources); DSTU2, without
// ExplanationOfBenefit, writes about 8 % fewer.
const ResourcesPerPatient = 100.0

// GroupIdentifierSystem is the Group.identifier system of generated Groups.
const GroupIdentifierSystem = "urn:tranche:generate:group"

// Resource types, in the order files are opened and written.
const (
	tOrganization = iota
	tLocation
	tPractitioner
	tPatient
	tEncounter
	tCondition
	tAllergyIntolerance
	tObservation
	tDiagnosticReport
	tProcedure
	tMedicationRequest
	tImmunization
	tClaim
	tExplanationOfBenefit
	tGroup
	numTypes
)

var typeNames = [numTypes]string{
	tOrganization:         "Organization",
	tLocation:             "Location",
	tPractitioner:         "Practitioner",
	tPatient:              "Patient",
	tEncounter:            "Encounter",
	tCondition:            "Condition",
	tAllergyIntolerance:   "AllergyIntolerance",
	tObservation:          "Observation",
	tDiagnosticReport:     "DiagnosticReport",
	tProcedure:            "Procedure",
	tMedicationRequest:    "MedicationRequest",
	tImmunization:         "Immunization",
	tClaim:                "Claim",
	tExplanationOfBenefit: "ExplanationOfBenefit",
	tGroup:                "Group",
}

// Types returns the resource types an R4 run (the default) writes, in the
// order their files are opened; TypesFor gives them for any release.
func Types() []string {
	return append([]string(nil), typeNames[:]...)
}

// Dir writes one file per type into dir, creating it: dir/<Type>.ndjson
// (e.g. Patient.ndjson). With MaxFileBytes set, further files of a type are
// named <Type>.2.ndjson, <Type>.3.ndjson, …; the type is always the file
// name up to its first dot. Existing files of those names are replaced, and
// stale further parts (<Type>.<n>.ndjson) of an earlier run are removed, as
// are the files of types that another FHIRVersion writes and this one does
// not (an R4 run's MedicationRequest.ndjson under a DSTU2 run), so the
// directory holds one release's data.
// progress (may be nil) is called now and then, on the calling goroutine,
// with the number of resources written so far. On error, the files written
// so far are left in place and Stats describes them.
func Dir(ctx context.Context, opts Options, dir string, progress func(resources int64)) (Stats, error) {
	p, err := newPlan(opts)
	if err != nil {
		return Stats{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Stats{}, err
	}
	if err := removeStale(dir, p.names); err != nil {
		return Stats{}, err
	}
	s := newSink(opts.MaxFileBytes, p.names,
		func(t, part int) (io.Writer, error) {
			name := p.names[t] + ".ndjson"
			if part > 1 {
				name = p.names[t] + "." + strconv.Itoa(part) + ".ndjson"
			}
			return os.Create(filepath.Join(dir, name))
		},
		func(w io.Writer) error { return w.(*os.File).Close() })
	return run(ctx, p, s, progress)
}

// removeStale deletes <Type>.<n>.ndjson files, so that a run cannot leave
// rolled files of an earlier, bigger run beside its own, and every file of
// the types another release writes but this run (names) does not.
func removeStale(dir string, names *[numTypes]string) error {
	for _, typ := range allTypeNames() {
		if !slices.Contains(names[:], typ) {
			if err := os.Remove(filepath.Join(dir, typ+".ndjson")); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
		matches, err := filepath.Glob(filepath.Join(dir, typ+".*.ndjson"))
		if err != nil {
			return err
		}
		for _, m := range matches {
			part := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(m), typ+"."), ".ndjson")
			if n, err := strconv.Atoi(part); err == nil && n > 1 && strconv.Itoa(n) == part {
				if err := os.Remove(m); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Stream writes the same resources as Dir to writers obtained from
// open(type), called once per type in Types order before anything is
// written, and again for each further file of a type when MaxFileBytes rolls
// it (the previous writer of that type is then no longer used). Stream never
// closes the writers. progress is as for Dir.
func Stream(ctx context.Context, opts Options, open func(typ string) (io.Writer, error), progress func(resources int64)) (Stats, error) {
	p, err := newPlan(opts)
	if err != nil {
		return Stats{}, err
	}
	s := newSink(opts.MaxFileBytes, p.names,
		func(t, _ int) (io.Writer, error) { return open(p.names[t]) },
		nil)
	return run(ctx, p, s, progress)
}

// run generates everything into s: the shared pools, the patients in
// parallel batches written in order, then the Groups.
func run(ctx context.Context, p *plan, s *sink, progress func(int64)) (st Stats, err error) {
	defer func() {
		if cerr := s.close(); err == nil {
			err = cerr
		}
		st = s.stats()
	}()
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	if err := s.openAll(); err != nil {
		return Stats{}, err
	}
	report := func() {
		if progress != nil {
			progress(s.total)
		}
	}

	b := newBatch()
	for t := range 3 { // Organization, Location, Practitioner
		for start := 0; start < p.pool; start += sharedChunk {
			b.reset()
			p.shared(b, t, start, min(start+sharedChunk, p.pool))
			if err := s.writeBatch(b); err != nil {
				return Stats{}, err
			}
		}
	}
	report()

	err = p.eachBatch(ctx, runtime.GOMAXPROCS(0), func(b *batch) error {
		if err := s.writeBatch(b); err != nil {
			return err
		}
		report()
		return nil
	})
	if err != nil {
		return Stats{}, err
	}
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	if err := p.groups(s); err != nil {
		return Stats{}, err
	}
	report()
	return Stats{}, nil
}

// plan holds what every generator goroutine shares, read-only.
type plan struct {
	v      ver
	names  *[numTypes]string // resource type of each type index; "" if not written
	encKey string            // key of a clinical resource's Encounter: "encounter", STU3 "context"
	n      int
	seed   uint64
	keys   idKeys
	lo, hi int64 // lastUpdated bounds, Unix milliseconds
	pool   int   // size of each shared pool
	// Shared resource ids, by pool index.
	orgIDs, locIDs, pracIDs []id
}

const (
	patientsPerBatch = 32
	sharedChunk      = 256
	day              = 86400 // seconds
)

func newPlan(opts Options) (*plan, error) {
	if opts.Patients < 0 {
		return nil, fmt.Errorf("generate: negative patient count %d", opts.Patients)
	}
	if opts.MaxFileBytes < 0 {
		return nil, fmt.Errorf("generate: negative MaxFileBytes %d", opts.MaxFileBytes)
	}
	v, err := verOf(opts.FHIRVersion)
	if err != nil {
		return nil, err
	}
	base := opts.Base
	if base.IsZero() {
		base = DefaultBase
	}
	// Only the instant counts: the two years back are counted in UTC, not
	// in Base's zone (which time.Parse may set to the process's Local).
	base = base.UTC()
	if base.Year() < 1900 || base.Year() > 9000 {
		return nil, fmt.Errorf("generate: Base %s out of range", base.Format(time.RFC3339))
	}
	// Round inwards to whole milliseconds so formatted instants stay in range.
	from := base.AddDate(-2, 0, 0)
	lo := from.UnixMilli()
	if time.UnixMilli(lo).Before(from) {
		lo++
	}
	p := &plan{
		v:      v,
		names:  &namesByVer[v],
		encKey: "encounter",
		n:      opts.Patients,
		seed:   uint64(opts.Seed),
		keys:   newIDKeys(uint64(opts.Seed)),
		lo:     lo,
		hi:     base.UnixMilli(),
		pool:   opts.Patients/20 + 5,
	}
	if v == vSTU3 {
		p.encKey = "context"
	}
	p.orgIDs = p.sharedIDs(tOrganization)
	p.locIDs = p.sharedIDs(tLocation)
	p.pracIDs = p.sharedIDs(tPractitioner)
	return p, nil
}

// Id counters: patient i owns counters (i+1)<<24 | seq for seq < 2^24 (the
// Patient itself is seq 0); shared resources use the top bit, so no two
// resources of a run share an id.
func (p *plan) patientID(i int) id { return p.keys.make(uint64(i+1) << 24) }

func (p *plan) sharedIDs(t int) []id {
	ids := make([]id, p.pool)
	for i := range ids {
		ids[i] = p.keys.make(1<<63 | uint64(t)<<40 | uint64(i))
	}
	return ids
}

// batch is the output of one unit of work: per type, the NDJSON lines and
// where each ends.
type batch struct {
	data [numTypes][]byte
	ends [numTypes][]int
}

func newBatch() *batch { return &batch{} }

func (b *batch) reset() {
	for t := range b.data {
		b.data[t] = b.data[t][:0]
		b.ends[t] = b.ends[t][:0]
	}
}

// eachBatch generates the patients in batches on workers goroutines and
// hands the batches to fn in patient order, on the calling goroutine. Each
// patient's randomness comes from (Seed, patient index) alone, so the bytes
// do not depend on workers or scheduling. At most about 2*workers batches
// are in memory at once.
func (p *plan) eachBatch(parent context.Context, workers int, fn func(*batch) error) error {
	nb := (p.n + patientsPerBatch - 1) / patientsPerBatch
	if nb == 0 {
		return nil
	}
	workers = max(1, min(workers, nb))
	ctx, cancel := context.WithCancel(parent)
	defer cancel()

	type job struct {
		index int
		out   chan *batch
	}
	jobs := make(chan job)
	order := make(chan chan *batch, 2*workers)
	free := make(chan *batch, 3*workers+2)
	var wg sync.WaitGroup

	wg.Add(1)
	go func() { // producer: reserves each batch's place in order, then dispatches it
		defer wg.Done()
		defer close(jobs)
		defer close(order)
		for i := range nb {
			out := make(chan *batch, 1)
			select {
			case order <- out:
			case <-ctx.Done():
				return
			}
			select {
			case jobs <- job{i, out}:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := newGen(p)
			for j := range jobs {
				var b *batch
				select {
				case b = <-free:
					b.reset()
				default:
					b = newBatch()
				}
				g.out = b
				first := j.index * patientsPerBatch
				for i := first; i < min(first+patientsPerBatch, p.n); i++ {
					g.patient(i)
				}
				j.out <- b
			}
		}()
	}

	var err error
	written := 0
	for out := range order {
		if ctx.Err() != nil {
			break
		}
		var b *batch
		select {
		case b = <-out:
		case <-ctx.Done():
		}
		if b == nil {
			break
		}
		if err = fn(b); err != nil {
			break
		}
		written++
		select {
		case free <- b:
		default:
		}
	}
	cancel()
	wg.Wait()
	if err != nil {
		return err
	}
	if written < nb { // only the caller's context stops the loop early
		return parent.Err()
	}
	return nil
}

// sink writes batches to per-type writers, rolling files at maxBytes.
type sink struct {
	maxBytes int64
	names    *[numTypes]string // types named "" are not written
	open     func(t, part int) (io.Writer, error)
	release  func(io.Writer) error // closes a finished file; nil for Stream
	files    [numTypes]sinkFile
	total    int64 // resources written
}

type sinkFile struct {
	w         io.Writer
	bw        *bufio.Writer
	part      int
	size      int64 // bytes in the current file
	bytes     int64 // bytes over all files of the type
	resources int64
}

const bufSize = 256 << 10

func newSink(maxBytes int64, names *[numTypes]string, open func(t, part int) (io.Writer, error), release func(io.Writer) error) *sink {
	return &sink{maxBytes: maxBytes, names: names, open: open, release: release}
}

func (s *sink) openAll() error {
	for t := range s.files {
		if s.names[t] == "" {
			continue
		}
		if err := s.next(t); err != nil {
			return err
		}
	}
	return nil
}

// next finishes the current file of type t, if any, and starts the next.
func (s *sink) next(t int) error {
	f := &s.files[t]
	if f.w != nil {
		if err := f.bw.Flush(); err != nil {
			return err
		}
		w := f.w
		f.w = nil
		if s.release != nil {
			if err := s.release(w); err != nil {
				return err
			}
		}
	}
	f.part++
	w, err := s.open(t, f.part)
	if err != nil {
		return err
	}
	f.w, f.size = w, 0
	if f.bw == nil {
		f.bw = bufio.NewWriterSize(w, bufSize)
	} else {
		f.bw.Reset(w)
	}
	return nil
}

// reserve rolls type t's file if n more bytes would take it past maxBytes.
func (s *sink) reserve(t int, n int64) error {
	f := &s.files[t]
	if s.maxBytes > 0 && f.size > 0 && f.size+n > s.maxBytes {
		return s.next(t)
	}
	return nil
}

func (s *sink) write(t int, p []byte) error {
	f := &s.files[t]
	n, err := f.bw.Write(p)
	f.size += int64(n)
	f.bytes += int64(n)
	return err
}

// writeBatch writes every line of b, in order, to the files of its types.
func (s *sink) writeBatch(b *batch) error {
	for t := range numTypes {
		data, ends := b.data[t], b.ends[t]
		if len(ends) == 0 || s.names[t] == "" {
			continue
		}
		if s.maxBytes == 0 {
			if err := s.write(t, data); err != nil {
				return err
			}
		} else {
			// Write maximal runs of lines that fit the current file.
			start := 0
			for i := 0; i < len(ends); {
				if err := s.reserve(t, int64(ends[i]-start)); err != nil {
					return err
				}
				room := s.maxBytes - s.files[t].size
				j := i + 1
				for j < len(ends) && int64(ends[j]-start) <= room {
					j++
				}
				if err := s.write(t, data[start:ends[j-1]]); err != nil {
					return err
				}
				start, i = ends[j-1], j
			}
		}
		s.files[t].resources += int64(len(ends))
		s.total += int64(len(ends))
	}
	return nil
}

// writeLine writes one line of known size produced by emit (which calls
// s.write), so huge Group lines need no buffer of their own.
func (s *sink) writeLine(t int, size int64, emit func() error) error {
	if err := s.reserve(t, size); err != nil {
		return err
	}
	if err := emit(); err != nil {
		return err
	}
	s.files[t].resources++
	s.total++
	return nil
}

// close flushes and releases every open file, returning the first error.
func (s *sink) close() error {
	var errs []error
	for t := range s.files {
		f := &s.files[t]
		if f.w == nil {
			continue
		}
		errs = append(errs, f.bw.Flush())
		if s.release != nil {
			errs = append(errs, s.release(f.w))
		}
		f.w = nil
	}
	return errors.Join(errs...)
}

func (s *sink) stats() Stats {
	st := Stats{Resources: make(map[string]int64, numTypes)}
	for t := range s.files {
		if s.names[t] == "" {
			continue
		}
		st.Resources[s.names[t]] = s.files[t].resources
		st.Bytes += s.files[t].bytes
	}
	return st
}
