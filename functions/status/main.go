// Command status is the Lambda behind GET and DELETE [base]/jobs/{id} (status
// and cancel). It serves the same internal/api handlers as the local server,
// through API Gateway's HTTP API (payload 2.0); template.yaml routes only its
// paths to it, so its IAM policy can be its own.
package main

import "github.com/tranchehq/tranche/internal/app"

func main() { app.StartHTTPLambda("status") }
