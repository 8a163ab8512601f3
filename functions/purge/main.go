// Command purge runs on a schedule and deletes finished jobs past their expiry
// with their files (DynamoDB TTL and the bucket's lifecycle rule are the
// backstop).
package main

import (
	"context"

	"github.com/tranchehq/tranche/internal/app"
)

func main() {
	app.StartLambda("purge", func(_ context.Context, a *app.AWS) (any, error) {
		return func(ctx context.Context) (map[string]int, error) {
			n, err := a.Service.Purge(ctx)
			return map[string]int{"purged": n}, err
		}, nil
	})
}
