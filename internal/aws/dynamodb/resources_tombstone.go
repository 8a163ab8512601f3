package dynamodb

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

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
