package bolt_test

import (
	"path/filepath"
	"testing"

	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// BenchmarkKickoffPatients kicks off exports naming fhir.MaxPatients
// `patient` values against the embedded store (issue 12 item 4); see
// bulktest.BenchKickoff.
func BenchmarkKickoffPatients(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), bolt.FileName), bolt.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	bulktest.BenchKickoff(b, bulktest.KickoffStore{Jobs: db.Jobs(), Resources: db.Resources(), Clock: db.Resources()})
}
