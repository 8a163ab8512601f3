package dynamodb

import (
	"context"
	"slices"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Tables names the tables of one deployment.
type Tables struct {
	Jobs      string // one item per job
	JobItems  string // plan chunks, item checkpoints and done sets, by job
	Clients   string // registered clients
	Replay    string // assertion jtis until they expire
	Resources string // resources and their indexes (see ResourceStore)
}

// TableSpec is the key schema of one kind of table: every table has the
// string partition key "pk", some the string sort key "sk", and the ones with
// TTL keep the expiry in "ttl".
type TableSpec struct {
	Kind    string // "Jobs", "JobItems", ... as in Tables
	SortKey bool
	TTL     bool
	Indexes []IndexSpec
}

// IndexSpec is a global secondary index: keys only, with the string
// partition key HashKey and no sort key. Items without HashKey are not in
// it, which is what makes it small.
type IndexSpec struct {
	Name    string
	HashKey string
}

// Specs lists the tables a deployment needs. template.yaml declares the same
// (a test checks it), and tests create them in dynalite with CreateTable.
func Specs() []TableSpec {
	return []TableSpec{
		{Kind: "Jobs", TTL: true, Indexes: []IndexSpec{{Name: ActiveIndex, HashKey: attrActive}}},
		{Kind: "JobItems", SortKey: true, TTL: true},
		{Kind: "Clients"},
		{Kind: "Replay", TTL: true},
		{Kind: "Resources", SortKey: true},
	}
}

// TableAPI is what CreateTable and DeleteTable call.
type TableAPI interface {
	CreateTable(ctx context.Context, in *ddb.CreateTableInput, opts ...func(*ddb.Options)) (*ddb.CreateTableOutput, error)
	DescribeTable(ctx context.Context, in *ddb.DescribeTableInput, opts ...func(*ddb.Options)) (*ddb.DescribeTableOutput, error)
	DeleteTable(ctx context.Context, in *ddb.DeleteTableInput, opts ...func(*ddb.Options)) (*ddb.DeleteTableOutput, error)
}

// CreateTable creates an on-demand table named name with spec's keys and
// waits until it is active. It is for tests and emulators: deployments get
// their tables from template.yaml.
func CreateTable(ctx context.Context, api TableAPI, name string, spec TableSpec) error {
	in := &ddb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String(attrPK), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String(attrPK), KeyType: types.KeyTypeHash}},
	}
	if spec.SortKey {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(attrSK), AttributeType: types.ScalarAttributeTypeS})
		in.KeySchema = append(in.KeySchema, types.KeySchemaElement{AttributeName: aws.String(attrSK), KeyType: types.KeyTypeRange})
	}
	for _, ix := range spec.Indexes {
		in.AttributeDefinitions = append(in.AttributeDefinitions, types.AttributeDefinition{AttributeName: aws.String(ix.HashKey), AttributeType: types.ScalarAttributeTypeS})
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, types.GlobalSecondaryIndex{
			IndexName:  aws.String(ix.Name),
			KeySchema:  []types.KeySchemaElement{{AttributeName: aws.String(ix.HashKey), KeyType: types.KeyTypeHash}},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		})
	}
	if _, err := api.CreateTable(ctx, in); err != nil {
		return translate(err, "create table failed")
	}
	// Poll: dynalite keeps a table CREATING for --createTableMs.
	for attempt := 1; ; attempt++ {
		out, err := api.DescribeTable(ctx, &ddb.DescribeTableInput{TableName: aws.String(name)})
		if err != nil {
			return translate(err, "describe table failed")
		}
		if out.Table.TableStatus == types.TableStatusActive && !slices.ContainsFunc(out.Table.GlobalSecondaryIndexes, func(ix types.GlobalSecondaryIndexDescription) bool {
			return ix.IndexStatus != types.IndexStatusActive
		}) {
			return nil
		}
		if attempt > 200 {
			return bulk.Errorf(bulk.EINTERNAL, "Table %s did not become active.", name)
		}
		t := time.NewTimer(10 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// DeleteTable deletes a table without waiting.
func DeleteTable(ctx context.Context, api TableAPI, name string) error {
	_, err := api.DeleteTable(ctx, &ddb.DeleteTableInput{TableName: aws.String(name)})
	return translate(err, "delete table failed")
}
