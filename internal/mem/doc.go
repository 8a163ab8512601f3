// Package mem holds in-memory adapters of the bulk ports: JobStore,
// ResourceStore (with its Clock), ObjectStore, ClientStore, ReplayCache,
// CohortStore and RateCounter. Each is a map under a mutex, written to be
// obviously right rather than fast (a scan sorts the whole type), and each
// passes its internal/bulktest contract suite: mem is the reference the
// suites are written against, and the fake the unit tests of export,
// importer, auth, cohort, workflow and the AWS handlers build on. The rules
// every adapter applies (object keys, shards, Group join times) are
// internal/bulk's, not mem's, so no adapter imports mem.
//
// The local server uses only RateCounter (its poll limit: one process
// serves every poll); its stores are internal/local's. What mem
// deliberately does not do: keep anything past the process (no
// persistence, no Persist mark for the Clock); share anything between
// processes (the Clock, ReplayCache and RateCounter hold in memory what
// the DynamoDB adapters keep in tables); bound its size (ObjectStore has
// no space budget); or model a backend's failures (throttling, partial
// writes, eventual consistency), which the adapters' suites against
// emulators cover.
package mem
