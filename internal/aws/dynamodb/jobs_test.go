package dynamodb_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
)

func TestJobStore(t *testing.T) {
	client := awstest.DynamoDB(t)
	bulktest.RunJobStoreTests(t, func(t *testing.T) bulk.JobStore {
		return dynamodb.NewJobStore(client, awstest.Table(t, client, "Jobs"), awstest.Table(t, client, "JobItems"))
	})
}

func TestClientStore(t *testing.T) {
	client := awstest.DynamoDB(t)
	bulktest.RunClientStoreTests(t, func(t *testing.T) bulk.ClientStore {
		return dynamodb.NewClientStore(client, awstest.Table(t, client, "Clients"))
	})
}

func TestReplayCache(t *testing.T) {
	client := awstest.DynamoDB(t)
	bulktest.RunReplayCacheTests(t, func(t *testing.T, now func() time.Time) bulk.ReplayCache {
		return dynamodb.NewReplayCache(client, awstest.Table(t, client, "Replay"), now)
	})
}

func TestRateCounter(t *testing.T) {
	client := awstest.DynamoDB(t)
	bulktest.RunRateCounterTests(t, func(t *testing.T, now func() time.Time) bulk.RateCounter {
		return dynamodb.NewRateCounter(client, awstest.Table(t, client, "Replay"), now)
	})
}

func newJob(id string) *bulk.Job {
	t0 := time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC)
	return &bulk.Job{ID: id, ClientID: "c", Status: bulk.StatusAccepted, CreatedAt: t0, UpdatedAt: t0, TransactionTime: t0, ExpiresAt: t0.Add(24 * time.Hour)}
}

// TestJobStoreBigPlan stores a plan larger than an item (a Group export
// of 200,000 patients) and races planners: one plan wins, every planner
// gets it back, and the losers' chunks are gone.
func TestJobStoreBigPlan(t *testing.T) {
	client := awstest.DynamoDB(t)
	itemsTable := awstest.Table(t, client, "JobItems")
	s := dynamodb.NewJobStore(client, awstest.Table(t, client, "Jobs"), itemsTable)
	ctx := context.Background()
	if err := s.CreateJob(ctx, newJob("j1")); err != nil {
		t.Fatal(err)
	}
	plan := func(seed int) *bulk.Plan {
		rng := rand.New(rand.NewPCG(uint64(seed), 1))
		p := &bulk.Plan{Types: []string{"Patient"}}
		for i := range 200 {
			it := bulk.Item{Index: i, Types: []string{"Patient", "Observation"}}
			for range 1000 {
				it.Patients = append(it.Patients, fmt.Sprintf("%016x", rng.Uint64()))
			}
			p.Items = append(p.Items, it)
		}
		return p
	}
	var (
		wg  sync.WaitGroup
		got [4]*bulk.Plan
	)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, err := s.SavePlan(ctx, "j1", plan(i))
			if err != nil {
				t.Error(err)
			}
			got[i] = p
		}()
	}
	wg.Wait()
	stored, err := s.GetPlan(ctx, "j1")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range got {
		if diff := cmp.Diff(stored, p); diff != "" {
			t.Errorf("planner %d got a plan other than the stored one (-stored +got):\n%s", i, diff)
			break
		}
	}
	// Only the stored plan's chunks remain: the 3.2 MB plan in several.
	out, err := client.Scan(ctx, &ddb.ScanInput{TableName: aws.String(itemsTable)})
	if err != nil {
		t.Fatal(err)
	}
	planIDs := map[string]int{}
	for _, item := range out.Items {
		sk := item["sk"].(*types.AttributeValueMemberS).Value
		if id, ok := strings.CutPrefix(sk, "plan#"); ok {
			planIDs[id[:strings.Index(id, "#")]]++
		}
		if _, ok := item["ttl"]; !ok {
			t.Errorf("item %s has no ttl", sk)
		}
	}
	if len(planIDs) != 1 {
		t.Errorf("chunks of %d plans stored (%v), want only the winner's", len(planIDs), planIDs)
	}
	for _, chunks := range planIDs {
		if chunks < 2 {
			t.Errorf("the plan is in %d chunk, want several (it is over 400 KB)", chunks)
		}
	}
	if j, err := s.GetJob(ctx, "j1"); err != nil || j.ItemsTotal != 200 {
		t.Errorf("GetJob(j1) = %+v, %v; want ItemsTotal 200", j, err)
	}
}

// TestJobStoreManyItems counts done items across done sets (1000 indexes
// each), as a 10,000-item plan does.
func TestJobStoreManyItems(t *testing.T) {
	client := awstest.DynamoDB(t)
	s := dynamodb.NewJobStore(client, awstest.Table(t, client, "Jobs"), awstest.Table(t, client, "JobItems"))
	ctx := context.Background()
	if err := s.CreateJob(ctx, newJob("j1")); err != nil {
		t.Fatal(err)
	}
	for _, i := range []int{0, 999, 1000, 5001, 9999, 5001} {
		if err := s.SaveProgress(ctx, "j1", &bulk.ItemProgress{Index: i, Done: true, Part: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SaveProgress(ctx, "j1", &bulk.ItemProgress{Index: 999, Part: 2}); err != nil {
		t.Fatal(err)
	}
	if j, err := s.GetJob(ctx, "j1"); err != nil || j.ItemsDone != 4 {
		t.Errorf("GetJob(j1).ItemsDone = %d, %v; want 4", j.ItemsDone, err)
	}
}

// noScan is a DynamoDB client that refuses Scan.
type noScan struct{ *ddb.Client }

func (noScan) Scan(context.Context, *ddb.ScanInput, ...func(*ddb.Options)) (*ddb.ScanOutput, error) {
	return nil, fmt.Errorf("Scan called")
}

// TestJobStoreActiveIndex: the Jobs table's index holds only the running
// jobs, and ActiveJobs counts from it without scanning the table.
func TestJobStoreActiveIndex(t *testing.T) {
	client := awstest.DynamoDB(t)
	jobsTable := awstest.Table(t, client, "Jobs")
	s := dynamodb.NewJobStore(noScan{client}, jobsTable, awstest.Table(t, client, "JobItems"))
	ctx := context.Background()
	for i := range 40 {
		id := fmt.Sprintf("j%02d", i)
		if err := s.CreateJob(ctx, newJob(id)); err != nil {
			t.Fatal(err)
		}
		to := []bulk.Status{bulk.StatusCompleted, bulk.StatusFailed, bulk.StatusCancelled, bulk.StatusInProgress}[i%4]
		if i >= 36 {
			continue // j36..j39 stay accepted
		}
		if _, err := s.Transition(ctx, id, []bulk.Status{bulk.StatusAccepted}, to, nil); err != nil {
			t.Fatal(err)
		}
	}
	// 9 in progress, 4 accepted.
	if n, err := s.ActiveJobs(ctx, "c"); err != nil || n != 13 {
		t.Errorf("ActiveJobs(c) = %d, %v; want 13", n, err)
	}
	out, err := client.Scan(ctx, &ddb.ScanInput{TableName: aws.String(jobsTable), IndexName: aws.String(dynamodb.ActiveIndex)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Items) != 13 {
		t.Errorf("the active index holds %d jobs, want the 13 running ones", len(out.Items))
	}
	for _, item := range out.Items {
		if len(item) != 2 {
			t.Errorf("index entry %v has attributes besides the keys", item)
		}
	}
}

// beforeTransact is a DynamoDB client that runs hook once, before the
// first TransactWriteItems it sends.
type beforeTransact struct {
	*ddb.Client
	once sync.Once
	hook func()
}

func (c *beforeTransact) TransactWriteItems(ctx context.Context, in *ddb.TransactWriteItemsInput, opts ...func(*ddb.Options)) (*ddb.TransactWriteItemsOutput, error) {
	c.once.Do(c.hook)
	return c.Client.TransactWriteItems(ctx, in, opts...)
}

// TestJobStoreCheckpointAfterCancel: the job is cancelled after
// SaveProgress read it as running and before it writes: the checkpoint's
// condition on the job item refuses it, so nothing is written.
func TestJobStoreCheckpointAfterCancel(t *testing.T) {
	client := awstest.DynamoDB(t)
	jobs, items := awstest.Table(t, client, "Jobs"), awstest.Table(t, client, "JobItems")
	plain := dynamodb.NewJobStore(client, jobs, items)
	ctx := context.Background()
	if err := plain.CreateJob(ctx, newJob("j1")); err != nil {
		t.Fatal(err)
	}
	hooked := dynamodb.NewJobStore(&beforeTransact{Client: client, hook: func() {
		if _, err := plain.Transition(ctx, "j1", []bulk.Status{bulk.StatusAccepted}, bulk.StatusCancelled, nil); err != nil {
			t.Errorf("cancel: %v", err)
		}
	}}, jobs, items)
	if err := hooked.SaveProgress(ctx, "j1", &bulk.ItemProgress{Index: 3, Done: true}); bulk.ErrorCode(err) != bulk.ECONFLICT {
		t.Errorf("SaveProgress racing a cancel error = %v, want %s", err, bulk.ECONFLICT)
	}
	if p, err := plain.ItemProgress(ctx, "j1", 3); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("ItemProgress(j1, 3) after the refused checkpoint = %+v, %v; want %s", p, err, bulk.ENOTFOUND)
	}
	if j, err := plain.GetJob(ctx, "j1"); err != nil || j.ItemsDone != 0 || j.Status != bulk.StatusCancelled {
		t.Errorf("GetJob(j1) = %+v, %v; want cancelled with no item done", j, err)
	}
}

// TestJobStoreQuotaCounter: the counter item follows the jobs that hold a
// slot, is invisible as a job, and a job from before the counter (no
// slot) is not counted and never makes it negative.
func TestJobStoreQuotaCounter(t *testing.T) {
	client := awstest.DynamoDB(t)
	jobs := awstest.Table(t, client, "Jobs")
	s := dynamodb.NewJobStore(client, jobs, awstest.Table(t, client, "JobItems"))
	ctx := context.Background()
	counter := func() string {
		t.Helper()
		out, err := client.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(jobs), Key: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "active#c"}}, ConsistentRead: aws.Bool(true)})
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := out.Item["n"].(*types.AttributeValueMemberN); ok {
			return v.Value
		}
		return "none"
	}
	for _, id := range []string{"j1", "j2"} {
		if err := s.CreateJobWithin(ctx, newJob(id), 2); err != nil {
			t.Fatal(err)
		}
	}
	if got := counter(); got != "2" {
		t.Errorf("counter after 2 jobs = %s, want 2", got)
	}
	if _, err := s.Transition(ctx, "j1", []bulk.Status{bulk.StatusAccepted}, bulk.StatusFailed, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteJob(ctx, "j2"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteJob(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	if got := counter(); got != "0" {
		t.Errorf("counter after a failure and a delete = %s, want 0", got)
	}

	// A job written before the counter existed: no slot.
	doc, _ := json.Marshal(newJob("old"))
	if _, err := client.PutItem(ctx, &ddb.PutItemInput{TableName: aws.String(jobs), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "old"}, "doc": &types.AttributeValueMemberS{Value: string(doc)},
		"st": &types.AttributeValueMemberS{Value: "accepted"}, "ver": &types.AttributeValueMemberN{Value: "1"},
		"activeOwner": &types.AttributeValueMemberS{Value: "c#c"},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateJobWithin(ctx, newJob("j3"), 1); err != nil {
		t.Errorf("CreateJobWithin(j3, 1) beside a job from before the counter: %v, want it not counted", err)
	}
	if _, err := s.Transition(ctx, "old", []bulk.Status{bulk.StatusAccepted}, bulk.StatusCompleted, nil); err != nil {
		t.Fatal(err)
	}
	if got := counter(); got != "1" {
		t.Errorf("counter after the old job finished = %s, want 1 (j3's slot, never less)", got)
	}
	if err := s.CreateJobWithin(ctx, newJob("j4"), 1); bulk.ErrorCode(err) != bulk.ETOOMANYREQUESTS {
		t.Errorf("CreateJobWithin(j4, 1) error = %v, want %s", err, bulk.ETOOMANYREQUESTS)
	}

	// The counter is no job.
	if _, err := s.GetJob(ctx, "active#c"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
		t.Errorf("GetJob(active#c) error = %v, want %s", err, bulk.ENOTFOUND)
	}
	if err := s.CreateJob(ctx, newJob("active#x")); bulk.ErrorCode(err) != bulk.EINVALID {
		t.Errorf("CreateJob(active#x) error = %v, want %s", err, bulk.EINVALID)
	}
	if err := s.DeleteJob(ctx, "active#c"); err != nil || counter() != "1" {
		t.Errorf("DeleteJob(active#c) = %v, counter %s; want a no-op", err, counter())
	}
}
