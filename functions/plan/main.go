// Command plan is the Plan task of statemachines/export.asl.json: the same Go
// step (workflow.Steps.Plan) the local runner calls.
package main

import (
	"context"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/handler"
)

func main() {
	app.StartLambda("plan", func(_ context.Context, a *app.AWS) (any, error) {
		return handler.Task(a.Steps.Plan), nil
	})
}
