// Package awstest runs the AWS adapters' tests against emulators that run
// here: DynamoDB against dynalite (TRANCHE_DYNAMODB_ENDPOINT; tests skip
// with a message when it is unset or unreachable, so `go test ./...` works
// anywhere, and fail instead under CI=true) and S3 against gofakes3 in-process over plain HTTP.
//
// `make test-aws` (aws.mk) installs dynalite, starts it on a free port and
// runs these tests with the variable set.
package awstest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/aws/sdkretry"
	"github.com/tranchehq/tranche/internal/testenv"
)

// EndpointEnv names the dynalite (or DynamoDB Local, or LocalStack) endpoint
// the DynamoDB tests use.
const EndpointEnv = "TRANCHE_DYNAMODB_ENDPOINT"

// Config returns an SDK config for emulators: fixed region and dummy
// credentials, so no test ever reaches a real account. Tests set the
// endpoint on each client; production code never does (it comes from
// AWS_ENDPOINT_URL*).
func Config() aws.Config {
	return aws.Config{
		Region:      "us-east-1",
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", ""),
		HTTPClient:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
		Retryer:     sdkretry.Retryer,
	}
}

var (
	reachOnce sync.Once
	reachErr  error
)

// DynamoDB returns a client of the emulator at $TRANCHE_DYNAMODB_ENDPOINT,
// through its TransactFront, or skips the test when it is unset or not
// reachable.
func DynamoDB(tb testing.TB) *ddb.Client {
	tb.Helper()
	endpoint := DynamoDBEndpoint(tb)
	return ddb.NewFromConfig(Config(), func(o *ddb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}

// DynamoDBEndpoint is the URL of the TransactFront of the emulator at
// $TRANCHE_DYNAMODB_ENDPOINT, for clients made elsewhere (the functions'
// AWS_ENDPOINT_URL_DYNAMODB); it skips as DynamoDB does.
func DynamoDBEndpoint(tb testing.TB) string {
	tb.Helper()
	endpoint := os.Getenv(EndpointEnv)
	if endpoint == "" {
		testenv.Missing(tb, "%s is not set: skipping the DynamoDB adapter tests (run `make test-aws` to start dynalite and run them)", EndpointEnv)
	}
	reachOnce.Do(func() {
		u, err := url.Parse(endpoint)
		if err != nil {
			reachErr = err
			return
		}
		c, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
		if err != nil {
			reachErr = err
			return
		}
		c.Close()
	})
	if reachErr != nil {
		testenv.Missing(tb, "%s=%s is not reachable (%v): skipping the DynamoDB adapter tests", EndpointEnv, endpoint, reachErr)
	}
	return TransactFront(endpoint)
}

// Table creates a fresh table of the given kind of dynamodb.Specs ("Jobs",
// "Resources", ...) with a unique name, and deletes it when the test ends.
func Table(tb testing.TB, client *ddb.Client, kind string) string {
	tb.Helper()
	for _, spec := range dynamodb.Specs() {
		if spec.Kind != kind {
			continue
		}
		name := "t" + Random() + "-" + kind
		if err := dynamodb.CreateTable(context.Background(), client, name, spec); err != nil {
			tb.Fatalf("CreateTable(%s): %v", name, err)
		}
		tb.Cleanup(func() { _ = dynamodb.DeleteTable(context.Background(), client, name) })
		return name
	}
	tb.Fatalf("no table kind %q", kind)
	return ""
}

// S3 starts gofakes3 with an in-memory backend over plain HTTP (over TLS it
// corrupts bodies), creates a versioned bucket and returns a path-style
// client and the bucket name. The server stops when the test ends.
func S3(tb testing.TB) (*s3sdk.Client, string) {
	tb.Helper()
	f := NewS3(tb)
	return f.Client, f.Bucket
}

// FakeS3 is a running gofakes3 server.
type FakeS3 struct {
	Client *s3sdk.Client
	Bucket string
	URL    string

	mu       sync.Mutex
	requests []string
}

// Requests returns "METHOD path?query" of every request served so far.
func (f *FakeS3) Requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// NewS3 is S3 with the server's details and request log.
func NewS3(tb testing.TB) *FakeS3 {
	tb.Helper()
	return NewS3Bucket(tb, "tranche-test")
}

// StackBucket is the bucket template.yaml names for the stack "tranche" in
// the benches' account and region (<stack>-<account>-<region>), so that
// policies naming the bucket by that name resolve to the bench's bucket.
const StackBucket = "tranche-123456789012-us-east-1"

// NewS3Bucket is NewS3 with the bucket named bucket.
func NewS3Bucket(tb testing.TB, bucket string) *FakeS3 {
	tb.Helper()
	f := &FakeS3{Bucket: bucket}
	fake := gofakes3.New(s3mem.New()).Server()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		fake.ServeHTTP(w, r)
	}))
	tb.Cleanup(srv.Close)
	f.URL = srv.URL
	f.Client = s3sdk.NewFromConfig(Config(), func(o *s3sdk.Options) {
		o.BaseEndpoint = aws.String(srv.URL)
		o.UsePathStyle = true
	})
	ctx := context.Background()
	if _, err := f.Client.CreateBucket(ctx, &s3sdk.CreateBucketInput{Bucket: aws.String(f.Bucket)}); err != nil {
		tb.Fatalf("CreateBucket: %v", err)
	}
	// Versioning lets an open object keep reading (and seeking in) the
	// version it opened after a replace or delete, as the deployed bucket
	// does.
	if _, err := f.Client.PutBucketVersioning(ctx, &s3sdk.PutBucketVersioningInput{
		Bucket:                  aws.String(f.Bucket),
		VersioningConfiguration: &s3types.VersioningConfiguration{Status: s3types.BucketVersioningStatusEnabled},
	}); err != nil {
		tb.Fatalf("PutBucketVersioning: %v", err)
	}
	return f
}

// Random returns 8 random hex digits, for unique names.
func Random() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
