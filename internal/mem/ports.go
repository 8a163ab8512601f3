package mem

import "github.com/tranchehq/tranche/internal/bulk"

// The ports that the in-memory adapters' unexported types implement. The
// exported stores assert theirs next to their types.
var (
	_ bulk.ObjectWriter = (*objectWriter)(nil)
	_ bulk.Object       = (*objectReader)(nil)
)
