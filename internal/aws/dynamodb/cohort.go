package dynamodb

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.CohortStore = (*CohortStore)(nil)

// CohortStore is the DynamoDB bulk.CohortStore. Cohort definitions are few
// and about the Group resources, so they live in the Resources table (no
// table of their own), in one partition beside the store's other internal
// partitions (ResourceStore's layout):
//
//	_cohorts            sk {owner}#{id}     the cohort as JSON ("doc") and its
//	                                        revision ("rev", the condition
//	                                        of UpdateCohort)
//
// A client's cohorts are a begins_with Query of that partition and every
// client's the whole partition; a client id may itself hold "#", so each
// item's owner is compared exactly after the read, and another client's
// cohort is never returned as this one's.
type CohortStore struct {
	api   API
	table string
}

// NewCohortStore returns a store in the Resources table.
func NewCohortStore(api API, resourcesTable string) *CohortStore {
	return &CohortStore{api: api, table: resourcesTable}
}

const (
	cohortsPK = "_cohorts"
	attrRev   = "rev"
)

func cohortSK(owner, id string) string { return owner + "#" + id }

// CreateCohort implements bulk.CohortStore.
func (s *CohortStore) CreateCohort(ctx context.Context, c *bulk.Cohort) (err error) {
	defer bulk.Wrap(&err, "dynamodb.CohortStore.CreateCohort(%q)", c.ID)
	if c.ID == "" || c.Owner == "" || strings.Contains(c.ID, "#") {
		return bulk.Errorf(bulk.EINVALID, "A cohort needs an id (without #) and an owner.")
	}
	nc := *c
	nc.Revision = 1
	if err := s.put(ctx, &nc, "attribute_not_exists(pk)", nil); err != nil {
		if bulk.ErrorCode(err) == bulk.ECONFLICT {
			return bulk.Errorf(bulk.ECONFLICT, "Cohort %s already exists.", c.ID)
		}
		return err
	}
	c.Revision = 1
	return nil
}

// put writes c under cond.
func (s *CohortStore) put(ctx context.Context, c *bulk.Cohort, cond string, values map[string]types.AttributeValue) error {
	doc, err := json.Marshal(c)
	if err != nil {
		return err
	}
	_, err = s.api.PutItem(ctx, &ddb.PutItemInput{
		TableName: aws.String(s.table),
		Item: map[string]types.AttributeValue{
			attrPK: sv(cohortsPK), attrSK: sv(cohortSK(c.Owner, c.ID)), attrDoc: sv(string(doc)), attrRev: n(c.Revision),
		},
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeValues: values,
	})
	return translate(err, "cohort write failed")
}

// GetCohort implements bulk.CohortStore.
func (s *CohortStore) GetCohort(ctx context.Context, owner, id string) (_ *bulk.Cohort, err error) {
	defer bulk.Wrap(&err, "dynamodb.CohortStore.GetCohort(%q)", id)
	if owner == "" || id == "" || strings.Contains(id, "#") {
		return nil, errCohortNotFound(id)
	}
	out, err := s.api.GetItem(ctx, &ddb.GetItemInput{
		TableName: aws.String(s.table), Key: key2(cohortsPK, cohortSK(owner, id)), ConsistentRead: aws.Bool(true),
	})
	if err != nil {
		return nil, translate(err, "get cohort failed")
	}
	if len(out.Item) == 0 {
		return nil, errCohortNotFound(id)
	}
	c, err := decodeCohort(out.Item)
	if err != nil {
		return nil, err
	}
	if c.Owner != owner || c.ID != id {
		return nil, errCohortNotFound(id)
	}
	return c, nil
}

func decodeCohort(item map[string]types.AttributeValue) (*bulk.Cohort, error) {
	var c bulk.Cohort
	if err := json.Unmarshal([]byte(getS(item, attrDoc)), &c); err != nil {
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Stored cohort is unreadable.")
	}
	c.Revision = getN(item, attrRev)
	return &c, nil
}

// UpdateCohort implements bulk.CohortStore: an update conditioned on the
// revision read.
func (s *CohortStore) UpdateCohort(ctx context.Context, c *bulk.Cohort) (err error) {
	defer bulk.Wrap(&err, "dynamodb.CohortStore.UpdateCohort(%q)", c.ID)
	if c.ID == "" || c.Owner == "" || strings.Contains(c.ID, "#") {
		return errCohortNotFound(c.ID)
	}
	nc := *c
	nc.Revision++
	doc, err := json.Marshal(&nc)
	if err != nil {
		return err
	}
	// An update, not a conditional put: the condition and the write are
	// one step for every store, emulators included.
	_, err = s.api.UpdateItem(ctx, &ddb.UpdateItemInput{
		TableName:           aws.String(s.table),
		Key:                 key2(cohortsPK, cohortSK(c.Owner, c.ID)),
		UpdateExpression:    aws.String("SET doc = :doc, rev = :next"),
		ConditionExpression: aws.String("rev = :rev"),
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":doc": sv(string(doc)), ":next": n(nc.Revision), ":rev": n(c.Revision),
		},
	})
	err = translate(err, "cohort update failed")
	if bulk.ErrorCode(err) == bulk.ECONFLICT {
		// Changed meanwhile, or gone: tell them apart.
		if _, gerr := s.GetCohort(ctx, c.Owner, c.ID); bulk.ErrorCode(gerr) == bulk.ENOTFOUND {
			return errCohortNotFound(c.ID)
		}
		return bulk.Errorf(bulk.ECONFLICT, "Cohort %s was changed meanwhile.", c.ID)
	}
	if err == nil {
		c.Revision = nc.Revision
	}
	return err
}

// DeleteCohort implements bulk.CohortStore.
func (s *CohortStore) DeleteCohort(ctx context.Context, owner, id string) (err error) {
	defer bulk.Wrap(&err, "dynamodb.CohortStore.DeleteCohort(%q)", id)
	if owner == "" || id == "" || strings.Contains(id, "#") {
		return errCohortNotFound(id)
	}
	_, err = s.api.DeleteItem(ctx, &ddb.DeleteItemInput{
		TableName: aws.String(s.table), Key: key2(cohortsPK, cohortSK(owner, id)),
		ConditionExpression: aws.String("attribute_exists(pk)"),
	})
	if isConditionFailed(err) {
		return errCohortNotFound(id)
	}
	return translate(err, "delete cohort failed")
}

// ListCohorts implements bulk.CohortStore: a Query of the cohorts
// partition (from {owner}#), read whole before the first visit.
func (s *CohortStore) ListCohorts(ctx context.Context, owner string, fn func(*bulk.Cohort) error) (err error) {
	defer bulk.Wrap(&err, "dynamodb.CohortStore.ListCohorts(%q)", owner)
	in := &ddb.QueryInput{
		TableName:                 aws.String(s.table),
		KeyConditionExpression:    aws.String("pk = :pk"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":pk": sv(cohortsPK)},
		ConsistentRead:            aws.Bool(true),
	}
	if owner != "" {
		in.KeyConditionExpression = aws.String("pk = :pk AND begins_with(sk, :owner)")
		in.ExpressionAttributeValues[":owner"] = sv(owner + "#")
	}
	var cs []*bulk.Cohort
	err = queryAll(ctx, s.api, in, func(item map[string]types.AttributeValue) error {
		c, err := decodeCohort(item)
		if err != nil {
			return err
		}
		if owner == "" || c.Owner == owner {
			cs = append(cs, c)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(cs, func(a, b *bulk.Cohort) int {
		return cmp.Or(cmp.Compare(a.Owner, b.Owner), cmp.Compare(a.ID, b.ID))
	})
	return visitEach(ctx, cs, fn)
}

func errCohortNotFound(id string) error {
	return bulk.Errorf(bulk.ENOTFOUND, "Cohort %s not found.", id)
}
