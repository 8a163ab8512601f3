package mem_test

import (
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/mem"
)

func TestClock(t *testing.T) {
	bulktest.RunClockTests(t, func(t *testing.T) bulk.Clock { return mem.NewResourceStore(4) })
}
