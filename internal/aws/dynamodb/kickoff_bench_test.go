package dynamodb_test

import (
	"os"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/aws/s3"
	"github.com/tranchehq/tranche/internal/bulktest"
)

// BenchmarkKickoffPatients kicks off exports naming fhir.MaxPatients
// `patient` values against the DynamoDB stores on the emulator (issue 12
// item 4); see bulktest.BenchKickoff. The resource store, which needs no
// transactions, talks to the emulator itself with the SDK's default HTTP
// client, as app.NewAWS builds it: through awstest's TransactFront every
// read would also be proxied in this process, and its CPU would count as
// the kick-off's. Only the job store goes through the front.
func BenchmarkKickoffPatients(b *testing.B) {
	front := awstest.DynamoDB(b)
	cfg := awstest.Config()
	cfg.HTTPClient = nil
	direct := ddb.NewFromConfig(cfg, func(o *ddb.Options) { o.BaseEndpoint = aws.String(os.Getenv(awstest.EndpointEnv)) })
	s3c, bucket := awstest.S3(b)
	bodies, err := s3.New(s3c, s3.Options{Bucket: bucket, Prefix: "bodies/", ContentType: "application/fhir+json"})
	if err != nil {
		b.Fatal(err)
	}
	res := dynamodb.NewResourceStore(direct, awstest.Table(b, front, "Resources"), 16, dynamodb.ResourceOptions{Bodies: bodies})
	bulktest.BenchKickoff(b, bulktest.KickoffStore{
		Jobs:      dynamodb.NewJobStore(front, awstest.Table(b, front, "Jobs"), awstest.Table(b, front, "JobItems")),
		Resources: res,
		Clock:     res,
	})
}
