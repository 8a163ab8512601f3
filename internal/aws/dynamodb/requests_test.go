package dynamodb_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
)

// jobsTableItems returns the Jobs table's items by pk.
func jobsTableItems(t *testing.T, client *ddb.Client, table string) map[string]map[string]types.AttributeValue {
	t.Helper()
	items := map[string]map[string]types.AttributeValue{}
	in := &ddb.ScanInput{TableName: aws.String(table), ConsistentRead: aws.Bool(true)}
	for {
		out, err := client.Scan(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for _, item := range out.Items {
			items[item["pk"].(*types.AttributeValueMemberS).Value] = item
		}
		if len(out.LastEvaluatedKey) == 0 {
			return items
		}
		in.ExclusiveStartKey = out.LastEvaluatedKey
	}
}

func attrS(item map[string]types.AttributeValue, name string) string {
	v, _ := item[name].(*types.AttributeValueMemberS)
	if v == nil {
		return ""
	}
	return v.Value
}

func attrN(item map[string]types.AttributeValue, name string) string {
	v, _ := item[name].(*types.AttributeValueMemberN)
	if v == nil {
		return ""
	}
	return v.Value
}

// checkRequestChunks checks that the Jobs table holds the job item of id
// with a doc under 64 KiB and exactly the request chunks it names, each
// with its TTL, and returns the request id.
func checkRequestChunks(t *testing.T, client *ddb.Client, table, id string) string {
	t.Helper()
	items := jobsTableItems(t, client, table)
	job := items[id]
	if job == nil {
		t.Fatalf("no item for job %s", id)
	}
	if doc := attrS(job, "doc"); len(doc) > 64<<10 {
		t.Errorf("job %s's doc is %d bytes, want its request kept apart", id, len(doc))
	}
	req := attrS(job, "req")
	var chunks []string
	for pk, item := range items {
		if !strings.HasPrefix(pk, "request#"+id+"#") {
			continue
		}
		chunks = append(chunks, pk)
		if !strings.HasPrefix(pk, "request#"+id+"#"+req+"#") {
			t.Errorf("chunk %s is not of job %s's request %s", pk, id, req)
		}
		if attrN(item, "ttl") != attrN(job, "ttl") {
			t.Errorf("chunk %s ttl %s, want the job item's %s", pk, attrN(item, "ttl"), attrN(job, "ttl"))
		}
	}
	if req == "" || attrN(job, "rparts") != strconv.Itoa(len(chunks)) {
		t.Errorf("job %s names request %q in %s chunks; the table holds %d (%v)", id, req, attrN(job, "rparts"), len(chunks), chunks)
	}
	return req
}

// TestJobStoreLargeRequest: a request of fhir.MaxPatients `patient` values
// (about 1 MB of JSON) is kept in chunk items of the Jobs table beside a
// small job item, with the job's TTL; a rewrite replaces its chunks, a
// delete removes them, and they are never jobs (issue 12 item 4).
func TestJobStoreLargeRequest(t *testing.T) {
	client := awstest.DynamoDB(t)
	jobs := awstest.Table(t, client, "Jobs")
	s := dynamodb.NewJobStore(client, jobs, awstest.Table(t, client, "JobItems"))
	ctx := context.Background()
	big := bulktest.LargeRequestJob("j1", 1)
	if err := s.CreateJobWithin(ctx, big, 4); err != nil {
		t.Fatal(err)
	}
	first := checkRequestChunks(t, client, jobs, "j1")
	if _, err := s.Transition(ctx, "j1", []bulk.Status{bulk.StatusAccepted}, bulk.StatusInProgress, nil); err != nil {
		t.Fatal(err)
	}
	if again := checkRequestChunks(t, client, jobs, "j1"); again != first {
		t.Errorf("a transition that kept the request rewrote it (%s → %s)", first, again)
	}
	other := bulktest.LargeRequestJob("j1", 2).Request
	if _, err := s.Transition(ctx, "j1", []bulk.Status{bulk.StatusInProgress}, bulk.StatusCompleted, func(j *bulk.Job) {
		j.Request, j.ExpiresAt = other, j.ExpiresAt.Add(48*time.Hour)
	}); err != nil {
		t.Fatal(err)
	}
	if again := checkRequestChunks(t, client, jobs, "j1"); again == first {
		t.Errorf("a transition that changed the request kept its chunks %s", first)
	}
	if j, err := s.GetJob(ctx, "j1"); err != nil {
		t.Fatal(err)
	} else if diff := cmp.Diff(other, j.Request, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("GetJob(j1).Request mismatch (-want +got):\n%s", diff)
	}

	var ids []string
	if err := s.ListJobs(ctx, func(j *bulk.Job) error { ids = append(ids, j.ID); return nil }); err != nil || len(ids) != 1 {
		t.Errorf("ListJobs = %v, %v; want only j1", ids, err)
	}
	for pk := range jobsTableItems(t, client, jobs) {
		if strings.HasPrefix(pk, "request#") {
			if _, err := s.GetJob(ctx, pk); bulk.ErrorCode(err) != bulk.ENOTFOUND {
				t.Errorf("GetJob(%s) error = %v, want %s", pk, err, bulk.ENOTFOUND)
			}
		}
	}
	if err := s.CreateJob(ctx, newJob("request#x")); bulk.ErrorCode(err) != bulk.EINVALID {
		t.Errorf("CreateJob(request#x) error = %v, want %s", err, bulk.EINVALID)
	}
	if err := s.DeleteJob(ctx, "j1"); err != nil {
		t.Fatal(err)
	}
	for pk := range jobsTableItems(t, client, jobs) {
		if pk == "j1" || strings.HasPrefix(pk, "request#") {
			t.Errorf("item %s left after DeleteJob(j1)", pk)
		}
	}
}

// beforeChunkRead is a DynamoDB client that runs hook once, before the
// first read of a request chunk.
type beforeChunkRead struct {
	*ddb.Client
	once sync.Once
	hook func()
}

func (c *beforeChunkRead) GetItem(ctx context.Context, in *ddb.GetItemInput, opts ...func(*ddb.Options)) (*ddb.GetItemOutput, error) {
	if pk, ok := in.Key["pk"].(*types.AttributeValueMemberS); ok && strings.HasPrefix(pk.Value, "request#") {
		c.once.Do(c.hook)
	}
	return c.Client.GetItem(ctx, in, opts...)
}

// TestJobStoreLargeRequestDeleted: a job deleted between the read of its
// item and of its request's chunks is a job not found, to GetJob, and one
// ListJobs leaves out, not a damaged job that would fail every purge.
func TestJobStoreLargeRequestDeleted(t *testing.T) {
	client := awstest.DynamoDB(t)
	jobs, items := awstest.Table(t, client, "Jobs"), awstest.Table(t, client, "JobItems")
	plain := dynamodb.NewJobStore(client, jobs, items)
	ctx := context.Background()
	for _, read := range []struct {
		name string
		call func(s *dynamodb.JobStore) error
	}{
		{"GetJob", func(s *dynamodb.JobStore) error {
			if _, err := s.GetJob(ctx, "j1"); bulk.ErrorCode(err) != bulk.ENOTFOUND {
				t.Errorf("GetJob(j1) deleted meanwhile error = %v, want %s", err, bulk.ENOTFOUND)
			}
			return nil
		}},
		{"ListJobs", func(s *dynamodb.JobStore) error {
			return s.ListJobs(ctx, func(j *bulk.Job) error {
				t.Errorf("ListJobs visited %s, deleted meanwhile", j.ID)
				return nil
			})
		}},
	} {
		t.Run(read.name, func(t *testing.T) {
			if err := plain.CreateJob(ctx, bulktest.LargeRequestJob("j1", 1)); err != nil {
				t.Fatal(err)
			}
			hooked := dynamodb.NewJobStore(&beforeChunkRead{Client: client, hook: func() {
				if err := plain.DeleteJob(ctx, "j1"); err != nil {
					t.Errorf("DeleteJob: %v", err)
				}
			}}, jobs, items)
			if err := read.call(hooked); err != nil {
				t.Errorf("%s racing a DeleteJob: %v", read.name, err)
			}
		})
	}
}

// updatesOnly is a DynamoDB client that refuses the writes a transition
// of a job must not need: Put and transactions.
type updatesOnly struct{ *ddb.Client }

func (updatesOnly) PutItem(context.Context, *ddb.PutItemInput, ...func(*ddb.Options)) (*ddb.PutItemOutput, error) {
	return nil, errors.New("PutItem called")
}

func (updatesOnly) TransactWriteItems(context.Context, *ddb.TransactWriteItemsInput, ...func(*ddb.Options)) (*ddb.TransactWriteItemsOutput, error) {
	return nil, errors.New("TransactWriteItems called")
}

// TestJobStoreInlineRequestStays: a job written before requests were kept
// apart, its 100 KB request in the doc, keeps it there through its
// transitions: a single UpdateItem, the one write the functions that
// change jobs may make (moving it would need PutItem).
func TestJobStoreInlineRequestStays(t *testing.T) {
	client := awstest.DynamoDB(t)
	jobs := awstest.Table(t, client, "Jobs")
	ctx := context.Background()
	j := bulktest.LargeRequestJob("old", 1)
	j.Request.Patients, j.Request.Ignored = j.Request.Patients[:1500], nil
	doc, _ := json.Marshal(j)
	if len(doc) < 64<<10 {
		t.Fatalf("doc of %d bytes: want one over 64 KiB", len(doc))
	}
	if _, err := client.PutItem(ctx, &ddb.PutItemInput{TableName: aws.String(jobs), Item: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "old"}, "doc": &types.AttributeValueMemberS{Value: string(doc)},
		"st": &types.AttributeValueMemberS{Value: "accepted"}, "ver": &types.AttributeValueMemberN{Value: "1"},
	}}); err != nil {
		t.Fatal(err)
	}
	s := dynamodb.NewJobStore(updatesOnly{client}, jobs, awstest.Table(t, client, "JobItems"))
	for _, to := range []bulk.Status{bulk.StatusInProgress, bulk.StatusCompleted} {
		if _, err := s.Transition(ctx, "old", []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress}, to, func(j *bulk.Job) {
			j.ExpiresAt = j.ExpiresAt.Add(time.Hour)
		}); err != nil {
			t.Fatalf("Transition(old → %s): %v", to, err)
		}
	}
	got, err := s.GetJob(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(j.Request, got.Request, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("GetJob(old).Request mismatch (-want +got):\n%s", diff)
	}
	for pk := range jobsTableItems(t, client, jobs) {
		if strings.HasPrefix(pk, "request#") {
			t.Errorf("chunk %s written for a request that stays inline", pk)
		}
	}
}
