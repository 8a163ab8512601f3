// Command cohort is the Lambda behind the Bulk Cohort routes (POST
// [base]/Group, DELETE [base]/Group/{id} and the cohort status URLs
// [base]/cohorts/{id}): the same internal/api handlers as the local server.
// It checks and stores a cohort's definition and starts its evaluation as
// an execution of statemachines/cohort.asl.json; it never evaluates one
// itself.
package main

import "github.com/tranchehq/tranche/internal/app"

func main() { app.StartHTTPLambda("cohort") }
