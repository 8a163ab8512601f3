package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/aws/handler"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/cohort"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/search"
	"github.com/tranchehq/tranche/internal/workflow/asl"
	"github.com/tranchehq/tranche/statemachines"
)

const cohortMachineARN = "arn:aws:states:us-east-1:123456789012:stateMachine:tranche-cohort"

// sfnRouter is a Step Functions endpoint in front of one emulator per
// state machine: each request goes where its stateMachineArn or
// executionArn says (the emulator runs one definition).
func sfnRouter(t *testing.T, byMachine map[string]string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var in struct{ StateMachineArn, ExecutionArn string }
		_ = json.Unmarshal(body, &in)
		arn := strings.Replace(in.StateMachineArn+in.ExecutionArn, ":execution:", ":stateMachine:", 1)
		target := ""
		for machine, u := range byMachine {
			if strings.HasPrefix(arn, machine) {
				target = u
			}
		}
		if target == "" {
			http.Error(w, "no state machine for "+arn, http.StatusBadRequest)
			return
		}
		u, _ := url.Parse(target)
		r.Body = io.NopCloser(bytes.NewReader(body))
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// cohortBench is the serverless bench with the cohort state machine
// beside the export one, and the HTTP functions that serve the cohort
// routes (TRANCHE_COHORT_CONTRACTS, as template.yaml sets it).
type cohortBench struct {
	*bench
	clients *dynamodb.ClientStore
	store   *dynamodb.ResourceStore
}

func newCohortBench(t *testing.T) *cohortBench {
	b := startBench(t) // skips without dynalite
	ctx := context.Background()
	cf := awstest.NewStepFunctions(t)
	t.Setenv("AWS_ENDPOINT_URL_SFN", sfnRouter(t, map[string]string{machineARN: b.sfn.URL, cohortMachineARN: cf.URL}))
	t.Setenv("TRANCHE_COHORT_STATE_MACHINE_ARN", cohortMachineARN)
	t.Setenv("TRANCHE_COHORT_CONTRACTS", "true")
	steps, err := app.NewAWSFromEnv(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs := steps.CohortSteps()
	if err := cf.SetSteps(statemachines.Cohort, map[string]asl.Step{
		"CohortRunFunctionArn":    awstest.Invoke(handler.Task(cs.Run)),
		"CohortFailedFunctionArn": awstest.Invoke(handler.Task(cs.MarkFailed)),
	}); err != nil {
		t.Fatal(err)
	}
	srv := serveAPI(t)
	b.base, b.http = srv.URL, srv.Client()
	b.load(t)
	db := awstest.DynamoDB(t)
	return &cohortBench{bench: b, clients: dynamodb.NewClientStore(db, os.Getenv("TRANCHE_CLIENTS_TABLE")), store: steps.Resources}
}

// writer registers (as an operator does) a client that may write Groups,
// with contract Groups, and returns it.
func (b *cohortBench) writer(t *testing.T, groups ...string) *client.Client {
	t.Helper()
	key, err := client.GenerateES384()
	if err != nil {
		t.Fatal(err)
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []client.JWK{key.PublicJWK()}})
	id := "cohort-" + awstest.Random()
	scope := "system/*.rs system/Group.cud"
	if err := b.clients.CreateClient(context.Background(), &bulk.Client{ID: id, JWKS: jwks, Scopes: strings.Fields(scope), Groups: groups, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return &client.Client{
		HTTP: b.http, Base: b.base,
		Auth: &client.BackendServices{ClientID: id, Key: key, TokenURL: b.base + "/token", FHIRBase: b.base, Scope: scope, HTTP: b.http},
		Sleep: func(ctx context.Context, d time.Duration) error {
			return client.SleepContext(ctx, min(d, 20*time.Millisecond))
		},
	}
}

func (b *cohortBench) do(t *testing.T, c *client.Client, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	ctx := context.Background()
	req, _ := http.NewRequestWithContext(ctx, method, b.base+path, strings.NewReader(body))
	tok, err := c.Auth.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Prefer", "respond-async")
	req.Header.Set("Content-Type", "application/fhir+json")
	res, err := b.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header, raw
}

// create posts a cohort and polls its status until it is created.
func (b *cohortBench) create(t *testing.T, c *client.Client, filters ...string) string {
	t.Helper()
	var mods []string
	for _, f := range filters {
		mods = append(mods, fmt.Sprintf(`{"url":%q,"valueExpression":{"language":"application/x-fhir-query","expression":%q}}`, bulk.MemberFilterURL, f))
	}
	body := fmt.Sprintf(`{"resourceType":"Group","modifierExtension":[%s],"type":"person","actual":false,"name":"aws cohort"}`, strings.Join(mods, ","))
	status, hdr, raw := b.do(t, c, "POST", "/Group", body)
	if status != http.StatusAccepted {
		t.Fatalf("POST /Group = %d %s", status, raw)
	}
	loc := strings.TrimPrefix(hdr.Get("Content-Location"), b.base)
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		status, _, raw = b.do(t, c, "GET", loc, "")
		if status == http.StatusOK {
			if !strings.Contains(string(raw), `"status":"201 Created"`) {
				t.Fatalf("cohort status %s", raw)
			}
			return strings.TrimPrefix(loc, "/cohorts/")
		}
		if status != http.StatusAccepted {
			t.Fatalf("GET %s = %d %s", loc, status, raw)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	t.Fatalf("cohort %s not created in time", loc)
	return ""
}

// want computes the members independently of the DynamoDB store: the
// evaluator over the reference store (bounded by candidates when set).
func (b *cohortBench) want(t *testing.T, candidates []string, filters ...string) []string {
	t.Helper()
	cr := cohort.Criteria{AsOf: time.Now()}
	for _, q := range filters {
		f, err := search.For(defs.R4).Parse(q)
		if err != nil {
			t.Fatal(err)
		}
		cr.Filters = append(cr.Filters, f)
	}
	if candidates != nil {
		cr.Candidates = map[string]bool{}
		for _, p := range candidates {
			cr.Candidates[p] = true
		}
	}
	ms, _, err := (&cohort.Evaluator{Source: b.oracle}).Members(context.Background(), cr)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

// TestServerlessCohort runs the Bulk Cohort API on the serverless
// deployment (dynalite, the Step Functions emulator running
// statemachines/cohort.asl.json with the Run and MarkFailed steps as
// Lambda would invoke them): create, read, export, a contract-limited
// client's cohort, and delete.
func TestServerlessCohort(t *testing.T) {
	b := newCohortBench(t)
	ctx := context.Background()
	types := strings.Split(compartmentOnly, ",")
	w := b.writer(t, "*")

	filters := []string{"Patient?gender=female", "Observation?category=vital-signs"}
	id := b.create(t, w, filters...)
	members, err := b.store.GroupMembers(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	want := b.want(t, nil, filters...)
	if diff := cmp.Diff(want, members); diff != "" || len(want) == 0 {
		t.Fatalf("cohort members in DynamoDB (-want +got):\n%s", diff)
	}
	status, _, raw := b.do(t, w, "GET", "/Group/"+id, "")
	if status != http.StatusOK || !strings.Contains(string(raw), bulk.MembersRefreshedURL) || !strings.Contains(string(raw), fmt.Sprintf(`"quantity":%d`, len(want))) {
		t.Errorf("GET /Group/%s = %d %s", id, status, raw)
	}
	// Exported like any Group: the members' compartments.
	g, err := b.store.Get(ctx, "Group", id)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.oracle.Put(ctx, []*bulk.Resource{g}); err != nil {
		t.Fatal(err)
	}
	got, _ := b.exportWith(t, w, client.Request{Level: client.LevelGroup, GroupID: id, Types: types})
	if diff := cmp.Diff(b.expected(t, client.LevelGroup, id, types), got); diff != "" {
		t.Errorf("Group/%s/$export (-want +got):\n%s", id, diff)
	}

	// A client limited to the smallest Group: its cohort stays within it,
	// and it exports it (its own cohort counts among its Groups).
	group := b.levelCases(types)[2].req.GroupID
	inGroup, err := b.oracle.GroupMembers(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	lim := b.writer(t, group)
	lid := b.create(t, lim, "Patient?gender=female,male")
	if members, err := b.store.GroupMembers(ctx, lid); err != nil || !slices.Equal(members, b.want(t, inGroup, "Patient?gender=female,male")) {
		t.Errorf("limited cohort members = %v, %v; want those of Group/%s's %v", members, err, group, inGroup)
	}
	g, _ = b.store.Get(ctx, "Group", lid)
	_ = b.oracle.Put(ctx, []*bulk.Resource{g})
	got, _ = b.exportWith(t, lim, client.Request{Level: client.LevelGroup, GroupID: lid, Types: types})
	if diff := cmp.Diff(b.expected(t, client.LevelGroup, lid, types), got); diff != "" {
		t.Errorf("limited client's Group/%s/$export (-want +got):\n%s", lid, diff)
	}
	if status, _, raw := b.do(t, lim, "GET", "/Group/"+id+"/$export", ""); status != http.StatusForbidden {
		t.Errorf("limited client exporting another's cohort = %d %s, want 403", status, raw)
	}
	if status, _, raw := b.do(t, lim, "DELETE", "/Group/"+id, ""); status != http.StatusNotFound {
		t.Errorf("limited client deleting another's cohort = %d %s, want 404", status, raw)
	}

	// Delete: the Group goes, through the workflow.
	for _, c := range []struct {
		cl *client.Client
		id string
	}{{w, id}, {lim, lid}} {
		if status, _, raw := b.do(t, c.cl, "DELETE", "/Group/"+c.id, ""); status != http.StatusAccepted {
			t.Fatalf("DELETE /Group/%s = %d %s", c.id, status, raw)
		}
		for deadline := time.Now().Add(time.Minute); ; {
			if _, err := b.store.Get(ctx, "Group", c.id); bulk.ErrorCode(err) == bulk.ENOTFOUND {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Group/%s still stored a minute after its deletion", c.id)
			}
			time.Sleep(10 * time.Millisecond) // poll interval
		}
		if status, _, _ := b.do(t, c.cl, "GET", "/cohorts/"+c.id, ""); status != http.StatusNotFound {
			t.Errorf("status of a deleted cohort = %d, want 404", status)
		}
	}
}
