// Command download is the Lambda behind GET [base]/files/{key} (output file
// downloads). It serves the same internal/api handlers as the local server,
// through API Gateway's HTTP API (payload 2.0); template.yaml routes only its
// paths to it, so its IAM policy can be its own.
package main

import "github.com/tranchehq/tranche/internal/app"

func main() { app.StartHTTPLambda("download") }
