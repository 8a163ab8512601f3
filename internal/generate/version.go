package generate

import (
	"fmt"
	"strings"

	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// ver is a FHIR release as the generator's tables index it. R4, the zero
// value, is the original output; the other releases make the same random
// draws in the same order and change only the shapes (see the package doc).
type ver uint8

const (
	vR4 ver = iota
	vDSTU2
	vSTU3
	vR5
	numVers
)

// verOf maps a release to its table index; "" is R4.
func verOf(v defs.Version) (ver, error) {
	switch v {
	case "", defs.R4:
		return vR4, nil
	case defs.DSTU2:
		return vDSTU2, nil
	case defs.STU3:
		return vSTU3, nil
	case defs.R5:
		return vR5, nil
	}
	return 0, fmt.Errorf("generate: unknown FHIRVersion %q: want one of %s", v, versionList())
}

func versionList() string {
	var s []string
	for _, v := range defs.Versions() {
		s = append(s, string(v))
	}
	return strings.Join(s, ", ")
}

// namesByVer names each type index's resource type per release; "" means
// the release has no such resource (or none the generator can write
// validly), so it is not written: DSTU2's ExplanationOfBenefit has no
// patient and no adjudication, and MedicationRequest is DSTU2's
// MedicationOrder.
var namesByVer = func() (n [numVers][numTypes]string) {
	for v := range n {
		n[v] = typeNames
	}
	n[vDSTU2][tMedicationRequest] = "MedicationOrder"
	n[vDSTU2][tExplanationOfBenefit] = ""
	return n
}()

// TypesFor returns the resource types a run for FHIR release v writes (the
// zero Version means R4), in the order their files are opened, or nil if v
// is not a supported release. Types() is TypesFor(defs.R4).
func TypesFor(v defs.Version) []string {
	x, err := verOf(v)
	if err != nil {
		return nil
	}
	var out []string
	for _, name := range namesByVer[x] {
		if name != "" {
			out = append(out, name)
		}
	}
	return out
}

// allTypeNames is every file name stem some release writes, so that a run
// into a directory can remove the files of another release's run.
func allTypeNames() []string {
	var out []string
	seen := map[string]bool{}
	for v := range namesByVer {
		for _, name := range namesByVer[v] {
			if name != "" && !seen[name] {
				seen[name] = true
				out = append(out, name)
			}
		}
	}
	return out
}
