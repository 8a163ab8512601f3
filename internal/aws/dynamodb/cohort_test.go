package dynamodb_test

import (
	"testing"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
)

// TestCohortStore runs the contract in the Resources table, where the
// cohorts live.
func TestCohortStore(t *testing.T) {
	client := awstest.DynamoDB(t)
	bulktest.RunCohortStoreTests(t, func(t *testing.T) bulk.CohortStore {
		return dynamodb.NewCohortStore(client, awstest.Table(t, client, "Resources"))
	})
}
