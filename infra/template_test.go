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

	"github.com/tranchehq/tranche/internal/aws/dynamodb"
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
	doc, err := parseYAML(string(raw))
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
	doc, err := parseYAML(string(raw))
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
// function reserves no concurrency unless ImportConcurrency asks for it
// (new accounts have 10 concurrent executions and Lambda keeps 100
// unreserved, so any reservation fails there).
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
	if d := get(tpl.Parameters["ImportConcurrency"], "Default"); d != "0" {
		t.Errorf("ImportConcurrency default %v, want 0 (no reservation)", d)
	}
	rc := fmt.Sprint(get(tpl.Resources["ImportFunction"], "Properties", "ReservedConcurrentExecutions"))
	if rc != "[!If [HasImportConcurrency !Ref ImportConcurrency !Ref AWS::NoValue]]" {
		t.Errorf("ImportFunction ReservedConcurrentExecutions = %s, want it only when ImportConcurrency > 0", rc)
	}
}
