package scale

import "time"

// Measured are the figures of the serverless bench on synthea-100 (38,483
// resources), from the run docs/aws-scale.md names:
//
//	TRANCHE_COST=1 TRANCHE_COST_OUT=cost.json TRANCHE_DYNAMODB_ENDPOINT=http://127.0.0.1:PORT \
//	  go test -count=1 -run TestServerlessCost -v ./internal/app/
var Measured = Figures{
	SystemReadUnits:        0.366,
	PatientReadUnits:       0.367,
	GroupReadUnits:         0.235,
	GroupMemberReadUnits:   1,
	GroupRequestsPerMember: 1,
	ImportWriteUnits:       5.011,
	ImportReadUnits:        1.412,
	ImportHotWrites:        1,
	BytesPerResource:       1331,
	ItemRate:               8430,
	ImportRate:             343,
	LargestTypeShare:       0.42,
	ResourcesPerPatient:    50,
}

// AWSLimits are the documented limits and typical latencies.
var AWSLimits = Limits{
	PartitionRead: 3000, PartitionWrite: 1000,
	PageBytes: 1 << 20, PageLatency: 30 * time.Millisecond, RequestLatency: 8 * time.Millisecond,
	Overhead: 5 * time.Second, Settle: time.Minute,
}

// USEast1 are the list prices the model uses (https://aws.amazon.com/dynamodb/pricing/on-demand/,
// https://aws.amazon.com/lambda/pricing/, https://aws.amazon.com/step-functions/pricing/,
// https://aws.amazon.com/s3/pricing/, https://aws.amazon.com/sqs/pricing/).
var USEast1 = Prices{
	ReadUnit: 0.125e-6, WriteUnit: 0.625e-6,
	LambdaGBSecond: 0.0000133334, LambdaRequest: 0.2e-6,
	Transition: 0.025e-3, S3Put: 0.005e-3, S3GBDay: 0.023 / 30, SQSRequest: 0.4e-6,
}

// Default is the stack as template.yaml deploys it on a new on-demand
// table: its warm throughput (12,000 read and 4,000 write units per
// second) bounds it until traffic or the WarmThroughput parameters raise it
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/warm-throughput.html).
var Default = Stack{
	Shards: 16, HotKeyShards: 16, MaxConcurrency: 40, ImportConcurrency: 4, PatientBatch: 1000,
	TableRead: 12000, TableWrite: 4000,
	ExportMemoryGB: 1, ImportMemoryGB: 2,
}

// Payer is a stack sized for issue 12's payer: the table pre-warmed to
// its default on-demand maximum, 40,000 read and write units per second
// (the per-table quota,
// https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html),
// and 40 imports at once.
var PayerStack = func() Stack {
	s := Default
	s.TableRead, s.TableWrite = 40000, 40000
	s.ImportConcurrency = 40
	return s
}()

// Stacks are the configurations docs/aws-scale.md compares.
func Stacks() []Named {
	return []Named{
		{"Pre-warmed for a payer", "`WarmRead=40000 WarmWrite=40000` (the table's default on-demand maximum), `ImportConcurrency=40`; `ShardCount` 16, `MaxConcurrency` 40.",
			Model{Measured, PayerStack, AWSLimits, USEast1}},
		{"As deployed by default", "A new on-demand table (12,000 read and 4,000 write units per second until traffic raises them), `ImportConcurrency=4`.",
			Model{Measured, Default, AWSLimits, USEast1}},
		{"Pre-warmed, before issue 12", "The pre-warmed stack with the layout and reads before issue 12: one id-index, counter and membership key per type or Group (layout 1, as tables that held data before keep), Group exports reading each resource with `BatchGetItem` (1.144 read units per resource measured, two requests per member), every read strongly consistent.",
			Model{Before, PayerStack1, AWSLimits1, USEast1}},
	}
}

// Before are the figures measured before issue 12 (the same bench).
var Before = func() Figures {
	f := Measured
	f.GroupReadUnits, f.GroupRequestsPerMember = 1.144, 2
	f.ImportWriteUnits = 4.886
	return f
}()

// PayerStack1 is PayerStack on a layout 1 table.
var PayerStack1 = func() Stack {
	s := PayerStack
	s.HotKeyShards = 1
	return s
}()

// AWSLimits1 are the limits with every read strongly consistent.
var AWSLimits1 = func() Limits {
	l := AWSLimits
	l.Settle = 0
	return l
}()
