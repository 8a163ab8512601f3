package fsobj

import "github.com/tranchehq/tranche/internal/bulk"

// The ports that the filesystem adapter's unexported types implement.
// Store, Object and GzipObject assert theirs next to their types.
var _ bulk.ObjectWriter = (*writer)(nil)
