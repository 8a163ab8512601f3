// Command cohortrun is the Run task of statemachines/cohort.asl.json: the
// same Go step (cohort.Steps.Run) the local runner calls. It evaluates a
// cohort's member-filters against the store and writes its Group, or
// removes a deleted cohort's Group and definition.
package main

import (
	"context"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/handler"
)

func main() {
	app.StartLambda("cohortrun", func(_ context.Context, a *app.AWS) (any, error) {
		return handler.Task(a.CohortSteps().Run), nil
	})
}
