package dynamodb

import (
	"context"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

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
