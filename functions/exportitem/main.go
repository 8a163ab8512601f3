// Command exportitem is the ExportItem task of statemachines/export.asl.json:
// the same Go step (workflow.Steps.ExportItem) the local runner calls.
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
	a, err := app.NewAWSFromEnv(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, "tranche exportitem:", err)
		os.Exit(1)
	}
	lambda.Start(handler.Task(a.Steps.ExportItem))
}
