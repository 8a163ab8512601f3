package dynamodb

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
)

// TestInlineCopy: a small resource in a few compartments gets a copy that
// inflates to its exact bytes; one in many compartments, a large or
// spilled one, or one in none, gets none (inline.go).
func TestInlineCopy(t *testing.T) {
	body := []byte(`{"resourceType":"Observation","id":"o1","status":"final","code":{"text":"a code, a code, a code"}}`)
	obs := func(patients ...string) *bulk.Resource {
		return &bulk.Resource{Type: "Observation", ID: "o1", Body: body, Patients: patients}
	}
	z := inlineCopy(obs("p1", "p2"), false)
	if z == nil {
		t.Fatal("inlineCopy(small, 2 compartments) = nil, want a copy")
	}
	if got, err := inflate(z); err != nil || !bytes.Equal(got, body) {
		t.Errorf("inflate(inlineCopy) = %q, %v; want the body", got, err)
	}
	var many []string
	for i := range maxInlineCompartments + 1 {
		many = append(many, fmt.Sprintf("p%d", i))
	}
	noise := make([]byte, maxInlineBytes+1)
	rand.Read(noise) // incompressible
	for _, tc := range []struct {
		name    string
		r       *bulk.Resource
		spilled bool
	}{
		{"no compartment", obs(), false},
		{"many compartments", obs(many...), false},
		{"spilled", obs("p1"), true},
		{"large", &bulk.Resource{Type: "Binary", ID: "b", Body: noise, Patients: []string{"p1"}}, false},
	} {
		if z := inlineCopy(tc.r, tc.spilled); z != nil {
			t.Errorf("inlineCopy(%s) = %d bytes, want none", tc.name, len(z))
		}
	}
}
