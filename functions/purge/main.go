// Command purge runs on a schedule: the watchdog fails the jobs whose
// execution ended without finishing them, and finished jobs past their
// expiry are deleted with their files (DynamoDB TTL and the bucket's
// lifecycle rule are the backstop).
package main

import (
	"context"

	"github.com/tranchehq/tranche/internal/app"
)

func main() {
	app.StartLambda("purge", func(_ context.Context, a *app.AWS) (any, error) {
		return a.Purge, nil
	})
}
