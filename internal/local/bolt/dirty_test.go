package bolt_test

import (
	"bytes"
	"context"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// TestPutDirtyBound: one Put of a batch larger than the dirty-node bound is
// stored in several write transactions, none of which modifies many more
// nodes than the bound (a transaction ends after the resource that reaches
// it), and everything is stored as by one transaction.
func TestPutDirtyBound(t *testing.T) {
	ctx := context.Background()
	db, _ := mustOpen(t, bolt.Options{Shards: 4, NoSync: true})
	s := db.Resources()
	g := newGenerator(7, 600, false)
	// A tree of some size first, so that random keys land on many leaves.
	old, _ := g.records(4000, 10)
	mustPut(t, s, old, 4000)

	const bound = 64
	var (
		txs, stored int
		most        int64
	)
	defer bolt.SetMaxDirtyNodes(bound, func(n int, nodes int64) {
		txs++
		stored += n
		most = max(most, nodes)
	})()
	rs, _ := g.records(3000, 10)
	rs = append(rs, old[:500]...) // replacing stored versions too
	if err := s.Put(ctx, rs); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d resources in %d transactions, at most %d nodes each", len(rs), txs, most)
	if stored != len(rs) {
		t.Errorf("transactions stored %d resources, want %d", stored, len(rs))
	}
	if txs < 10 {
		t.Errorf("%d resources in %d transactions: the bound of %d nodes did not split the batch", len(rs), txs, bound)
	}
	// One resource modifies a leaf and its branches in each of 3 or 4
	// buckets: a few dozen nodes at most in a tree this size.
	if most > bound+32 {
		t.Errorf("a transaction modified %d nodes, bound %d", most, bound)
	}
	counts, err := s.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	if total != 7000 {
		t.Errorf("Count: %d resources, want 7000: %v", total, counts)
	}
	for _, r := range rs[len(rs)-600:] {
		got, err := s.Get(ctx, r.Type, r.ID)
		if err != nil {
			t.Fatalf("Get(%s/%s): %v", r.Type, r.ID, err)
		}
		if !bytes.Equal(got.Body, r.Body) {
			t.Fatalf("Get(%s/%s): body differs", r.Type, r.ID)
		}
	}
}

// TestResourceStoreSplitPuts runs the store's contract with every Put split
// into transactions of a resource or two.
func TestResourceStoreSplitPuts(t *testing.T) {
	defer bolt.SetMaxDirtyNodes(1, nil)()
	bulktest.RunResourceStoreTests(t, func(t *testing.T) bulk.ResourceStore {
		db, _ := mustOpen(t, bolt.Options{Shards: 2, NoSync: true})
		return db.Resources()
	})
}
