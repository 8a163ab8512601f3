package app

import (
	"context"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// StoreModel settles the FHIR release a process serves from store (issue 17):
// the one it records, which want (a --fhir-version or TRANCHE_FHIR_VERSION,
// "" for none) must equal, else want, else R4. A store that records none
// records it now, so an import of another release's data is refused rather
// than mixed in.
func StoreModel(ctx context.Context, store bulk.FHIRVersionStore, want string) (*fhir.Model, error) {
	v := defs.R4
	if want != "" {
		var err error
		if v, err = defs.ParseVersion(want); err != nil {
			return nil, bulk.Errorf(bulk.EINVALID, "%v", err)
		}
	}
	stored, err := store.FHIRVersion(ctx)
	if err != nil {
		return nil, err
	}
	switch {
	case stored != "" && want != "" && stored != string(v):
		return nil, bulk.VersionConflict(stored, string(v))
	case stored != "":
		v = defs.Version(stored)
	default:
		if err := store.SetFHIRVersion(ctx, string(v)); err != nil {
			return nil, err
		}
	}
	m := fhir.ModelFor(v)
	if m == nil {
		return nil, bulk.Errorf(bulk.EINTERNAL, "The store records an unknown FHIR release %q.", stored)
	}
	return m, nil
}
