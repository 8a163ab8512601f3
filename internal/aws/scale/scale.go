// Package scale models a Tranche stack on AWS at payer scale (issue 12
// item 6): wall time and dollars of imports and exports of tens of
// millions of resources, from per-resource figures measured on the
// serverless bench (docs/aws-cost.md: TestServerlessCost) and the limits
// AWS documents. docs/aws-scale.md is generated from it (TestScaleDoc), so
// the document and the model cannot disagree.
//
// It is a bound model, not a simulation: each run is as slow as its
// tightest bound (the table's throughput, the hottest partition, the
// Lambda concurrency, the longest work item) plus fixed overheads, which is
// how these workloads behave when the work is spread evenly, as the
// sharded layout spreads it. What it does not model: throttling retries
// (they lengthen a run that exceeds a bound, which the model avoids by
// taking the bound), cold starts (a few hundred ms per invocation), and
// hot keys of unevenly distributed data (one patient with a million
// Observations).
package scale

import (
	"fmt"
	"math"
	"time"
)

// Figures are what the bench measures per resource (docs/aws-cost.md).
type Figures struct {
	// Read units per resource exported, strongly consistent, by level
	// (DynamoDB's own accounting, which dynalite reproduces).
	SystemReadUnits, PatientReadUnits, GroupReadUnits float64
	// GroupMemberReadUnits are the read units per member of a Group or
	// patient export that do not depend on its resources: membership and
	// compartment index pages. GroupRequestsPerMember are the sequential
	// DynamoDB requests an item makes per member (its compartment's
	// Query, then the batch read of the resources it lists).
	GroupMemberReadUnits   float64
	GroupRequestsPerMember float64
	// Import units per resource stored (writes of the resource and its
	// index items; reads of the version it replaces).
	ImportWriteUnits, ImportReadUnits float64
	// ImportHotWrites are the writes per resource to the partition its
	// type's hottest key lives in: the type id index (one item per
	// resource) and the counters, before sharding both.
	ImportHotWrites float64
	// BytesPerResource is the NDJSON size of an average resource.
	BytesPerResource float64
	// ItemRate is the resources per second one ExportItem invocation
	// writes on the bench (an upper bound: the bench has no network
	// latency, which PageLatency adds back).
	ItemRate float64
	// ImportRate is the resources per second one ImportFunction
	// invocation stores on the bench.
	ImportRate float64
	// LargestTypeShare is the share of the resources in the largest type
	// (Observation: 42 % of synthea), which sizes the longest work item.
	LargestTypeShare float64
	// ResourcesPerPatient is the size of an average compartment.
	ResourcesPerPatient float64
}

// Stack is the deployed configuration (template.yaml parameters).
type Stack struct {
	Shards int // ShardCount
	// HotKeyShards is how many partitions a type's id index and counters
	// are spread over: 1 with one key per type, Shards once they are
	// sharded like the scan index.
	HotKeyShards   int
	MaxConcurrency int // MaxConcurrency: work items at once per export
	// ImportConcurrency is how many import invocations run at once.
	ImportConcurrency int
	// PatientBatch is the members per work item of a Group export.
	PatientBatch int
	// TableRead and TableWrite are the table's throughput in units per
	// second: the lower of its on-demand maximum (the account's per-table
	// quota, 40,000 each by default) and its warm throughput (12,000 read
	// and 4,000 write units per second for a new on-demand table, raised
	// by traffic or by the WarmThroughput parameter).
	TableRead, TableWrite float64
	// ExportMemoryGB and ImportMemoryGB are the functions' memory sizes.
	ExportMemoryGB, ImportMemoryGB float64
}

// Limits are AWS's, as documented.
type Limits struct {
	// PartitionRead and PartitionWrite are one partition's units per
	// second: 3,000 and 1,000
	// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput-scenarios.html).
	PartitionRead, PartitionWrite float64
	// PageBytes is a Query page (1 MB) and PageLatency the round trip each
	// page adds on AWS (20–40 ms; the bench has none).
	PageBytes   float64
	PageLatency time.Duration
	// RequestLatency is the round trip of a small request (single-digit
	// milliseconds).
	RequestLatency time.Duration
	// Overhead is the fixed part of an export: kick-off, Plan, Finalize,
	// Step Functions scheduling and the client's first poll.
	Overhead time.Duration
	// Settle is how old a kick-off must be before its scans read
	// eventually consistent pages (zero: never).
	Settle time.Duration
}

// Prices are us-east-1 list prices in dollars.
type Prices struct {
	ReadUnit, WriteUnit float64 // per request unit (on-demand)
	LambdaGBSecond      float64 // arm64
	LambdaRequest       float64
	Transition          float64 // Step Functions standard, per state transition
	S3Put               float64 // per PUT-class request
	S3GBDay             float64 // storage for one day
	SQSRequest          float64
}

// Model is a stack with its measured figures.
type Model struct {
	Figures Figures
	Stack   Stack
	Limits  Limits
	Prices  Prices
}

// Kind is what a scenario runs.
type Kind int

// Scenario kinds.
const (
	Import Kind = iota
	SystemExport
	PatientExport
	GroupExport
)

// Scenario is one workload: a store of Resources resources and Patients
// patients, and for a Group export its Members.
type Scenario struct {
	Name      string
	Kind      Kind
	Resources float64
	Patients  float64
	Members   float64
}

// Result is what a scenario takes.
type Result struct {
	Resources float64 // resources read or written
	Wall      time.Duration
	// Bound names the tightest bound, and Bounds lists each one's time.
	Bound  string
	Bounds map[string]time.Duration
	// EventualShare is the share of the reads that were eventually
	// consistent.
	EventualShare float64
	Dollars       float64
	// Lines is the bill by service.
	Lines map[string]float64
}

// Run models s.
func (m Model) Run(s Scenario) Result {
	if s.Kind == Import {
		return m.importRun(s)
	}
	return m.exportRun(s)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// scanRate is one invocation's rate exporting one shard of one type on
// AWS: the bench's rate with a page's latency added per 1 MB read, capped
// by the partition it reads (one shard of one type is one partition).
func (m Model) scanRate(unitsPerResource float64) float64 {
	perPage := m.Limits.PageBytes / m.Figures.BytesPerResource
	rate := 1 / (1/m.Figures.ItemRate + m.Limits.PageLatency.Seconds()/perPage)
	return math.Min(rate, m.Limits.PartitionRead/unitsPerResource)
}

// memberRate is one invocation's rate exporting members' compartments:
// the bench's rate with each member's sequential requests' latency added.
// Members are spread over partitions: no partition bound.
func (m Model) memberRate() float64 {
	perMember := m.Figures.GroupRequestsPerMember * m.Limits.RequestLatency.Seconds() / m.Figures.ResourcesPerPatient
	return 1 / (1/m.Figures.ItemRate + perMember)
}

func (m Model) exportRun(s Scenario) Result {
	f, st := m.Figures, m.Stack
	var resources, per, items, longest, rate float64
	scan := s.Kind == SystemExport || s.Kind == PatientExport
	switch s.Kind {
	case SystemExport, PatientExport:
		resources = s.Resources
		per = f.SystemReadUnits
		if s.Kind == PatientExport {
			per = f.PatientReadUnits
		}
		// Plan cuts each type into at most Shards items; the largest
		// type's item is the longest.
		rate = m.scanRate(per)
		longest = resources * f.LargestTypeShare / float64(st.Shards) / rate
		items = float64(st.Shards) * 4 // about 20 types, the small ones in one item each
	case GroupExport:
		resources = s.Members * f.ResourcesPerPatient
		per = f.GroupReadUnits + f.GroupMemberReadUnits/f.ResourcesPerPatient
		// An item is PatientBatch members.
		items = math.Ceil(s.Members / float64(st.PatientBatch))
		rate = m.memberRate()
		longest = math.Min(s.Members, float64(st.PatientBatch)) * f.ResourcesPerPatient / rate
	}
	concurrency := math.Min(float64(st.MaxConcurrency), items)
	var r Result
	var units float64
	// Scans read eventually consistent pages, at half the units, once the
	// kick-off is Settle old (internal/aws/dynamodb/settle.go): the share
	// of the run after Settle, which depends on the run's length, found by
	// iterating from a fully consistent run.
	eventual, used := 0.0, 0.0
	for range 8 {
		used = eventual
		units = resources * per * (1 - used/2)
		r = m.result(resources, map[string]time.Duration{
			"table read throughput": seconds(units / st.TableRead),
			"Lambda concurrency":    seconds(resources / (rate * concurrency)),
			"longest work item":     seconds(longest),
		}, m.Limits.Overhead)
		if !scan || m.Limits.Settle <= 0 {
			break
		}
		eventual = math.Max(0, 1-m.Limits.Settle.Seconds()/r.Wall.Seconds())
	}
	r.EventualShare = used
	invocationSeconds := resources / rate
	objects := math.Ceil(resources * f.BytesPerResource / (5 << 20)) // 5 MiB multipart parts
	r.Lines = map[string]float64{
		"DynamoDB reads":   units * m.Prices.ReadUnit,
		"Lambda":           invocationSeconds*st.ExportMemoryGB*m.Prices.LambdaGBSecond + (items*2+6)*m.Prices.LambdaRequest,
		"Step Functions":   (items*3 + 6) * m.Prices.Transition,
		"S3 requests":      (objects + items*2) * m.Prices.S3Put,
		"S3 storage (day)": resources * f.BytesPerResource / 1e9 * m.Prices.S3GBDay,
	}
	r.total()
	return r
}

func (m Model) importRun(s Scenario) Result {
	f, st := m.Figures, m.Stack
	writes, reads := s.Resources*f.ImportWriteUnits, s.Resources*f.ImportReadUnits
	// The hottest partition: the largest type's id index and counters,
	// spread over Shards partitions.
	hot := s.Resources * f.LargestTypeShare * f.ImportHotWrites / float64(max(st.HotKeyShards, 1))
	bounds := map[string]time.Duration{
		"table write throughput": seconds(writes / st.TableWrite),
		"table read throughput":  seconds(reads / st.TableRead),
		"hottest partition":      seconds(hot / m.Limits.PartitionWrite),
		"Lambda concurrency":     seconds(s.Resources / (f.ImportRate * float64(st.ImportConcurrency))),
	}
	r := m.result(s.Resources, bounds, 0)
	invocationSeconds := s.Resources / f.ImportRate
	// A drop of files of about 100,000 resources: one SQS message and
	// one invocation (plus a continuation per 12 minutes) each.
	files := math.Ceil(s.Resources / 1e5)
	r.Lines = map[string]float64{
		"DynamoDB writes": writes * m.Prices.WriteUnit,
		"DynamoDB reads":  reads * m.Prices.ReadUnit,
		"Lambda":          invocationSeconds*st.ImportMemoryGB*m.Prices.LambdaGBSecond + files*m.Prices.LambdaRequest,
		"SQS":             files * 3 * m.Prices.SQSRequest,
	}
	r.total()
	return r
}

func (m Model) result(resources float64, bounds map[string]time.Duration, overhead time.Duration) Result {
	r := Result{Resources: resources, Bounds: bounds}
	for name, d := range bounds {
		if d > r.Wall || d == r.Wall && name < r.Bound {
			r.Wall, r.Bound = d, name
		}
	}
	r.Wall += overhead
	return r
}

func (r *Result) total() {
	r.Dollars = 0
	for _, v := range r.Lines {
		r.Dollars += v
	}
}

// String is a one-line summary.
func (r Result) String() string {
	return fmt.Sprintf("%v, $%.4f (bound: %s)", r.Wall.Round(time.Second), r.Dollars, r.Bound)
}
