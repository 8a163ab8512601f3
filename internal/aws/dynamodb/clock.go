package dynamodb

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.Clock = (*ResourceStore)(nil)

// The store's clock for lastUpdated (bulk.Clock), shared by every Lambda
// through two kinds of items of the Resources table:
//
//	_clock    sk "hw"        lu: the high-water mark, the latest stamp or
//	                         kick-off time given out; tt: the latest
//	                         transactionTime given out
//	_imports  sk {session}   lu: "import in flight since": no stamp the
//	                         session holds is earlier; exp/ttl: when the
//	                         item lapses (an import that crashed)
//
// Imports run in parallel Lambdas whose batch writes are not atomic, and
// wall clocks differ, so the order is kept on the _clock item: every stamp
// is written to it with a condition (hw < stamp), and a kick-off raises it
// to its own time before reading the _imports items. A session writes its
// _imports item before it reads hw for a stamp; so a kick-off either raised
// hw before that read (and the stamp is later than its transactionTime) or
// finds the item (and its transactionTime is earlier than the stamp). So
// once a transactionTime T is given out no stamp at or before T is in
// flight or still to come, and a later kick-off may take T if its own
// reading is earlier (an item written just after hw moved can be low):
// transactionTimes never go back. A crashed import's item holds
// transactionTime back until it lapses (ImportLease after its last stamp),
// after which its partial writes are all there is of it.
//
// Calls: ImportFunction: Query, DeleteItem (lapsed items), GetItem, PutItem,
// UpdateItem, DeleteItem; KickoffFunction: GetItem, UpdateItem, Query; all
// on the Resources table.

const (
	clockPK   = "_clock"
	clockSK   = "hw"
	importsPK = "_imports"
	attrExp   = "exp" // N: UnixNano when an _imports item lapses
	attrTT    = "tt"  // S: the latest transactionTime, on the _clock item
)

// DefaultImportLease is ResourceOptions.ImportLease's default: longer than
// a Lambda can run (15 minutes), so only a dead import's item lapses.
const DefaultImportLease = 20 * time.Minute

func (s *ResourceStore) now() time.Time {
	if s.opts.Now != nil {
		return s.opts.Now()
	}
	return time.Now()
}

// readClock returns the high-water mark and the latest transactionTime
// (zero before the first).
func (s *ResourceStore) readClock(ctx context.Context) (hw, tt time.Time, err error) {
	out, err := s.api.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.table), Key: key2(clockPK, clockSK), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return time.Time{}, time.Time{}, translate(err, "read clock failed")
	}
	for _, f := range []struct {
		attr string
		t    *time.Time
	}{{attrLU, &hw}, {attrTT, &tt}} {
		if v := getS(out.Item, f.attr); v != "" {
			if *f.t, err = parseLU(v); err != nil {
				return time.Time{}, time.Time{}, bulk.Wrapf(err, bulk.EINTERNAL, "The stored clock is unreadable.")
			}
		}
	}
	return hw, tt, nil
}

// readHW returns the high-water mark.
func (s *ResourceStore) readHW(ctx context.Context) (time.Time, error) {
	hw, _, err := s.readClock(ctx)
	return hw, err
}

// raiseHW sets the high-water mark to t if it is earlier; false when it is
// not (another writer got there first).
func (s *ResourceStore) raiseHW(ctx context.Context, t time.Time) (bool, error) {
	return s.raise(ctx, attrLU, t)
}

// raise sets attr of the _clock item to t if it is earlier.
func (s *ResourceStore) raise(ctx context.Context, attr string, t time.Time) (bool, error) {
	_, err := s.api.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName:                 aws.String(s.table),
		Key:                       key2(clockPK, clockSK),
		UpdateExpression:          aws.String("SET #a = :t"),
		ConditionExpression:       aws.String("attribute_not_exists(#a) OR #a < :t"),
		ExpressionAttributeNames:  map[string]string{"#a": attr},
		ExpressionAttributeValues: map[string]types.AttributeValue{":t": sv(lu(t))},
	})
	if isConditionFailed(err) {
		return false, nil
	}
	return err == nil, translate(err, "write clock failed")
}

// TransactionTime implements bulk.Clock: hw raised to now (or hw, if later),
// then lowered below the oldest live _imports item, but not below the last
// transactionTime (R55).
func (s *ResourceStore) TransactionTime(ctx context.Context, now time.Time) (_ time.Time, err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.TransactionTime")
	k := now.UTC().Truncate(time.Millisecond)
	var t, last time.Time
	for attempt := 1; ; attempt++ {
		hw, tt, err := s.readClock(ctx)
		if err != nil {
			return time.Time{}, err
		}
		last = tt
		if !hw.Before(k) {
			t = hw
			break
		}
		ok, err := s.raiseHW(ctx, k)
		if err != nil {
			return time.Time{}, err
		}
		if ok {
			t = k
			break
		}
		if attempt >= maxPutAttempts {
			return time.Time{}, bulk.Errorf(bulk.ETRANSIENT, "The clock is being written concurrently; try again.")
		}
	}
	lapse := s.now().UnixNano()
	err = queryAll(ctx, s.api, &ddb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(importsPK)},
		ConsistentRead:            aws.Bool(true),
	}, func(item map[string]types.AttributeValue) error {
		if getN(item, attrExp) <= lapse {
			return nil // a dead import's (DynamoDB has no TTL on this table: Begin deletes these)
		}
		since, err := parseLU(getS(item, attrLU))
		if err != nil {
			return bulk.Wrapf(err, bulk.EINTERNAL, "An import's clock item is unreadable.")
		}
		if since = since.Add(-time.Millisecond); since.Before(t) {
			t = since
		}
		return nil
	})
	if err != nil {
		return time.Time{}, err
	}
	t = bulk.Latest(t.Truncate(time.Millisecond), last)
	if t.After(last) {
		if _, err := s.raise(ctx, attrTT, t); err != nil {
			return time.Time{}, err
		}
	}
	return t, nil
}

// clockSession is one import's _imports item.
type clockSession struct {
	s       *ResourceStore
	id      string
	written bool
}

// Begin starts an import's session, deleting the items of imports whose
// lease lapsed.
func (s *ResourceStore) Begin(ctx context.Context) (_ bulk.ClockSession, err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.Begin")
	lapse := s.now().UnixNano()
	var dead []string
	err = queryAll(ctx, s.api, &ddb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(importsPK)},
		ConsistentRead:            aws.Bool(true),
	}, func(item map[string]types.AttributeValue) error {
		if getN(item, attrExp) <= lapse {
			dead = append(dead, getS(item, attrSK))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range dead {
		// Conditional: an import that only seemed dead and stamped again
		// keeps its item.
		_, err := s.api.DeleteItem(ctx, &ddb.DeleteItemInput{
			TableName: aws.String(s.table), Key: key2(importsPK, id),
			ConditionExpression:       aws.String("#exp <= :lapse"),
			ExpressionAttributeNames:  map[string]string{"#exp": attrExp},
			ExpressionAttributeValues: map[string]types.AttributeValue{":lapse": n(lapse)},
		})
		if err != nil && !isConditionFailed(err) {
			return nil, translate(err, "delete a lapsed import item failed")
		}
	}
	return &clockSession{s: s, id: randomID() + randomID()}, nil
}

// Stamp implements bulk.ClockSession: the session's item is written (or
// moved forward) first, then the stamp is taken above hw and written to it.
func (c *clockSession) Stamp(ctx context.Context, now time.Time) (_ time.Time, err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore clock stamp")
	s := c.s
	hw, err := s.readHW(ctx)
	if err != nil {
		return time.Time{}, err
	}
	// The item first, then the hw the stamp goes above.
	since := bulk.Latest(now.UTC().Truncate(time.Millisecond), hw.Add(time.Millisecond))
	if err := c.hold(ctx, since); err != nil {
		return time.Time{}, err
	}
	if hw, err = s.readHW(ctx); err != nil {
		return time.Time{}, err
	}
	t := bulk.Latest(since, hw.Add(time.Millisecond)).Truncate(time.Millisecond)
	for attempt := 1; ; attempt++ {
		ok, err := s.raiseHW(ctx, t)
		if err != nil {
			return time.Time{}, err
		}
		if ok {
			return t, nil
		}
		if attempt >= maxPutAttempts {
			return time.Time{}, bulk.Errorf(bulk.ETRANSIENT, "The clock is being written concurrently; try again.")
		}
		if hw, err = s.readHW(ctx); err != nil {
			return time.Time{}, err
		}
		t = bulk.Latest(t, hw.Add(time.Millisecond)).Truncate(time.Millisecond)
	}
}

// hold writes the session's item: in flight since since, for a lease.
func (c *clockSession) hold(ctx context.Context, since time.Time) error {
	s := c.s
	lease := s.opts.ImportLease
	if lease <= 0 {
		lease = DefaultImportLease
	}
	exp := s.now().Add(lease)
	_, err := s.api.PutItem(ctx, &ddb.PutItemInput{TableName: aws.String(s.table), Item: map[string]types.AttributeValue{
		attrPK: sv(importsPK), attrSK: sv(c.id), attrLU: sv(lu(since)),
		attrExp: n(exp.UnixNano()), attrTTL: n(exp.Unix()),
	}})
	if err != nil {
		return translate(err, "write import item failed")
	}
	c.written = true
	return nil
}

// End implements bulk.ClockSession: the item goes.
func (c *clockSession) End(ctx context.Context) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore clock end")
	if !c.written {
		return nil
	}
	_, err = c.s.api.DeleteItem(ctx, &ddb.DeleteItemInput{TableName: aws.String(c.s.table), Key: key2(importsPK, c.id)})
	if err != nil {
		return translate(err, "delete import item failed")
	}
	c.written = false
	return nil
}
