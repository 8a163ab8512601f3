package dynamodb

import "github.com/tranchehq/tranche/internal/bulk"

// The ports that the DynamoDB adapters' unexported types implement. The
// exported stores assert theirs next to their types.
var _ bulk.ClockSession = (*clockSession)(nil)
