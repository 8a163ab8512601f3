package s3

import "github.com/tranchehq/tranche/internal/bulk"

// The ports that the S3 adapter's unexported types implement. Store and
// Object assert theirs next to their types.
var _ bulk.ObjectWriter = (*writer)(nil)
