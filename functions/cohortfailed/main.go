// Command cohortfailed is the MarkFailed task of
// statemachines/cohort.asl.json (its Catch target): it records why a
// cohort's run failed.
package main

import (
	"context"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/handler"
)

func main() {
	app.StartLambda("cohortfailed", func(_ context.Context, a *app.AWS) (any, error) {
		return handler.Task(a.CohortSteps().MarkFailed), nil
	})
}
