// Command cohortrefresh is the scheduled function that starts the
// evaluations of the cohorts due for their periodic refresh (and the runs
// of requests whose start was lost).
package main

import (
	"context"

	"github.com/tranchehq/tranche/internal/app"
)

func main() {
	app.StartLambda("cohortrefresh", func(_ context.Context, a *app.AWS) (any, error) {
		return a.CohortRefresh, nil
	})
}
