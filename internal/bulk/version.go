package bulk

import (
	"context"
	"strings"
)

// FHIRVersionStore records the one FHIR release a store holds (issue 17):
// chosen when the store is created, or by its first import. Stores of every
// adapter implement it; the embedded one keeps it in the data file.
type FHIRVersionStore interface {
	// FHIRVersion returns the release recorded ("dstu2", "stu3", "r4",
	// "r5"), or "" when none is yet.
	FHIRVersion(ctx context.Context) (string, error)
	// SetFHIRVersion records v when no release is. Recording the release
	// already recorded does nothing; another is ECONFLICT naming both.
	SetFHIRVersion(ctx context.Context, v string) error
}

// VersionConflict is SetFHIRVersion's ECONFLICT.
func VersionConflict(stored, asked string) error {
	return Errorf(ECONFLICT, "This store holds FHIR %s data; it cannot take %s data (one store holds one FHIR release: use another data directory).", strings.ToUpper(stored), strings.ToUpper(asked))
}
