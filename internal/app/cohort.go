package app

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	sfnsdk "github.com/aws/aws-sdk-go-v2/service/sfn"
	sfntypes "github.com/aws/aws-sdk-go-v2/service/sfn/types"
	"github.com/aws/smithy-go"

	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/cohort"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// The Bulk Cohort API's wiring (internal/cohort). Its definitions live
// with the resources (bolt's cohorts bucket; the Resources table on AWS),
// its evaluations and deletions run as executions of
// statemachines/cohort.asl.json: in-process here, Step Functions on AWS.

// Cohort configuration of the Lambda functions (set by template.yaml).
const (
	// envCohortStateMachine is the cohort state machine of the functions
	// that start executions (CohortFunction, CohortRefreshFunction).
	envCohortStateMachine = "TRANCHE_COHORT_STATE_MACHINE_ARN"
	// envCohortContracts ("true") makes a function read clients with their
	// own cohorts among their contract's Groups (cohort.ContractClients):
	// the ones that authorize Group exports and reads. Others (the token
	// endpoint) read the contract as stored, and need no access to the
	// cohorts.
	envCohortContracts = "TRANCHE_COHORT_CONTRACTS"
)

// cohortStall is how long a requested run may stay unfinished before the
// refresh schedule starts it again (a start lost to a crash): longer than
// a run can last on AWS (Run's 7 attempts of up to 15 minutes, with
// backoff), so a run still executing is never restarted beside itself.
const cohortStall = 2 * time.Hour

// LocalCohorts is the local server's Bulk Cohort API: the service, the
// in-process runner of statemachines/cohort.asl.json, and a loop that
// starts due refreshes every RefreshLoop.
type LocalCohorts struct {
	Service  *cohort.Service
	Workflow *cohort.Local

	stop context.CancelFunc
	done chan struct{}
}

// RefreshLoop is how often the local server looks for cohorts due for a
// refresh.
var RefreshLoop = time.Minute

// startLocalCohorts builds the local Bulk Cohort API over the embedded
// store (with the clients' contracts when authorization is on) on the
// clock now, starts the runs a previous process left unfinished and the
// refresh loop.
func startLocalCohorts(ctx context.Context, db *bolt.DB, model *fhir.Model, contracts bool, now func() time.Time, logger *slog.Logger) (*LocalCohorts, error) {
	svc := &cohort.Service{Cohorts: db.Cohorts(), Resources: db.Resources(), Clock: db.Resources(), FHIR: model, Now: now, Logger: logger}
	if contracts {
		svc.Clients = db.Clients()
	}
	wf, err := cohort.NewLocal(cohort.Steps{Svc: svc}, logger)
	if err != nil {
		return nil, err
	}
	svc.Workflow = wf
	c := &LocalCohorts{Service: svc, Workflow: wf, done: make(chan struct{})}
	if err := svc.Recover(ctx); err != nil {
		wf.Close()
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.Background())
	c.stop = cancel
	go func() {
		defer close(c.done)
		t := time.NewTicker(RefreshLoop)
		defer t.Stop()
		for {
			select {
			case <-lctx.Done():
				return
			case <-t.C:
				if _, err := svc.RefreshDue(lctx, cohortStall); err != nil && lctx.Err() == nil {
					logger.Error("cohort refresh failed", "err", err)
				}
			}
		}
	}()
	return c, nil
}

// Close stops the refresh loop and the running executions (they resume at
// the next start).
func (c *LocalCohorts) Close() {
	if c == nil {
		return
	}
	c.stop()
	<-c.done
	c.Workflow.Close()
}

// contractClients is the client store the local authorization server
// reads: contracts with each client's own cohorts (cohort.ContractClients).
func contractClients(db *bolt.DB) bulk.ClientStore {
	return cohort.ContractClients{ClientStore: db.Clients(), Cohorts: db.Cohorts(), Groups: db.Resources()}
}

// cohortStore is the Bulk Cohort definitions in the Resources table.
func (a *AWS) cohortStore() *dynamodb.CohortStore {
	return dynamodb.NewCohortStore(ddb.NewFromConfig(a.SDK), a.ac.ResourcesTable)
}

// CohortService is the Bulk Cohort service over DynamoDB; it starts
// executions of the cohort state machine when the function has one
// (TRANCHE_COHORT_STATE_MACHINE_ARN).
func (a *AWS) CohortService() *cohort.Service {
	svc := &cohort.Service{
		Cohorts: a.cohortStore(), Resources: a.Resources, Clock: a.Resources, FHIR: a.FHIR, Logger: a.Logger,
		Workflow: sfnCohorts{api: sfnsdk.NewFromConfig(a.SDK), arn: os.Getenv(envCohortStateMachine)},
	}
	if !a.cfg.Auth.Open {
		svc.Clients = a.Clients // contracts bound every evaluation
	}
	return svc
}

// CohortSteps are the cohort workflow's tasks (functions/cohortrun,
// functions/cohortfailed).
func (a *AWS) CohortSteps() cohort.Steps { return cohort.Steps{Svc: a.CohortService()} }

// CohortRefresh is the scheduled CohortRefreshFunction: it starts the
// executions of the cohorts due for a refresh and of stalled requests.
func (a *AWS) CohortRefresh(ctx context.Context) (map[string]int, error) {
	n, err := a.CohortService().RefreshDue(ctx, cohortStall)
	return map[string]int{"started": n}, err
}

// contractClients is the client store of the HTTP functions'
// authorization server: with TRANCHE_COHORT_CONTRACTS=true, contracts with
// each client's own cohorts.
func (a *AWS) contractClients() bulk.ClientStore {
	if os.Getenv(envCohortContracts) == "true" {
		return cohort.ContractClients{ClientStore: a.Clients, Cohorts: a.cohortStore(), Groups: a.Resources}
	}
	return a.Clients
}

var _ bulk.CohortWorkflow = sfnCohorts{}

// sfnCohorts is the cohort bulk.CohortWorkflow on Step Functions: one
// execution per run, named by cohort.ExecutionName, so a repeated start
// starts nothing (ExecutionAlreadyExists).
type sfnCohorts struct {
	api *sfnsdk.Client
	arn string
}

func (w sfnCohorts) StartCohort(ctx context.Context, run bulk.CohortRun) (err error) {
	defer bulk.Wrap(&err, "sfnCohorts.StartCohort(%s)", cohort.ExecutionName(run))
	if w.arn == "" {
		return bulk.Errorf(bulk.EINTERNAL, "This function has no cohort state machine (%s).", envCohortStateMachine)
	}
	input, err := json.Marshal(run)
	if err != nil {
		return err
	}
	_, err = w.api.StartExecution(ctx, &sfnsdk.StartExecutionInput{
		StateMachineArn: aws.String(w.arn), Name: aws.String(cohort.ExecutionName(run)), Input: aws.String(string(input)),
	})
	var exists *sfntypes.ExecutionAlreadyExists
	var apiErr smithy.APIError
	switch {
	case err == nil, errors.As(err, &exists):
		return nil
	case errors.As(err, &apiErr) && (apiErr.ErrorCode() == "ThrottlingException" || apiErr.ErrorCode() == "ExecutionLimitExceeded" || apiErr.ErrorCode() == "ServiceUnavailable"):
		return bulk.Wrapf(err, bulk.ETRANSIENT, "The workflow service is busy; try again later.")
	}
	return bulk.Wrapf(err, bulk.EINTERNAL, "Starting the cohort workflow failed.")
}
