package dynamodb

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.RateCounter = (*RateCounter)(nil)

// RateCounter is the DynamoDB bulk.RateCounter, in the Replay table: one
// item per key ("rate#" + key) with the window's start ("start", unix
// nanoseconds) and its count ("n"), so every Lambda instance counts the
// same window. An event is one conditional write:
//
//  1. ADD n 1 if the window is open and n < limit;
//  2. else open a new window (start now, n 1) if the old one has closed;
//  3. else read the window: at its limit, say how long to wait; otherwise
//     another caller changed it between the writes, so go back to 1.
//
// TTL removes items a while after their window closes.
type RateCounter struct {
	api   API
	table string
	now   func() time.Time
}

// NewRateCounter returns a counter over the Replay table that reads the
// time from now (time.Now if nil).
func NewRateCounter(api API, table string, now func() time.Time) *RateCounter {
	if now == nil {
		now = time.Now
	}
	return &RateCounter{api: api, table: table, now: now}
}

// Take counts one event for key; see bulk.RateCounter.
func (c *RateCounter) Take(ctx context.Context, key string, limit int, window time.Duration) (_ time.Duration, err error) {
	defer bulk.Wrap(&err, "dynamodb.RateCounter.Take")
	if key == "" || limit < 1 || window <= 0 {
		return 0, bulk.Errorf(bulk.EINVALID, "A rate needs a key, a limit and a window.")
	}
	now := c.now()
	k := map[string]types.AttributeValue{attrPK: sv("rate#" + key)}
	cutoff := n(now.Add(-window).UnixNano())
	ttl := now.Add(window + time.Hour).Unix()
	// Concurrent callers race: one opens the window (2), the others' (2)
	// fails and they count in it (1) on the next round.
	for range 3 {
		_, err = c.api.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName: aws.String(c.table), Key: k,
			UpdateExpression:          aws.String("ADD n :one"),
			ConditionExpression:       aws.String("#start > :cutoff AND n < :limit"),
			ExpressionAttributeNames:  map[string]string{"#start": "start"},
			ExpressionAttributeValues: map[string]types.AttributeValue{":one": n(1), ":cutoff": cutoff, ":limit": n(int64(limit))},
		})
		if !isConditionFailed(err) {
			return 0, translate(err, "counting failed")
		}
		_, err = c.api.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName: aws.String(c.table), Key: k,
			UpdateExpression:          aws.String("SET #start = :now, n = :one, #ttl = :ttl"),
			ConditionExpression:       aws.String("attribute_not_exists(pk) OR #start <= :cutoff"),
			ExpressionAttributeNames:  map[string]string{"#start": "start", "#ttl": attrTTL},
			ExpressionAttributeValues: map[string]types.AttributeValue{":now": n(now.UnixNano()), ":one": n(1), ":cutoff": cutoff, ":ttl": n(ttl)},
		})
		if !isConditionFailed(err) {
			return 0, translate(err, "counting failed")
		}
		out, err := c.api.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(c.table), Key: k, ConsistentRead: aws.Bool(true)})
		if err != nil {
			return 0, translate(err, "counting failed")
		}
		start := time.Unix(0, getN(out.Item, "start"))
		if start.After(now.Add(-window)) && getN(out.Item, "n") >= int64(limit) {
			return max(start.Add(window).Sub(now), time.Second), nil // the limit is reached
		}
		// The window opened or closed between the writes: count again.
	}
	return time.Second, nil // still racing: refuse for now, the client retries
}
