package mem_test

import (
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/mem"
)

func TestObjectStore(t *testing.T) {
	bulktest.RunObjectStoreTests(t, func(t *testing.T) bulk.ObjectStore {
		return mem.NewObjectStore()
	})
}
