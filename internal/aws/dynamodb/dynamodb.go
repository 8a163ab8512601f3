// Package dynamodb holds the DynamoDB adapters of the bulk ports: JobStore,
// ClientStore, ReplayCache and ResourceStore. Each store is one table (see
// Tables and docs/aws.md for the key layout). Every write that must be
// atomic is a single-item conditional write, except JobStore's quota
// counter and checkpoints, which are TransactWriteItems. dynalite has no
// transactions: tests reach it through awstest's front, which runs them
// (awstest.DynamoDB). SDK errors are translated at this boundary:
// ConditionalCheckFailed becomes bulk.ECONFLICT, throttling, server errors
// and transaction conflicts bulk.ETRANSIENT, anything else bulk.EINTERNAL.
//
// The client is built by the caller (app.NewAWS) from the SDK's default
// configuration, so the endpoint comes from AWS_ENDPOINT_URL or
// AWS_ENDPOINT_URL_DYNAMODB and never from this package.
package dynamodb

import (
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/tranchehq/tranche/internal/bulk"
)

// API is the part of the DynamoDB client the stores call;
// *dynamodb.Client implements it.
type API interface {
	GetItem(ctx context.Context, in *ddb.GetItemInput, opts ...func(*ddb.Options)) (*ddb.GetItemOutput, error)
	PutItem(ctx context.Context, in *ddb.PutItemInput, opts ...func(*ddb.Options)) (*ddb.PutItemOutput, error)
	UpdateItem(ctx context.Context, in *ddb.UpdateItemInput, opts ...func(*ddb.Options)) (*ddb.UpdateItemOutput, error)
	DeleteItem(ctx context.Context, in *ddb.DeleteItemInput, opts ...func(*ddb.Options)) (*ddb.DeleteItemOutput, error)
	Query(ctx context.Context, in *ddb.QueryInput, opts ...func(*ddb.Options)) (*ddb.QueryOutput, error)
	Scan(ctx context.Context, in *ddb.ScanInput, opts ...func(*ddb.Options)) (*ddb.ScanOutput, error)
	BatchGetItem(ctx context.Context, in *ddb.BatchGetItemInput, opts ...func(*ddb.Options)) (*ddb.BatchGetItemOutput, error)
	BatchWriteItem(ctx context.Context, in *ddb.BatchWriteItemInput, opts ...func(*ddb.Options)) (*ddb.BatchWriteItemOutput, error)
	TransactWriteItems(ctx context.Context, in *ddb.TransactWriteItemsInput, opts ...func(*ddb.Options)) (*ddb.TransactWriteItemsOutput, error)
}

var _ API = (*ddb.Client)(nil)

// Key attribute names, the same in every table.
const (
	attrPK  = "pk"
	attrSK  = "sk"
	attrTTL = "ttl" // epoch seconds; the tables' TimeToLiveSpecification
)

// ttlGrace is how long after a job's ExpiresAt DynamoDB's TTL may remove its
// items: purging is the service's job (files first), TTL only catches what a
// missed purge leaves. It also covers jobs that run longer than their
// retention before Finalize moves ExpiresAt.
const ttlGrace = 7 * 24 * time.Hour

// translate turns an SDK error into an application error. Conditional check
// failures are ECONFLICT with msg; throttling, server errors and a done
// context are ETRANSIENT (the context error stays in the chain, so
// errors.Is(err, context.Canceled) holds); anything else is EINTERNAL.
func translate(err error, msg string) error {
	if err == nil {
		return nil
	}
	var (
		ccf *types.ConditionalCheckFailedException
		api smithy.APIError
		app *bulk.Error
	)
	switch {
	case errors.As(err, &app): // translated already (JobStore.transact)
		return err
	case errors.As(err, &ccf):
		return bulk.Wrapf(err, bulk.ECONFLICT, "%s", msg)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return bulk.Wrapf(err, bulk.ETRANSIENT, "Request cancelled.")
	case errors.As(err, &api):
		switch api.ErrorCode() {
		case "ProvisionedThroughputExceededException", "RequestLimitExceeded", "ThrottlingException",
			"InternalServerError", "ServiceUnavailable", "LimitExceededException",
			// A single-item write to an item of a transaction in flight.
			"TransactionConflictException":
			return bulk.Wrapf(err, bulk.ETRANSIENT, "The database is busy; try again later.")
		}
	}
	return bulk.Wrapf(err, bulk.EINTERNAL, "Database request failed.")
}

// isTxConflict reports whether err is a single-item write refused because
// a transaction on the item was in flight.
func isTxConflict(err error) bool {
	var tc *types.TransactionConflictException
	return errors.As(err, &tc)
}

// isConditionFailed reports whether err is a failed condition expression.
func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}

func sv(v string) types.AttributeValue { return &types.AttributeValueMemberS{Value: v} }
func n(v int64) types.AttributeValue {
	return &types.AttributeValueMemberN{Value: strconv.FormatInt(v, 10)}
}
func b(v []byte) types.AttributeValue { return &types.AttributeValueMemberB{Value: v} }

func key(pk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: sv(pk)}
}

func key2(pk, sk string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{attrPK: sv(pk), attrSK: sv(sk)}
}

// getS returns item[name] as a string ("" if absent or not a string).
func getS(item map[string]types.AttributeValue, name string) string {
	if v, ok := item[name].(*types.AttributeValueMemberS); ok {
		return v.Value
	}
	return ""
}

// getN returns item[name] as an int64 (0 if absent or not a number).
func getN(item map[string]types.AttributeValue, name string) int64 {
	if v, ok := item[name].(*types.AttributeValueMemberN); ok {
		i, _ := strconv.ParseInt(v.Value, 10, 64)
		return i
	}
	return 0
}

// getB returns item[name] as bytes (nil if absent or not binary).
func getB(item map[string]types.AttributeValue, name string) []byte {
	if v, ok := item[name].(*types.AttributeValueMemberB); ok {
		return v.Value
	}
	return nil
}

// getSS returns item[name] as a string list, from a string set or a list of
// strings.
func getSS(item map[string]types.AttributeValue, name string) []string {
	switch v := item[name].(type) {
	case *types.AttributeValueMemberSS:
		return v.Value
	case *types.AttributeValueMemberL:
		out := make([]string, 0, len(v.Value))
		for _, e := range v.Value {
			if es, ok := e.(*types.AttributeValueMemberS); ok {
				out = append(out, es.Value)
			}
		}
		return out
	}
	return nil
}

// strList encodes a list of strings as an L attribute (sets cannot be
// empty and do not keep order).
func strList(vs []string) types.AttributeValue {
	l := make([]types.AttributeValue, len(vs))
	for i, v := range vs {
		l[i] = sv(v)
	}
	return &types.AttributeValueMemberL{Value: l}
}

// ttlOf is the TTL attribute value for an expiry time.
func ttlOf(expires time.Time) types.AttributeValue {
	if expires.IsZero() {
		expires = time.Now()
	}
	return n(expires.Add(ttlGrace).Unix())
}

// queryAll runs in page by page and calls fn with each item until fn returns
// an error or the pages end. fn may return errStopPages to end early without
// an error.
func queryAll(ctx context.Context, api API, in *ddb.QueryInput, fn func(map[string]types.AttributeValue) error) error {
	return allPages(ctx, "query failed", in.ExclusiveStartKey, func(start map[string]types.AttributeValue) ([]map[string]types.AttributeValue, map[string]types.AttributeValue, error) {
		in.ExclusiveStartKey = start
		out, err := api.Query(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		return out.Items, out.LastEvaluatedKey, nil
	}, fn)
}

// scanAll is queryAll for a whole-table Scan.
func scanAll(ctx context.Context, api API, in *ddb.ScanInput, fn func(map[string]types.AttributeValue) error) error {
	return allPages(ctx, "scan failed", in.ExclusiveStartKey, func(start map[string]types.AttributeValue) ([]map[string]types.AttributeValue, map[string]types.AttributeValue, error) {
		in.ExclusiveStartKey = start
		out, err := api.Scan(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		return out.Items, out.LastEvaluatedKey, nil
	}, fn)
}

// allPages fetches pages from start (the caller's ExclusiveStartKey, nil for
// the beginning) and calls fn with each item until fn returns an error or
// the pages end.
func allPages(ctx context.Context, what string, start map[string]types.AttributeValue, page func(start map[string]types.AttributeValue) (items []map[string]types.AttributeValue, next map[string]types.AttributeValue, err error), fn func(map[string]types.AttributeValue) error) error {
	for first := true; first || len(start) > 0; first = false {
		if err := ctx.Err(); err != nil {
			return bulk.Wrapf(err, bulk.ETRANSIENT, "Request cancelled.")
		}
		items, next, err := page(start)
		if err != nil {
			return translate(err, what)
		}
		for _, item := range items {
			if err := fn(item); err != nil {
				return err
			}
		}
		start = next
	}
	return nil
}

// scanSorted reads a whole small table (clients, jobs), decodes every item,
// and visits them in key order once the scan is over, so fn may call the
// store.
func scanSorted[T any](ctx context.Context, api API, table string, decode func(map[string]types.AttributeValue) (T, error), key func(T) string, fn func(T) error) error {
	var all []T
	err := scanAll(ctx, api, &ddb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)}, func(item map[string]types.AttributeValue) error {
		v, err := decode(item)
		if err != nil {
			return err
		}
		all = append(all, v)
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(all, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	return visitEach(ctx, all, fn)
}

// visitEach calls fn on each of xs in turn, what a List method read first:
// it stops at the first error fn returns, and returns ETRANSIENT once ctx
// is done.
func visitEach[T any](ctx context.Context, xs []T, fn func(T) error) error {
	for _, x := range xs {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		if err := fn(x); err != nil {
			return err
		}
	}
	return nil
}

// maxBatchWrite and maxBatchGet are DynamoDB's per-request limits.
const (
	maxBatchWrite = 25
	maxBatchGet   = 100
)

// batchWrite writes reqs to table in requests of 25, resending unprocessed
// items, and whole requests refused for throttling, after a throttled
// backoff (throttle). A batch must not name one key twice.
func batchWrite(ctx context.Context, api API, table string, reqs []types.WriteRequest) error {
	for start := 0; start < len(reqs); start += maxBatchWrite {
		pending := map[string][]types.WriteRequest{table: reqs[start:min(start+maxBatchWrite, len(reqs))]}
		var th throttle
		for len(pending[table]) > 0 {
			out, err := api.BatchWriteItem(ctx, &ddb.BatchWriteItemInput{RequestItems: pending})
			switch {
			case isThrottled(err):
			case err != nil:
				return translate(err, "batch write failed")
			default:
				pending = out.UnprocessedItems
				if len(pending[table]) == 0 {
					continue
				}
			}
			if err := th.wait(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// batchGet reads keys from table (strongly consistent), in requests of 100,
// resending unprocessed keys (and throttled requests) after a throttled
// backoff, and calls fn with each item found, in no particular order.
func batchGet(ctx context.Context, api API, table string, keys []map[string]types.AttributeValue, fn func(map[string]types.AttributeValue) error) error {
	for start := 0; start < len(keys); start += maxBatchGet {
		pending := map[string]types.KeysAndAttributes{table: {Keys: keys[start:min(start+maxBatchGet, len(keys))], ConsistentRead: aws.Bool(true)}}
		var th throttle
		for len(pending[table].Keys) > 0 {
			out, err := api.BatchGetItem(ctx, &ddb.BatchGetItemInput{RequestItems: pending})
			switch {
			case isThrottled(err):
			case err != nil:
				return translate(err, "batch get failed")
			default:
				for _, item := range out.Responses[table] {
					if err := fn(item); err != nil {
						return err
					}
				}
				pending = out.UnprocessedKeys
				if len(pending[table].Keys) == 0 {
					continue
				}
			}
			if err := th.wait(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// throttle paces the retries of one batch request that DynamoDB throttles
// (unprocessed items, or the whole request refused when none could be
// processed). AWS asks for exponential backoff there
// (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_BatchWriteItem.html),
// and the SDK's own retries (three attempts, and a retry quota that runs
// dry under sustained throttling) are for blips, not for a table that a
// large import keeps at its throughput. So the waits grow from
// throttleBase to throttleCap with full jitter (writers that were
// throttled together spread out), for as long as the caller's context
// allows: a Lambda's runs until its deadline, then the batch fails
// ETRANSIENT and the import is retried (imports are idempotent). Without a
// deadline it gives up after maxThrottled.
type throttle struct {
	attempt int
	since   time.Time
}

var (
	throttleBase = 25 * time.Millisecond
	throttleCap  = 5 * time.Second
)

// maxThrottled bounds the retries of one batch when the context has no
// deadline: as long as a Lambda may run.
const maxThrottled = 15 * time.Minute

// wait sleeps before the next attempt, or returns ETRANSIENT when that
// would pass the deadline.
func (th *throttle) wait(ctx context.Context) error {
	now := time.Now()
	if th.attempt == 0 {
		th.since = now
	}
	th.attempt++
	d := time.Duration(rand.Int64N(int64(min(throttleBase<<min(th.attempt-1, 20), throttleCap)) + 1))
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = th.since.Add(maxThrottled)
	}
	if now.Add(d).After(deadline) {
		return bulk.Errorf(bulk.ETRANSIENT, "The database is busy; try again later.")
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return bulk.Wrapf(ctx.Err(), bulk.ETRANSIENT, "Request cancelled.")
	case <-t.C:
		return nil
	}
}

// isThrottled reports whether err is DynamoDB refusing a request for
// throughput (after the SDK's own retries).
func isThrottled(err error) bool {
	var api smithy.APIError
	if !errors.As(err, &api) {
		return false
	}
	switch api.ErrorCode() {
	case "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded":
		return true
	}
	return false
}

// backoff waits before retry attempt (1-based): 25 ms doubling to 1.6 s.
func backoff(ctx context.Context, attempt int) error {
	d := 25 * time.Millisecond << min(attempt-1, 6)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return bulk.Wrapf(ctx.Err(), bulk.ETRANSIENT, "Request cancelled.")
	case <-t.C:
		return nil
	}
}
