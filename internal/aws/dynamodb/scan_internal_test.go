package dynamodb

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/mem"
)

// queryTable answers Query over fixed items, in sort-key order, a few
// items a page, as DynamoDB answers a key-range query: enough of the API
// for Scan, with GetItem. Every other method is the nil API's (it panics).
type queryTable struct {
	API
	items    []map[string]types.AttributeValue // sorted by pk, sk
	pageSize int
}

// GetItem finds nothing: the table has no clock item, so scans read
// strongly consistent (settle.go).
func (q *queryTable) GetItem(context.Context, *ddb.GetItemInput, ...func(*ddb.Options)) (*ddb.GetItemOutput, error) {
	return &ddb.GetItemOutput{}, nil
}

func (q *queryTable) Query(_ context.Context, in *ddb.QueryInput, _ ...func(*ddb.Options)) (*ddb.QueryOutput, error) {
	if !strings.Contains(*in.KeyConditionExpression, "BETWEEN") {
		return nil, fmt.Errorf("queryTable: unexpected query %q", *in.KeyConditionExpression)
	}
	v := in.ExpressionAttributeValues
	pk, lo, hi := getS(v, ":pk"), getS(v, ":lo"), getS(v, ":hi")
	after := getS(in.ExclusiveStartKey, attrSK)
	out := &ddb.QueryOutput{}
	for _, item := range q.items {
		sk := getS(item, attrSK)
		if getS(item, attrPK) != pk || sk < lo || sk > hi || (after != "" && sk <= after) {
			continue
		}
		if len(out.Items) == q.pageSize {
			last := out.Items[len(out.Items)-1]
			out.LastEvaluatedKey = key2(pk, getS(last, attrSK))
			break
		}
		out.Items = append(out.Items, item)
	}
	return out, nil
}

// gatedBodies holds spilled bodies. Its Open waits until want Opens are in
// flight at once, so a store that read them one by one would stall (a
// hang guard then lets it on, and the test fails); it records the most
// Opens in flight at once.
type gatedBodies struct {
	bulk.ObjectStore
	want     int32
	inflight atomic.Int32
	most     atomic.Int32
	once     sync.Once
	open     chan struct{}
}

func (g *gatedBodies) Open(ctx context.Context, key string) (bulk.Object, error) {
	n := g.inflight.Add(1)
	defer g.inflight.Add(-1)
	for m := g.most.Load(); n > m && !g.most.CompareAndSwap(m, n); m = g.most.Load() {
	}
	if n >= g.want {
		g.once.Do(func() { close(g.open) })
	}
	select {
	case <-g.open:
	case <-time.After(10 * time.Second): // hang guard only: never reached when reads overlap
		g.once.Do(func() { close(g.open) })
	}
	return g.ObjectStore.Open(ctx, key)
}

// spillFixture is a shard of count Observations in a fake table: those with
// spilled(i) have their body in bodies, those with !inCompartment(i) no
// Patients. It returns the store and the sort keys in scan order.
func spillFixture(t *testing.T, count, parallel int, spilled, inCompartment func(int) bool) (*ResourceStore, *gatedBodies, []string) {
	t.Helper()
	ctx := context.Background()
	bodies := &gatedBodies{ObjectStore: mem.NewObjectStore(), want: int32(parallel), open: make(chan struct{})}
	table := &queryTable{pageSize: 7}
	s := NewResourceStore(table, "Resources", 1, ResourceOptions{Bodies: bodies, Parallel: parallel})
	var sks []string
	for i := range count {
		id := fmt.Sprintf("o%04d", i)
		r := &bulk.Resource{Type: "Observation", ID: id, LastUpdated: time.Date(2024, 3, 1, 0, 0, i, 0, time.UTC),
			Body: fmt.Appendf(nil, `{"resourceType":"Observation","id":%q}`, id)}
		if inCompartment(i) {
			r.Patients = []string{"p1"}
		}
		luS := lu(r.LastUpdated)
		item := map[string]types.AttributeValue{
			attrPK: sv(s.scanPK("Observation", 0)), attrSK: sv(scanSK(luS, id)),
			attrNPat: n(int64(len(r.Patients))),
		}
		if spilled(i) {
			ref := spillKey(r.Type, r.ID, luS)
			if err := s.writeSpill(ctx, ref, r); err != nil {
				t.Fatal(err)
			}
			item[attrRef] = sv(ref)
		} else {
			item[attrBody] = b(r.Body)
			item[attrPatients] = strList(r.Patients)
		}
		table.items = append(table.items, item)
		sks = append(sks, scanSK(luS, id))
	}
	return s, bodies, sks
}

// TestScanSpilledConcurrent: a scan reads the spilled bodies of a window
// of rows at once, at most Parallel at a time, and still visits the rows
// in key order with their own bodies.
func TestScanSpilledConcurrent(t *testing.T) {
	const parallel = 4
	s, bodies, sks := spillFixture(t, 50, parallel, func(i int) bool { return i%5 != 2 }, func(int) bool { return true })
	var got []string
	err := s.Scan(context.Background(), bulk.ScanRequest{Type: "Observation", Range: bulk.Range{Until: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}},
		func(r *bulk.Resource, next bulk.Cursor) error {
			if want := fmt.Sprintf(`{"resourceType":"Observation","id":%q}`, r.ID); string(r.Body) != want {
				t.Errorf("%s: body %s, want %s", r.ID, r.Body, want)
			}
			if !slices.Equal(r.Patients, []string{"p1"}) {
				t.Errorf("%s: Patients = %v, want [p1]", r.ID, r.Patients)
			}
			got = append(got, string(next))
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, sks) {
		t.Errorf("visited %v,\nwant %v", got, sks)
	}
	if most := bodies.most.Load(); most != parallel {
		t.Errorf("at most %d spilled bodies read at once, want %d", most, parallel)
	}
}

// TestScanStopResume: a scan stopped by its visit or by Skipped (a
// CompartmentOnly scan's rows in no compartment) resumes at the cursor it
// stopped at: with spilled bodies read ahead, every row is still passed
// once, in order, across the stops.
func TestScanStopResume(t *testing.T) {
	s, _, sks := spillFixture(t, 60, 4, func(i int) bool { return i%3 != 0 }, func(i int) bool { return i%4 != 1 })
	rng := bulk.Range{Until: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	var (
		passed []string
		cursor bulk.Cursor
		calls  int
	)
	for {
		calls++
		if calls > len(sks)+1 {
			t.Fatal("the scan does not move on")
		}
		k := 0 // rows passed in this call: stop at the 5th, visited or skipped
		var stopAt bulk.Cursor
		pass := func(next bulk.Cursor, skipped bool) error {
			i := slices.Index(sks, string(next))
			if inCompartment := i%4 != 1; i < 0 || skipped == inCompartment {
				t.Errorf("row %q (index %d) passed with skipped=%v", next, i, skipped)
			}
			passed = append(passed, string(next))
			if k++; k == 5 {
				stopAt = next
				return bulk.ErrStop
			}
			return nil
		}
		err := s.Scan(context.Background(), bulk.ScanRequest{Type: "Observation", Range: rng, Cursor: cursor, CompartmentOnly: true,
			Skipped: func(next bulk.Cursor) error { return pass(next, true) }},
			func(r *bulk.Resource, next bulk.Cursor) error { return pass(next, false) })
		if err != nil {
			t.Fatal(err)
		}
		if stopAt == "" {
			break
		}
		cursor = stopAt
	}
	if !slices.Equal(passed, sks) {
		t.Errorf("passed %v,\nwant %v", passed, sks)
	}
}
