package dynamodb

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

var (
	_ bulk.ClientStore = (*ClientStore)(nil)
	_ bulk.ReplayCache = (*ReplayCache)(nil)
)

// ClientStore is the DynamoDB bulk.ClientStore: one item per client in the
// Clients table, pk = client id, "doc" = the client as JSON. Create, update
// and delete are conditional on the item's absence or presence.
type ClientStore struct {
	api   API
	table string
}

// NewClientStore returns a store over the Clients table.
func NewClientStore(api API, table string) *ClientStore {
	return &ClientStore{api: api, table: table}
}

// CreateClient stores a new client. Returns ECONFLICT if the id exists and
// EINVALID if it is empty.
func (s *ClientStore) CreateClient(ctx context.Context, c *bulk.Client) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ClientStore.CreateClient(%q)", c.ID)
	if c.ID == "" {
		return bulk.Errorf(bulk.EINVALID, "A client needs an id.")
	}
	return s.put(ctx, c, "attribute_not_exists(pk)", fmt.Sprintf("Client %s already exists.", c.ID))
}

// UpdateClient replaces a stored client. Returns ENOTFOUND if it does not
// exist.
func (s *ClientStore) UpdateClient(ctx context.Context, c *bulk.Client) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ClientStore.UpdateClient(%q)", c.ID)
	if c.ID == "" {
		return errClientNotFound(c.ID)
	}
	err = s.put(ctx, c, "attribute_exists(pk)", "")
	if bulk.ErrorCode(err) == bulk.ECONFLICT {
		return errClientNotFound(c.ID)
	}
	return err
}

func (s *ClientStore) put(ctx context.Context, c *bulk.Client, cond, conflict string) error {
	doc, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = s.api.PutItem(ctx, &ddb.PutItemInput{
		TableName:           aws.String(s.table),
		Item:                map[string]types.AttributeValue{attrPK: sv(c.ID), attrDoc: sv(string(doc))},
		ConditionExpression: aws.String(cond),
	})
	return translate(err, conflict)
}

// GetClient returns a client. Returns ENOTFOUND if it does not exist.
func (s *ClientStore) GetClient(ctx context.Context, id string) (_ *bulk.Client, err error) {
	defer bulk.Wrap(&err, "dynamodb.ClientStore.GetClient(%q)", id)
	if id == "" {
		return nil, errClientNotFound(id)
	}
	out, err := s.api.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.table), Key: key(id), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return nil, translate(err, "get client failed")
	}
	if len(out.Item) == 0 {
		return nil, errClientNotFound(id)
	}
	return decodeClient(out.Item)
}

func decodeClient(item map[string]types.AttributeValue) (*bulk.Client, error) {
	var c bulk.Client
	if err := json.Unmarshal([]byte(getS(item, attrDoc)), &c); err != nil {
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Stored client is unreadable.")
	}
	return &c, nil
}

// DeleteClient removes a client. Returns ENOTFOUND if it does not exist.
func (s *ClientStore) DeleteClient(ctx context.Context, id string) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ClientStore.DeleteClient(%q)", id)
	if id == "" {
		return errClientNotFound(id)
	}
	_, err = s.api.DeleteItem(ctx, &ddb.DeleteItemInput{
		TableName: aws.String(s.table), Key: key(id), ConditionExpression: aws.String("attribute_exists(pk)"),
	})
	if isConditionFailed(err) {
		return errClientNotFound(id)
	}
	return translate(err, "delete client failed")
}

// ListClients visits every client in id order. It scans the table and sorts
// in memory (clients are few); fn runs after the scan, so it may call the
// store.
func (s *ClientStore) ListClients(ctx context.Context, fn func(*bulk.Client) error) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ClientStore.ListClients")
	return scanSorted(ctx, s.api, s.table, decodeClient, func(c *bulk.Client) string { return c.ID }, fn)
}

func errClientNotFound(id string) error {
	return bulk.Errorf(bulk.ENOTFOUND, "Client %s not found.", id)
}

// ReplayCache is the DynamoDB bulk.ReplayCache: one item per key in the
// Replay table, with the expiry in unix nanoseconds ("exp", which the
// condition compares) and in epoch seconds ("ttl", for DynamoDB's TTL
// sweeper). TTL deletes lazily (within days) and emulators not at all, so
// the condition itself treats an expired record as absent:
// attribute_not_exists(pk) OR exp <= now.
type ReplayCache struct {
	api   API
	table string
	now   func() time.Time
}

// NewReplayCache returns a cache over the Replay table that reads the time
// from now (time.Now if nil).
func NewReplayCache(api API, table string, now func() time.Time) *ReplayCache {
	if now == nil {
		now = time.Now
	}
	return &ReplayCache{api: api, table: table, now: now}
}

// MarkUsed records key until expires. Returns ECONFLICT if key is recorded
// and has not expired.
func (c *ReplayCache) MarkUsed(ctx context.Context, k string, expires time.Time) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ReplayCache.MarkUsed")
	if k == "" {
		return bulk.Errorf(bulk.EINVALID, "A replay key must not be empty.")
	}
	// Seconds rounded up: TTL must not remove a record before it expires.
	ttl := expires.Unix()
	if expires.Nanosecond() > 0 {
		ttl++
	}
	_, err = c.api.PutItem(ctx, &ddb.PutItemInput{
		TableName:                 aws.String(c.table),
		Item:                      map[string]types.AttributeValue{attrPK: sv(k), "exp": n(expires.UnixNano()), attrTTL: n(ttl)},
		ConditionExpression:       aws.String("attribute_not_exists(pk) OR #exp <= :now"),
		ExpressionAttributeNames:  map[string]string{"#exp": "exp"},
		ExpressionAttributeValues: map[string]types.AttributeValue{":now": n(c.now().UnixNano())},
	})
	return translate(err, "This value has already been used.")
}
