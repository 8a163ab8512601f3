package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	s3sdk "github.com/aws/aws-sdk-go-v2/service/s3"
	sfnsdk "github.com/aws/aws-sdk-go-v2/service/sfn"

	"github.com/tranchehq/tranche/internal/api"
	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/aws/handler"
	"github.com/tranchehq/tranche/internal/aws/metrics"
	"github.com/tranchehq/tranche/internal/aws/s3"
	"github.com/tranchehq/tranche/internal/aws/sdkretry"
	"github.com/tranchehq/tranche/internal/aws/secrets"
	"github.com/tranchehq/tranche/internal/aws/sfn"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/cohort"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/workflow"
)

// AWS is the serverless deployment: the same engine, handlers and steps as
// Local, over DynamoDB, S3, Step Functions and Secrets Manager. Each Lambda
// builds one at cold start (functions/*/main.go) and uses the part it
// serves: Handler for the HTTP functions, Steps for the workflow tasks,
// Importer for the S3-triggered import.
type AWS struct {
	SDK aws.Config
	// FHIR is the stack's release (TRANCHE_FHIR_VERSION, the FhirVersion
	// parameter; default R4).
	FHIR      *fhir.Model
	Jobs      *dynamodb.JobStore
	Clients   *dynamodb.ClientStore
	Replay    *dynamodb.ReplayCache
	Polls     *dynamodb.RateCounter // status polls per client, in the Replay table
	Resources *dynamodb.ResourceStore
	Objects   *s3.Store // output files, under the exports prefix
	Service   *export.Service
	Steps     workflow.Steps
	Logger    *slog.Logger

	cfg config.Config
	ac  config.AWS
	s3  *s3sdk.Client
}

// NewAWSFromEnv reads the configuration from the environment
// (config.FromAWSEnv), builds the JSON logger Lambda ships to CloudWatch
// (with embedded metrics, see internal/aws/metrics) and calls NewAWS.
func NewAWSFromEnv(ctx context.Context) (*AWS, error) {
	cfg, ac, err := config.FromAWSEnv()
	if err != nil {
		return nil, fmt.Errorf("configuration: %w", err)
	}
	return NewAWS(ctx, cfg, ac, LambdaLogger(cfg))
}

// LambdaLogger logs JSON lines to stdout with CloudWatch embedded metrics
// for the export events.
func LambdaLogger(cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	h := slog.NewJSONHandler(os.Stdout, &slog.HandlerOptions{Level: level})
	return slog.New(metrics.Handler(h, metrics.Namespace()))
}

// NewAWS builds the deployment from the SDK's default configuration, so
// credentials, region and endpoints (AWS_ENDPOINT_URL,
// AWS_ENDPOINT_URL_<SERVICE>) come from the environment as the SDK reads
// them: the same code runs against AWS, LocalStack and the emulators.
func NewAWS(ctx context.Context, cfg config.Config, ac config.AWS, logger *slog.Logger) (*AWS, error) {
	if err := ac.Validate(cfg); err != nil {
		return nil, err
	}
	sdk, err := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRetryer(sdkretry.Retryer))
	if err != nil {
		return nil, fmt.Errorf("AWS configuration: %w", err)
	}
	if logger == nil {
		logger = slog.Default()
	}
	db := ddb.NewFromConfig(sdk)
	s3c := s3sdk.NewFromConfig(sdk, func(o *s3sdk.Options) { o.UsePathStyle = ac.S3PathStyle })
	objects, err := s3.New(s3c, s3.Options{Bucket: ac.Bucket, Prefix: ac.ExportsPrefix, Gzip: ac.GzipObjects})
	if err != nil {
		return nil, err
	}
	bodies, err := s3.New(s3c, s3.Options{Bucket: ac.Bucket, Prefix: ac.BodiesPrefix, ContentType: "application/fhir+json"})
	if err != nil {
		return nil, err
	}
	a := &AWS{
		SDK:       sdk,
		Jobs:      dynamodb.NewJobStore(db, ac.JobsTable, ac.JobItemsTable),
		Clients:   dynamodb.NewClientStore(db, ac.ClientsTable),
		Replay:    dynamodb.NewReplayCache(db, ac.ReplayTable, time.Now),
		Polls:     dynamodb.NewRateCounter(db, ac.ReplayTable, time.Now),
		Resources: dynamodb.NewResourceStore(db, ac.ResourcesTable, cfg.Shards, dynamodb.ResourceOptions{Bodies: bodies, SpillBytes: ac.SpillBytes}),
		Objects:   objects,
		Logger:    logger,
		cfg:       cfg, ac: ac, s3: s3c,
	}
	// Item lists for the Distributed Map sit with the job's files (so
	// deleting the job deletes them) but never gzipped: Step Functions
	// reads them as JSON.
	lists, err := s3.New(s3c, s3.Options{Bucket: ac.Bucket, Prefix: ac.ExportsPrefix, ContentType: "application/json"})
	if err != nil {
		return nil, err
	}
	// The stack's FHIR release is its FhirVersion parameter: read from
	// the environment, not the table, so no cold start pays a read; the
	// import function records it in the table and refuses other data.
	fv := cfg.FHIRVersion
	if fv == "" {
		fv = string(defs.R4)
	}
	v, err := defs.ParseVersion(fv)
	if err != nil {
		return nil, err
	}
	a.FHIR = fhir.ModelFor(v)
	a.Service = export.NewService(a.Jobs, a.Resources, a.Objects, cfg.Export, logger)
	a.Service.FHIR = a.FHIR
	a.Service.ForeignGroups = cohort.ForeignGroups(a.cohortStore())
	a.Service.Clock = a.Resources // transactionTime from the store's clock (R55)
	a.Service.ItemLists = export.ItemLists{Store: lists, Bucket: ac.Bucket, Prefix: ac.ExportsPrefix}
	a.Service.Workflow = unconfiguredWorkflow{}
	if ac.StateMachineARN != "" {
		wf, err := sfn.New(sfnsdk.NewFromConfig(sdk), ac.StateMachineARN)
		if err != nil {
			return nil, err
		}
		a.Service.Workflow = wf
	}
	a.Steps = workflow.Steps{Svc: a.Service}
	return a, nil
}

// Handler returns the HTTP API, the same handlers the local server mounts.
// With authorization on (the default) it reads the token signing key and
// the registration token from Secrets Manager.
func (a *AWS) Handler(ctx context.Context) (http.Handler, error) {
	srv := &api.Server{
		FHIR:   a.FHIR,
		Export: a.Service, Resources: a.Resources, Objects: a.Objects,
		BaseURL: a.cfg.BaseURL, TrustProxy: true, LenientHeaders: a.cfg.LenientHeaders, Logger: a.Logger, Version: Version,
		// Files are downloaded from S3 with presigned URLs: a Lambda
		// response is capped at 6 MB. The manifest lists the /files
		// route, which redirects to one, or (TRANCHE_FILE_URLS=presigned)
		// the presigned URLs themselves.
		Downloads: a.Objects, DownloadTTL: a.ac.DownloadURLTTL,
		PresignedManifests: a.ac.FileURLs == config.FileURLsPresigned,
		// Under the 6 MB response limit with room for the JSON escaping
		// of the body in the Lambda's response (about 4,000 presigned
		// URLs); a larger manifest lists /files URLs (about 40,000 fit).
		MaxPresignedManifestBytes: 4 << 20,
		Cohorts:                   a.CohortService(),
	}
	if !a.cfg.Auth.Open {
		authz, err := a.authz(ctx)
		if err != nil {
			return nil, err
		}
		srv.Authz = authz
	}
	return srv.Handler(), nil
}

func (a *AWS) authz(ctx context.Context) (*api.Authz, error) {
	key, err := secrets.Get(ctx, a.SDK, a.ac.SigningKeySecret)
	if err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	signer, err := auth.NewSigner([]byte(key))
	if err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	regToken := a.cfg.Auth.RegistrationToken
	if a.ac.RegistrationTokenSecret != "" {
		if regToken, err = secrets.Get(ctx, a.SDK, a.ac.RegistrationTokenSecret); err != nil {
			return nil, fmt.Errorf("registration token: %w", err)
		}
		regToken = strings.TrimSpace(regToken)
	}
	return &api.Authz{
		Authority: &auth.Authority{
			Clients: a.contractClients(), Replay: a.Replay, Signer: signer,
			Fetcher:       &auth.JWKSFetcher{},
			TokenLifetime: a.cfg.Auth.TokenLifetime,
		},
		RegistrationToken:    regToken,
		Registration:         auth.RegistrationDefaults{Groups: []string{"*"}},
		MaxConcurrentExports: a.cfg.Auth.MaxConcurrentExports,
		MaxPollsPerMinute:    a.cfg.Auth.MaxPollsPerMinute,
		// Shared by every instance of every HTTP function (the Replay
		// table), so the quota holds however many run.
		Polls: a.Polls,
	}, nil
}

// Purge is the scheduled PurgeFunction: the watchdog fails the jobs whose
// execution ended without finishing them (export.Service.Watchdog), then
// expired jobs are deleted with their files. Each runs whatever the other
// returns; the counts say what was done.
func (a *AWS) Purge(ctx context.Context) (map[string]int, error) {
	failed, werr := a.Service.Watchdog(ctx)
	if werr != nil {
		a.Logger.Error("watchdog failed", "err", werr)
	}
	purged, perr := a.Service.Purge(ctx)
	return map[string]int{"purged": purged, "failed": failed}, errors.Join(werr, perr)
}

// Importer returns the S3-triggered import: files dropped under the
// incoming prefix are loaded into the resource store, with a report (and
// the bad lines) written under the reports prefix.
func (a *AWS) Importer() (*handler.Importer, error) {
	reports, err := s3.New(a.s3, s3.Options{Bucket: a.ac.Bucket, Prefix: a.ac.ReportsPrefix, ContentType: "application/json"})
	if err != nil {
		return nil, err
	}
	return &handler.Importer{
		Store: a.Resources,
		FHIR:  a.FHIR,
		Fetch: func(ctx context.Context, key string) (io.ReadCloser, error) {
			return s3.Get(ctx, a.s3, a.ac.Bucket, key)
		},
		Reports: reports,
		Prefix:  a.ac.IncomingPrefix,
		Logger:  a.Logger,
	}, nil
}

var _ bulk.Workflow = unconfiguredWorkflow{}

// unconfiguredWorkflow is the Workflow of functions that have no state
// machine ARN (the workflow steps themselves): they never start, stop or
// describe executions, and saying so beats a nil pointer.
type unconfiguredWorkflow struct{}

var errNoStateMachine = bulk.Errorf(bulk.EINTERNAL, "This function has no state machine (TRANCHE_STATE_MACHINE_ARN).")

func (unconfiguredWorkflow) Start(context.Context, string) error {
	return errNoStateMachine
}

func (unconfiguredWorkflow) Stop(context.Context, string) error {
	return errNoStateMachine
}

func (unconfiguredWorkflow) Running(context.Context, string) (bool, error) {
	return false, errNoStateMachine
}

// StartLambda is the whole main of a function: it builds the deployment
// from the environment once per cold start, asks build for the handler, and
// starts it. A bad configuration fails the cold start with one clear line
// (style.md rule 7).
func StartLambda(name string, build func(ctx context.Context, a *AWS) (any, error)) {
	ctx := context.Background()
	a, err := NewAWSFromEnv(ctx)
	var h any
	if err == nil {
		h, err = build(ctx, a)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "tranche %s: %v\n", name, err)
		os.Exit(1)
	}
	lambda.Start(h)
}

// StartHTTPLambda is the whole main of an HTTP function: it serves the
// internal/api handlers through API Gateway's HTTP API (payload 2.0).
func StartHTTPLambda(name string) {
	StartLambda(name, func(ctx context.Context, a *AWS) (any, error) {
		h, err := a.Handler(ctx)
		if err != nil {
			return nil, err
		}
		return handler.HTTP(h), nil
	})
}
