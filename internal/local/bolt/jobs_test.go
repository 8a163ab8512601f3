package bolt_test

import (
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

func TestJobStore(t *testing.T) {
	bulktest.RunJobStoreTests(t, func(t *testing.T) bulk.JobStore {
		db, _ := mustOpen(t, bolt.Options{NoSync: true})
		return db.Jobs()
	})
}
