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
