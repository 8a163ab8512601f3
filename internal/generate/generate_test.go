package generate_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/generate"
)

var base = time.Date(2024, time.June, 15, 12, 30, 45, 678_900_000, time.UTC)

// parts holds each type's files, in the order Stream opened them.
type parts map[string][]*bytes.Buffer

func (p parts) joined(typ string) []byte {
	var all []byte
	for _, b := range p[typ] {
		all = append(all, b.Bytes()...)
	}
	return all
}

func stream(t testing.TB, opts generate.Options) (parts, generate.Stats) {
	t.Helper()
	out := parts{}
	st, err := generate.Stream(context.Background(), opts, func(typ string) (io.Writer, error) {
		b := new(bytes.Buffer)
		out[typ] = append(out[typ], b)
		return b, nil
	}, nil)
	if err != nil {
		t.Fatalf("Stream(%+v) error: %v", opts, err)
	}
	return out, st
}

func TestStream_Deterministic(t *testing.T) {
	opts := generate.Options{Patients: 150, Seed: 7, Base: base}
	first, st1 := stream(t, opts)
	second, st2 := stream(t, opts)
	if diff := cmp.Diff(st1, st2); diff != "" {
		t.Errorf("Stats differ between runs (-first +second):\n%s", diff)
	}
	// One CPU means one worker: the batching must not show in the bytes.
	prev := runtime.GOMAXPROCS(1)
	serial, _ := stream(t, opts)
	runtime.GOMAXPROCS(prev)
	for _, typ := range generate.Types() {
		if !bytes.Equal(first.joined(typ), second.joined(typ)) {
			t.Errorf("%s differs between two runs with the same Options", typ)
		}
		if !bytes.Equal(first.joined(typ), serial.joined(typ)) {
			t.Errorf("%s differs between GOMAXPROCS=1 and GOMAXPROCS=%d", typ, prev)
		}
	}

	for name, o := range map[string]generate.Options{
		"seed": {Patients: 150, Seed: 8, Base: base},
		"base": {Patients: 150, Seed: 7, Base: base.Add(time.Hour)},
	} {
		other, _ := stream(t, o)
		for _, typ := range []string{"Patient", "Observation", "Organization"} {
			if bytes.Equal(first.joined(typ), other.joined(typ)) {
				t.Errorf("changing the %s left %s unchanged", name, typ)
			}
		}
	}
}

func TestDir_MatchesStream(t *testing.T) {
	opts := generate.Options{Patients: 40, Seed: 3, Base: base}
	want, wantStats := stream(t, opts)
	dir := filepath.Join(t.TempDir(), "out")
	st, err := generate.Dir(context.Background(), opts, dir, nil)
	if err != nil {
		t.Fatalf("Dir() error: %v", err)
	}
	if diff := cmp.Diff(wantStats, st); diff != "" {
		t.Errorf("Dir Stats differ from Stream's (-stream +dir):\n%s", diff)
	}
	var size int64
	for _, typ := range generate.Types() {
		got, err := os.ReadFile(filepath.Join(dir, typ+".ndjson"))
		if err != nil {
			t.Fatal(err)
		}
		size += int64(len(got))
		if !bytes.Equal(got, want.joined(typ)) {
			t.Errorf("%s.ndjson differs from the Stream output", typ)
		}
	}
	if size != st.Bytes {
		t.Errorf("Stats.Bytes = %d, files hold %d", st.Bytes, size)
	}
}

var (
	idPattern      = regexp.MustCompile(`^[A-Za-z0-9\-.]{1,64}$`)
	uuidPattern    = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	instantPattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$`)
)

// compartment names each patient-compartment type's patient element.
var compartment = map[string]string{
	"Observation": "subject", "Encounter": "subject", "Condition": "subject",
	"Procedure": "subject", "MedicationRequest": "subject", "DiagnosticReport": "subject",
	"Immunization": "patient", "AllergyIntolerance": "patient",
	"Claim": "patient", "ExplanationOfBenefit": "patient",
}

type resource struct {
	typ, id string
	body    map[string]any
}

// decode parses every line of each of types, checking what holds line by
// line.
func decode(t *testing.T, p parts, types []string) []resource {
	t.Helper()
	var all []resource
	for _, typ := range types {
		data := p.joined(typ)
		if len(data) > 0 && data[len(data)-1] != '\n' {
			t.Errorf("%s output does not end with a newline", typ)
		}
		for n, line := range bytes.Split(bytes.TrimSuffix(data, []byte("\n")), []byte("\n")) {
			if len(line) == 0 {
				if len(data) > 0 {
					t.Errorf("%s line %d is empty", typ, n+1)
				}
				continue
			}
			var body map[string]any
			if err := json.Unmarshal(line, &body); err != nil {
				t.Fatalf("%s line %d is not JSON: %v\n%s", typ, n+1, err, line)
			}
			var compact bytes.Buffer
			if err := json.Compact(&compact, line); err != nil || !bytes.Equal(compact.Bytes(), line) {
				t.Errorf("%s line %d is not compact JSON", typ, n+1)
			}
			if got := body["resourceType"]; got != typ {
				t.Errorf("%s line %d has resourceType %v", typ, n+1, got)
			}
			rid, _ := body["id"].(string)
			all = append(all, resource{typ: typ, id: rid, body: body})
		}
	}
	return all
}

// refs returns every reference string in v.
func refs(v any, out []string) []string {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			if s, ok := e.(string); ok && k == "reference" {
				out = append(out, s)
			} else {
				out = refs(e, out)
			}
		}
	case []any:
		for _, e := range v {
			out = refs(e, out)
		}
	}
	return out
}

func field(body map[string]any, path ...string) any {
	var v any = body
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func TestStream_Valid(t *testing.T) {
	opts := generate.Options{Patients: 400, Seed: 42, Base: base}
	p, st := stream(t, opts)
	all := decode(t, p, generate.Types())

	counts := map[string]int64{}
	ids := map[string]bool{}     // "Type/id"
	owner := map[string]string{} // compartment resource -> its patient reference
	for _, r := range all {
		counts[r.typ]++
		if !idPattern.MatchString(r.id) {
			t.Errorf("%s has invalid id %q", r.typ, r.id)
		}
		if r.typ != "Group" && !uuidPattern.MatchString(r.id) {
			t.Errorf("%s id %q is not UUID-shaped", r.typ, r.id)
		}
		key := r.typ + "/" + r.id
		if ids[key] {
			t.Errorf("duplicate id %s", key)
		}
		ids[key] = true

		lu, _ := field(r.body, "meta", "lastUpdated").(string)
		ts, err := time.Parse(time.RFC3339Nano, lu)
		if !instantPattern.MatchString(lu) || err != nil {
			t.Errorf("%s meta.lastUpdated = %q, want an instant with milliseconds", key, lu)
		} else if ts.Before(base.AddDate(-2, 0, 0)) || ts.After(base) {
			t.Errorf("%s meta.lastUpdated = %s, outside [%s, %s]", key, lu, base.AddDate(-2, 0, 0), base)
		}
		if el, ok := compartment[r.typ]; ok {
			ref, _ := field(r.body, el, "reference").(string)
			if !strings.HasPrefix(ref, "Patient/") {
				t.Errorf("%s.%s.reference = %q, want a Patient", key, el, ref)
			}
			owner[key] = ref
		}
	}
	if diff := cmp.Diff(st.Resources, counts); diff != "" {
		t.Errorf("Stats.Resources differ from the lines written (-stats +lines):\n%s", diff)
	}
	if len(counts) < 14 {
		t.Errorf("got %d resource types, want at least 14", len(counts))
	}
	for _, typ := range generate.Types() {
		if counts[typ] == 0 {
			t.Errorf("no %s resources for %d patients", typ, opts.Patients)
		}
	}
	if counts["Patient"] != int64(opts.Patients) {
		t.Errorf("%d Patients, want %d", counts["Patient"], opts.Patients)
	}
	if counts["Claim"] != counts["Encounter"] || counts["ExplanationOfBenefit"] != counts["Encounter"] {
		t.Errorf("Encounter/Claim/EOB counts = %d/%d/%d, want one Claim and EOB per Encounter",
			counts["Encounter"], counts["Claim"], counts["ExplanationOfBenefit"])
	}

	// Every reference resolves, and a compartment resource only points at
	// compartment resources of the same patient.
	for _, r := range all {
		key := r.typ + "/" + r.id
		for _, ref := range refs(r.body, nil) {
			if !ids[ref] {
				t.Errorf("%s references %s, which was not generated", key, ref)
				continue
			}
			if o, ok := owner[key]; ok {
				if ro, ok := owner[ref]; ok && ro != o {
					t.Errorf("%s of %s references %s of %s", key, o, ref, ro)
				}
				if strings.HasPrefix(ref, "Patient/") && ref != o {
					t.Errorf("%s of %s references another patient %s", key, o, ref)
				}
			}
		}
	}
}

// TestStream_Shapes checks the links and codes the export side relies on.
func TestStream_Shapes(t *testing.T) {
	p, _ := stream(t, generate.Options{Patients: 100, Seed: 5, Base: base})
	categories := map[string]int{}
	for _, r := range decode(t, p, generate.Types()) {
		b := r.body
		str := func(path ...string) string { s, _ := field(b, path...).(string); return s }
		switch r.typ {
		case "Encounter":
			parts, _ := b["participant"].([]any)
			loc, _ := b["location"].([]any)
			if len(parts) == 0 || len(loc) == 0 {
				t.Fatalf("Encounter %s lacks participant or location", r.id)
			}
			if ref, _ := field(parts[0].(map[string]any), "individual", "reference").(string); !strings.HasPrefix(ref, "Practitioner/") {
				t.Errorf("Encounter %s participant.individual = %q", r.id, ref)
			}
			if ref, _ := field(loc[0].(map[string]any), "location", "reference").(string); !strings.HasPrefix(ref, "Location/") {
				t.Errorf("Encounter %s location = %q", r.id, ref)
			}
			if !strings.HasPrefix(str("serviceProvider", "reference"), "Organization/") {
				t.Errorf("Encounter %s has no serviceProvider", r.id)
			}
			if end, err := time.Parse(time.RFC3339, str("period", "end")); err != nil || end.After(base) {
				t.Errorf("Encounter %s period.end = %q, want before Base", r.id, str("period", "end"))
			}
		case "Observation":
			cat, _ := b["category"].([]any)
			code, _ := field(cat[0].(map[string]any), "coding").([]any)
			c := code[0].(map[string]any)["code"].(string)
			categories[c]++
			if field(b, "code", "coding") == nil || !strings.HasPrefix(str("encounter", "reference"), "Encounter/") {
				t.Errorf("Observation %s lacks code or encounter", r.id)
			}
			if b["valueQuantity"] == nil && b["component"] == nil {
				t.Errorf("Observation %s has no value", r.id)
			}
			if vq, ok := b["valueQuantity"].(map[string]any); ok && (vq["unit"] == nil || vq["system"] != "http://unitsofmeasure.org") {
				t.Errorf("Observation %s valueQuantity = %v, want a UCUM unit", r.id, vq)
			}
		case "Condition":
			cs, _ := field(b, "clinicalStatus", "coding").([]any)
			code := cs[0].(map[string]any)["code"]
			if (code == "resolved") != (b["abatementDateTime"] != nil) {
				t.Errorf("Condition %s clinicalStatus %v with abatement %v", r.id, code, b["abatementDateTime"])
			}
		case "MedicationRequest":
			if s := str("status"); s != "active" && s != "completed" && s != "stopped" {
				t.Errorf("MedicationRequest %s status = %q", r.id, s)
			}
		case "DiagnosticReport":
			if res, _ := b["result"].([]any); len(res) == 0 {
				t.Errorf("DiagnosticReport %s has no results", r.id)
			}
		case "ExplanationOfBenefit":
			if !strings.HasPrefix(str("claim", "reference"), "Claim/") {
				t.Errorf("ExplanationOfBenefit %s has no claim", r.id)
			}
		}
	}
	if categories["vital-signs"] == 0 || categories["laboratory"] == 0 {
		t.Errorf("Observation categories = %v, want vital-signs and laboratory", categories)
	}
}

func TestStream_Groups(t *testing.T) {
	for _, tc := range []struct {
		patients int
		want     map[string]int // Group id -> members; nil means not checked
		groups   int
	}{
		{patients: 0, want: map[string]int{"group-10": 0, "group-quarter": 0, "group-all": 0}, groups: 3},
		{patients: 7, want: map[string]int{"group-10": 7, "group-quarter": 2, "group-all": 7}, groups: 3},
		{patients: 2000, want: map[string]int{"group-10": 10, "group-quarter": 500, "group-all": 2000}, groups: 4},
	} {
		p, _ := stream(t, generate.Options{Patients: tc.patients, Seed: 11, Base: base})
		patients := map[string]bool{}
		for line := range bytes.Lines(p.joined("Patient")) {
			var pt struct{ ID string }
			if err := json.Unmarshal(line, &pt); err != nil {
				t.Fatal(err)
			}
			patients["Patient/"+pt.ID] = true
		}
		var ids []string
		for line := range bytes.Lines(p.joined("Group")) {
			var g struct {
				ID         string
				Type       string
				Actual     bool
				Quantity   int
				Name       string
				Identifier []struct{ System, Value string }
				Member     []struct{ Entity struct{ Reference string } }
			}
			if err := json.Unmarshal(line, &g); err != nil {
				t.Fatalf("Group line: %v", err)
			}
			ids = append(ids, g.ID)
			if g.Type != "person" || !g.Actual || g.Name == "" {
				t.Errorf("N=%d: Group %s type=%q actual=%v name=%q", tc.patients, g.ID, g.Type, g.Actual, g.Name)
			}
			if len(g.Identifier) != 1 || g.Identifier[0].System != generate.GroupIdentifierSystem || g.Identifier[0].Value != g.ID {
				t.Errorf("N=%d: Group %s identifier = %+v", tc.patients, g.ID, g.Identifier)
			}
			if g.Quantity != len(g.Member) {
				t.Errorf("N=%d: Group %s quantity %d, %d members", tc.patients, g.ID, g.Quantity, len(g.Member))
			}
			if want, ok := tc.want[g.ID]; ok && len(g.Member) != want {
				t.Errorf("N=%d: Group %s has %d members, want %d", tc.patients, g.ID, len(g.Member), want)
			}
			seen := map[string]bool{}
			for _, m := range g.Member {
				if !patients[m.Entity.Reference] || seen[m.Entity.Reference] {
					t.Errorf("N=%d: Group %s member %s is unknown or repeated", tc.patients, g.ID, m.Entity.Reference)
				}
				seen[m.Entity.Reference] = true
			}
		}
		if len(ids) != tc.groups || !slices.Contains(ids, "group-10") {
			t.Errorf("N=%d: Groups %v, want %d including group-10", tc.patients, ids, tc.groups)
		}
	}
}

func TestStream_MaxFileBytes(t *testing.T) {
	const limit = 64 << 10
	opts := generate.Options{Patients: 30, Seed: 9, Base: base}
	whole, _ := stream(t, opts)
	opts.MaxFileBytes = limit
	rolled, _ := stream(t, opts)
	for _, typ := range generate.Types() {
		if !bytes.Equal(whole.joined(typ), rolled.joined(typ)) {
			t.Errorf("%s: rolled files do not add up to the single file", typ)
		}
		for i, b := range rolled[typ] {
			if b.Len() > limit && bytes.Count(b.Bytes(), []byte("\n")) > 1 {
				t.Errorf("%s part %d holds %d bytes in several lines, limit %d", typ, i+1, b.Len(), limit)
			}
			if i < len(rolled[typ])-1 && b.Len() == 0 {
				t.Errorf("%s part %d is empty", typ, i+1)
			}
		}
	}
	if n := len(rolled["Observation"]); n < 2 {
		t.Errorf("Observation was written to %d file(s), want several", n)
	}

	dir := t.TempDir()
	if _, err := generate.Dir(context.Background(), opts, dir, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"Observation.ndjson", "Observation.2.ndjson"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("Dir with MaxFileBytes: %v", err)
		}
	}
	// A later run into the same directory must not leave those parts behind.
	opts.MaxFileBytes = 0
	if _, err := generate.Dir(context.Background(), opts, dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "Observation.2.ndjson")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale Observation.2.ndjson after a run without rolling: %v", err)
	}
}

func TestResourcesPerPatient(t *testing.T) {
	const n = 3000
	_, st := stream(t, generate.Options{Patients: n, Seed: 1})
	got := float64(st.Total()) / n
	if math.Abs(got-generate.ResourcesPerPatient) > 0.03*generate.ResourcesPerPatient {
		t.Errorf("%d patients gave %.1f resources each, ResourcesPerPatient = %v", n, got, generate.ResourcesPerPatient)
	}
}

func TestStream_ProgressAndCancel(t *testing.T) {
	opts := generate.Options{Patients: 300, Seed: 2}
	discard := func(string) (io.Writer, error) { return io.Discard, nil }

	var seen []int64
	st, err := generate.Stream(context.Background(), opts, discard, func(n int64) { seen = append(seen, n) })
	if err != nil {
		t.Fatal(err)
	}
	if len(seen) < 3 || !slices.IsSorted(seen) || seen[len(seen)-1] != st.Total() {
		t.Errorf("progress reported %v, want an increasing series ending at %d", seen, st.Total())
	}

	ctx, cancel := context.WithCancel(context.Background())
	_, err = generate.Stream(ctx, opts, discard, func(n int64) {
		if n > 1000 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Stream cancelled midway: error %v, want context.Canceled", err)
	}
	_, err = generate.Stream(ctx, opts, discard, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Stream with a cancelled context: error %v, want context.Canceled", err)
	}
}

func TestStream_Errors(t *testing.T) {
	discard := func(string) (io.Writer, error) { return io.Discard, nil }
	if _, err := generate.Stream(context.Background(), generate.Options{Patients: -1}, discard, nil); err == nil {
		t.Error("Stream(Patients: -1) succeeded, want an error")
	}
	boom := errors.New("boom")
	_, err := generate.Stream(context.Background(), generate.Options{Patients: 100}, func(typ string) (io.Writer, error) {
		if typ == "Observation" {
			return failWriter{boom}, nil
		}
		return io.Discard, nil
	}, nil)
	if !errors.Is(err, boom) {
		t.Errorf("Stream with a failing writer: error %v, want %v", err, boom)
	}
	_, err = generate.Stream(context.Background(), generate.Options{Patients: 1}, func(typ string) (io.Writer, error) {
		return nil, boom
	}, nil)
	if !errors.Is(err, boom) {
		t.Errorf("Stream with a failing open: error %v, want %v", err, boom)
	}
}

type failWriter struct{ err error }

func (w failWriter) Write([]byte) (int, error) { return 0, w.err }

// BenchmarkStream generates about 100k resources per iteration to
// io.Discard and reports the throughput in resources per second.
func BenchmarkStream(b *testing.B) {
	opts := generate.Options{Patients: 1000, Seed: 1}
	discard := func(string) (io.Writer, error) { return io.Discard, nil }
	var total, size int64
	b.ResetTimer()
	for b.Loop() {
		st, err := generate.Stream(context.Background(), opts, discard, nil)
		if err != nil {
			b.Fatal(err)
		}
		total += st.Total()
		size += st.Bytes
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "resources/s")
	b.ReportMetric(float64(size)/1e6/b.Elapsed().Seconds(), "MB/s")
}

// BenchmarkStream_FHIRVersion is BenchmarkStream for each release.
func BenchmarkStream_FHIRVersion(b *testing.B) {
	for _, v := range defs.Versions() {
		b.Run(string(v), func(b *testing.B) {
			opts := generate.Options{Patients: 1000, Seed: 1, FHIRVersion: v}
			discard := func(string) (io.Writer, error) { return io.Discard, nil }
			var total int64
			for b.Loop() {
				st, err := generate.Stream(context.Background(), opts, discard, nil)
				if err != nil {
					b.Fatal(err)
				}
				total += st.Total()
			}
			b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "resources/s")
		})
	}
}
