//go:build linux

package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/workflow/asl"
	"github.com/tranchehq/tranche/statemachines"

	"github.com/google/go-cmp/cmp"
)

// cohortMachineRole is the cohort state machine's identity in the bench.
const cohortMachineRole = "CohortStateMachine"

// TestServerlessRIECohort runs the Bulk Cohort API through the real
// bootstraps under aws-lambda-rie: CohortFunction behind the gateway as
// template.yaml routes it, CohortRunFunction and CohortFailedFunction
// invoked by the Step Functions emulator running
// statemachines/cohort.asl.json, CohortRefreshFunction as its schedule
// invokes it; then every call those functions and the cohort state machine
// made is checked against their template.yaml grants (as
// TestServerlessRIE/IAM does for the export's).
//
// Not covered here: a contract-limited client (the token function would
// read its cohorts only with TRANCHE_COHORT_CONTRACTS, which the bench
// cannot set per function; TestServerlessCohort covers it in-process).
func TestServerlessRIECohort(t *testing.T) {
	b := newRIEBench(t) // skips without dynalite or the emulator
	b.loadRIE(t)
	ctx := context.Background()
	rie := awstest.FindRIE(t)

	// The cohort state machine beside the export one; instances start on
	// demand, so every one reads this environment.
	cf := awstest.NewStepFunctions(t)
	cf.Sleep = func(ctx context.Context, d time.Duration) error { return client.SleepContext(ctx, d/20) }
	t.Setenv("AWS_ENDPOINT_URL_SFN", b.rec.Front(t, awstest.ServiceSFN, sfnRouter(t, map[string]string{machineARN: b.sfn.URL, cohortMachineARN: cf.URL})))
	t.Setenv("TRANCHE_COHORT_STATE_MACHINE_ARN", cohortMachineARN)
	logs := t.TempDir()
	fn := func(logicalID string) *awstest.Function {
		timeout, ok := b.tpl.Timeout[logicalID]
		if !ok {
			timeout = b.tpl.Timeout[""]
		}
		f := awstest.NewFunction(t, rie, awstest.FunctionConfig{
			Name: functionDir(logicalID), Bootstrap: b.bins[functionDir(logicalID)], Env: []string{"AWS_ACCESS_KEY_ID=" + logicalID},
			Concurrency: 1, Timeout: timeout, LogDir: logs,
		})
		t.Cleanup(func() {
			if t.Failed() {
				for _, inst := range f.Instances() {
					t.Logf("--- %s instance %d:\n%s", logicalID, inst.ID, lastLines(inst.Log(), 15))
				}
			}
		})
		return f
	}
	invoked := func(logicalID string) asl.Step {
		step := fn(logicalID).Step()
		return func(ctx context.Context, in json.RawMessage) (json.RawMessage, error) {
			b.rec.Record(awstest.Call{Principal: cohortMachineRole, Action: "lambda:InvokeFunction", Resource: lambdaARN(logicalID), Via: "Task " + logicalID})
			return step(ctx, in)
		}
	}
	if err := cf.SetSteps(statemachines.Cohort, map[string]asl.Step{
		"CohortRunFunctionArn":    invoked("CohortRunFunction"),
		"CohortFailedFunctionArn": invoked("CohortFailedFunction"),
	}); err != nil {
		t.Fatal(err)
	}
	cb := &cohortBench{bench: b.bench, clients: dynamodb.NewClientStore(awstest.DynamoDB(t), os.Getenv("TRANCHE_CLIENTS_TABLE"))}
	w := cb.writer(t, "*")
	types := strings.Split(compartmentOnly, ",")
	groupMembers := func(id string) []string {
		t.Helper()
		status, _, raw := cb.do(t, w, "GET", "/Group/"+id, "")
		if status != http.StatusOK {
			t.Fatalf("GET /Group/%s = %d %s", id, status, raw)
		}
		var g struct {
			Member []struct{ Entity struct{ Reference string } }
		}
		_ = json.Unmarshal(raw, &g)
		var ms []string
		for _, m := range g.Member {
			ms = append(ms, strings.TrimPrefix(m.Entity.Reference, "Patient/"))
		}
		slices.Sort(ms)
		return ms
	}

	filters := []string{"Patient?gender=female", "Encounter?status=finished"}
	id := cb.create(t, w, filters...)
	want := cb.want(t, nil, filters...)
	if diff := cmp.Diff(want, groupMembers(id)); diff != "" || len(want) == 0 {
		t.Fatalf("cohort members (-want +got):\n%s", diff)
	}
	got, _ := b.exportWith(t, w, client.Request{Level: client.LevelGroup, GroupID: id, Types: types})
	set := map[string]bool{}
	for _, p := range want {
		_ = b.oracle.Compartment(ctx, p, types, func(r *bulk.Resource, _ bulk.Cursor) error { set[r.Type+"/"+r.ID] = true; return nil })
	}
	if diff := cmp.Diff(slices.Sorted(maps.Keys(set)), got); diff != "" {
		t.Errorf("Group/%s/$export (-want +got):\n%s", id, diff)
	}

	// A refresh the owner's contract no longer allows fails, through
	// MarkFailed, with the reason on the status URL.
	c, err := cb.clients.GetClient(ctx, w.Auth.(*client.BackendServices).ClientID)
	if err != nil {
		t.Fatal(err)
	}
	c.Types = []string{"Patient"}
	if err := cb.clients.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	if status, _, raw := cb.do(t, w, "POST", "/cohorts/"+id+"/refresh", ""); status != http.StatusAccepted {
		t.Fatalf("refresh = %d %s", status, raw)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		status, _, raw := cb.do(t, w, "GET", "/cohorts/"+id, "")
		if status == http.StatusOK {
			if !strings.Contains(string(raw), "422") || !strings.Contains(string(raw), "does not allow Encounter") {
				t.Errorf("status of the refused refresh: %s", raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the refused refresh did not end: %d %s", status, raw)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	if diff := cmp.Diff(want, groupMembers(id)); diff != "" {
		t.Errorf("members after a failed refresh (-want +got):\n%s", diff)
	}

	// The schedule's function: nothing is due; then, the contract
	// restored and the cohort made due (a 15-minute interval, computed an
	// hour ago), it starts the refresh, which succeeds.
	refresh := fn("CohortRefreshFunction")
	raw, err := os.ReadFile(filepath.Join(eventsDir, "purge.json"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := refresh.Invoke(ctx, raw); err != nil || !strings.Contains(string(out), `"started":0`) {
		t.Errorf("CohortRefreshFunction = %s, %v; want nothing started", out, err)
	}
	c.Types = nil
	if err := cb.clients.UpdateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	defs := dynamodb.NewCohortStore(awstest.DynamoDB(t), os.Getenv("TRANCHE_RESOURCES_TABLE"))
	def, err := defs.GetCohort(ctx, c.ID, id)
	if err != nil {
		t.Fatal(err)
	}
	def.RefreshEvery, def.RequestedAt, def.RefreshedAt = 15*time.Minute, def.RequestedAt.Add(-time.Hour), def.RefreshedAt.Add(-time.Hour)
	if err := defs.UpdateCohort(ctx, def); err != nil {
		t.Fatal(err)
	}
	if out, err := refresh.Invoke(ctx, raw); err != nil || !strings.Contains(string(out), `"started":1`) {
		t.Errorf("CohortRefreshFunction on a due cohort = %s, %v; want one started", out, err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		status, _, raw := cb.do(t, w, "GET", "/cohorts/"+id, "")
		if status == http.StatusOK {
			if !strings.Contains(string(raw), `"200 OK"`) {
				t.Errorf("status of the scheduled refresh: %s", raw)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the scheduled refresh did not end: %d %s", status, raw)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}
	if diff := cmp.Diff(want, groupMembers(id)); diff != "" {
		t.Errorf("members after the scheduled refresh (-want +got):\n%s", diff)
	}

	// Delete: the workflow removes the Group.
	if status, _, raw := cb.do(t, w, "DELETE", "/Group/"+id, ""); status != http.StatusAccepted {
		t.Fatalf("DELETE = %d %s", status, raw)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		status, _, _ := cb.do(t, w, "GET", "/Group/"+id, "")
		if status == http.StatusNotFound {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Group/%s still there a minute after its deletion", id)
		}
		time.Sleep(10 * time.Millisecond) // poll interval
	}

	t.Run("IAM", func(t *testing.T) {
		src, err := os.ReadFile(filepath.Join(repoRoot, "template.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		stack := benchStack(t, src, b.bucket)
		stack.Refs["CohortStateMachine"] = cohortMachineARN
		policies, err := awstest.TemplatePolicies(src, stack)
		if err != nil {
			t.Fatalf("template.yaml policies: %v", err)
		}
		mine := []string{"CohortFunction", "CohortRunFunction", "CohortFailedFunction", "CohortRefreshFunction", cohortMachineRole}
		var calls []awstest.Call
		for _, c := range b.rec.Calls() {
			if slices.Contains(mine, c.Principal) {
				calls = append(calls, c)
			}
		}
		rep := awstest.Check(policies, calls, func(c awstest.Call) string {
			res := resourcePattern.ReplaceAllString(c.Resource, "$1/{key}")
			res = jobID.ReplaceAllString(res, "{id}")
			if v, ok := c.Context["s3:prefix"]; ok {
				res += " (s3:prefix " + prefixPattern.ReplaceAllString(v, "$1{key}") + ")"
			}
			return c.Action + " " + res
		}, "test")
		for _, c := range rep.Denied {
			t.Errorf("not granted by template.yaml: %s (via %s)", c, c.Via)
		}
		if len(rep.Unchecked) > 0 {
			t.Errorf("calls by principals without a policy in template.yaml: %q", rep.Unchecked)
		}
		var table strings.Builder
		for _, p := range slices.Sorted(maps.Keys(rep.Observed)) {
			fmt.Fprintf(&table, "%s\n", p)
			for _, a := range rep.Observed[p] {
				fmt.Fprintf(&table, "    %s\n", a)
			}
		}
		t.Logf("cohort calls observed, by role:\n%s", table.String())
		var unused []string
		for _, st := range rep.Unused {
			if slices.ContainsFunc(mine, func(m string) bool { return strings.HasPrefix(st.Source, m) }) {
				unused = append(unused, fmt.Sprintf("%s: %s on %s", st.Source, strings.Join(st.Actions, ","), strings.Join(st.Resources, ",")))
			}
		}
		t.Logf("cohort grants no call used (%d):\n%s", len(unused), strings.Join(unused, "\n"))
		for _, must := range mine {
			if len(rep.Observed[must]) == 0 {
				t.Errorf("%s made no call: the bench does not exercise it", must)
			}
		}
	})
}
