package dynamodb

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

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

type joining struct {
	id    string
	since string
}

// joinTimes sets v.joined: the members of the new version of a Group with
// their join times (bulk.JoinTimes). Members the live stored version lists
// keep theirs; versions earlier in the same Put count as stored in turn.
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
		was = maps.Collect(bulk.JoinTimes(g.Members, was, lu(g.LastUpdated)))
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
