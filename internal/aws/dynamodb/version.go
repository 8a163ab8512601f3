package dynamodb

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.FHIRVersionStore = (*ResourceStore)(nil)

// The store's FHIR release (bulk.FHIRVersionStore) is one item of the
// resources table:
//
//	_meta  sk "fhirVersion"  v: "r4"
//
// written once, conditionally, so a stack redeployed with another
// FhirVersion refuses to import into the first one's data.
const (
	metaPK        = "_meta"
	fhirVersionSK = "fhirVersion"
	attrValue     = "v"
)

// FHIRVersion implements bulk.FHIRVersionStore.
func (s *ResourceStore) FHIRVersion(ctx context.Context) (_ string, err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.FHIRVersion")
	out, err := s.api.GetItem(ctx, &ddb.GetItemInput{TableName: aws.String(s.table), Key: key2(metaPK, fhirVersionSK), ConsistentRead: aws.Bool(true)})
	if err != nil {
		return "", translate(err, "read FHIR version failed")
	}
	return getS(out.Item, attrValue), nil
}

// SetFHIRVersion implements bulk.FHIRVersionStore.
func (s *ResourceStore) SetFHIRVersion(ctx context.Context, v string) (err error) {
	defer bulk.Wrap(&err, "dynamodb.ResourceStore.SetFHIRVersion(%q)", v)
	_, err = s.api.PutItem(ctx, &ddb.PutItemInput{
		TableName:                 aws.String(s.table),
		Item:                      map[string]types.AttributeValue{attrPK: sv(metaPK), attrSK: sv(fhirVersionSK), attrValue: sv(v)},
		ConditionExpression:       aws.String("attribute_not_exists(#v) OR #v = :v"),
		ExpressionAttributeNames:  map[string]string{"#v": attrValue},
		ExpressionAttributeValues: map[string]types.AttributeValue{":v": sv(v)},
	})
	if isConditionFailed(err) {
		old, rerr := s.FHIRVersion(ctx)
		if rerr != nil {
			return rerr
		}
		return bulk.VersionConflict(old, v)
	}
	return translate(err, "write FHIR version failed")
}
