package app_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/tranchehq/tranche/internal/aws/awstest"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
)

// TestServerlessRIELargeRequest: a Patient kick-off naming 2,000 `patient`
// values (UUIDs: 80 KB of request, more than a job item keeps, so the job
// store keeps it beside the item) through the real functions. Kickoff
// writes it in its transaction; Status, Plan, ExportItem and Finalize read
// it and export exactly those patients; the manifest names the request;
// the purge function's list of jobs reads it; DELETE removes it with the
// job; and every call is one template.yaml grants as it is (issue 12 item
// 4: no new IAM grant).
func TestServerlessRIELargeRequest(t *testing.T) {
	b := newRIEBench(t)
	b.loadRIE(t)
	ctx := context.Background()
	var ids, want []string
	var rs []*bulk.Resource
	at := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	for i := range 2000 {
		id := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i*7919)
		ids, want = append(ids, id), append(want, "Patient/"+id)
		rs = append(rs, &bulk.Resource{Type: "Patient", ID: id, LastUpdated: at, Patients: []string{id},
			Body: fmt.Appendf(nil, `{"resourceType":"Patient","id":%q,"meta":{"lastUpdated":%q}}`, id, at.Format(time.RFC3339Nano))})
	}
	if err := b.steps.Resources.Put(ctx, rs); err != nil {
		t.Fatal(err)
	}
	slices.Sort(want)

	c := b.client(t)
	req := client.Request{Level: client.LevelPatient, Types: []string{"Patient"}, Patients: ids, Post: true}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	status, err := c.Kickoff(ctx, req)
	if err != nil {
		t.Fatalf("Kickoff(%d patients): %v", len(ids), err)
	}
	if chunks := requestChunks(t); len(chunks) != 1 {
		t.Errorf("request chunks in the Jobs table = %v, want the kick-off's one", chunks)
	}
	m, err := c.Poll(ctx, status, nil)
	if err != nil {
		t.Fatalf("Poll: %v", err)
	}
	if m.Request != b.base+"/Patient/$export" {
		t.Errorf("manifest request = %q, want %q (R56)", m.Request, b.base+"/Patient/$export")
	}
	res, err := c.Download(ctx, m, filepath.Join(t.TempDir(), "out"), 4)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range res.Files {
		if f.Kind != client.KindOutput {
			continue
		}
		raw, err := os.ReadFile(filepath.Join(res.Dir, f.Path))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var id string
			if _, err := fmt.Sscanf(l[strings.Index(l, `"id":"`)+6:], "%36s", &id); err != nil {
				t.Fatalf("line %s: %v", l, err)
			}
			got = append(got, "Patient/"+id)
		}
	}
	slices.Sort(got)
	if !slices.Equal(want, got) {
		t.Errorf("exported %d Patients, want the %d named (first: %v)", len(got), len(want), got[:min(3, len(got))])
	}

	ev, err := os.ReadFile(filepath.Join(eventsDir, "purge.json"))
	if err != nil {
		t.Fatal(err)
	}
	if out, err := b.fns["purge"].Invoke(ctx, ev); err != nil || !strings.Contains(string(out), `"purged":0`) {
		t.Errorf("purge function = %s, %v; want a pass that lists the job and purges nothing", out, err)
	}
	if err := c.Cancel(ctx, status); err != nil {
		t.Fatalf("DELETE %s: %v", status, err)
	}
	if chunks := requestChunks(t); len(chunks) != 0 {
		t.Errorf("request chunks left after DELETE: %v", chunks)
	}
	checkGrants(t, b)
}

// requestChunks lists the request chunk items in the bench's Jobs table.
func requestChunks(t *testing.T) []string {
	t.Helper()
	db := awstest.DynamoDB(t)
	out, err := db.Scan(context.Background(), &ddb.ScanInput{TableName: aws.String(os.Getenv("TRANCHE_JOBS_TABLE")), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	var pks []string
	for _, item := range out.Items {
		if pk := item["pk"].(*types.AttributeValueMemberS).Value; strings.HasPrefix(pk, "request#") {
			pks = append(pks, pk)
		}
	}
	return pks
}

// checkGrants fails the test for each call the functions made that
// template.yaml does not grant their role (checkIAM without its list of
// functions that must have called: this test runs a few of them).
func checkGrants(t *testing.T, b *rieBench) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(repoRoot, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	stack := benchStack(t, src, b.bucket)
	policies, err := awstest.TemplatePolicies(src, stack)
	if err != nil {
		t.Fatalf("template.yaml policies: %v", err)
	}
	rep := awstest.Check(policies, b.rec.Calls(), func(c awstest.Call) string {
		return c.Action + " " + jobID.ReplaceAllString(resourcePattern.ReplaceAllString(c.Resource, "$1/{key}"), "{job}")
	}, "test")
	for _, c := range rep.Denied {
		t.Errorf("not granted by template.yaml: %s (via %s)", c, c.Via)
	}
	for _, must := range []string{"KickoffFunction", "StatusFunction", "DownloadFunction", "PlanFunction", "ExportItemFunction", "FinalizeFunction", "PurgeFunction"} {
		if len(rep.Observed[must]) == 0 {
			t.Errorf("%s made no call", must)
		}
	}
}
