// Command finalize is the Finalize task of statemachines/export.asl.json: the
// same Go step (workflow.Steps.Finalize) the local runner calls.
package main

import (
	"context"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/handler"
)

func main() {
	app.StartLambda("finalize", func(_ context.Context, a *app.AWS) (any, error) {
		return handler.Task(a.Steps.Finalize), nil
	})
}
