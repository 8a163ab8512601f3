package mem_test

import (
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/mem"
)

func TestCohortStore(t *testing.T) {
	bulktest.RunCohortStoreTests(t, func(t *testing.T) bulk.CohortStore { return mem.NewCohortStore() })
}
