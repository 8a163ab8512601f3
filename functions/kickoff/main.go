// Command kickoff is the Lambda behind the $export kick-off routes
// ([base]/$export, [base]/Patient/$export, [base]/Group/{id}/$export). It
// serves the same internal/api handlers as the local server, through API
// Gateway's HTTP API (payload 2.0); template.yaml routes only its paths to it,
// so its IAM policy can be its own.
package main

import "github.com/tranchehq/tranche/internal/app"

func main() { app.StartHTTPLambda("kickoff") }
