// Command purge runs on a schedule and deletes finished jobs past their expiry
// with their files (DynamoDB TTL and the bucket's lifecycle rule are the
// backstop).
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tranchehq/tranche/internal/app"
)

func main() {
	a, err := app.NewAWSFromEnv(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "tranche purge:", err)
		os.Exit(1)
	}
	lambda.Start(func(ctx context.Context) (map[string]int, error) {
		n, err := a.Service.Purge(ctx)
		return map[string]int{"purged": n}, err
	})
}
