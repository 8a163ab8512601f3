// Package statemachines embeds the workflow definitions so the local runner
// executes the same file SAM deploys (style.md rule 6).
package statemachines

import _ "embed"

// Export is statemachines/export.asl.json, with its ${...} substitutions.
//
//go:embed export.asl.json
var Export []byte
