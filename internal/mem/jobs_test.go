package mem_test

import (
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/mem"
)

func TestJobStore(t *testing.T) {
	bulktest.RunJobStoreTests(t, func(t *testing.T) bulk.JobStore {
		return mem.NewJobStore()
	})
}
