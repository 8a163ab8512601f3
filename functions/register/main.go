// Command register is the Lambda behind POST [base]/register (RFC 7591 client
// registration). It serves the same internal/api handlers as the local server,
// through API Gateway's HTTP API (payload 2.0); template.yaml routes only its
// paths to it, so its IAM policy can be its own.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/handler"
)

func main() {
	ctx := context.Background()
	a, err := app.NewAWSFromEnv(ctx)
	if err != nil {
		fail(err)
	}
	h, err := a.Handler(ctx)
	if err != nil {
		fail(err)
	}
	lambda.Start(handler.HTTP(h))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tranche register:", err)
	os.Exit(1)
}
