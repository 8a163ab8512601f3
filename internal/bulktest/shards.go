package bulktest

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	gocmp "github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/bulk"
)

// RunShardCountTests checks that what a store reads does not depend on
// its number of shards (issue 12: a store may split its hot keys by
// shard and merge them on read): the same data, written to a new store of
// each of counts shards made by open, lists, scans, counts, reads back its
// Groups and tombstones and its compartments exactly as the data says,
// each resource once, in the order the port documents. open must return a
// new, empty store with that many shards and arrange its cleanup.
func RunShardCountTests(t *testing.T, open func(t *testing.T, shards int) bulk.ResourceStore, counts ...int) {
	data, deletes := shardData()
	want := expectedView(data, deletes)
	for _, n := range counts {
		t.Run(fmt.Sprintf("%dShards", n), func(t *testing.T) {
			s := open(t, n)
			if got := s.Shards(); got != n {
				t.Fatalf("Shards() = %d, want %d", got, n)
			}
			for start := 0; start < len(data); start += 40 {
				mustPut(t, s, data[start:min(start+40, len(data))]...)
			}
			for _, d := range deletes {
				if err := s.Delete(context.Background(), bulk.Ref{Type: d.Type, ID: d.ID}, d.DeletedAt); err != nil {
					t.Fatal(err)
				}
			}
			if diff := gocmp.Diff(want, readView(t, s), cmpopts.EquateEmpty(), cmpopts.EquateApproxTime(0)); diff != "" {
				t.Errorf("with %d shards, the store reads (-want +got):\n%s", n, diff)
			}
		})
	}
}

// shardData is dataset() plus enough Observations and Group members to
// fill every shard of a large store, and deletions of some of them.
func shardData() ([]*bulk.Resource, []bulk.Tombstone) {
	data := dataset()
	var members []string
	for i := range 200 {
		members = append(members, fmt.Sprintf("q%03d", (i*71)%200))
	}
	data = append(data, group("payer", at(30), members...))
	for i := range 150 {
		id := fmt.Sprintf("y%03d", (i*53)%150)
		data = append(data, res("Observation", id, at(40+i%9), fmt.Sprintf("q%03d", i%11)))
	}
	var deletes []bulk.Tombstone
	for i := range 30 {
		deletes = append(deletes, tomb("Observation", fmt.Sprintf("y%03d", i*5), at(200+i%4)))
	}
	return data, deletes
}

// view is everything the read methods return about the shard data.
type view struct {
	List        map[string][]string // type: ids in List order
	Scan        map[string][]string // type: ids of all shards in (lastUpdated, id) order
	Count       map[string]int64
	Membership  map[string][]bulk.Member
	Tombstones  []bulk.Tombstone
	Compartment map[string][]string // patient: Type/id, sorted
}

var viewTypes = []string{"Patient", "Observation", "Condition", "Medication", "Group"}
var viewPatients = []string{"p1", "p2", "q000", "q007", "q199"}

// expectedView is what a store must read after putting data and deleting
// deletes.
func expectedView(data []*bulk.Resource, deletes []bulk.Tombstone) view {
	live := map[string]*bulk.Resource{}
	for _, r := range data {
		live[r.Type+"/"+r.ID] = r
	}
	v := view{List: map[string][]string{}, Scan: map[string][]string{}, Count: map[string]int64{}, Membership: map[string][]bulk.Member{}, Compartment: map[string][]string{}}
	for _, d := range deletes {
		r := live[d.Type+"/"+d.ID]
		delete(live, d.Type+"/"+d.ID)
		v.Tombstones = append(v.Tombstones, tomb(d.Type, d.ID, d.DeletedAt, r.Patients...))
	}
	slices.SortFunc(v.Tombstones, func(a, b bulk.Tombstone) int {
		return cmp.Or(a.DeletedAt.Compare(b.DeletedAt), strings.Compare(a.ID, b.ID))
	})
	var rs []*bulk.Resource
	for _, r := range live {
		rs = append(rs, r)
	}
	for _, typ := range viewTypes {
		of := filter(rs, func(r *bulk.Resource) bool { return r.Type == typ })
		v.Scan[typ] = ids(of)
		v.List[typ] = slices.Sorted(slices.Values(ids(of)))
		v.Count[typ] = int64(len(of))
	}
	for _, r := range rs {
		if r.Type == "Group" {
			var ms []bulk.Member
			for _, m := range r.Members {
				ms = append(ms, bulk.Member{ID: m, Since: r.LastUpdated})
			}
			v.Membership[r.ID] = ms
		}
		for _, p := range viewPatients {
			if slices.Contains(r.Patients, p) {
				v.Compartment[p] = append(v.Compartment[p], r.Type+"/"+r.ID)
			}
		}
	}
	for _, p := range viewPatients {
		slices.Sort(v.Compartment[p])
	}
	return v
}

// readView reads s's view, checking on the way that each resource comes
// once.
func readView(t *testing.T, s bulk.ResourceStore) view {
	t.Helper()
	ctx := context.Background()
	v := view{List: map[string][]string{}, Scan: map[string][]string{}, Count: map[string]int64{}, Membership: map[string][]bulk.Member{}, Compartment: map[string][]string{}}
	for _, typ := range viewTypes {
		v.List[typ] = listIDs(t, s, typ, "")
		v.Scan[typ] = ids(scanAll(t, s, typ, all, false))
	}
	counts, err := s.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range viewTypes {
		v.Count[typ] = counts[typ]
	}
	for _, g := range v.List["Group"] {
		ms, err := s.GroupMembership(ctx, g)
		if err != nil {
			t.Fatal(err)
		}
		v.Membership[g] = ms
		for _, m := range ms {
			if ok, err := s.IsGroupMember(ctx, g, m.ID); err != nil || !ok {
				t.Errorf("IsGroupMember(%s, %s) = %v, %v; want true", g, m.ID, ok, err)
			}
		}
	}
	if err := s.Tombstones(ctx, "Observation", all, func(ts bulk.Tombstone) error {
		v.Tombstones = append(v.Tombstones, ts)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, p := range viewPatients {
		v.Compartment[p] = compartmentIDs(t, s, p, nil)
	}
	return v
}
