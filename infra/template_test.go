// Package infra_test checks template.yaml against the code it deploys, so a
// wrong substitution, a missing function or an unread variable fails here
// rather than in a deployment.
package infra_test

import (
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/aws/cfn"
	"github.com/tranchehq/tranche/internal/aws/dynamodb"
	"github.com/tranchehq/tranche/internal/aws/handler"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/statemachines"
)

const root = ".."

type template struct {
	Resources  map[string]map[string]any
	Globals    map[string]any
	Parameters map[string]any
	Mappings   map[string]any
}

func load(t *testing.T) *template {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := cfn.Parse(string(raw))
	if err != nil {
		t.Fatalf("template.yaml: %v", err)
	}
	top := doc.(map[string]any)
	tpl := &template{Resources: map[string]map[string]any{}}
	for name, r := range top["Resources"].(map[string]any) {
		tpl.Resources[name] = r.(map[string]any)
	}
	tpl.Globals, _ = top["Globals"].(map[string]any)
	tpl.Parameters, _ = top["Parameters"].(map[string]any)
	tpl.Mappings, _ = top["Mappings"].(map[string]any)
	return tpl
}

func (tpl *template) ofType(typ string) []string {
	var names []string
	for name, r := range tpl.Resources {
		if r["Type"] == typ {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

func get(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// TestStateMachine: each state machine is deployed from the file the local
// runner executes, every ${...} of its definition has a substitution naming
// a function of the template that the machine may invoke, and every
// substitution is used.
func TestStateMachine(t *testing.T) {
	tpl := load(t)
	defs := map[string]struct {
		file string
		def  []byte
	}{
		"ExportStateMachine": {"statemachines/export.asl.json", statemachines.Export},
		"CohortStateMachine": {"statemachines/cohort.asl.json", statemachines.Cohort},
	}
	machines := tpl.ofType("AWS::Serverless::StateMachine")
	if want := slices.Sorted(maps.Keys(defs)); !slices.Equal(machines, want) {
		t.Fatalf("state machines = %v, want %v", machines, want)
	}
	for _, name := range machines {
		t.Run(name, func(t *testing.T) {
			checkStateMachine(t, tpl, name, defs[name].file, defs[name].def)
		})
	}
}

func checkStateMachine(t *testing.T, tpl *template, name, file string, def []byte) {
	sm := tpl.Resources[name]
	if uri := get(sm, "Properties", "DefinitionUri"); uri != file {
		t.Errorf("DefinitionUri = %v, want %s (the file the local runner executes)", uri, file)
	}
	subs, _ := get(sm, "Properties", "DefinitionSubstitutions").(map[string]any)
	used := map[string]bool{}
	for _, m := range regexp.MustCompile(`\$\{([A-Za-z0-9]+)\}`).FindAllStringSubmatch(string(def), -1) {
		used[m[1]] = true
	}
	if len(used) == 0 {
		t.Fatal("the definition has no ${...} substitutions")
	}
	// No ARN of the definition names a partition: they take the stack's.
	if strings.Contains(string(def), "arn:aws:") {
		t.Error("the definition has an arn:aws: ARN; use arn:${Partition}: (a DefinitionSubstitution of AWS::Partition)")
	}
	for name := range used {
		v, ok := subs[name]
		if !ok {
			t.Errorf("${%s} has no DefinitionSubstitution", name)
			continue
		}
		if name == "Partition" {
			if v != "!Ref AWS::Partition" {
				t.Errorf("${Partition} = %v, want !Ref AWS::Partition", v)
			}
			continue
		}
		ref, _ := v.(string)
		fn, ok := strings.CutPrefix(ref, "!GetAtt ")
		fn, arn := strings.CutSuffix(fn, ".Arn")
		if !ok || !arn || get(tpl.Resources[fn], "Type") != "AWS::Serverless::Function" {
			t.Errorf("${%s} = %v, want !GetAtt <a function>.Arn", name, v)
		}
		// The state machine may invoke it.
		found := false
		for _, p := range get(sm, "Properties", "Policies").([]any) {
			if get(p, "LambdaInvokePolicy", "FunctionName") == "!Ref "+fn {
				found = true
			}
		}
		if !found {
			t.Errorf("the state machine has no LambdaInvokePolicy for %s", fn)
		}
	}
	for name := range subs {
		if !used[name] {
			t.Errorf("DefinitionSubstitution %s is not used by the definition", name)
		}
	}
}

// TestDistributedMap: a definition whose Distributed Map reads its items
// from S3 and writes its results there (a ResultWriter, so the Map's result
// is not capped by the 256 KiB payload) needs a state machine that may read
// and write them and run child executions of itself, and a Plan function
// that may write the items.
func TestDistributedMap(t *testing.T) {
	var def struct {
		States map[string]struct {
			ItemReader struct {
				Resource   string
				Parameters map[string]string
			}
			ResultWriter struct {
				Resource   string
				Parameters map[string]string
			}
			ItemProcessor struct{ ProcessorConfig struct{ Mode string } }
			ResultPath    json.RawMessage
		}
	}
	if err := json.Unmarshal(statemachines.Export, &def); err != nil {
		t.Fatal(err)
	}
	distributed := 0
	for name, st := range def.States {
		if st.ItemProcessor.ProcessorConfig.Mode != "DISTRIBUTED" {
			continue
		}
		distributed++
		if st.ItemReader.Resource != "arn:${Partition}:states:::s3:getObject" {
			t.Errorf("%s: ItemReader Resource = %q, want the item list read from S3", name, st.ItemReader.Resource)
		}
		// Plan's resultsPrefix is <exports prefix><job>/plan/results/, in
		// the item list's bucket: the job's deletion removes the results.
		want := map[string]string{"Bucket.$": "$.plan.itemsBucket", "Prefix.$": "$.plan.resultsPrefix"}
		if st.ResultWriter.Resource != "arn:${Partition}:states:::s3:putObject" || fmt.Sprint(st.ResultWriter.Parameters) != fmt.Sprint(want) {
			t.Errorf("%s: ResultWriter = %+v, want s3:putObject with Parameters %v", name, st.ResultWriter, want)
		}
		// The Map's result (the ResultWriter's descriptor) is dropped, so
		// the next state's input is the plan as before.
		if string(st.ResultPath) != "null" {
			t.Errorf("%s: ResultPath = %s, want null", name, st.ResultPath)
		}
	}
	if distributed != 1 {
		t.Fatalf("the definition has %d Distributed Maps, want one", distributed)
	}
	tpl := load(t)
	sm := tpl.Resources["ExportStateMachine"]
	name, _ := get(sm, "Properties", "Name").(string)
	if !strings.Contains(name, "-export") {
		t.Fatalf("ExportStateMachine Name = %q, want a fixed name its policy can refer to", name)
	}
	smName := strings.TrimPrefix(name, "!Sub ")
	policy := fmt.Sprint(get(sm, "Properties", "Policies"))
	for _, want := range []string{
		"[s3:GetObject] Effect:Allow Resource:!Sub ${DataBucket.Arn}/exports/*/plan/*]",
		"[s3:PutObject s3:GetObject s3:ListMultipartUploadParts s3:AbortMultipartUpload] Effect:Allow Resource:!Sub ${DataBucket.Arn}/exports/*/plan/results/*]",
		"[states:StartExecution] Effect:Allow Resource:!Sub arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:" + smName + "]",
		"[states:DescribeExecution states:StopExecution] Effect:Allow Resource:!Sub arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:" + smName + "/*]",
	} {
		if !strings.Contains(policy, want) {
			t.Errorf("the state machine's policies lack %s:\n%s", want, policy)
		}
	}
	plan := fmt.Sprint(get(tpl.Resources["PlanFunction"], "Properties", "Policies"))
	if !strings.Contains(plan, "s3:PutObject") || !strings.Contains(plan, "${DataBucket.Arn}/exports/*") {
		t.Errorf("PlanFunction may not write the item list under exports/: %s", plan)
	}
}

// TestFunctions: every function is built from functions/<name>/main.go by
// aws.mk's build-% rule, and every functions/ directory is deployed.
func TestFunctions(t *testing.T) {
	tpl := load(t)
	if h := get(tpl.Globals, "Function", "Handler"); h != "bootstrap" {
		t.Errorf("Globals Handler = %v, want bootstrap", h)
	}
	if rt := get(tpl.Globals, "Function", "Runtime"); rt != "provided.al2023" {
		t.Errorf("Globals Runtime = %v, want provided.al2023", rt)
	}
	if a := get(tpl.Globals, "Function", "Architectures"); fmt.Sprint(a) != "[arm64]" {
		t.Errorf("Globals Architectures = %v, want [arm64]", a)
	}
	deployed := map[string]bool{}
	for _, name := range tpl.ofType("AWS::Serverless::Function") {
		fn := tpl.Resources[name]
		if bm := get(fn, "Metadata", "BuildMethod"); bm != "makefile" {
			t.Errorf("%s: BuildMethod = %v, want makefile (aws.mk build-%%)", name, bm)
		}
		base, ok := strings.CutSuffix(name, "Function")
		if !ok {
			t.Errorf("%s: a function's logical id ends in Function (build-%%Function)", name)
			continue
		}
		dir := strings.ToLower(base)
		deployed[dir] = true
		if _, err := os.Stat(filepath.Join(root, "functions", dir, "main.go")); err != nil {
			t.Errorf("%s: functions/%s/main.go: %v", name, dir, err)
		}
	}
	entries, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && !deployed[e.Name()] {
			t.Errorf("functions/%s is not in template.yaml", e.Name())
		}
	}
}

// TestEnvironment: every variable the template sets is one the code reads.
func TestEnvironment(t *testing.T) {
	tpl := load(t)
	read := envRead(t)
	check := func(where string, vars any) {
		m, _ := vars.(map[string]any)
		for k := range m {
			if !read[k] {
				t.Errorf("%s sets %s, which no code reads", where, k)
			}
		}
	}
	check("Globals", get(tpl.Globals, "Function", "Environment", "Variables"))
	for _, name := range tpl.ofType("AWS::Serverless::Function") {
		check(name, get(tpl.Resources[name], "Properties", "Environment", "Variables"))
	}
	// Functions that start, stop or describe executions know the state
	// machine and may do it.
	for _, name := range []string{"KickoffFunction", "StatusFunction", "PurgeFunction"} {
		fn := tpl.Resources[name]
		if get(fn, "Properties", "Environment", "Variables", "TRANCHE_STATE_MACHINE_ARN") == nil {
			t.Errorf("%s has no TRANCHE_STATE_MACHINE_ARN", name)
		}
	}
	if !strings.Contains(fmt.Sprint(get(tpl.Resources["KickoffFunction"], "Properties", "Policies")), "states:StartExecution") {
		t.Error("KickoffFunction may not start executions")
	}
	if !strings.Contains(fmt.Sprint(get(tpl.Resources["StatusFunction"], "Properties", "Policies")), "states:StopExecution") {
		t.Error("StatusFunction may not stop executions")
	}
	// The watchdog (export.Service.Watchdog, in the purge) describes the
	// executions, named by job id, and fails the jobs whose execution
	// ended: it reads, updates and deletes jobs.
	purge := fmt.Sprint(get(tpl.Resources["PurgeFunction"], "Properties", "Policies"))
	for _, want := range []string{
		"[states:DescribeExecution] Effect:Allow Resource:!Sub arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${ExportStateMachine.Name}:*]",
		"[dynamodb:Scan dynamodb:GetItem dynamodb:UpdateItem dynamodb:DeleteItem] Effect:Allow Resource:!GetAtt JobsTable.Arn]",
	} {
		if !strings.Contains(purge, want) {
			t.Errorf("PurgeFunction's policies lack %s:\n%s", want, purge)
		}
	}
	// Often enough that a stuck job is failed promptly.
	if s := fmt.Sprint(get(tpl.Resources["PurgeFunction"], "Properties", "Events")); !strings.Contains(s, "Schedule:rate(15 minutes)") {
		t.Errorf("PurgeFunction runs on %s, want every 15 minutes (the watchdog)", s)
	}
}

// TestFileURLs: the functions answering status polls (the status URL and
// the pages of a paged manifest) know TRANCHE_FILE_URLS, whose values are
// the config's, and may read the exports: presigned URLs in a manifest act
// with the signing function's role.
func TestFileURLs(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := cfn.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	param := get(doc, "Parameters", "FileUrls")
	if got, want := fmt.Sprint(get(param, "AllowedValues")), fmt.Sprint([]string{config.FileURLsRedirect, config.FileURLsPresigned}); got != want {
		t.Errorf("FileUrls AllowedValues = %s, want %s", got, want)
	}
	if d := get(param, "Default"); d != config.FileURLsRedirect {
		t.Errorf("FileUrls Default = %v, want %s", d, config.FileURLsRedirect)
	}
	tpl := load(t)
	serves := map[string]string{} // route → function
	for _, name := range tpl.ofType("AWS::Serverless::Function") {
		evs, _ := get(tpl.Resources[name], "Properties", "Events").(map[string]any)
		for _, ev := range evs {
			serves[fmt.Sprintf("%v %v", get(ev, "Properties", "Method"), get(ev, "Properties", "Path"))] = name
		}
	}
	for _, route := range []string{"GET /jobs/{id}", "GET /jobs/{id}/manifest/{n}"} {
		name := serves[route]
		if name == "" {
			t.Errorf("no function serves %s", route)
			continue
		}
		fn := tpl.Resources[name]
		if v := get(fn, "Properties", "Environment", "Variables", "TRANCHE_FILE_URLS"); v != "!Ref FileUrls" {
			t.Errorf("%s (%s): TRANCHE_FILE_URLS = %v, want !Ref FileUrls", name, route, v)
		}
		if policy := fmt.Sprint(get(fn, "Properties", "Policies")); !regexp.MustCompile(`\[s3:GetObject[^\]]*\] Effect:Allow Resource:!Sub \$\{DataBucket.Arn\}/exports/\*\]`).MatchString(policy) {
			t.Errorf("%s (%s) may not s3:GetObject exports/*, so its presigned URLs would be denied:\n%s", name, route, policy)
		}
	}
}

// envRead returns the TRANCHE_* names that string literals of the Go code
// under internal/ name.
func envRead(t *testing.T) map[string]bool {
	t.Helper()
	read := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(root, "internal"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
				if s, err := strconv.Unquote(lit.Value); err == nil && regexp.MustCompile(`^TRANCHE_[A-Z0-9_]+$`).MatchString(s) {
					read[s] = true
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return read
}

// TestTables: the template's tables have the keys and TTL the stores use.
func TestTables(t *testing.T) {
	tpl := load(t)
	for _, spec := range dynamodb.Specs() {
		name := spec.Kind + "Table"
		tb := tpl.Resources[name]
		if get(tb, "Type") != "AWS::DynamoDB::Table" {
			t.Errorf("no table %s", name)
			continue
		}
		p := get(tb, "Properties")
		keys := fmt.Sprint(get(p, "KeySchema"))
		wantKeys := "[map[AttributeName:pk KeyType:HASH]]"
		if spec.SortKey {
			wantKeys = "[map[AttributeName:pk KeyType:HASH] map[AttributeName:sk KeyType:RANGE]]"
		}
		if keys != wantKeys {
			t.Errorf("%s KeySchema = %s, want %s", name, keys, wantKeys)
		}
		ttl := get(p, "TimeToLiveSpecification", "AttributeName")
		if spec.TTL != (ttl == "ttl") {
			t.Errorf("%s TTL attribute = %v, want TTL %v on ttl", name, ttl, spec.TTL)
		}
		if get(p, "BillingMode") != "PAY_PER_REQUEST" || get(p, "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled") != "true" {
			t.Errorf("%s: want on-demand with point-in-time recovery", name)
		}
		// The global secondary indexes the stores query, keys only; and
		// exactly the key attributes defined (CloudFormation rejects a
		// definition no key schema uses).
		wantDefs := []string{"pk"}
		if spec.SortKey {
			wantDefs = append(wantDefs, "sk")
		}
		gsis, _ := get(p, "GlobalSecondaryIndexes").([]any)
		if len(gsis) != len(spec.Indexes) {
			t.Errorf("%s has %d global secondary indexes, the code queries %d", name, len(gsis), len(spec.Indexes))
		}
		for _, ix := range spec.Indexes {
			wantDefs = append(wantDefs, ix.HashKey)
			var gsi any
			for _, g := range gsis {
				if get(g, "IndexName") == ix.Name {
					gsi = g
				}
			}
			if gsi == nil {
				t.Errorf("%s has no index %s", name, ix.Name)
				continue
			}
			if keys, want := fmt.Sprint(get(gsi, "KeySchema")), "[map[AttributeName:"+ix.HashKey+" KeyType:HASH]]"; keys != want {
				t.Errorf("%s index %s KeySchema = %s, want %s", name, ix.Name, keys, want)
			}
			if pt := get(gsi, "Projection", "ProjectionType"); pt != "KEYS_ONLY" {
				t.Errorf("%s index %s projects %v, want KEYS_ONLY", name, ix.Name, pt)
			}
		}
		var defs []string
		for _, d := range get(p, "AttributeDefinitions").([]any) {
			if get(d, "AttributeType") != "S" {
				t.Errorf("%s defines %v as %v, want S", name, get(d, "AttributeName"), get(d, "AttributeType"))
			}
			defs = append(defs, fmt.Sprint(get(d, "AttributeName")))
		}
		if fmt.Sprint(defs) != fmt.Sprint(wantDefs) {
			t.Errorf("%s AttributeDefinitions = %v, want %v", name, defs, wantDefs)
		}
	}
	// The kick-off reserves a quota slot with a counter item in the same
	// transaction as the job (JobStore.CreateJobWithin): it needs neither
	// a scan nor the Jobs index (TestServerlessRIE/IAM checks the calls).
	kickoff := fmt.Sprint(get(tpl.Resources["KickoffFunction"], "Properties", "Policies"))
	if strings.Contains(kickoff, "dynamodb:Scan") || strings.Contains(kickoff, "${JobsTable.Arn}/index/*") {
		t.Errorf("KickoffFunction may scan a table or query the Jobs index; its quota is a counter: %s", kickoff)
	}
	if n := len(tpl.ofType("AWS::DynamoDB::Table")); n != len(dynamodb.Specs()) {
		t.Errorf("template has %d tables, the code uses %d", n, len(dynamodb.Specs()))
	}
}

// TestBucket: encrypted, private, TLS only, expiring exports.
func TestBucket(t *testing.T) {
	tpl := load(t)
	b := get(tpl.Resources["DataBucket"], "Properties")
	for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
		if get(b, "PublicAccessBlockConfiguration", k) != "true" {
			t.Errorf("DataBucket %s is not true", k)
		}
	}
	if b == nil || !strings.Contains(fmt.Sprint(get(b, "BucketEncryption")), "SSEAlgorithm") {
		t.Error("DataBucket has no default encryption")
	}
	// The exports/ rule deletes files a day after RetentionDays, so never
	// before a manifest's Expires: the mapping holds value+1 for every
	// allowed value.
	if !strings.Contains(fmt.Sprint(get(b, "LifecycleConfiguration")), `ExpirationInDays:[!FindInMap [ExportExpiry !Sub d${RetentionDays} Days]]`) {
		t.Errorf("DataBucket exports do not expire by ExportExpiry: %v", get(b, "LifecycleConfiguration"))
	}
	allowed, _ := get(tpl.Parameters["RetentionDays"], "AllowedValues").([]any)
	if len(allowed) == 0 {
		t.Error("RetentionDays has no AllowedValues (the ExportExpiry mapping needs one entry per value)")
	}
	for _, v := range allowed {
		days, err := strconv.Atoi(fmt.Sprint(v))
		got := fmt.Sprint(get(tpl.Mappings["ExportExpiry"], "d"+fmt.Sprint(v), "Days"))
		if err != nil || got != strconv.Itoa(days+1) {
			t.Errorf("ExportExpiry d%v = %s, want %d (RetentionDays + 1)", v, got, days+1)
		}
	}
	pol := fmt.Sprint(get(tpl.Resources["DataBucketPolicy"], "Properties", "PolicyDocument"))
	if !strings.Contains(pol, "aws:SecureTransport:false") || !strings.Contains(pol, "Effect:Deny") {
		t.Errorf("DataBucketPolicy does not deny plain HTTP: %s", pol)
	}
}

// TestRoutes: every HTTP fixture of events/ is a route of the template, on
// the function whose name it carries.
func TestRoutes(t *testing.T) {
	tpl := load(t)
	routes := map[string]string{} // "GET /jobs/{id}" → function
	for _, name := range tpl.ofType("AWS::Serverless::Function") {
		evs, _ := get(tpl.Resources[name], "Properties", "Events").(map[string]any)
		for _, ev := range evs {
			if get(ev, "Type") != "HttpApi" {
				continue
			}
			method, path := get(ev, "Properties", "Method"), get(ev, "Properties", "Path")
			key := "$default"
			if method != nil {
				key = fmt.Sprintf("%v %v", method, path)
			}
			if prev, dup := routes[key]; dup {
				t.Errorf("route %s is on %s and %s", key, prev, name)
			}
			routes[key] = name
		}
	}
	files, _ := filepath.Glob(filepath.Join(root, "events", "*.json"))
	n := 0
	for _, f := range files {
		raw, _ := os.ReadFile(f)
		var ev struct {
			RouteKey string `json:"routeKey"`
		}
		if json.Unmarshal(raw, &ev) != nil || ev.RouteKey == "" {
			continue
		}
		n++
		if _, ok := routes[ev.RouteKey]; !ok {
			t.Errorf("%s: route %q is not in template.yaml", filepath.Base(f), ev.RouteKey)
		}
	}
	if n < 5 {
		t.Errorf("only %d HTTP fixtures in events/", n)
	}
	if routes["$default"] == "" {
		t.Error("no $default route: unknown paths would get API Gateway's 404 instead of an OperationOutcome")
	}
}

// TestFirstDeploy: a first `sam deploy` that fails must not burn the stack
// name, and must not need a raised Lambda quota. The retained bucket and
// tables are RetainExceptOnCreate (a rollback of their creation deletes
// them, so the fixed-name bucket can be created again); the import
// function reserves no concurrency (new accounts have 10 concurrent
// executions and Lambda keeps 100 unreserved, so any reservation fails
// there).
func TestFirstDeploy(t *testing.T) {
	tpl := load(t)
	for name, r := range tpl.Resources {
		if p, ok := r["DeletionPolicy"]; ok && p != "RetainExceptOnCreate" && p != "Delete" {
			t.Errorf("%s DeletionPolicy %v: a failed first deploy would leave it behind; want RetainExceptOnCreate", name, p)
		}
	}
	for _, name := range []string{"DataBucket", "ClientsTable", "ResourcesTable"} {
		if p := tpl.Resources[name]["DeletionPolicy"]; p != "RetainExceptOnCreate" {
			t.Errorf("%s DeletionPolicy = %v, want RetainExceptOnCreate (kept on stack deletion once created)", name, p)
		}
	}
	// ImportConcurrency caps the import queue's event source instead of
	// reserving concurrency: nothing to reserve, so a default cap needs no
	// raised quota, and no throttled delivery counts as a receive towards
	// the dead-letter queue
	// (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html).
	if d, _ := strconv.Atoi(fmt.Sprint(get(tpl.Parameters["ImportConcurrency"], "Default"))); d < 2 {
		t.Errorf("ImportConcurrency default %d, want a cap of at least 2 (the event source's minimum)", d)
	}
	if rc := get(tpl.Resources["ImportFunction"], "Properties", "ReservedConcurrentExecutions"); rc != nil {
		t.Errorf("ImportFunction ReservedConcurrentExecutions = %v, want none (a reservation throttles SQS deliveries)", rc)
	}
}

// noValue is what !Ref AWS::NoValue evaluates to here.
const noValue = "<AWS::NoValue>"

// deployment evaluates the template's intrinsics as CloudFormation would
// for a deployment with params (the rest at their defaults): its
// conditions, computed from the Conditions section (!Not, !Equals, !Or,
// !And, !Condition), and the parameters' and pseudo parameters' Refs.
func deployment(t *testing.T, params map[string]string) *cfn.Stack {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root, "template.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := cfn.Parse(string(raw))
	if err != nil {
		t.Fatal(err)
	}
	st := &cfn.Stack{Refs: map[string]string{
		"AWS::NoValue": noValue, "AWS::Partition": "aws", "AWS::Region": "us-east-1",
		"AWS::AccountId": "123456789012", "AWS::StackName": "tranche",
	}, Conditions: map[string]bool{}}
	for name, p := range get(doc, "Parameters").(map[string]any) {
		if d, ok := get(p, "Default").(string); ok {
			st.Refs[name] = d
		}
	}
	maps.Copy(st.Refs, params)
	conds, _ := get(doc, "Conditions").(map[string]any)
	var eval func(v any) bool
	named := func(name string) bool {
		if _, ok := conds[name]; !ok {
			t.Fatalf("no condition %s", name)
		}
		return eval(conds[name])
	}
	value := func(v any) string {
		s := fmt.Sprint(v)
		if ref, ok := strings.CutPrefix(s, "!Ref "); ok {
			return st.Refs[ref]
		}
		return s
	}
	eval = func(v any) bool {
		if s, ok := v.(string); ok {
			name, found := strings.CutPrefix(s, "!Condition ")
			if !found {
				t.Fatalf("condition %q", s)
			}
			return named(name)
		}
		fn, args := v.([]any)[0].(string), v.([]any)[1].([]any)
		switch fn {
		case "!Not":
			return !eval(args[0])
		case "!Equals":
			return value(args[0]) == value(args[1])
		case "!Or":
			return slices.ContainsFunc(args, eval)
		case "!And":
			return !slices.ContainsFunc(args, func(a any) bool { return !eval(a) })
		}
		t.Fatalf("condition function %s", fn)
		return false
	}
	for name := range conds {
		st.Conditions[name] = named(name)
	}
	return st
}

func evalIn(t *testing.T, st *cfn.Stack, v any) string {
	t.Helper()
	out, err := st.Eval(v)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(out)
}

// TestImportQueue: S3 notifies the import queue of files under incoming/,
// and the import function consumes it one notification at a time, with
// partial batch responses; a notification is invisible for six function
// timeouts while it is worked on, as Lambda asks
// (https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-configure.html),
// and after handler.ImportMaxReceives receives goes to a dead-letter queue
// that keeps it longer and whose first message raises an alarm.
func TestImportQueue(t *testing.T) {
	tpl := load(t)
	fn := tpl.Resources["ImportFunction"]
	q, dlq := get(tpl.Resources["ImportQueue"], "Properties"), get(tpl.Resources["ImportDeadLetterQueue"], "Properties")
	if tpl.Resources["ImportQueue"]["Type"] != "AWS::SQS::Queue" || tpl.Resources["ImportDeadLetterQueue"]["Type"] != "AWS::SQS::Queue" {
		t.Fatal("no ImportQueue and ImportDeadLetterQueue (AWS::SQS::Queue)")
	}
	timeout, _ := strconv.Atoi(fmt.Sprint(get(fn, "Properties", "Timeout")))
	vis, _ := strconv.Atoi(fmt.Sprint(get(q, "VisibilityTimeout")))
	if timeout == 0 || vis < 6*timeout {
		t.Errorf("ImportQueue VisibilityTimeout %d, want at least 6 × ImportFunction's Timeout %d", vis, timeout)
	}
	if got, want := fmt.Sprint(get(q, "RedrivePolicy")), fmt.Sprintf("map[deadLetterTargetArn:!GetAtt ImportDeadLetterQueue.Arn maxReceiveCount:%d]", handler.ImportMaxReceives); got != want {
		t.Errorf("ImportQueue RedrivePolicy = %s, want %s (handler.ImportMaxReceives, the attempt it reports as final)", got, want)
	}
	if handler.ImportMaxReceives != 3 {
		t.Errorf("handler.ImportMaxReceives = %d, want 3", handler.ImportMaxReceives)
	}
	keep, _ := strconv.Atoi(fmt.Sprint(get(q, "MessageRetentionPeriod")))
	keepDead, _ := strconv.Atoi(fmt.Sprint(get(dlq, "MessageRetentionPeriod")))
	if keep == 0 || keepDead <= keep {
		t.Errorf("retention: queue %d s, dead-letter queue %d s; want the dead-letter queue's longer (a message keeps its first enqueue time)", keep, keepDead)
	}
	for name, p := range map[string]any{"ImportQueue": q, "ImportDeadLetterQueue": dlq} {
		if get(p, "SqsManagedSseEnabled") != "true" {
			t.Errorf("%s is not encrypted with SSE-SQS", name)
		}
	}

	// The event source: the queue only, one notification per invocation,
	// ReportBatchItemFailures, and ImportConcurrency as its maximum
	// concurrency (at least 2; 0 sets none).
	evs, _ := get(fn, "Properties", "Events").(map[string]any)
	if len(evs) != 1 {
		t.Fatalf("ImportFunction events = %v, want the import queue only", evs)
	}
	for _, ev := range evs {
		p := get(ev, "Properties")
		if get(ev, "Type") != "SQS" || get(p, "Queue") != "!GetAtt ImportQueue.Arn" || get(p, "BatchSize") != "1" ||
			fmt.Sprint(get(p, "FunctionResponseTypes")) != "[ReportBatchItemFailures]" {
			t.Errorf("ImportFunction event = %v, want SQS from ImportQueue, BatchSize 1, ReportBatchItemFailures", ev)
		}
		for param, want := range map[string]string{"0": noValue, "1": "map[MaximumConcurrency:2]", "7": "map[MaximumConcurrency:7]"} {
			if got := evalIn(t, deployment(t, map[string]string{"ImportConcurrency": param}), get(p, "ScalingConfig")); got != want {
				t.Errorf("ScalingConfig with ImportConcurrency %s = %s, want %s", param, got, want)
			}
		}
	}

	// S3 notifies the queue; only this bucket may send to it.
	notif := fmt.Sprint(get(tpl.Resources["DataBucket"], "Properties", "NotificationConfiguration"))
	if notif != "map[QueueConfigurations:[map[Event:s3:ObjectCreated:* Filter:map[S3Key:map[Rules:[map[Name:prefix Value:incoming/]]]] Queue:!GetAtt ImportQueue.Arn]]]" {
		t.Errorf("DataBucket NotificationConfiguration = %s, want ObjectCreated under incoming/ to ImportQueue", notif)
	}
	st := deployment(t, nil)
	bucketARN := "arn:aws:s3:::" + evalIn(t, st, get(tpl.Resources["DataBucket"], "Properties", "BucketName"))
	pol := get(tpl.Resources["ImportQueuePolicy"], "Properties")
	if fmt.Sprint(get(pol, "Queues")) != "[!Ref ImportQueue]" {
		t.Errorf("ImportQueuePolicy Queues = %v", get(pol, "Queues"))
	}
	stmts, _ := get(pol, "PolicyDocument", "Statement").([]any)
	if len(stmts) != 1 {
		t.Fatalf("ImportQueuePolicy statements = %v, want one", stmts)
	}
	sm := stmts[0]
	if get(sm, "Effect") != "Allow" || fmt.Sprint(get(sm, "Principal")) != "map[Service:s3.amazonaws.com]" || get(sm, "Action") != "sqs:SendMessage" ||
		get(sm, "Resource") != "!GetAtt ImportQueue.Arn" ||
		evalIn(t, st, get(sm, "Condition", "ArnEquals", "aws:SourceArn")) != bucketARN ||
		evalIn(t, st, get(sm, "Condition", "StringEquals", "aws:SourceAccount")) != "123456789012" {
		t.Errorf("ImportQueuePolicy statement = %v, want s3.amazonaws.com's SendMessage to ImportQueue from %s in this account only", sm, bucketARN)
	}

	// The dead-letter alarm: any visible message.
	alarm := get(tpl.Resources["ImportDeadLetterAlarm"], "Properties")
	if get(alarm, "Namespace") != "AWS/SQS" || get(alarm, "MetricName") != "ApproximateNumberOfMessagesVisible" ||
		fmt.Sprint(get(alarm, "Dimensions")) != "[map[Name:QueueName Value:!GetAtt ImportDeadLetterQueue.QueueName]]" ||
		get(alarm, "Threshold") != "0" || get(alarm, "ComparisonOperator") != "GreaterThanThreshold" ||
		fmt.Sprint(get(alarm, "AlarmActions")) != "[!If [HasAlarmTopic [!Ref AlarmTopicArn] !Ref AWS::NoValue]]" {
		t.Errorf("ImportDeadLetterAlarm = %v, want ApproximateNumberOfMessagesVisible > 0 on ImportDeadLetterQueue, notifying AlarmTopicArn", alarm)
	}

	// What the function's role may do beyond the table and incoming/:
	// the event source mapping's calls and its own on the queue, and the
	// checkpoints it reads back.
	policy := fmt.Sprint(get(fn, "Properties", "Policies"))
	for _, want := range []string{
		"[sqs:ReceiveMessage sqs:DeleteMessage sqs:GetQueueAttributes sqs:GetQueueUrl sqs:SendMessage sqs:ChangeMessageVisibility] Effect:Allow Resource:!GetAtt ImportQueue.Arn]",
		"[s3:GetObject s3:PutObject s3:AbortMultipartUpload] Effect:Allow Resource:!Sub arn:${AWS::Partition}:s3:::${AWS::StackName}-${AWS::AccountId}-${AWS::Region}/import-reports/*]",
	} {
		if !strings.Contains(policy, want) {
			t.Errorf("ImportFunction's policies lack %s:\n%s", want, policy)
		}
	}
}

// TestNoCircularDependency: no resource depends on itself through Ref,
// GetAtt, Sub, DependsOn and what SAM adds (Globals' references on every
// function; an S3 event makes its bucket depend on the function). The
// bucket waits for the queue policy (S3 checks it may send when the
// notification is set), so the policy must name the bucket by name.
func TestNoCircularDependency(t *testing.T) {
	tpl := load(t)
	deps := map[string][]string{}
	globals := refsIn(tpl.Globals, tpl.Resources)
	for id, r := range tpl.Resources {
		deps[id] = append(deps[id], refsIn(r, tpl.Resources)...)
		if r["Type"] != "AWS::Serverless::Function" {
			continue
		}
		deps[id] = append(deps[id], globals...)
		evs, _ := get(r, "Properties", "Events").(map[string]any)
		for _, ev := range evs {
			if get(ev, "Type") == "S3" {
				for _, b := range refsIn(get(ev, "Properties", "Bucket"), tpl.Resources) {
					deps[b] = append(deps[b], id)
				}
			}
		}
	}
	if !slices.Contains(deps["DataBucket"], "ImportQueuePolicy") {
		t.Error("DataBucket does not depend on ImportQueuePolicy: S3 would refuse the notification while the queue refuses it")
	}
	state := map[string]int{} // 1 visiting, 2 done
	var path []string
	var visit func(id string) bool
	visit = func(id string) bool {
		switch state[id] {
		case 1:
			t.Errorf("circular dependency: %s → %s", strings.Join(path, " → "), id)
			return false
		case 2:
			return true
		}
		state[id] = 1
		path = append(path, id)
		for _, d := range deps[id] {
			if !visit(d) {
				return false
			}
		}
		path = path[:len(path)-1]
		state[id] = 2
		return true
	}
	for _, id := range slices.Sorted(maps.Keys(deps)) {
		if !visit(id) {
			return
		}
	}
}

// refsIn returns the resources v refers to.
func refsIn(v any, resources map[string]map[string]any) []string {
	var out []string
	add := func(name string) {
		name, _, _ = strings.Cut(name, ".")
		if _, ok := resources[name]; ok && !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	var walk func(v any, key string)
	walk = func(v any, key string) {
		switch v := v.(type) {
		case map[string]any:
			for k, e := range v {
				walk(e, k)
			}
		case []any:
			for _, e := range v {
				walk(e, key)
			}
		case string:
			switch {
			case key == "DependsOn":
				add(v)
			case strings.HasPrefix(v, "!Ref "), strings.HasPrefix(v, "!GetAtt "):
				_, name, _ := strings.Cut(v, " ")
				add(strings.Trim(name, `"`))
			case strings.HasPrefix(v, "!Sub "):
				for _, m := range regexp.MustCompile(`\$\{([A-Za-z0-9.]+)\}`).FindAllStringSubmatch(v, -1) {
					add(m[1])
				}
			}
		}
	}
	walk(v, "")
	return out
}

// TestResourcesThroughput: the Resources table's on-demand maximum and
// warm throughput come from parameters, unset (AWS::NoValue) by default;
// each property is set only with at least one of its values, as
// CloudFormation asks
// (https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/aws-properties-dynamodb-table-ondemandthroughput.html,
// .../aws-properties-dynamodb-table-warmthroughput.html).
func TestResourcesThroughput(t *testing.T) {
	tpl := load(t)
	props := get(tpl.Resources["ResourcesTable"], "Properties")
	for param, property := range map[string]string{
		"MaxRead": "MaxReadRequestUnits", "MaxWrite": "MaxWriteRequestUnits",
		"WarmRead": "ReadUnitsPerSecond", "WarmWrite": "WriteUnitsPerSecond",
	} {
		p := tpl.Parameters[param]
		if get(p, "Type") != "Number" || get(p, "Default") != "0" || !strings.Contains(fmt.Sprint(get(p, "Description")), property) {
			t.Errorf("parameter %s = %v, want a Number defaulting to 0 (unset) whose description names %s", param, p, property)
		}
	}
	for _, tc := range []struct {
		params         map[string]string
		onDemand, warm string
	}{
		{nil, noValue, noValue},
		{map[string]string{"MaxWrite": "2000"}, "map[MaxReadRequestUnits:" + noValue + " MaxWriteRequestUnits:2000]", noValue},
		{map[string]string{"MaxRead": "-1", "MaxWrite": "9000"}, "map[MaxReadRequestUnits:-1 MaxWriteRequestUnits:9000]", noValue},
		{map[string]string{"WarmRead": "30000"}, noValue, "map[ReadUnitsPerSecond:30000 WriteUnitsPerSecond:" + noValue + "]"},
		{map[string]string{"WarmRead": "30000", "WarmWrite": "20000"}, noValue, "map[ReadUnitsPerSecond:30000 WriteUnitsPerSecond:20000]"},
	} {
		st := deployment(t, tc.params)
		if got := evalIn(t, st, get(props, "OnDemandThroughput")); got != tc.onDemand {
			t.Errorf("OnDemandThroughput with %v = %s, want %s", tc.params, got, tc.onDemand)
		}
		if got := evalIn(t, st, get(props, "WarmThroughput")); got != tc.warm {
			t.Errorf("WarmThroughput with %v = %s, want %s", tc.params, got, tc.warm)
		}
	}
}
