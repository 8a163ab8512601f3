// Package app is the composition root: it wires the adapters, the export
// engine, the workflows and the HTTP handlers into a deployment. NewLocal
// builds the single binary over embedded storage (bbolt, files on disk,
// the in-process ASL runners, its own token signer); NewAWS builds a
// Lambda function's part of the serverless stack over DynamoDB, S3, Step
// Functions and Secrets Manager. The two differ only here (style.md rule
// 4): both serve the same api handlers and run the same workflow and
// cohort steps.
//
// Its users are the mains: cmd/tranche (serve with NewLocal; import,
// generate and the admin commands with OpenStore and OpenAdmin) and each
// functions/* (StartLambda, StartHTTPLambda); and the tests that need the
// real wiring: test/ end to end, the api, admin and emulator benches.
//
// It deliberately decides nothing a request depends on: no export,
// authorization or FHIR rule (export, auth, fhir), no error-to-HTTP
// mapping (api), no configuration parsing or defaults (config; NewLocal
// and NewAWS only validate what they are given), and no retrying or
// translation of SDK errors (sdkretry and the aws adapters). What it owns
// is lifetime: what starts in NewLocal (recovery of unfinished jobs, the
// purge and watchdog loop, the cohort refresh loop) and stops at Close.
package app
