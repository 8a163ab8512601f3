package dynamodb

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

// throttledTable throttles the first refuse batch requests, in turn
// refusing the whole request (as DynamoDB does when it can process none
// of its items) and processing only the first item of it; then it takes
// everything. Every other method is the nil API's (it panics).
type throttledTable struct {
	API
	mu      sync.Mutex
	refuse  int
	calls   int
	written map[string]int // sk: times written
	read    map[string]int
}

func (f *throttledTable) throttle() (refuseAll, refuseSome bool) {
	f.calls++
	if f.refuse == 0 {
		return false, false
	}
	f.refuse--
	return f.refuse%2 == 0, true
}

func (f *throttledTable) BatchWriteItem(_ context.Context, in *ddb.BatchWriteItemInput, _ ...func(*ddb.Options)) (*ddb.BatchWriteItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	reqs := in.RequestItems["T"]
	all, some := f.throttle()
	if all {
		return nil, &types.ProvisionedThroughputExceededException{Message: aws.String("throttled")}
	}
	n := len(reqs)
	if some {
		n = 1
	}
	for _, r := range reqs[:n] {
		f.written[getS(r.PutRequest.Item, attrSK)]++
	}
	out := &ddb.BatchWriteItemOutput{}
	if n < len(reqs) {
		out.UnprocessedItems = map[string][]types.WriteRequest{"T": reqs[n:]}
	}
	return out, nil
}

func (f *throttledTable) BatchGetItem(_ context.Context, in *ddb.BatchGetItemInput, _ ...func(*ddb.Options)) (*ddb.BatchGetItemOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ka := in.RequestItems["T"]
	all, some := f.throttle()
	if all {
		return nil, &types.ProvisionedThroughputExceededException{Message: aws.String("throttled")}
	}
	n := len(ka.Keys)
	if some {
		n = 1
	}
	out := &ddb.BatchGetItemOutput{Responses: map[string][]map[string]types.AttributeValue{}}
	for _, k := range ka.Keys[:n] {
		f.read[getS(k, attrSK)]++
		out.Responses["T"] = append(out.Responses["T"], k)
	}
	if n < len(ka.Keys) {
		out.UnprocessedKeys = map[string]types.KeysAndAttributes{"T": {Keys: ka.Keys[n:], ConsistentRead: ka.ConsistentRead}}
	}
	return out, nil
}

// fastThrottle shortens the backoff for the test.
func fastThrottle(t *testing.T) {
	base, ceiling := throttleBase, throttleCap
	throttleBase, throttleCap = time.Microsecond, 50*time.Microsecond
	t.Cleanup(func() { throttleBase, throttleCap = base, ceiling })
}

// TestBatchThrottled: a batch throttled far more often than the 20
// attempts it used to allow (issue 12) is still written, and read, each
// item once, with jittered backoff, until its context's deadline.
func TestBatchThrottled(t *testing.T) {
	fastThrottle(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	f := &throttledTable{refuse: 200, written: map[string]int{}, read: map[string]int{}}
	var reqs []types.WriteRequest
	var keys []map[string]types.AttributeValue
	for i := range 60 {
		k := key2("p", fmt.Sprintf("k%02d", i))
		reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: k}})
		keys = append(keys, k)
	}
	if err := batchWrite(ctx, f, "T", reqs); err != nil {
		t.Fatalf("batchWrite throttled %d times: %v", 200, err)
	}
	if len(f.written) != 60 {
		t.Errorf("batchWrite wrote %d distinct items, want 60", len(f.written))
	}
	for k, n := range f.written {
		if n != 1 {
			t.Errorf("item %s written %d times, want once", k, n)
		}
	}
	if f.calls <= 21 {
		t.Errorf("the test throttled %d requests; it needs more than 21", f.calls)
	}

	f.refuse, f.calls = 200, 0
	got := 0
	if err := batchGet(ctx, f, "T", keys, func(map[string]types.AttributeValue) error { got++; return nil }); err != nil {
		t.Fatalf("batchGet throttled %d times: %v", 200, err)
	}
	if got != 60 || len(f.read) != 60 {
		t.Errorf("batchGet visited %d items of %d distinct, want 60", got, len(f.read))
	}
}

// TestBatchThrottledDeadline: past its context's deadline a throttled
// batch gives up at once, ETRANSIENT, instead of sleeping past it.
func TestBatchThrottledDeadline(t *testing.T) {
	fastThrottle(t)
	ctx, cancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	f := &throttledTable{refuse: 1000, written: map[string]int{}}
	reqs := []types.WriteRequest{{PutRequest: &types.PutRequest{Item: key2("p", "a")}}, {PutRequest: &types.PutRequest{Item: key2("p", "b")}}}
	err := batchWrite(ctx, f, "T", reqs)
	if bulk.ErrorCode(err) != bulk.ETRANSIENT || f.calls != 1 {
		t.Errorf("batchWrite past its deadline = %v after %d requests, want %s after 1", err, f.calls, bulk.ETRANSIENT)
	}
}
