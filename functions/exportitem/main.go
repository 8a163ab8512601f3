// Command exportitem is the ExportItem task of statemachines/export.asl.json:
// the same Go step (workflow.Steps.ExportItem) the local runner calls.
package main

import (
	"context"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/handler"
)

func main() {
	app.StartLambda("exportitem", func(_ context.Context, a *app.AWS) (any, error) {
		return handler.Task(a.Steps.ExportItem), nil
	})
}
