package bolt_test

import (
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

func TestCohortStore(t *testing.T) {
	bulktest.RunCohortStoreTests(t, func(t *testing.T) bulk.CohortStore {
		db, _ := mustOpen(t, bolt.Options{NoSync: true})
		return db.Cohorts()
	})
}
