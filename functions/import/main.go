// Command import loads the NDJSON and Bundle files dropped under the bucket's
// incoming/ prefix (S3 ObjectCreated events) with the same importer as
// `tranche import`, writing a report and the bad lines under import-reports/.
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
		fmt.Fprintln(os.Stderr, "tranche import:", err)
		os.Exit(1)
	}
	im, err := a.Importer()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tranche import:", err)
		os.Exit(1)
	}
	lambda.Start(im.Handle)
}
