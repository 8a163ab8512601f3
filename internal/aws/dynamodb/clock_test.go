package dynamodb_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
)

func TestClock(t *testing.T) {
	client := awstest.DynamoDB(t)
	bulktest.RunClockTests(t, func(t *testing.T) bulk.Clock {
		return dynamodb.NewResourceStore(client, awstest.Table(t, client, "Resources"), 4, dynamodb.ResourceOptions{})
	})
}

// TestClockLapsedImport: an import that died holding a stamp (its Lambda
// timed out mid-batch) holds transactionTime back only until its lease
// lapses; the next import's Begin deletes its item.
func TestClockLapsedImport(t *testing.T) {
	ctx := context.Background()
	client := awstest.DynamoDB(t)
	var wall atomic.Int64
	wall.Store(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	now := func() time.Time { return time.Unix(0, wall.Load()).UTC() }
	table := awstest.Table(t, client, "Resources")
	s := dynamodb.NewResourceStore(client, table, 4,
		dynamodb.ResourceOptions{ImportLease: time.Minute, Now: now})

	dead, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	held, err := dead.Stamp(ctx, now())
	if err != nil {
		t.Fatal(err)
	}
	// No End: the import crashed.
	wall.Add(int64(30 * time.Second))
	if got, err := s.TransactionTime(ctx, now()); err != nil || !got.Before(held) {
		t.Fatalf("TransactionTime within the lease = %v, %v; want before the held stamp %v", got, err, held)
	}
	wall.Add(int64(time.Minute))
	if got, err := s.TransactionTime(ctx, now()); err != nil || !got.Equal(now().Truncate(time.Millisecond)) {
		t.Fatalf("TransactionTime after the lease lapsed = %v, %v; want %v", got, err, now())
	}
	next, err := s.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer next.End(ctx)
	out, err := client.Query(ctx, &ddb.QueryInput{
		TableName: aws.String(table), KeyConditionExpression: aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: "_imports"}},
		ConsistentRead:            aws.Bool(true),
	})
	if err != nil {
		t.Fatal(err)
	}
	if out.Count != 0 {
		t.Errorf("Begin left %d lapsed import items, want none", out.Count)
	}
}
