package statemachines

import _ "embed"

// Cohort is statemachines/cohort.asl.json (Bulk Cohort evaluations and
// deletions), with its ${...} substitutions.
//
//go:embed cohort.asl.json
var Cohort []byte
