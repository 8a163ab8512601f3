package dynamodb

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"maps"
	"math/rand/v2"
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
//	                    ranges of one shard; shard = FNV-1a(id) mod Shards,
//	                    as in the embedded store.
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

func (s *ResourceStore) shardOf(id string) int {
	h := fnv.New32a()
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(s.shards))
}

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

// Scan visits a shard's resources in (lastUpdated, id) order after the
// cursor, which is the sort key of the last resource visited. A
// CompartmentOnly scan reads every row of the range and passes those in no
// compartment to req.Skipped, if set. Pages are strongly consistent until
// nothing can be missed without (settle.go): that holds for a range that
// ends at or before a transactionTime of the store's clock, as exports'
// and cohorts' do.
func (s *ResourceStore) Scan(ctx context.Context, req bulk.ScanRequest, fn bulk.Visit) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.Scan(%s, shard %d)", req.Type, req.Shard)
	if req.Shard < 0 || req.Shard >= s.shards {
		return bulk.Errorf(bulk.EINVALID, "Shard %d is out of range [0, %d).", req.Shard, s.shards)
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	lo, hi, ok := keyRange(req.Range)
	if !ok || req.Type == "" {
		return nil
	}
	pk := s.scanPK(req.Type, req.Shard)
	in := &ddb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(pk), ":lo": sv(lo), ":hi": sv(hi)},
	}
	if c := string(req.Cursor); c != "" {
		if c >= hi {
			return nil
		}
		if c > lo {
			in.ExclusiveStartKey = key2(pk, c)
		}
	}
	// Rows are decoded and visited a window at a time (visitEntries), so
	// that the window's spilled bodies are read at once.
	var (
		win     []entry
		spilled int
	)
	flush := func() error {
		err := s.visitEntries(ctx, win, req.Skipped, fn)
		win, spilled = win[:0], 0
		return err
	}
	cons := &consistency{s: s}
	err = allPages(ctx, "query failed", in.ExclusiveStartKey, func(start map[string]types.AttributeValue) ([]map[string]types.AttributeValue, map[string]types.AttributeValue, error) {
		in.ExclusiveStartKey = start
		in.ConsistentRead = aws.Bool(cons.strong(ctx))
		out, err := s.api.Query(ctx, in)
		if err != nil {
			return nil, nil, err
		}
		return out.Items, out.LastEvaluatedKey, nil
	}, func(item map[string]types.AttributeValue) error {
		if err := ctxErr(ctx); err != nil {
			return err
		}
		e := entry{typ: req.Type, item: item, cursor: bulk.Cursor(getS(item, attrSK))}
		if req.CompartmentOnly && getN(item, attrNPat) == 0 {
			if req.Skipped == nil {
				return nil
			}
			e.skip = true
		}
		win = append(win, e)
		if e.spilled() {
			spilled++
		}
		if spilled == s.opts.Parallel || len(win) == maxBatchGet {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return stopped(err)
}

// entry is a scanned row waiting to be decoded and visited, or passed to
// ScanRequest.Skipped with skip.
type entry struct {
	typ    string
	item   map[string]types.AttributeValue
	cursor bulk.Cursor
	skip   bool
	// inline: item is a compartment item with a copy of the body.
	inline bool
}

func (e *entry) spilled() bool { return !e.skip && !e.inline && getS(e.item, attrRef) != "" }

// decode builds the resource of e, whose spilled body (if any) is sp.
func (e *entry) decode(sp *spill) (*bulk.Resource, error) {
	if e.inline {
		return decodeInline(e.typ, e.item)
	}
	return decodeItem(e.typ, e.item, sp)
}

// visitEntries decodes es and visits them in order (or passes them to
// skipped). The spilled bodies among them are read opts.Parallel at a
// time, a window of es at a time: one by one, every spilled body would cost
// a whole S3 GetObject round trip, tens of milliseconds
// (docs.aws.amazon.com/AmazonS3/latest/userguide/optimizing-performance.html),
// and an export item of large resources would spend its budget waiting.
// A visit that stops the scan wastes at most the rest of its window.
func (s *ResourceStore) visitEntries(ctx context.Context, es []entry, skipped func(bulk.Cursor) error, fn bulk.Visit) error {
	for len(es) > 0 {
		var refs []int // indexes in win of the spilled entries
		w := 0
		for ; w < len(es); w++ {
			if es[w].spilled() {
				if len(refs) == s.opts.Parallel {
					break
				}
				refs = append(refs, w)
			}
		}
		win := es[:w]
		es = es[w:]
		spills := make([]*spill, len(win))
		err := parallel(ctx, s.opts.Parallel, len(refs), func(k int) error {
			i := refs[k]
			sp, err := s.readSpill(ctx, getS(win[i].item, attrRef))
			spills[i] = sp
			return err
		})
		if err != nil {
			return err
		}
		for i := range win {
			e := &win[i]
			if err := ctxErr(ctx); err != nil {
				return err
			}
			if e.skip {
				if err := skipped(e.cursor); err != nil {
					return err
				}
				continue
			}
			r, err := e.decode(spills[i])
			if err != nil {
				return err
			}
			if err := fn(r, e.cursor); err != nil {
				return err
			}
		}
	}
	return nil
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

// spill is a spilled resource: a JSON header line with the index lists,
// then the body.
type spill struct {
	Patients []string `json:"patients,omitempty"`
	Members  []string `json:"members,omitempty"`
	body     []byte
}

func (s *ResourceStore) readSpill(ctx context.Context, ref string) (*spill, error) {
	if s.opts.Bodies == nil {
		return nil, bulk.Errorf(bulk.EINTERNAL, "A resource body is spilled but no body store is configured.")
	}
	o, err := s.opts.Bodies.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer o.Close()
	raw, err := io.ReadAll(o)
	if err != nil {
		return nil, bulk.Wrapf(err, bulk.ETRANSIENT, "Reading a spilled body failed.")
	}
	head, body, ok := bytes.Cut(raw, []byte("\n"))
	var sp spill
	if !ok || json.Unmarshal(head, &sp) != nil {
		return nil, bulk.Errorf(bulk.EINTERNAL, "Spilled body %s is unreadable.", ref)
	}
	sp.body = body
	return &sp, nil
}

func (s *ResourceStore) writeSpill(ctx context.Context, ref string, r *bulk.Resource) error {
	if s.opts.Bodies == nil {
		return bulk.Errorf(bulk.EINVALID, "%s/%s is larger than %d bytes and no body store is configured.", r.Type, r.ID, s.opts.SpillBytes)
	}
	head, err := json.Marshal(spill{Patients: r.Patients, Members: r.Members})
	if err != nil {
		return err
	}
	w, err := s.opts.Bodies.Create(ctx, ref)
	if err != nil {
		return err
	}
	defer w.Abort()
	for _, p := range [][]byte{head, []byte("\n"), r.Body} {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	return w.Close()
}

// spillKey names a version's spilled body. The id is hex-encoded: FHIR ids
// may hold ".." and other sequences object keys refuse.
func spillKey(typ, id, lastUpdated string) string {
	return typ + "/" + hex.EncodeToString([]byte(id)) + "/" + strings.NewReplacer(":", "", ".", "").Replace(lastUpdated)
}

// Compartment visits the resources of the types (all when empty) in a
// Patient's compartment, by type and id: from the copies its index items
// carry, or for those without one from their scan items (inline.go).
func (s *ResourceStore) Compartment(ctx context.Context, patientID string, typs []string, fn bulk.Visit) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.Compartment(%s)", patientID)
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if patientID == "" {
		return nil
	}
	prefixes := []string{""}
	if len(typs) > 0 {
		prefixes = slices.Compact(slices.Sorted(slices.Values(typs)))
		for i := range prefixes {
			prefixes[i] += "#"
		}
	}
	for _, prefix := range prefixes {
		in := &ddb.QueryInput{
			TableName:                 aws.String(s.table),
			KeyConditionExpression:    aws.String("pk = :pk"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(compartmentPK(patientID))},
			ConsistentRead:            aws.Bool(true),
		}
		if prefix != "" {
			in.KeyConditionExpression = aws.String("pk = :pk AND begins_with(sk, :p)")
			in.ExpressionAttributeValues[":p"] = sv(prefix)
		}
		var refs []scanRef
		err := queryAll(ctx, s.api, in, func(item map[string]types.AttributeValue) error {
			typ, id, _ := strings.Cut(getS(item, attrSK), "#")
			r := scanRef{typ: typ, id: id, lu: getS(item, attrLU)}
			if _, ok := item[attrInline]; ok {
				r.copy = item
			}
			refs = append(refs, r)
			return nil
		})
		if err != nil {
			return err
		}
		if err := stopped(s.visitRefs(ctx, refs, fn)); err != nil {
			return err
		}
	}
	return nil
}

// scanRef points at a resource's scan item, unless it holds a compartment
// item with a copy of the resource (copy), which is read instead.
type scanRef struct {
	typ, id, lu string
	copy        map[string]types.AttributeValue
}

// visitRefs reads the scan items of refs in batches and visits them in the
// order of refs (spilled bodies read concurrently, see visitEntries),
// skipping any that a concurrent Put or Delete removed; refs with a copy
// are visited from it.
func (s *ResourceStore) visitRefs(ctx context.Context, refs []scanRef, fn bulk.Visit) error {
	for start := 0; start < len(refs); start += maxBatchGet {
		if err := s.visitRefsPage(ctx, refs[start:min(start+maxBatchGet, len(refs))], fn); err != nil {
			return err
		}
	}
	return nil
}

// visitRefsPage is visitRefs for at most maxBatchGet refs.
func (s *ResourceStore) visitRefsPage(ctx context.Context, page []scanRef, fn bulk.Visit) error {
	var keys []map[string]types.AttributeValue
	for _, r := range page {
		if r.copy == nil {
			keys = append(keys, key2(s.scanPK(r.typ, s.shardOf(r.id)), scanSK(r.lu, r.id)))
		}
	}
	found := make(map[string]map[string]types.AttributeValue, len(keys))
	err := batchGet(ctx, s.api, s.table, keys, func(item map[string]types.AttributeValue) error {
		found[getS(item, attrPK)+"|"+getS(item, attrSK)] = item
		return nil
	})
	if err != nil {
		return err
	}
	es := make([]entry, 0, len(page))
	for _, r := range page {
		cursor := bulk.Cursor(r.typ + "/" + r.id)
		if r.copy != nil {
			es = append(es, entry{typ: r.typ, item: r.copy, cursor: cursor, inline: true})
		} else if item, ok := found[s.scanPK(r.typ, s.shardOf(r.id))+"|"+scanSK(r.lu, r.id)]; ok {
			es = append(es, entry{typ: r.typ, item: item, cursor: cursor})
		}
	}
	return s.visitEntries(ctx, es, nil, fn)
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

// GroupMembers returns a Group's member Patient ids in id order. Returns
// ENOTFOUND if the Group does not exist.
func (s *ResourceStore) GroupMembers(ctx context.Context, groupID string) (_ []string, err error) {
	ms, err := s.GroupMembership(ctx, groupID)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ms))
	for i, m := range ms {
		ids[i] = m.ID
	}
	return ids, nil
}

// GroupMembership returns a Group's members with their join times, in id
// order. Returns ENOTFOUND if the Group does not exist.
func (s *ResourceStore) GroupMembership(ctx context.Context, groupID string) (_ []bulk.Member, err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.GroupMembership(%s)", groupID)
	if groupID == "" {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "Group/%s not found.", groupID)
	}
	l, err := s.layout(ctx, false)
	if err != nil {
		return nil, err
	}
	c, err := s.getCurrent(ctx, l, "Group", groupID)
	if err != nil {
		return nil, err
	}
	if !c.live {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "Group/%s not found.", groupID)
	}
	return s.membership(ctx, l, groupID)
}

// membership reads a Group's membership items, every shard at once, and
// returns them in id order.
func (s *ResourceStore) membership(ctx context.Context, l layout, groupID string) ([]bulk.Member, error) {
	shards := make([][]bulk.Member, l.parts())
	err := parallel(ctx, s.opts.Parallel, len(shards), func(part int) error {
		return queryAll(ctx, s.api, &ddb.QueryInput{
			TableName:                 aws.String(s.table),
			KeyConditionExpression:    aws.String("pk = :pk"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(l.membersPK(groupID, part))},
			ConsistentRead:            aws.Bool(true),
		}, func(item map[string]types.AttributeValue) error {
			since, _ := parseLU(getS(item, attrSince))
			shards[part] = append(shards[part], bulk.Member{ID: getS(item, attrSK), Since: since})
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	ms := slices.Concat(shards...)
	if ms == nil {
		ms = []bulk.Member{}
	}
	slices.SortFunc(ms, func(a, b bulk.Member) int { return strings.Compare(a.ID, b.ID) })
	return ms, nil
}

// IsGroupMember reports whether patientID is a member of the Group; an
// unknown Group has no members.
func (s *ResourceStore) IsGroupMember(ctx context.Context, groupID, patientID string) (_ bool, err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.IsGroupMember(%s, %s)", groupID, patientID)
	if groupID == "" || patientID == "" {
		return false, nil
	}
	l, err := s.layout(ctx, false)
	if err != nil {
		return false, err
	}
	out, err := s.api.GetItem(ctx, &ddb.GetItemInput{
		TableName: aws.String(s.table), Key: key2(l.membersPK(groupID, s.shardOf(patientID)), patientID), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return false, translate(err, "get member failed")
	}
	return len(out.Item) > 0, nil
}

// Tombstones visits deletions of typ in rng in (deletedAt, id) order, with
// the Patients each tombstone item holds: the shards' key ranges merged.
func (s *ResourceStore) Tombstones(ctx context.Context, typ string, rng bulk.Range, fn func(bulk.Tombstone) error) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.Tombstones(%s)", typ)
	lo, hi, ok := keyRange(rng)
	if !ok || typ == "" {
		return nil
	}
	l, err := s.layout(ctx, false)
	if err != nil {
		return err
	}
	ins := make([]*ddb.QueryInput, l.parts())
	for part := range ins {
		ins[part] = &ddb.QueryInput{
			TableName:                 aws.String(s.table),
			KeyConditionExpression:    aws.String("pk = :pk AND sk BETWEEN :lo AND :hi"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(l.deletedPK(typ, part)), ":lo": sv(lo), ":hi": sv(hi)},
			ConsistentRead:            aws.Bool(true),
		}
	}
	return stopped(s.mergeQueries(ctx, ins, func(item map[string]types.AttributeValue) error {
		at, id, _ := strings.Cut(getS(item, attrSK), "#")
		t, err := parseLU(at)
		if err != nil {
			return bulk.Wrapf(err, bulk.EINTERNAL, "Stored tombstone is unreadable.")
		}
		return fn(bulk.Tombstone{Type: typ, ID: id, DeletedAt: t, Patients: getSS(item, attrPatients)})
	}))
}

// listPage is the page size of each shard's Query in List: a reader that
// stops after a few (`GET /Group`) does not pay for a megabyte per shard.
const listPage = 250

// List visits the live resources of typ in id order after afterID: the
// shards of its _id key merged.
func (s *ResourceStore) List(ctx context.Context, typ string, afterID string, fn bulk.Visit) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.List(%s, %q)", typ, afterID)
	if err := ctxErr(ctx); err != nil {
		return err
	}
	if typ == "" {
		return nil
	}
	l, err := s.layout(ctx, false)
	if err != nil {
		return err
	}
	ins := make([]*ddb.QueryInput, l.parts())
	for part := range ins {
		in := &ddb.QueryInput{
			TableName:                 aws.String(s.table),
			KeyConditionExpression:    aws.String("pk = :pk"),
			ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(l.idPK(typ, part))},
			ConsistentRead:            aws.Bool(true),
			Limit:                     aws.Int32(listPage),
		}
		if afterID != "" {
			in.KeyConditionExpression = aws.String("pk = :pk AND sk > :a")
			in.ExpressionAttributeValues[":a"] = sv(afterID)
		}
		ins[part] = in
	}
	var refs []scanRef
	flush := func() error {
		err := s.visitRefs(ctx, refs, fn)
		refs = refs[:0]
		return err
	}
	err = s.mergeQueries(ctx, ins, func(item map[string]types.AttributeValue) error {
		c := s.decodeCurrent(typ, getS(item, attrSK), item)
		if !c.live {
			return nil
		}
		refs = append(refs, scanRef{typ: typ, id: c.id, lu: c.lu})
		if len(refs) == maxBatchGet {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	return stopped(err)
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

// version is one resource of a Put with what it replaces.
type version struct {
	// all are the versions of the resource in the Put, in order, with
	// their digests; r is the one written, the last that is not the same
	// as the one before it (see outcomes).
	all     []*bulk.Resource
	digests [][]byte
	r       *bulk.Resource
	lu      string
	shard   int
	ref     string    // spill key, if spilled
	inline  []byte    // the compartment items' copy of the body (inline.go)
	joined  []joining // Groups: members with join times
	old     *current
	oldPts  []string
	// outcome is what Put does with each of all, given old.
	outcome []bulk.PutOutcome
	// contended is set once a commit of this resource lost to another
	// writer: its index items are written again after its commit.
	contended bool
}

// outcomes sets v.outcome, what Put does with each of v.all given v.old,
// and returns the index of the version to write, or -1 if all are the
// same as the live one (which are set as done).
func (v *version) outcomes() int {
	if v.outcome == nil {
		v.outcome = make([]bulk.PutOutcome, len(v.all))
	}
	prev, last := []byte(nil), -1
	if v.old.live {
		prev = v.old.digest
	}
	for i, d := range v.digests {
		switch {
		case i == 0 && !v.old.live:
			v.outcome[i] = bulk.PutNew
		case prev != nil && bytes.Equal(d, prev):
			v.outcome[i] = bulk.PutUnchanged
		default:
			v.outcome[i] = bulk.PutReplaced
		}
		if v.outcome[i] != bulk.PutUnchanged {
			last = i
		}
		prev = d
	}
	if last < 0 {
		for _, r := range v.all {
			r.SetOutcome(bulk.PutUnchanged)
		}
	}
	return last
}

// versionDigest identifies a version's content, Patients and Members
// (bulk.SameContent): SHA-256 cut to 128 bits, as long as a UUID.
func versionDigest(r *bulk.Resource) []byte {
	h := sha256.New()
	h.Write(bulk.AppendContent(nil, r.Body))
	for _, ids := range [][]string{r.Patients, r.Members} {
		h.Write(binary.AppendUvarint(nil, uint64(len(ids))))
		for _, id := range ids {
			h.Write(binary.AppendUvarint(nil, uint64(len(id))))
			h.Write([]byte(id))
		}
	}
	return h.Sum(nil)[:16]
}

type joining struct {
	id    string
	since string
}

// maxPutAttempts bounds how often one resource's commit is retried when
// concurrent writers of the same resource keep winning.
const maxPutAttempts = 30

// Put stores resources: the last of several versions of one resource in rs
// wins (Groups keep the join times of the earlier ones). A version the
// same as the live one is not written (bulk.ResourceSink): the _id item
// it reads anyway holds the live version's digest, so telling costs no
// read.
func (s *ResourceStore) Put(ctx context.Context, rs []*bulk.Resource) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.Put(%d resources)", len(rs))
	for _, r := range rs {
		if r.Type == "" || r.ID == "" {
			return bulk.Errorf(bulk.EINVALID, "A resource needs a type and an id.")
		}
		if strings.ContainsAny(r.Type, "#/") {
			return bulk.Errorf(bulk.EINVALID, "Resource type %q is invalid.", r.Type)
		}
	}
	if err := ctxErr(ctx); err != nil {
		return err
	}
	l, err := s.layout(ctx, true)
	if err != nil {
		return err
	}
	// Every version of each resource, in order: the one written is the
	// last that changes anything, and Groups keep the join times of the
	// earlier ones.
	type key struct{ typ, id string }
	byKey := map[key]*version{}
	var vs []*version
	for _, r := range rs {
		v := byKey[key{r.Type, r.ID}]
		if v == nil {
			v = &version{shard: s.shardOf(r.ID)}
			byKey[key{r.Type, r.ID}] = v
			vs = append(vs, v)
		}
		v.all = append(v.all, r)
		v.digests = append(v.digests, versionDigest(r))
	}
	for attempt := 1; len(vs) > 0; attempt++ {
		lost, err := s.put(ctx, l, vs)
		if err != nil {
			return err
		}
		if len(lost) > 0 && attempt >= maxPutAttempts {
			s.abandon(ctx, l, lost)
			return bulk.Errorf(bulk.ETRANSIENT, "%s/%s is being written concurrently; try again.", lost[0].r.Type, lost[0].r.ID)
		}
		for _, v := range lost {
			v.contended = true
		}
		if len(lost) > 0 {
			// Jittered, so writers that keep colliding spread out.
			d := time.Duration(rand.Int64N(int64(5*time.Millisecond) << min(attempt, 6)))
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return ctxErr(ctx)
			case <-t.C:
			}
		}
		vs = lost
	}
	return nil
}

// abandon undoes what a Put that gave up wrote for vs: its scan items, its
// compartment items where the version that won is not (they may carry a
// copy of the lost version, which readers would take for stored), and the
// compartment items it may have taken from the version that won
// (pointers: the winner's copy is not at hand).
func (s *ResourceStore) abandon(ctx context.Context, l layout, vs []*version) {
	var reqs []types.WriteRequest
	for _, v := range vs {
		c, err := s.getCurrent(ctx, l, v.r.Type, v.r.ID)
		if err != nil {
			continue
		}
		var winners []string // the compartments of the live version
		if c.live {
			if winners, err = s.oldPatients(ctx, c); err != nil {
				continue
			}
		}
		if !c.live || c.lu != v.lu {
			reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key2(s.scanPK(v.r.Type, v.shard), scanSK(v.lu, v.r.ID))}})
			won := idSet(winners)
			for _, p := range slices.Compact(slices.Sorted(slices.Values(v.r.Patients))) {
				if !won[p] {
					reqs = append(reqs, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key2(compartmentPK(p), v.r.Type+"#"+v.r.ID)}})
				}
			}
		}
		if c.live {
			for _, p := range slices.Compact(slices.Sorted(slices.Values(winners))) {
				reqs = append(reqs, types.WriteRequest{PutRequest: &types.PutRequest{Item: map[string]types.AttributeValue{
					attrPK: sv(compartmentPK(p)), attrSK: sv(v.r.Type + "#" + v.r.ID), attrLU: sv(c.lu),
				}}})
			}
		}
	}
	_ = s.writeParallel(ctx, reqs)
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

// put writes vs once and returns the versions whose commit lost to a
// concurrent writer.
func (s *ResourceStore) put(ctx context.Context, l layout, vs []*version) ([]*version, error) {
	// Read what each replaces.
	keys := make([]map[string]types.AttributeValue, len(vs))
	byKey := make(map[string]*version, len(vs))
	for i, v := range vs {
		r := v.all[0]
		pk := l.idPK(r.Type, v.shard)
		keys[i] = key2(pk, r.ID)
		byKey[pk+"|"+r.ID] = v
		v.old = &current{typ: r.Type, id: r.ID}
	}
	if err := batchGet(ctx, s.api, s.table, keys, func(item map[string]types.AttributeValue) error {
		v := byKey[getS(item, attrPK)+"|"+getS(item, attrSK)]
		v.old = s.decodeCurrent(v.old.typ, v.old.id, item)
		return nil
	}); err != nil {
		return nil, err
	}
	// Versions the same as the live one are done: nothing to write.
	vs = slices.DeleteFunc(slices.Clone(vs), func(v *version) bool {
		last := v.outcomes()
		if last < 0 {
			return true
		}
		v.r, v.lu, v.ref = v.all[last], lu(v.all[last].LastUpdated), ""
		return false
	})
	err := parallel(ctx, s.opts.Parallel, len(vs), func(i int) error {
		v := vs[i]
		pts, err := s.oldPatients(ctx, v.old)
		if err != nil {
			return err
		}
		v.oldPts = pts
		if v.r.Type == "Group" {
			if err := s.joinTimes(ctx, l, v, v.all[:slices.Index(v.all, v.r)+1]); err != nil {
				return err
			}
		}
		if spillSize(v.r) > s.opts.SpillBytes {
			v.ref = spillKey(v.r.Type, v.r.ID, v.lu)
			if err := s.writeSpill(ctx, v.ref, v.r); err != nil {
				return err
			}
		}
		v.inline = inlineCopy(v.r, v.ref != "")
		return nil
	})
	if err != nil {
		return nil, err
	}

	// 1. The new version's items: scan item, compartment index items,
	// membership items, TypeOf item. Overwriting is idempotent.
	var writes []types.WriteRequest
	put := func(item map[string]types.AttributeValue) {
		writes = append(writes, types.WriteRequest{PutRequest: &types.PutRequest{Item: item}})
	}
	for _, v := range vs {
		r := v.r
		item := map[string]types.AttributeValue{
			attrPK: sv(s.scanPK(r.Type, v.shard)), attrSK: sv(scanSK(v.lu, r.ID)), attrNPat: n(int64(len(r.Patients))),
		}
		if v.ref != "" {
			item[attrRef] = sv(v.ref)
		} else {
			item[attrBody] = b(bytes.Clone(r.Body))
			if len(r.Patients) > 0 {
				item[attrPatients] = strList(r.Patients)
			}
			if len(r.Members) > 0 {
				item[attrMembers] = strList(r.Members)
			}
		}
		put(item)
		for _, p := range slices.Compact(slices.Sorted(slices.Values(r.Patients))) {
			put(compartmentItem(p, v))
		}
		for _, m := range v.joined {
			put(map[string]types.AttributeValue{attrPK: sv(l.membersPK(r.ID, s.shardOf(m.id))), attrSK: sv(m.id), attrSince: sv(m.since)})
		}
		if !v.old.live {
			put(map[string]types.AttributeValue{attrPK: sv(typesPK(r.ID)), attrSK: sv(r.Type)})
		}
	}
	if err := s.writeParallel(ctx, writes); err != nil {
		return nil, err
	}

	// 2. Commit each on its _id item, conditional on what was read.
	var (
		mu        sync.Mutex
		lost, won []*version
	)
	err = parallel(ctx, s.opts.Parallel, len(vs), func(i int) error {
		v := vs[i]
		item := map[string]types.AttributeValue{
			attrPK: sv(l.idPK(v.r.Type, v.shard)), attrSK: sv(v.r.ID), attrLU: sv(v.lu), attrToken: sv(randomID()),
			attrDigest: b(v.digests[slices.Index(v.all, v.r)]),
		}
		if v.ref != "" {
			item[attrRef] = sv(v.ref)
		} else if len(v.r.Patients) > 0 {
			item[attrPatients] = strList(v.r.Patients)
		}
		err := s.commit(ctx, item, v.old)
		mu.Lock()
		defer mu.Unlock()
		switch {
		case isConditionFailed(err):
			lost = append(lost, v)
			return nil
		case err != nil:
			return translate(err, "commit failed")
		}
		won = append(won, v)
		for i, r := range v.all {
			r.SetOutcome(v.outcome[i])
		}
		return nil
	})
	if err != nil {
		return nil, err
	}

	// 3. Remove what the replaced versions left, and count.
	var dels []types.WriteRequest
	var spills []string
	del := func(pk, sk string) {
		dels = append(dels, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key2(pk, sk)}})
	}
	counts := map[counter]int64{}
	for _, v := range won {
		r, old := v.r, v.old
		if old.del != "" {
			del(l.deletedPK(r.Type, v.shard), old.del)
		}
		if !old.live {
			counts[counter{r.Type, v.shard}]++
			continue
		}
		if old.lu != v.lu {
			del(s.scanPK(r.Type, v.shard), scanSK(old.lu, r.ID))
		}
		if old.ref != "" && old.ref != v.ref {
			spills = append(spills, old.ref)
		}
		if len(v.oldPts) > 0 {
			now := idSet(r.Patients)
			for _, p := range slices.Compact(slices.Sorted(slices.Values(v.oldPts))) {
				if !now[p] {
					del(compartmentPK(p), r.Type+"#"+r.ID)
				}
			}
		}
	}
	// A writer that raced this one may have deleted index items of this
	// version while removing its own predecessor's: write them again.
	for _, v := range won {
		if v.contended {
			for _, p := range slices.Compact(slices.Sorted(slices.Values(v.r.Patients))) {
				dels = append(dels, types.WriteRequest{PutRequest: &types.PutRequest{Item: compartmentItem(p, v)}})
			}
		}
	}
	if err := s.writeParallel(ctx, dels); err != nil {
		return nil, err
	}
	for _, v := range won {
		if v.r.Type == "Group" && v.old.live {
			if err := s.dropMembers(ctx, l, v.r.ID, v.r.Members); err != nil {
				return nil, err
			}
		}
	}
	s.deleteSpills(ctx, spills)
	if err := s.count(ctx, l, counts); err != nil {
		return nil, err
	}
	return lost, nil
}

// commit writes a resource's _id item if it is still what was read.
func (s *ResourceStore) commit(ctx context.Context, item map[string]types.AttributeValue, old *current) error {
	in := &ddb.PutItemInput{TableName: aws.String(s.table), Item: item}
	if old.exists {
		in.ConditionExpression = aws.String("tok = :tok")
		in.ExpressionAttributeValues = map[string]types.AttributeValue{":tok": sv(old.token)}
	} else {
		in.ConditionExpression = aws.String("attribute_not_exists(pk)")
	}
	_, err := s.api.PutItem(ctx, in)
	return err
}

// joinTimes sets v.joined: the members of the new version of a Group with
// their join times. Members the live stored version lists keep theirs;
// versions earlier in the same Put count as stored in turn.
func (s *ResourceStore) joinTimes(ctx context.Context, l layout, v *version, versions []*bulk.Resource) error {
	was := map[string]string{}
	if v.old.live {
		ms, err := s.membership(ctx, l, v.r.ID)
		if err != nil {
			return err
		}
		for _, m := range ms {
			was[m.ID] = lu(m.Since)
		}
	}
	for _, g := range versions {
		now := make(map[string]string, len(g.Members))
		for _, m := range g.Members {
			if t, ok := was[m]; ok {
				now[m] = t
			} else {
				now[m] = lu(g.LastUpdated)
			}
		}
		was = now
	}
	v.joined = v.joined[:0]
	for _, m := range slices.Sorted(maps.Keys(was)) {
		v.joined = append(v.joined, joining{id: m, since: was[m]})
	}
	return nil
}

// dropMembers deletes a Group's membership items for patients not in keep.
func (s *ResourceStore) dropMembers(ctx context.Context, l layout, groupID string, keep []string) error {
	ms, err := s.membership(ctx, l, groupID)
	if err != nil {
		return err
	}
	kept := idSet(keep)
	var dels []types.WriteRequest
	for _, m := range ms {
		if !kept[m.ID] {
			dels = append(dels, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key2(l.membersPK(groupID, s.shardOf(m.ID)), m.ID)}})
		}
	}
	return s.writeParallel(ctx, dels)
}

func (s *ResourceStore) deleteSpills(ctx context.Context, refs []string) {
	for _, ref := range refs {
		// Best effort: an orphaned body costs storage, not correctness.
		_ = s.opts.Bodies.DeletePrefix(ctx, ref)
	}
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

// spillSize is what a resource's inline attributes would weigh.
func spillSize(r *bulk.Resource) int {
	size := len(r.Body)
	for _, p := range r.Patients {
		size += len(p) + 4
	}
	for _, m := range r.Members {
		size += len(m) + 4
	}
	return size
}

// writeParallel batch-writes reqs with up to Parallel requests at once.
func (s *ResourceStore) writeParallel(ctx context.Context, reqs []types.WriteRequest) error {
	batches := (len(reqs) + maxBatchWrite - 1) / maxBatchWrite
	return parallel(ctx, s.opts.Parallel, batches, func(i int) error {
		return batchWrite(ctx, s.api, s.table, reqs[i*maxBatchWrite:min((i+1)*maxBatchWrite, len(reqs))])
	})
}

// Delete removes a resource and records its tombstone: first the live
// version's items go, then the tombstone is written and committed on the
// _id item, so a crash in between is repaired by deleting again. Both the
// tombstone and the deleted _id item keep the deleted version's Patients
// (the _id item so that deleting again keeps them), unless they would make
// the items large (see tombstonePatients).
func (s *ResourceStore) Delete(ctx context.Context, ref bulk.Ref, at time.Time) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.Delete(%s/%s)", ref.Type, ref.ID)
	if ref.Type == "" || ref.ID == "" {
		return bulk.Errorf(bulk.EINVALID, "A resource needs a type and an id.")
	}
	l, err := s.layout(ctx, true)
	if err != nil {
		return err
	}
	for attempt := 1; ; attempt++ {
		old, err := s.getCurrent(ctx, l, ref.Type, ref.ID)
		if err != nil {
			return err
		}
		pts, err := s.oldPatients(ctx, old)
		if err != nil {
			return err
		}
		var dels []types.WriteRequest
		del := func(pk, sk string) {
			dels = append(dels, types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: key2(pk, sk)}})
		}
		shard := s.shardOf(ref.ID)
		if old.live {
			del(s.scanPK(ref.Type, shard), scanSK(old.lu, ref.ID))
			del(typesPK(ref.ID), ref.Type)
			for _, p := range pts {
				del(compartmentPK(p), ref.Type+"#"+ref.ID)
			}
		}
		if err := s.writeParallel(ctx, dels); err != nil {
			return err
		}
		if old.live && ref.Type == "Group" {
			if err := s.dropMembers(ctx, l, ref.ID, nil); err != nil {
				return err
			}
		}
		tomb := scanSK(lu(at), ref.ID)
		tombItem := map[string]types.AttributeValue{attrPK: sv(l.deletedPK(ref.Type, shard)), attrSK: sv(tomb)}
		idItem := map[string]types.AttributeValue{
			attrPK: sv(l.idPK(ref.Type, shard)), attrSK: sv(ref.ID), attrDel: sv(tomb), attrToken: sv(randomID()),
		}
		if tp := s.tombstonePatients(pts); len(tp) > 0 {
			tombItem[attrPatients], idItem[attrPatients] = strList(tp), strList(tp)
		}
		if _, err := s.api.PutItem(ctx, &ddb.PutItemInput{TableName: aws.String(s.table), Item: tombItem}); err != nil {
			return translate(err, "write tombstone failed")
		}
		err = s.commit(ctx, idItem, old)
		if isConditionFailed(err) && attempt < maxPutAttempts {
			continue // written meanwhile: delete what is there now
		}
		if err != nil {
			return translate(err, "delete failed")
		}
		if old.del != "" && old.del != tomb {
			if _, err := s.api.DeleteItem(ctx, &ddb.DeleteItemInput{TableName: aws.String(s.table), Key: key2(l.deletedPK(ref.Type, shard), old.del)}); err != nil {
				return translate(err, "delete tombstone failed")
			}
		}
		if old.live {
			if old.ref != "" {
				s.deleteSpills(ctx, []string{old.ref})
			}
			return s.count(ctx, l, map[counter]int64{{ref.Type, shard}: -1})
		}
		return nil
	}
}

// maxTombstonePatients bounds the size of the Patients a tombstone records,
// which keeps its items far below DynamoDB's 400 KB limit.
const maxTombstonePatients = 64 << 10

// tombstonePatients returns the Patients a tombstone records: pts (the
// deleted version's, or an earlier tombstone's), sorted and distinct, or
// none (unknown) when their ids add up to more than maxTombstonePatients.
// Tombstones are not spilled, and only a resource in thousands of
// compartments gets there: a large Group, which compartment exports never
// hold.
func (s *ResourceStore) tombstonePatients(pts []string) []string {
	size := 0
	for _, p := range pts {
		size += len(p) + 3 // an L element's overhead
	}
	if size > maxTombstonePatients {
		return nil
	}
	return slices.Compact(slices.Sorted(slices.Values(pts)))
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
