package dynamodb

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

// The keys that every write of a type, a Group or the store shares. One
// partition serves at most 1,000 write units a second
// (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html),
// so with one partition per key 30 M Observations commit in 8 hours and a
// Group of a million members cannot be written by one 15-minute Lambda
// (issue 12). Layout 2 splits each of them the way the scan index
// {type}#{shard} is split, by the same shard function (shardOf) of the
// resource's id or the member's id:
//
//	_id/{type}#{shard}        sk {id}               shard of the id
//	_members/{group}#{shard}  sk {patient}          shard of the patient
//	_deleted/{type}#{shard}   sk {deletedAt}#{id}   shard of the id
//	_count#{shard}            sk {type}#{shard}     the scan shard it counts
//
// and reads merge the shards (List and Tombstones in key order, see
// mergeQueries). Layout 1, of tables written before, has one partition per
// key, without the suffix. The table's layout is one item,
//
//	_meta  sk "layout"  v: 1 or 2, n: the shards of layout 2
//
// written by the first Put or Delete of a store that finds none: a table
// that already holds resources (an item under _count) is layout 1 for
// good, an empty one layout 2. Reads of a table without the item (no
// write since this code) take layout 1 if it holds resources. Layout 1
// tables keep working as before, hot keys and all: to spread their writes,
// import into a new table. A rolling deploy onto an empty table could let
// a Lambda of the old code write layout-1 keys after the new code recorded
// layout 2; deploy before the first import.
const (
	layoutSK   = "layout"
	attrShards = "n" // N: layout 2's shards
)

// layout is a table's layout version and the store's shards.
type layout struct {
	version int // 1 or 2
	shards  int
}

// parts is the number of partitions each hot key is split into.
func (l layout) parts() int {
	if l.version == 1 {
		return 1
	}
	return l.shards
}

// key is the partition of base that holds shard (layout 1: base itself).
func (l layout) key(base string, shard int) string {
	if l.version == 1 {
		return base
	}
	return fmt.Sprintf("%s#%03d", base, shard)
}

func (l layout) idPK(typ string, shard int) string        { return l.key("_id/"+typ, shard) }
func (l layout) membersPK(group string, shard int) string { return l.key("_members/"+group, shard) }
func (l layout) deletedPK(typ string, shard int) string   { return l.key("_deleted/"+typ, shard) }
func (l layout) countPK(shard int) string                 { return l.key(countPK, shard) }

// layout returns the table's layout, reading it once per store. A writer
// (write) records it when the table has no record yet; a reader never
// writes (the export functions may not), and keeps deciding until a writer
// has recorded it.
func (s *ResourceStore) layout(ctx context.Context, write bool) (layout, error) {
	s.layoutMu.Lock()
	defer s.layoutMu.Unlock()
	if s.lay.version != 0 {
		return s.lay, nil
	}
	for attempt := 1; ; attempt++ {
		l, found, err := s.readLayout(ctx)
		if err != nil {
			return layout{}, err
		}
		if found {
			s.lay = l
			return l, nil
		}
		legacy, err := s.holdsLegacy(ctx)
		if err != nil {
			return layout{}, err
		}
		l = layout{version: 2, shards: s.shards}
		if legacy {
			l.version = 1
		}
		if !write {
			if legacy { // for good: layout 1 tables stay layout 1
				s.lay = l
			}
			return l, nil
		}
		err = s.recordLayout(ctx, l)
		if isConditionFailed(err) && attempt < 3 {
			continue // another writer recorded it first: read theirs
		}
		if err != nil {
			return layout{}, translate(err, "write layout failed")
		}
		s.lay = l
		return l, nil
	}
}

// readLayout reads the layout item. Returns EINTERNAL for a layout this
// code does not know, or layout 2 written with other shards (every key
// depends on them: ShardCount is fixed for the table's life).
func (s *ResourceStore) readLayout(ctx context.Context) (layout, bool, error) {
	out, err := s.api.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.table), Key: key2(metaPK, layoutSK), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return layout{}, false, translate(err, "read layout failed")
	}
	if len(out.Item) == 0 {
		return layout{}, false, nil
	}
	l := layout{version: int(getN(out.Item, attrValue)), shards: s.shards}
	switch {
	case l.version == 1:
	case l.version == 2 && getN(out.Item, attrShards) == int64(s.shards):
	case l.version == 2:
		return layout{}, false, bulk.Errorf(bulk.EINTERNAL, "The resources table was written with %d shards, not %d: ShardCount must stay the same for the table's life.", getN(out.Item, attrShards), s.shards)
	default:
		return layout{}, false, bulk.Errorf(bulk.EINTERNAL, "The resources table has layout %d, which this version does not know.", l.version)
	}
	return l, true, nil
}

// holdsLegacy reports whether the table holds resources written without a
// layout item: every stored resource was counted under _count.
func (s *ResourceStore) holdsLegacy(ctx context.Context) (bool, error) {
	out, err := s.api.Query(ctx, &ddb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(countPK)},
		ConsistentRead:            aws.Bool(true),
		Limit:                     aws.Int32(1),
	})
	if err != nil {
		return false, translate(err, "read counters failed")
	}
	return len(out.Items) > 0, nil
}

// recordLayout writes the layout item unless one exists.
func (s *ResourceStore) recordLayout(ctx context.Context, l layout) error {
	item := map[string]types.AttributeValue{attrPK: sv(metaPK), attrSK: sv(layoutSK), attrValue: n(int64(l.version))}
	if l.version == 2 {
		item[attrShards] = n(int64(l.shards))
	}
	_, err := s.api.PutItem(ctx, &ddb.PutItemInput{
		TableName: aws.String(s.table), Item: item, ConditionExpression: aws.String("attribute_not_exists(pk)"),
	})
	return err
}
