package dynamodb

import (
	"fmt"
	"slices"
	"testing"
)

// TestTombstonePatients: a tombstone keeps its Patients sorted and
// distinct, and none (unknown) past maxTombstonePatients, so its items stay
// small whatever was deleted.
func TestTombstonePatients(t *testing.T) {
	s := NewResourceStore(nil, "Resources", 4, ResourceOptions{SpillBytes: 1})
	if got, want := s.tombstonePatients([]string{"p2", "p1", "p2"}), []string{"p1", "p2"}; !slices.Equal(got, want) {
		t.Errorf("tombstonePatients(p2, p1, p2) = %v, want %v", got, want)
	}
	if got := s.tombstonePatients(nil); got != nil {
		t.Errorf("tombstonePatients(nil) = %v, want nil", got)
	}
	var many []string
	for i := range maxTombstonePatients / 16 {
		many = append(many, fmt.Sprintf("patient-%08d", i))
	}
	if got := s.tombstonePatients(many); got != nil {
		t.Errorf("tombstonePatients(%d patients) = %d patients, want none", len(many), len(got))
	}
	if got := s.tombstonePatients(many[:100]); len(got) != 100 {
		t.Errorf("tombstonePatients(100 patients) = %d patients, want 100", len(got))
	}
}
