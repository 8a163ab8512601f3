package dynamodb_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/aws/s3"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
)

func TestResourceStore(t *testing.T) {
	client := awstest.DynamoDB(t)
	bulktest.RunResourceStoreTests(t, func(t *testing.T) bulk.ResourceStore {
		return dynamodb.NewResourceStore(client, awstest.Table(t, client, "Resources"), 4, dynamodb.ResourceOptions{})
	})
}

// TestResourceStoreSpilled runs the contract with every body spilled to S3
// (gofakes3), the path of resources over DynamoDB's item limit.
func TestResourceStoreSpilled(t *testing.T) {
	client := awstest.DynamoDB(t)
	bulktest.RunResourceStoreTests(t, func(t *testing.T) bulk.ResourceStore {
		s3c, bucket := awstest.S3(t)
		bodies, err := s3.New(s3c, s3.Options{Bucket: bucket, Prefix: "bodies/", ContentType: "application/fhir+json"})
		if err != nil {
			t.Fatal(err)
		}
		return dynamodb.NewResourceStore(client, awstest.Table(t, client, "Resources"), 4, dynamodb.ResourceOptions{Bodies: bodies, SpillBytes: 1})
	})
}

func at(sec int) time.Time { return time.Date(2024, 3, 1, 12, 0, sec, 0, time.UTC) }

func body(typ, id string, size int) []byte {
	pad := strings.Repeat("x", max(size-60, 0))
	return fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"text":%q}`, typ, id, pad)
}

// TestResourceStoreConcurrentVersions puts different versions of one
// resource from many goroutines at once: the conditional commit leaves one
// version in every index, never a stale scan item next to it.
func TestResourceStoreConcurrentVersions(t *testing.T) {
	client := awstest.DynamoDB(t)
	s := dynamodb.NewResourceStore(client, awstest.Table(t, client, "Resources"), 1, dynamodb.ResourceOptions{})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				r := &bulk.Resource{Type: "Observation", ID: "o1", LastUpdated: at(w*10 + i), Body: body("Observation", "o1", 100), Patients: []string{fmt.Sprintf("p%d", w)}}
				if err := s.Put(ctx, []*bulk.Resource{r}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	var seen []time.Time
	err := s.Scan(ctx, bulk.ScanRequest{Type: "Observation", Range: bulk.Range{Until: at(1000)}}, func(r *bulk.Resource, _ bulk.Cursor) error {
		seen = append(seen, r.LastUpdated)
		return nil
	})
	if err != nil || len(seen) != 1 {
		t.Fatalf("Scan after concurrent versions = %v, %v; want exactly one version", seen, err)
	}
	got, err := s.Get(ctx, "Observation", "o1")
	if err != nil || !got.LastUpdated.Equal(seen[0]) {
		t.Errorf("Get = %v, %v; want the scanned version %v", got, err, seen[0])
	}
	in := 0
	for w := range 8 {
		err := s.Compartment(ctx, fmt.Sprintf("p%d", w), nil, func(*bulk.Resource, bulk.Cursor) error { in++; return nil })
		if err != nil {
			t.Fatal(err)
		}
	}
	if in != 1 {
		t.Errorf("the resource is in %d compartments, want the 1 of its live version", in)
	}
	if counts, err := s.Count(ctx); err != nil || counts["Observation"] != 1 {
		t.Errorf("Count() = %v, %v; want Observation: 1", counts, err)
	}
}

// TestResourceStoreLarge covers what the contract's small data does not:
// pages (over 1 MB of one shard), a body over DynamoDB's 400 KB item limit,
// and a Group with thousands of members.
func TestResourceStoreLarge(t *testing.T) {
	client := awstest.DynamoDB(t)
	fake := awstest.NewS3(t)
	bodies, err := s3.New(fake.Client, s3.Options{Bucket: fake.Bucket, Prefix: "bodies/"})
	if err != nil {
		t.Fatal(err)
	}
	s := dynamodb.NewResourceStore(client, awstest.Table(t, client, "Resources"), 1, dynamodb.ResourceOptions{Bodies: bodies})
	ctx := context.Background()

	var rs []*bulk.Resource
	for i := range 400 {
		id := fmt.Sprintf("o%03d", i)
		rs = append(rs, &bulk.Resource{Type: "Observation", ID: id, LastUpdated: at(i % 7), Body: body("Observation", id, 4000)})
	}
	big := &bulk.Resource{Type: "DocumentReference", ID: "d1", LastUpdated: at(1), Body: body("DocumentReference", "d1", 600<<10), Patients: []string{"p1"}}
	members := make([]string, 3000)
	for i := range members {
		members[i] = fmt.Sprintf("patient-%05d", i)
	}
	g := &bulk.Resource{Type: "Group", ID: "g1", LastUpdated: at(1), Body: body("Group", "g1", 200), Members: members, Patients: members}
	if err := s.Put(ctx, append(rs, big, g)); err != nil {
		t.Fatal(err)
	}

	// Resume from the cursor of every 50th resource across page breaks.
	var all []string
	var cursors []bulk.Cursor
	req := bulk.ScanRequest{Type: "Observation", Range: bulk.Range{Until: at(100)}}
	if err := s.Scan(ctx, req, func(r *bulk.Resource, next bulk.Cursor) error {
		all = append(all, r.ID)
		cursors = append(cursors, next)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(all) != len(rs) {
		t.Fatalf("Scan over %d KB visited %d resources, want %d", 400*4, len(all), len(rs))
	}
	for k := 0; k < len(all); k += 50 {
		req.Cursor = cursors[k]
		var rest []string
		if err := s.Scan(ctx, req, func(r *bulk.Resource, _ bulk.Cursor) error { rest = append(rest, r.ID); return nil }); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rest, all[k+1:]) {
			t.Errorf("Scan resumed after %d visited %d resources, want %d", k+1, len(rest), len(all)-k-1)
		}
	}

	got, err := s.Get(ctx, "DocumentReference", "d1")
	if err != nil || !bytes.Equal(got.Body, big.Body) || !slices.Equal(got.Patients, []string{"p1"}) {
		t.Fatalf("Get(d1) = %d bytes, %v, %v; want the %d-byte body in p1's compartment", len(got.Body), got.Patients, err, len(big.Body))
	}
	// The Group spills too: its member and compartment lists are over the
	// limit.
	if keys, _ := bodies.List(ctx, ""); len(keys) != 2 {
		t.Errorf("spilled bodies = %v, want the two over %d bytes", keys, dynamodb.DefaultSpillBytes)
	}
	m, err := s.GroupMembers(ctx, "g1")
	if err != nil || !slices.Equal(m, members) {
		t.Errorf("GroupMembers(g1) = %d members, %v; want %d", len(m), err, len(members))
	}
	gg, err := s.Get(ctx, "Group", "g1")
	if err != nil || len(gg.Members) != len(members) {
		t.Errorf("Get(g1) = %d members, %v; want %d", len(gg.Members), err, len(members))
	}

	// Replacing and deleting a spilled resource removes its old body. (A
	// new version needs new content: Put does not write the same again.)
	big2 := *big
	big2.LastUpdated = at(2)
	big2.Body = bytes.Replace(big.Body, []byte(`"text":"x`), []byte(`"text":"y`), 1)
	if err := s.Put(ctx, []*bulk.Resource{&big2}); err != nil {
		t.Fatal(err)
	}
	if keys, _ := bodies.List(ctx, "DocumentReference/"); len(keys) != 1 || !strings.Contains(keys[0], "120002") {
		t.Errorf("spilled bodies after replacing = %v, want only the new version's", keys)
	}
	if err := s.Delete(ctx, bulk.Ref{Type: "DocumentReference", ID: "d1"}, at(3)); err != nil {
		t.Fatal(err)
	}
	if keys, _ := bodies.List(ctx, "DocumentReference/"); len(keys) != 0 {
		t.Errorf("spilled bodies after delete = %v, want none", keys)
	}
	// Without a body store, a resource that would spill is refused.
	nobodies := dynamodb.NewResourceStore(client, awstest.Table(t, client, "Resources"), 1, dynamodb.ResourceOptions{})
	if err := nobodies.Put(ctx, []*bulk.Resource{big}); bulk.ErrorCode(err) != bulk.EINVALID {
		t.Errorf("Put of %d bytes without a body store error = %v, want %s", len(big.Body), err, bulk.EINVALID)
	}
}

// TestResourceStoreShardCounts: the same data written with 1, 4 and 16
// shards reads back the same, each resource once (issue 12: the hot keys
// are split by shard and merged on read).
func TestResourceStoreShardCounts(t *testing.T) {
	client := awstest.DynamoDB(t)
	bulktest.RunShardCountTests(t, func(t *testing.T, shards int) bulk.ResourceStore {
		return dynamodb.NewResourceStore(client, awstest.Table(t, client, "Resources"), shards, dynamodb.ResourceOptions{})
	}, 1, 4, 16)
}

// TestResourceStoreLayout1 runs the contract on layout 1, the keys of
// tables written before layout 2 (layout.go), which keep working.
func TestResourceStoreLayout1(t *testing.T) {
	client := awstest.DynamoDB(t)
	bulktest.RunResourceStoreTests(t, func(t *testing.T) bulk.ResourceStore {
		s := dynamodb.NewResourceStore(client, awstest.Table(t, client, "Resources"), 4, dynamodb.ResourceOptions{})
		dynamodb.UseLayout1(s)
		return s
	})
}

// getLayout reads the layout item: its version and shards (0, 0 if none).
func getLayout(t *testing.T, client dynamodb.API, table string) (version, shards string) {
	t.Helper()
	out, err := client.GetItem(context.Background(), &ddb.GetItemInput{TableName: aws.String(table), Key: map[string]types.AttributeValue{
		"pk": &types.AttributeValueMemberS{Value: "_meta"}, "sk": &types.AttributeValueMemberS{Value: "layout"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	num := func(name string) string {
		if v, ok := out.Item[name].(*types.AttributeValueMemberN); ok {
			return v.Value
		}
		return ""
	}
	return num("v"), num("n")
}

// partitionSize counts the items under one partition key.
func partitionSize(t *testing.T, client dynamodb.API, table, pk string) int32 {
	t.Helper()
	out, err := client.Query(context.Background(), &ddb.QueryInput{
		TableName: aws.String(table), KeyConditionExpression: aws.String("pk = :pk"), Select: types.SelectCount,
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": &types.AttributeValueMemberS{Value: pk}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.Count
}

// TestResourceStoreLayouts: a new table gets layout 2 with its first
// write, recorded with its shards, which a store with other shards then
// refuses; a table an older deployment wrote (layout 1) is read as such
// without a write, and its next write records layout 1 and keeps its
// keys.
func TestResourceStoreLayouts(t *testing.T) {
	client := awstest.DynamoDB(t)
	ctx := context.Background()
	obs := func(id string, sec int, patient string) *bulk.Resource {
		return &bulk.Resource{Type: "Observation", ID: id, LastUpdated: at(sec), Body: body("Observation", id, 100), Patients: []string{patient}}
	}
	t.Run("New", func(t *testing.T) {
		table := awstest.Table(t, client, "Resources")
		s := dynamodb.NewResourceStore(client, table, 4, dynamodb.ResourceOptions{})
		if _, err := s.Count(ctx); err != nil {
			t.Fatal(err)
		}
		if v, _ := getLayout(t, client, table); v != "" {
			t.Errorf("layout after a read of an empty table = %q, want none (reads never write)", v)
		}
		var rs []*bulk.Resource
		for i := range 40 {
			rs = append(rs, obs(fmt.Sprintf("o%02d", i), i, "p1"))
		}
		if err := s.Put(ctx, rs); err != nil {
			t.Fatal(err)
		}
		if v, n := getLayout(t, client, table); v != "2" || n != "4" {
			t.Errorf("layout after the first Put = %q with %q shards, want 2 with 4", v, n)
		}
		var spread int32
		for shard := range 4 {
			spread += partitionSize(t, client, table, fmt.Sprintf("_id/Observation#%03d", shard))
		}
		if spread != 40 || partitionSize(t, client, table, "_id/Observation") != 0 {
			t.Errorf("_id items in the 4 shards = %d, want all 40 and none unsplit", spread)
		}
		other := dynamodb.NewResourceStore(client, table, 8, dynamodb.ResourceOptions{})
		if _, err := other.Count(ctx); bulk.ErrorCode(err) != bulk.EINTERNAL {
			t.Errorf("Count() of a 4-shard table with 8 shards error = %v, want %s", err, bulk.EINTERNAL)
		}
	})
	t.Run("Old", func(t *testing.T) {
		table := awstest.Table(t, client, "Resources")
		old := dynamodb.NewResourceStore(client, table, 4, dynamodb.ResourceOptions{})
		dynamodb.UseLayout1(old)
		members := []string{"p1", "p2", "p3"}
		g := &bulk.Resource{Type: "Group", ID: "g1", LastUpdated: at(1), Body: body("Group", "g1", 100), Members: members, Patients: members}
		if err := old.Put(ctx, []*bulk.Resource{obs("o1", 1, "p1"), obs("o2", 2, "p2"), g}); err != nil {
			t.Fatal(err)
		}
		if err := old.Delete(ctx, bulk.Ref{Type: "Observation", ID: "o2"}, at(5)); err != nil {
			t.Fatal(err)
		}
		check := func(s *dynamodb.ResourceStore, wantObs []string) {
			t.Helper()
			var ids []string
			if err := s.List(ctx, "Observation", "", func(r *bulk.Resource, _ bulk.Cursor) error { ids = append(ids, r.ID); return nil }); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(ids, wantObs) {
				t.Errorf("List(Observation) = %v, want %v", ids, wantObs)
			}
			if m, err := s.GroupMembers(ctx, "g1"); err != nil || !slices.Equal(m, members) {
				t.Errorf("GroupMembers(g1) = %v, %v; want %v", m, err, members)
			}
			if ok, err := s.IsGroupMember(ctx, "g1", "p2"); err != nil || !ok {
				t.Errorf("IsGroupMember(g1, p2) = %v, %v; want true", ok, err)
			}
			if c, err := s.Count(ctx); err != nil || c["Observation"] != int64(len(wantObs)) || c["Group"] != 1 {
				t.Errorf("Count() = %v, %v; want %d Observations and 1 Group", c, err, len(wantObs))
			}
			var tombs []string
			if err := s.Tombstones(ctx, "Observation", bulk.Range{Until: at(100)}, func(ts bulk.Tombstone) error { tombs = append(tombs, ts.ID); return nil }); err != nil || !slices.Equal(tombs, []string{"o2"}) {
				t.Errorf("Tombstones(Observation) = %v, %v; want [o2]", tombs, err)
			}
		}
		reader := dynamodb.NewResourceStore(client, table, 4, dynamodb.ResourceOptions{})
		check(reader, []string{"o1"})
		if v, _ := getLayout(t, client, table); v != "" {
			t.Errorf("layout after reads = %q, want none (reads never write)", v)
		}
		writer := dynamodb.NewResourceStore(client, table, 4, dynamodb.ResourceOptions{})
		if err := writer.Put(ctx, []*bulk.Resource{obs("o3", 3, "p3")}); err != nil {
			t.Fatal(err)
		}
		if v, _ := getLayout(t, client, table); v != "1" {
			t.Errorf("layout after a Put into an old table = %q, want 1", v)
		}
		if n := partitionSize(t, client, table, "_id/Observation"); n != 3 {
			t.Errorf("_id/Observation holds %d items, want 3 (o1, o2's tombstone, o3): an old table keeps its keys", n)
		}
		check(writer, []string{"o1", "o3"})
		check(dynamodb.NewResourceStore(client, table, 4, dynamodb.ResourceOptions{}), []string{"o1", "o3"})
	})
}

// readsAPI records whether each Query was strongly consistent.
type readsAPI struct {
	dynamodb.API
	mu         sync.Mutex
	consistent []bool
}

func (a *readsAPI) Query(ctx context.Context, in *ddb.QueryInput, opts ...func(*ddb.Options)) (*ddb.QueryOutput, error) {
	a.mu.Lock()
	a.consistent = append(a.consistent, aws.ToBool(in.ConsistentRead))
	a.mu.Unlock()
	return a.API.Query(ctx, in, opts...)
}

func (a *readsAPI) take() []bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.consistent
	a.consistent = nil
	return c
}

// TestResourceStoreScanConsistency (issue 12 item 5): a scan reads
// strongly consistent pages until the store's clock shows the kick-off of
// its export more than Settle ago (settle.go), then eventually consistent
// ones, and visits the same resources either way.
func TestResourceStoreScanConsistency(t *testing.T) {
	client := awstest.DynamoDB(t)
	ctx := context.Background()
	table := awstest.Table(t, client, "Resources")
	api := &readsAPI{API: client}
	now := time.Now().UTC()
	clock := func() time.Time { return now }
	s := dynamodb.NewResourceStore(api, table, 1, dynamodb.ResourceOptions{Now: clock})
	var rs []*bulk.Resource
	for i := range 300 { // 1.2 MB: two pages
		id := fmt.Sprintf("o%03d", i)
		rs = append(rs, &bulk.Resource{Type: "Observation", ID: id, LastUpdated: at(i % 60), Body: body("Observation", id, 4000)})
	}
	if err := s.Put(ctx, rs); err != nil {
		t.Fatal(err)
	}
	scan := func(s *dynamodb.ResourceStore, until time.Time) ([]string, []bool) {
		t.Helper()
		api.take()
		var ids []string
		err := s.Scan(ctx, bulk.ScanRequest{Type: "Observation", Range: bulk.Range{Until: until}}, func(r *bulk.Resource, _ bulk.Cursor) error {
			ids = append(ids, r.ID)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return ids, api.take()
	}
	allStrong := func(c []bool) bool { return !slices.Contains(c, false) }

	// Before any kick-off: no evidence, every page strongly consistent.
	want, c := scan(s, now)
	if len(want) != len(rs) || len(c) < 2 || !allStrong(c) {
		t.Fatalf("Scan before any kick-off: %d resources, pages consistent %v; want %d, at least 2 pages, all strong", len(want), c, len(rs))
	}
	tt, err := s.TransactionTime(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, c := scan(s, tt); !allStrong(c) {
		t.Errorf("Scan just after its kick-off: pages consistent %v, want all strong", c)
	}
	now = now.Add(dynamodb.DefaultSettle + time.Second)
	got, c := scan(s, tt)
	if !slices.Equal(got, want) || !c[0] || slices.Contains(c[1:], true) {
		t.Errorf("Scan %v after its kick-off: %d resources, pages consistent %v; want the same %d, the first page strong and the rest eventual",
			dynamodb.DefaultSettle+time.Second, len(got), c, len(want))
	}
	strict := dynamodb.NewResourceStore(api, table, 1, dynamodb.ResourceOptions{Now: clock, Settle: -1})
	if _, c := scan(strict, tt); !allStrong(c) {
		t.Errorf("Scan with a negative Settle: pages consistent %v, want all strong", c)
	}
	// A later kick-off moves the clock: strong again until it settles.
	tt, err = s.TransactionTime(ctx, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, c := scan(s, tt); !allStrong(c) {
		t.Errorf("Scan just after a later kick-off: pages consistent %v, want all strong", c)
	}
}
