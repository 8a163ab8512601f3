package dynamodb

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.ResourceStore = (*ResourceStore)(nil)

// ResourceStore is the DynamoDB bulk.ResourceStore (docs/aws.md, "DynamoDB
// layout"). One table holds, by partition key:
//
//	{type}#{shard}      sk {lastUpdated}#{id}  the resource: body (or a spill
//	                    pointer), its Patients and Members. Scans are key
//	                    ranges of one shard; shard = bulk.ShardOf(id,
//	                    Shards), as in every store.
//	_id/{type}#{shard}  sk {id}                the current version: its
//	                    lastUpdated, Patients, spill pointer and a write
//	                    token; or, once deleted, its tombstone's key. List
//	                    reads the shards merged in id order.
//	_types/{id}         sk {type}              TypeOf.
//	Patient/{id}        sk {type}#{id}         compartment index items, with
//	                    the resource's lastUpdated to find its item, and a
//	                    deflated copy of the body when small (inline.go).
//	_members/{group}#{shard}  sk {patient}     Group membership, with the
//	                    time the member joined; shard of the patient.
//	_deleted/{type}#{shard}   sk {deletedAt}#{id}  tombstones, with the
//	                    deleted version's Patients (none in items written
//	                    before tombstones kept them: unknown).
//	_count#{shard}      sk {type}#{shard}      live resources, for planning.
//	_clock, _imports                           the lastUpdated clock (clock.go).
//	_meta               sk layout, fhirVersion  the layout (layout.go) and
//	                    FHIR release (version.go).
//
// The keys with a #{shard} suffix are those every write of a type or
// Group would otherwise share (layout 2, layout.go); tables written before
// have them without it (layout 1) and keep working.
//
// Bodies (with Patients and Members) larger than SpillBytes are stored in
// Bodies, an ObjectStore, and the items keep a pointer: items stay under
// DynamoDB's 400 KB limit whatever the resource.
//
// A Put writes the new version's items, then commits it on its _id item
// with a conditional write on the write token read before (a concurrent Put
// of the same resource makes one of them retry), then deletes what the old
// version left. A crash in between leaves the old version's scan item next
// to the new one; re-running the same import repairs it. Count is kept with
// atomic counters updated after the commit, so a crash can leave it off by
// the resources in flight (planning only needs it approximately).
type ResourceStore struct {
	api    API
	table  string
	shards int
	opts   ResourceOptions

	layoutMu sync.Mutex
	lay      layout // zero until read (layout.go)
}

// ResourceOptions configure a ResourceStore.
type ResourceOptions struct {
	// Bodies holds spilled bodies; nil refuses resources that would spill.
	Bodies bulk.ObjectStore
	// SpillBytes is the size above which a body is spilled (default 64 KiB).
	SpillBytes int
	// Parallel is how many requests one Put or read sends at once, and
	// how many spilled bodies a scan reads at once (default 16).
	Parallel int
	// ImportLease is how long after its last stamp an import's clock item
	// holds transactionTime back (default DefaultImportLease): it must
	// outlast the longest write, and only a crashed import's lapses.
	ImportLease time.Duration
	// Now is the wall clock of lease times and of Settle (default
	// time.Now).
	Now func() time.Time
	// Settle is how long after a write this store assumes every
	// eventually consistent read reflects it (default DefaultSettle);
	// scans read eventually consistent pages only once their export's
	// kick-off is older (settle.go). Negative: every read strongly
	// consistent.
	Settle time.Duration
}

// DefaultSpillBytes is ResourceOptions.SpillBytes' default: above it an S3
// PUT is cheaper than the DynamoDB write units of the body, and the item
// stays far from the 400 KB limit.
const DefaultSpillBytes = 64 << 10

// NewResourceStore returns a store over the Resources table with shards
// shards per type. shards must be the same for the table's whole life.
func NewResourceStore(api API, table string, shards int, opts ResourceOptions) *ResourceStore {
	if opts.SpillBytes <= 0 {
		opts.SpillBytes = DefaultSpillBytes
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 16
	}
	return &ResourceStore{api: api, table: table, shards: max(shards, 1), opts: opts}
}

// Attribute names of resource items.
const (
	attrBody     = "body" // B: the stored JSON
	attrRef      = "ref"  // S: spilled object key
	attrPatients = "pt"   // L of S
	attrMembers  = "mb"   // L of S
	attrNPat     = "np"   // N: number of Patients, for CompartmentOnly
	attrLU       = "lu"   // S: lastUpdated in luLayout
	attrDel      = "del"  // S: tombstone sk of a deleted resource
	attrToken    = "tok"  // S: write token of the _id item
	attrDigest   = "dg"   // B: the live version's digest (versionDigest)
	attrSince    = "since"
	attrCount    = "n"
)

// luLayout formats instants fixed-width, so key order is time order.
const luLayout = "2006-01-02T15:04:05.000000000Z"

func lu(t time.Time) string { return t.UTC().Format(luLayout) }

func parseLU(s string) (time.Time, error) { return time.Parse(luLayout, s) }

// Shards returns the number of shards per type.
func (s *ResourceStore) Shards() int { return s.shards }

// shardOf is the shard of the resource with the given id: bulk.ShardOf,
// the shard function of every ResourceStore.
func (s *ResourceStore) shardOf(id string) int { return bulk.ShardOf(id, s.shards) }

func (s *ResourceStore) scanPK(typ string, shard int) string {
	return fmt.Sprintf("%s#%03d", typ, shard)
}
func scanSK(lastUpdated, id string) string { return lastUpdated + "#" + id }
func typesPK(id string) string             { return "_types/" + id }
func compartmentPK(patient string) string  { return "Patient/" + patient }

// countPK is the counters' partition (layout 1), or the prefix of theirs.
const countPK = "_count"

// Count returns the live resources per type from the counters.
func (s *ResourceStore) Count(ctx context.Context) (_ map[string]int64, err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.Count")
	l, err := s.layout(ctx, false)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	counts := map[string]int64{}
	err = parallel(ctx, s.opts.Parallel, l.parts(), func(part int) error {
		return queryAll(ctx, s.api, &ddb.QueryInput{
			TableName:                 aws.String(s.table),
			KeyConditionExpression:    aws.String("pk = :pk"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(l.countPK(part))},
			ConsistentRead:            aws.Bool(true),
		}, func(item map[string]types.AttributeValue) error {
			typ, _, _ := strings.Cut(getS(item, attrSK), "#")
			mu.Lock()
			counts[typ] += getN(item, attrCount)
			mu.Unlock()
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	for typ, c := range counts {
		if c <= 0 {
			delete(counts, typ)
		}
	}
	return counts, nil
}

// keyRange is the sort-key range of lastUpdated (or deletedAt) in rng:
// Since < t ≤ Until. ok is false for an empty range.
func keyRange(rng bulk.Range) (lo, hi string, ok bool) {
	// '$' sorts right after '#', the separator, so "{t}$" is above every
	// key at t and below every key after t.
	lo = " " // below every digit
	if !rng.Since.IsZero() {
		lo = lu(rng.Since) + "$"
	}
	hi = lu(rng.Until) + "$"
	return lo, hi, lo < hi
}

// stopped turns ErrStop into a clean end.
func stopped(err error) error {
	if errors.Is(err, bulk.ErrStop) {
		return nil
	}
	return err
}

func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return bulk.Wrapf(err, bulk.ETRANSIENT, "Request cancelled.")
	}
	return nil
}

// decode builds a resource from its scan item, reading a spilled body.
func (s *ResourceStore) decode(ctx context.Context, typ string, item map[string]types.AttributeValue) (*bulk.Resource, error) {
	var sp *spill
	if ref := getS(item, attrRef); ref != "" {
		var err error
		if sp, err = s.readSpill(ctx, ref); err != nil {
			return nil, err
		}
	}
	return decodeItem(typ, item, sp)
}

// decodeItem builds a resource from its scan item and, if the item is
// spilled, its spilled body sp.
func decodeItem(typ string, item map[string]types.AttributeValue, sp *spill) (*bulk.Resource, error) {
	sk := getS(item, attrSK)
	luStr, id, _ := strings.Cut(sk, "#")
	t, err := parseLU(luStr)
	if err != nil {
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Stored resource key %q is unreadable.", sk)
	}
	r := &bulk.Resource{Type: typ, ID: id, LastUpdated: t}
	if sp != nil {
		r.Body, r.Patients, r.Members = sp.body, sp.Patients, sp.Members
		return r, nil
	}
	r.Body = getB(item, attrBody)
	if r.Body == nil {
		r.Body = []byte{}
	}
	r.Patients, r.Members = getSS(item, attrPatients), getSS(item, attrMembers)
	return r, nil
}

// current is a resource's _id item.
type current struct {
	typ, id  string
	exists   bool // an _id item exists (live or deleted)
	live     bool
	lu       string
	ref      string
	patients []string
	del      string // tombstone sk when deleted
	token    string
	digest   []byte // none in items written before digests were kept
}

func (s *ResourceStore) decodeCurrent(typ, id string, item map[string]types.AttributeValue) *current {
	c := &current{typ: typ, id: id}
	if len(item) == 0 {
		return c
	}
	c.exists = true
	c.del = getS(item, attrDel)
	c.live = c.del == ""
	c.lu, c.ref, c.token = getS(item, attrLU), getS(item, attrRef), getS(item, attrToken)
	c.patients = getSS(item, attrPatients)
	c.digest = getB(item, attrDigest)
	return c
}

func (s *ResourceStore) getCurrent(ctx context.Context, l layout, typ, id string) (*current, error) {
	out, err := s.api.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.table), Key: key2(l.idPK(typ, s.shardOf(id)), id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, translate(err, "get resource failed")
	}
	return s.decodeCurrent(typ, id, out.Item), nil
}

// oldPatients returns the Patients of the current version, reading its
// spilled header when they were spilled with the body.
func (s *ResourceStore) oldPatients(ctx context.Context, c *current) ([]string, error) {
	if !c.live || c.ref == "" || c.patients != nil {
		return c.patients, nil
	}
	sp, err := s.readSpill(ctx, c.ref)
	if bulk.ErrorCode(err) == bulk.ENOTFOUND {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return sp.Patients, nil
}

// Get returns one live resource. Returns ENOTFOUND if it does not exist or
// was deleted.
func (s *ResourceStore) Get(ctx context.Context, typ, id string) (_ *bulk.Resource, err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.Get(%s/%s)", typ, id)
	notFound := bulk.Errorf(bulk.ENOTFOUND, "%s/%s not found.", typ, id)
	if typ == "" || id == "" {
		return nil, notFound
	}
	l, err := s.layout(ctx, false)
	if err != nil {
		return nil, err
	}
	c, err := s.getCurrent(ctx, l, typ, id)
	if err != nil {
		return nil, err
	}
	if !c.live {
		return nil, notFound
	}
	out, err := s.api.GetItem(ctx, &ddb.GetItemInput{
		TableName: aws.String(s.table), Key: key2(s.scanPK(typ, s.shardOf(id)), scanSK(c.lu, id)), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, translate(err, "get resource failed")
	}
	if len(out.Item) == 0 {
		return nil, notFound
	}
	return s.decode(ctx, typ, out.Item)
}

// TypeOf returns the types under which id is stored.
func (s *ResourceStore) TypeOf(ctx context.Context, id string) (_ []string, err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.TypeOf(%s)", id)
	var typs []string
	if id == "" {
		return nil, nil
	}
	err = queryAll(ctx, s.api, &ddb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(typesPK(id))},
		ConsistentRead:            aws.Bool(true),
	}, func(item map[string]types.AttributeValue) error {
		typs = append(typs, getS(item, attrSK))
		return nil
	})
	return typs, err
}

// idSet is ids as a set: membership tests of Groups with a million members
// stay linear.
func idSet(ids []string) map[string]bool {
	set := make(map[string]bool, len(ids))
	for _, id := range ids {
		set[id] = true
	}
	return set
}

// counter names the counter of one type's shard.
type counter struct {
	typ   string
	shard int
}

// count adds deltas to the counters.
func (s *ResourceStore) count(ctx context.Context, l layout, deltas map[counter]int64) error {
	keys := slices.SortedFunc(maps.Keys(deltas), func(a, b counter) int {
		return cmp.Or(strings.Compare(a.typ, b.typ), cmp.Compare(a.shard, b.shard))
	})
	return parallel(ctx, s.opts.Parallel, len(keys), func(i int) error {
		k := keys[i]
		d := deltas[k]
		if d == 0 {
			return nil
		}
		_, err := s.api.UpdateItem(ctx, &ddb.UpdateItemInput{
			TableName:                 aws.String(s.table),
			Key:                       key2(l.countPK(k.shard), s.scanPK(k.typ, k.shard)),
			UpdateExpression:          aws.String("ADD n :d"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":d": n(d)},
		})
		return translate(err, "count failed")
	})
}

// writeParallel batch-writes reqs with up to Parallel requests at once.
func (s *ResourceStore) writeParallel(ctx context.Context, reqs []types.WriteRequest) error {
	batches := (len(reqs) + maxBatchWrite - 1) / maxBatchWrite
	return parallel(ctx, s.opts.Parallel, batches, func(i int) error {
		return batchWrite(ctx, s.api, s.table, reqs[i*maxBatchWrite:min((i+1)*maxBatchWrite, len(reqs))])
	})
}

// parallel calls fn(0..n-1) with at most limit calls at once and returns
// the first error; after an error no new calls start.
func parallel(ctx context.Context, limit, n int, fn func(i int) error) error {
	if n == 0 {
		return nil
	}
	if n == 1 || limit <= 1 {
		for i := range n {
			if err := fn(i); err != nil {
				return err
			}
		}
		return nil
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for range min(limit, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if first != nil || next >= n || ctx.Err() != nil {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first == nil {
		first = ctxErr(ctx)
	}
	return first
}
