// Command extract trims an official FHIR core definition package down to the
// subset that the defs generator reads, and writes it under
// internal/fhir/defs/spec/<version>/. It is run by hand, once per upstream
// release, never by go generate: the trimmed files are checked in, and
// spec/README.md says where each input came from and how to re-run this.
//
//	go run ./internal/fhir/defs/extract -version r4 -src /tmp/hl7.fhir.r4.core -out internal/fhir/defs/spec/r4
//	go run ./internal/fhir/defs/extract -version dstu2 -src /tmp/hl7.fhir.r2.core \
//	    -compartments /tmp/compartments.xml -out internal/fhir/defs/spec/dstu2
//
// -src is an unpacked package: a directory holding package/package.json and
// the package's resources (package/StructureDefinition-*.json, …), as in the
// npm tarball or the FHIR/packages repository.
//
// What is kept, field by field, with the upstream JSON values unchanged:
//   - every SearchParameter: resourceType, id, url, name, code, base, type,
//     expression, xpath, xpathUsage, target;
//   - the StructureDefinition of every resource type (kind resource, no
//     constraint on another definition): resourceType, id, url, name, type,
//     kind, abstract, derivation, baseDefinition (base in DSTU2),
//     fhirVersion, and of snapshot.element: id, path, min, max, type (code,
//     profile, targetProfile and the structuredefinition-fhir-type
//     extension), contentReference (nameReference in DSTU2), isModifier,
//     isSummary;
//   - the Patient CompartmentDefinition, verbatim (STU3 and later), or, for
//     DSTU2, which has no CompartmentDefinition resource, the build source
//     the DSTU2 compartments page was generated from (compartments.xml),
//     verbatim;
//   - package.json, verbatim.
//
// The large files are gzipped (searchparameters.json.gz,
// structuredefinitions.json.gz): a Bundle of type collection, one entry per
// line, sorted by id. extract.txt records the inputs' digest and the
// outputs' sha256.
package main

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// expected is the upstream package each version must come from.
var expected = map[string]struct{ name, version string }{
	"dstu2": {"hl7.fhir.r2.core", "1.0.2"},
	"stu3":  {"hl7.fhir.r3.core", "3.0.2"},
	"r4":    {"hl7.fhir.r4.core", "4.0.1"},
	"r5":    {"hl7.fhir.r5.core", "5.0.0"},
}

func main() {
	version := flag.String("version", "", "dstu2, stu3, r4 or r5")
	src := flag.String("src", "", "unpacked package directory (holding package/package.json)")
	compartments := flag.String("compartments", "", "DSTU2 only: source/compartments.xml of the DSTU2 build")
	out := flag.String("out", "", "output directory, e.g. internal/fhir/defs/spec/r4")
	flag.Parse()
	if err := run(*version, *src, *compartments, *out); err != nil {
		fmt.Fprintln(os.Stderr, "extract:", err)
		os.Exit(1)
	}
}

// input is one upstream file read, for the digest in extract.txt.
type input struct {
	name string
	sum  [32]byte
}

type extractor struct {
	pkgDir string
	inputs []input
}

func (x *extractor) read(name string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(x.pkgDir, name))
	if err != nil {
		return nil, err
	}
	x.inputs = append(x.inputs, input{name: "package/" + name, sum: sha256.Sum256(b)})
	return b, nil
}

// run extracts the package at src for version into out (see the package
// comment).
func run(version, src, compartments, out string) error {
	want, ok := expected[version]
	if !ok || src == "" || out == "" {
		return fmt.Errorf("need -version (dstu2, stu3, r4 or r5), -src and -out")
	}
	if (version == "dstu2") != (compartments != "") {
		return fmt.Errorf("-compartments is required for dstu2 and only for it")
	}
	x := &extractor{pkgDir: filepath.Join(src, "package")}
	pkgJSON, err := x.readPackage(want)
	if err != nil {
		return err
	}
	sds, sps, err := x.readDefinitions()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	outputs := map[string][]byte{"package.json": pkgJSON}
	if outputs["structuredefinitions.json.gz"], err = gzipBytes(bundle(sds)); err != nil {
		return err
	}
	if outputs["searchparameters.json.gz"], err = gzipBytes(bundle(sps)); err != nil {
		return err
	}
	if version == "dstu2" {
		b, err := os.ReadFile(compartments)
		if err != nil {
			return err
		}
		x.inputs = append(x.inputs, input{name: "compartments.xml", sum: sha256.Sum256(b)})
		outputs["compartments.xml"] = b
	} else {
		b, err := x.read("CompartmentDefinition-patient.json")
		if err != nil {
			return err
		}
		outputs["compartmentdefinition-patient.json"] = b
	}
	var rec bytes.Buffer
	fmt.Fprintf(&rec, "Written by internal/fhir/defs/extract from %s@%s.\n", want.name, want.version)
	fmt.Fprintf(&rec, "StructureDefinitions kept: %d; SearchParameters kept: %d.\n", len(sds), len(sps))
	fmt.Fprintf(&rec, "Inputs: %d files; sha256 of their sorted \"sha256  name\" lines: %s\n", len(x.inputs), inputsDigest(x.inputs))
	return writeOutputs(out, outputs, &rec)
}

// readPackage reads package.json, which must be the package want.
func (x *extractor) readPackage(want struct{ name, version string }) ([]byte, error) {
	pkgJSON, err := x.read("package.json")
	if err != nil {
		return nil, err
	}
	var pkg struct{ Name, Version string }
	if err := json.Unmarshal(stripBOM(pkgJSON), &pkg); err != nil {
		return nil, fmt.Errorf("package.json: %w", err)
	}
	// FHIR/packages names the R4 package "@hl7/hl7.fhir.r4.core".
	if strings.TrimPrefix(pkg.Name, "@hl7/") != want.name || pkg.Version != want.version {
		return nil, fmt.Errorf("package is %s@%s, want %s@%s", pkg.Name, pkg.Version, want.name, want.version)
	}
	return pkgJSON, nil
}

// readDefinitions reads and trims the package's StructureDefinitions of
// resource types and its SearchParameters; there must be some of each.
func (x *extractor) readDefinitions() (sds, sps []bundleEntry, err error) {
	entries, err := os.ReadDir(x.pkgDir)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, "StructureDefinition-") && strings.HasSuffix(name, ".json"):
			b, err := os.ReadFile(filepath.Join(x.pkgDir, name))
			if err != nil {
				return nil, nil, err
			}
			sd, keep, err := trimStructureDefinition(stripBOM(b))
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", name, err)
			}
			if keep {
				x.inputs = append(x.inputs, input{name: "package/" + name, sum: sha256.Sum256(b)})
				sds = append(sds, sd)
			}
		case strings.HasPrefix(name, "SearchParameter-") && strings.HasSuffix(name, ".json"):
			b, err := x.read(name)
			if err != nil {
				return nil, nil, err
			}
			sp, err := trimSearchParameter(stripBOM(b))
			if err != nil {
				return nil, nil, fmt.Errorf("%s: %w", name, err)
			}
			sps = append(sps, sp)
		}
	}
	if len(sds) == 0 || len(sps) == 0 {
		return nil, nil, fmt.Errorf("no StructureDefinition or SearchParameter in %s", x.pkgDir)
	}
	return sds, sps, nil
}

// writeOutputs writes outputs into out, in name order, and extract.txt:
// rec, then each output's sha256; and prints extract.txt.
func writeOutputs(out string, outputs map[string][]byte, rec *bytes.Buffer) error {
	names := make([]string, 0, len(outputs))
	for n := range outputs {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(rec, "Outputs (sha256):\n")
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(out, n), outputs[n], 0o644); err != nil {
			return err
		}
		fmt.Fprintf(rec, "%x  %s\n", sha256.Sum256(outputs[n]), n)
	}
	if err := os.WriteFile(filepath.Join(out, "extract.txt"), rec.Bytes(), 0o644); err != nil {
		return err
	}
	os.Stdout.Write(rec.Bytes())
	return nil
}

// inputsDigest is the sha256 of the lines "<hex sha256>  <name>\n", sorted
// by name: what `sha256sum` prints for the same files, sorted, from the
// directory holding package/.
func inputsDigest(in []input) string {
	sort.Slice(in, func(i, j int) bool { return in[i].name < in[j].name })
	h := sha256.New()
	for _, f := range in {
		fmt.Fprintf(h, "%x  %s\n", f.sum, f.name)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

func stripBOM(b []byte) []byte { return bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")) }

// bundleEntry is one trimmed resource, with the id it is sorted by.
type bundleEntry struct {
	id   string
	json []byte
}

// bundle writes the entries as a Bundle of type collection, one entry per
// line, sorted by id.
func bundle(entries []bundleEntry) []byte {
	sort.Slice(entries, func(i, j int) bool { return entries[i].id < entries[j].id })
	var b bytes.Buffer
	b.WriteString(`{"resourceType":"Bundle","type":"collection","entry":[` + "\n")
	for i, e := range entries {
		b.WriteString(`{"resource":`)
		b.Write(e.json)
		b.WriteString("}")
		if i < len(entries)-1 {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]}\n")
	return b.Bytes()
}

// gzipBytes compresses b reproducibly: no name, no modification time.
func gzipBytes(b []byte) ([]byte, error) {
	var out bytes.Buffer
	w, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(w, bytes.NewReader(b)); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// marshal encodes v without HTML escaping, so that upstream strings such as
// "f:Patient/f:telecom[system/@value='email']" stay readable.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// The trimmed shapes. json.RawMessage keeps the upstream value as it is,
// whatever its form in that release (DSTU2's base is a string, later ones
// an array; STU3's targetProfile is a string, R4's an array).

type searchParameter struct {
	ResourceType string          `json:"resourceType"`
	ID           string          `json:"id"`
	URL          string          `json:"url,omitempty"`
	Name         string          `json:"name,omitempty"`
	Code         string          `json:"code"`
	Base         json.RawMessage `json:"base,omitempty"`
	Type         string          `json:"type"`
	Expression   string          `json:"expression,omitempty"`
	XPath        string          `json:"xpath,omitempty"`
	XPathUsage   string          `json:"xpathUsage,omitempty"`
	Target       json.RawMessage `json:"target,omitempty"`
}

func trimSearchParameter(b []byte) (bundleEntry, error) {
	var sp searchParameter
	if err := json.Unmarshal(b, &sp); err != nil {
		return bundleEntry{}, err
	}
	if sp.ResourceType != "SearchParameter" || sp.ID == "" || sp.Code == "" {
		return bundleEntry{}, fmt.Errorf("not a SearchParameter with an id and a code")
	}
	out, err := marshal(sp)
	return bundleEntry{id: sp.ID, json: out}, err
}

type structureDefinition struct {
	ResourceType    string    `json:"resourceType"`
	ID              string    `json:"id"`
	URL             string    `json:"url"`
	Name            string    `json:"name"`
	Type            string    `json:"type,omitempty"`
	Kind            string    `json:"kind"`
	Abstract        bool      `json:"abstract"`
	Derivation      string    `json:"derivation,omitempty"`
	BaseDefinition  string    `json:"baseDefinition,omitempty"`
	Base            string    `json:"base,omitempty"`
	ConstrainedType string    `json:"constrainedType,omitempty"`
	FHIRVersion     string    `json:"fhirVersion,omitempty"`
	Snapshot        *snapshot `json:"snapshot,omitempty"`
}

type snapshot struct {
	Element []element `json:"element"`
}

type element struct {
	ID               string          `json:"id,omitempty"`
	Path             string          `json:"path"`
	Min              *int            `json:"min,omitempty"`
	Max              string          `json:"max,omitempty"`
	Type             []elementType   `json:"type,omitempty"`
	ContentReference string          `json:"contentReference,omitempty"`
	NameReference    string          `json:"nameReference,omitempty"`
	IsModifier       json.RawMessage `json:"isModifier,omitempty"`
	IsSummary        json.RawMessage `json:"isSummary,omitempty"`
}

type elementType struct {
	Extension     []typeExtension `json:"extension,omitempty"`
	Code          string          `json:"code,omitempty"`
	Profile       json.RawMessage `json:"profile,omitempty"`
	TargetProfile json.RawMessage `json:"targetProfile,omitempty"`
}

// typeExtension keeps only structuredefinition-fhir-type (R4 and R5 name
// the FHIR type of System.* primitives with it); other extensions on a type
// are dropped.
type typeExtension struct {
	URL      string `json:"url"`
	ValueURL string `json:"valueUrl,omitempty"`
	ValueURI string `json:"valueUri,omitempty"`
}

const fhirTypeExt = "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type"

// trimStructureDefinition trims the definition of a resource type and
// reports whether b is one: kind resource, not a constraint (profile) on
// another definition. The abstract Resource and DomainResource (and R5's
// CanonicalResource, MetadataResource) are kept; the generator skips them.
func trimStructureDefinition(b []byte) (bundleEntry, bool, error) {
	var sd structureDefinition
	if err := json.Unmarshal(b, &sd); err != nil {
		return bundleEntry{}, false, err
	}
	if sd.ResourceType != "StructureDefinition" || sd.Kind != "resource" ||
		sd.Derivation == "constraint" || sd.ConstrainedType != "" {
		return bundleEntry{}, false, nil
	}
	if sd.Snapshot == nil || len(sd.Snapshot.Element) == 0 {
		return bundleEntry{}, false, fmt.Errorf("resource definition %s has no snapshot", sd.ID)
	}
	for i := range sd.Snapshot.Element {
		e := &sd.Snapshot.Element[i]
		for j := range e.Type {
			t := &e.Type[j]
			var keep []typeExtension
			for _, x := range t.Extension {
				if x.URL == fhirTypeExt {
					keep = append(keep, x)
				}
			}
			t.Extension = keep
		}
		// Keep only true flags: false is the default.
		if string(e.IsModifier) == "false" {
			e.IsModifier = nil
		}
		if string(e.IsSummary) == "false" {
			e.IsSummary = nil
		}
	}
	out, err := marshal(sd)
	return bundleEntry{id: sd.ID, json: out}, true, err
}
