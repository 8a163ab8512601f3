package mem

import (
	"context"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.FHIRVersionStore = (*ResourceStore)(nil)

// FHIRVersion implements bulk.FHIRVersionStore.
func (s *ResourceStore) FHIRVersion(context.Context) (string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.fhirVersion, nil
}

// SetFHIRVersion implements bulk.FHIRVersionStore.
func (s *ResourceStore) SetFHIRVersion(_ context.Context, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.fhirVersion {
	case "":
		s.fhirVersion = v
		return nil
	case v:
		return nil
	default:
		return bulk.VersionConflict(s.fhirVersion, v)
	}
}
