//go:build linux

package awstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/tranchehq/tranche/internal/aws/cfn"
	"github.com/tranchehq/tranche/internal/testenv"
	"github.com/tranchehq/tranche/internal/workflow/asl"
)

// The Lambda Runtime Interface Emulator the bench runs the functions'
// real bootstrap binaries under, at the one version aws.mk installs
// (`make test-aws` puts it in .cache/bin and sets RIEEnv).
const (
	RIEModule  = "github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie"
	RIEVersion = "v0.0.0-20261030222936-bef5c4ba774d"
	// RIEEnv names the aws-lambda-rie binary; without it the tests look
	// for aws-lambda-rie on PATH.
	RIEEnv = "TRANCHE_RIE"
)

// FindRIE returns the path of aws-lambda-rie ($TRANCHE_RIE, else PATH), or
// skips the test with a message saying how to get it (fails it under
// CI=true).
func FindRIE(tb testing.TB) string {
	tb.Helper()
	if p := os.Getenv(RIEEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("%s=%s: %v", RIEEnv, p, err)
		}
		return p
	}
	p, err := exec.LookPath("aws-lambda-rie")
	if err != nil {
		testenv.Missing(tb, "aws-lambda-rie not found and %s is unset: skipping the Lambda emulator bench (`make test-aws` installs %s@%s)", RIEEnv, RIEModule, RIEVersion)
	}
	return p
}

// HostBuildFlags are the `go build` flags of the host bootstraps. aws.mk's
// lambda-host target builds with the same flags (LAMBDA_HOST_FLAGS) before
// the tests run, so BuildFunctions finds every binary up to date and
// relinks nothing. They differ from the Lambda build's on purpose: no
// -trimpath and no CGO_ENABLED=0, which would compile every package
// (the AWS SDK included) a second time instead of reusing what go vet and
// go test compiled; the bench runs the bootstraps on this machine, where
// neither matters.
var HostBuildFlags = []string{"-tags", "lambda.norpc", "-ldflags", "-s -w"}

var (
	builtMu sync.Mutex
	built   = map[string]map[string]string{} // dir → name → binary
)

// BuildFunctions builds every functions/<name> of the module at root for
// this machine into dir, with one `go build` of all of them
// (HostBuildFlags), and returns name → binary. go build relinks only the
// binaries whose inputs changed, and a process builds each dir once.
func BuildFunctions(tb testing.TB, root, dir string) map[string]string {
	tb.Helper()
	builtMu.Lock()
	defer builtMu.Unlock()
	if bins, ok := built[dir]; ok {
		return bins
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			tb.Fatalf("no go command to build the functions: %v", err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	args := append(append([]string{"build"}, HostBuildFlags...), "-o", dir+string(filepath.Separator), "./functions/...")
	cmd := exec.Command(goBin, args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS="+runtime.GOOS, "GOARCH="+runtime.GOARCH)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building the functions: %v\n%s", err, out)
	}
	mains, err := filepath.Glob(filepath.Join(root, "functions", "*", "main.go"))
	if err != nil || len(mains) == 0 {
		tb.Fatalf("no functions under %s/functions (%v)", root, err)
	}
	bins := map[string]string{}
	for _, m := range mains {
		name := filepath.Base(filepath.Dir(m))
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err != nil {
			tb.Fatalf("function %s was not built: %v", name, err)
		}
		bins[name] = p
	}
	built[dir] = bins
	return bins
}

// FunctionConfig is one function of the bench.
type FunctionConfig struct {
	// Name is the function's name (AWS_LAMBDA_FUNCTION_NAME), e.g.
	// "exportitem".
	Name string
	// Bootstrap is the function's binary.
	Bootstrap string
	// Env is added (KEY=VALUE) to the test process's environment, which
	// the emulator passes on to the function.
	Env []string
	// InstanceEnv, if set, adds variables for instance i.
	InstanceEnv func(i int) []string
	// Concurrency is how many instances (execution environments) may run
	// at once; an invocation waits for a free one. Default 1.
	Concurrency int
	// Timeout is the function's timeout (AWS_LAMBDA_FUNCTION_TIMEOUT,
	// whole seconds); default the emulator's 300 s.
	Timeout time.Duration
	// LogDir holds each instance's emulator and function output
	// (<name>-<i>.log); default a temporary directory.
	LogDir string
}

// Function is a function served by a pool of aws-lambda-rie instances,
// each running the real bootstrap. Instances start on demand (a cold
// start), serve one invocation at a time as a Lambda execution environment
// does, and are restarted when they die. Every process is killed when the
// test ends.
type Function struct {
	cfg    FunctionConfig
	rie    string
	client *http.Client

	mu     sync.Mutex
	all    []*Instance
	idle   []*Instance
	freed  chan struct{} // closed (and replaced) when an instance is released
	closed bool
}

// Instance is one aws-lambda-rie process and the function runtime it
// runs.
type Instance struct {
	ID  int
	fn  *Function
	log string

	mu     sync.Mutex
	cmd    *exec.Cmd
	url    string
	exited chan struct{}
	starts int
}

// NewFunction returns the function; no instance runs until the first
// invocation.
func NewFunction(tb testing.TB, rie string, cfg FunctionConfig) *Function {
	tb.Helper()
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.LogDir == "" {
		cfg.LogDir = tb.TempDir()
	}
	f := &Function{
		cfg: cfg, rie: rie, freed: make(chan struct{}),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, DisableCompression: true}},
	}
	tb.Cleanup(f.Close)
	return f
}

// Name is the function's name.
func (f *Function) Name() string { return f.cfg.Name }

// Close kills every instance; invocations after it fail.
func (f *Function) Close() {
	f.mu.Lock()
	f.closed = true
	all := slices.Clone(f.all)
	f.mu.Unlock()
	for _, inst := range all {
		if inst != nil {
			inst.Kill()
		}
	}
}

// Instances returns the instances started so far.
func (f *Function) Instances() []*Instance {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*Instance
	for _, inst := range f.all {
		if inst != nil {
			out = append(out, inst)
		}
	}
	return out
}

var errClosed = errors.New("awstest: the function is closed")

// acquire hands out an idle instance, starting a new one (a cold start)
// when none is idle and the concurrency allows, else waits for one.
func (f *Function) acquire(ctx context.Context) (*Instance, error) {
	for {
		f.mu.Lock()
		if f.closed {
			f.mu.Unlock()
			return nil, errClosed
		}
		if n := len(f.idle); n > 0 {
			inst := f.idle[n-1]
			f.idle = f.idle[:n-1]
			f.mu.Unlock()
			return inst, nil
		}
		if len(f.all) < f.cfg.Concurrency {
			inst := &Instance{ID: len(f.all), fn: f, log: filepath.Join(f.cfg.LogDir, fmt.Sprintf("%s-%d.log", f.cfg.Name, len(f.all)))}
			f.all = append(f.all, inst)
			f.mu.Unlock()
			return inst, nil
		}
		freed := f.freed
		f.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (f *Function) release(inst *Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.idle = append(f.idle, inst)
	close(f.freed)
	f.freed = make(chan struct{})
}

// ensure starts the instance's process if it is not running, and waits
// until the emulator accepts connections.
func (inst *Instance) ensure() (string, error) {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.cmd != nil {
		select {
		case <-inst.exited:
			inst.cmd = nil
		default:
			return inst.url, nil
		}
	}
	var err error
	for range 3 { // a port taken between choosing and binding: choose again
		if err = inst.start(); err == nil {
			return inst.url, nil
		}
	}
	return "", err
}

func freeAddrs(n int) ([]string, error) {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		addrs = append(addrs, l.Addr().String())
	}
	return addrs, nil
}

func (inst *Instance) start() error {
	f := inst.fn
	addrs, err := freeAddrs(2)
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(inst.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close() // the child has its own descriptor
	fmt.Fprintf(logf, "--- tranche bench: starting instance %d of %s\n", inst.ID, f.cfg.Name)
	cmd := exec.Command(f.rie, "--runtime-interface-emulator-address", addrs[0], "--runtime-api-address", addrs[1], f.cfg.Bootstrap)
	cmd.Dir = filepath.Dir(f.cfg.Bootstrap)
	env := append(os.Environ(), "AWS_LAMBDA_FUNCTION_NAME="+f.cfg.Name, "LOG_LEVEL=info")
	if f.cfg.Timeout > 0 {
		env = append(env, "AWS_LAMBDA_FUNCTION_TIMEOUT="+strconv.Itoa(int(f.cfg.Timeout/time.Second)))
	}
	env = append(env, f.cfg.Env...)
	if f.cfg.InstanceEnv != nil {
		env = append(env, f.cfg.InstanceEnv(inst.ID)...)
	}
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group, killed with the test process should the test
	// die without its cleanup; the emulator puts the runtime in a group of
	// its own, which Kill finds and kills too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	inst.cmd, inst.exited, inst.url = cmd, exited, "http://"+addrs[0]
	inst.starts++
	// Ready when the emulator accepts connections (it starts the runtime
	// at the first invocation).
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		c, err := net.DialTimeout("tcp", addrs[0], time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			inst.cmd = nil
			return fmt.Errorf("aws-lambda-rie for %s exited at start: %s", f.cfg.Name, tail(inst.log, 2000))
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			inst.killLocked()
			return fmt.Errorf("aws-lambda-rie for %s not listening on %s after 10s: %s", f.cfg.Name, addrs[0], tail(inst.log, 2000))
		}
	}
}

// children returns the processes whose parent is pid.
func children(pid int) []int {
	var out []int
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		raw, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(raw)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// KillRuntime SIGKILLs the function's runtime (the bootstrap process) as
// a crash or an out-of-memory kill would: the emulator, like Lambda,
// answers the invocation in progress with a Runtime.ExitError and starts a
// new runtime (a cold start) for the next one. It reports whether a
// runtime was running.
func (inst *Instance) KillRuntime() bool {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.cmd == nil || inst.cmd.Process == nil {
		return false
	}
	kids := children(inst.cmd.Process.Pid)
	for _, pid := range kids {
		_ = syscall.Kill(-pid, syscall.SIGKILL) // the runtime's own group
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return len(kids) > 0
}

// FreezeRuntime SIGSTOPs the function's runtime, as a runtime stuck in a
// long call is to its timeout: it can no longer act on its own deadline,
// so the emulator's timeout (Sandbox.Timedout) is what ends the
// invocation. ThawRuntime continues it.
func (inst *Instance) FreezeRuntime() bool { return inst.signalRuntime(syscall.SIGSTOP) }

// ThawRuntime continues a runtime FreezeRuntime stopped.
func (inst *Instance) ThawRuntime() bool { return inst.signalRuntime(syscall.SIGCONT) }

func (inst *Instance) signalRuntime(sig syscall.Signal) bool {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	if inst.cmd == nil || inst.cmd.Process == nil {
		return false
	}
	kids := children(inst.cmd.Process.Pid)
	for _, pid := range kids {
		_ = syscall.Kill(-pid, sig)
		_ = syscall.Kill(pid, sig)
	}
	return len(kids) > 0
}

// Kill SIGKILLs the emulator and the runtime and waits for the emulator to
// exit; the next invocation starts the instance afresh.
func (inst *Instance) Kill() {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	inst.killLocked()
}

func (inst *Instance) killLocked() {
	if inst.cmd == nil || inst.cmd.Process == nil {
		return
	}
	pid := inst.cmd.Process.Pid
	for _, kid := range children(pid) {
		_ = syscall.Kill(-kid, syscall.SIGKILL)
		_ = syscall.Kill(kid, syscall.SIGKILL)
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = inst.cmd.Process.Kill()
	<-inst.exited
	inst.cmd = nil
}

// Log returns the instance's emulator and function output so far.
func (inst *Instance) Log() string {
	raw, _ := os.ReadFile(inst.log)
	return string(raw)
}

var initReport = regexp.MustCompile(`INIT REPORT\(durationMs: ([0-9.]+)`)

// InitDurations returns the duration of every init (cold start) of the
// instance, as the emulator reports it (INIT REPORT): from starting the
// runtime until it asks for its first invocation, which for Tranche's
// functions includes reading the configuration and building the clients.
func (inst *Instance) InitDurations() []time.Duration {
	var out []time.Duration
	for _, m := range initReport.FindAllStringSubmatch(inst.Log(), -1) {
		ms, err := strconv.ParseFloat(m[1], 64)
		if err == nil {
			out = append(out, time.Duration(ms*float64(time.Millisecond)))
		}
	}
	return out
}

// InitDurations returns every instance's init durations.
func (f *Function) InitDurations() []time.Duration {
	var out []time.Duration
	for _, inst := range f.Instances() {
		out = append(out, inst.InitDurations()...)
	}
	return out
}

func tail(path string, n int) string {
	raw, _ := os.ReadFile(path)
	if len(raw) > n {
		raw = raw[len(raw)-n:]
	}
	return string(raw)
}

// FunctionError is an invocation's error as the Invoke API returns it: the
// function's errorType and errorMessage, and the raw payload.
type FunctionError struct {
	Type    string `json:"errorType"`
	Message string `json:"errorMessage"`
	Payload string `json:"-"`
	// Unhandled is set for errors of the runtime rather than the handler
	// (a crash, a timeout).
	Unhandled bool `json:"-"`
}

func (e *FunctionError) Error() string { return e.Type + ": " + e.Message }

// ServiceError is a failure of the Invoke call itself (the emulator died,
// refused or answered with a status the Invoke API does not use for
// function errors).
type ServiceError struct {
	Name string // the error Step Functions reports, e.g. Lambda.Unknown
	Err  error
}

func (e *ServiceError) Error() string { return e.Name + ": " + e.Err.Error() }
func (e *ServiceError) Unwrap() error { return e.Err }

// Invoke calls the function synchronously (RequestResponse) with the event
// payload and returns its response payload. A function error is a
// *FunctionError; a dead instance or a failed call is a *ServiceError, and
// the instance is restarted for the next invocation.
//
// A caller that gives up (an aborted execution: StopExecution does not stop
// a running Lambda) gets ctx's error at once, while the invocation runs to
// its end in the background and only then frees its instance.
func (f *Function) Invoke(ctx context.Context, payload []byte) ([]byte, error) {
	inst, err := f.acquire(ctx)
	if err != nil {
		return nil, err
	}
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := inst.invoke(context.WithoutCancel(ctx), payload)
		f.release(inst)
		done <- result{out, err}
	}()
	select {
	case r := <-done:
		return r.out, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Idle waits until no invocation is running (one a caller gave up on
// included).
func (f *Function) Idle(ctx context.Context) error {
	for {
		f.mu.Lock()
		idle := len(f.idle) == len(f.all) || f.closed
		freed := f.freed
		f.mu.Unlock()
		if idle {
			return nil
		}
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (inst *Instance) invoke(ctx context.Context, payload []byte) ([]byte, error) {
	url, err := inst.ensure()
	if err != nil {
		return nil, &ServiceError{Name: "Lambda.ServiceException", Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/2015-03-31/functions/function/invocations", bytes.NewReader(payload))
	if err != nil {
		return nil, err
	}
	res, err := inst.fn.client.Do(req)
	if err != nil {
		// The execution environment is gone: it is replaced.
		inst.Kill()
		return nil, &ServiceError{Name: "Lambda.Unknown", Err: fmt.Errorf("%s instance %d: %w", inst.fn.cfg.Name, inst.ID, err)}
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		inst.Kill()
		return nil, &ServiceError{Name: "Lambda.Unknown", Err: fmt.Errorf("%s instance %d: reading the response: %w", inst.fn.cfg.Name, inst.ID, err)}
	}
	switch {
	case res.StatusCode == http.StatusOK && res.Header.Get("X-Amz-Function-Error") == "" && !isErrorPayload(body):
		if bytes.HasPrefix(body, []byte("Task timed out after ")) {
			// The emulator's answer to a timeout; Lambda's is
			// Sandbox.Timedout.
			return nil, &FunctionError{Type: "Sandbox.Timedout", Message: string(body), Payload: string(body), Unhandled: true}
		}
		return body, nil
	case res.StatusCode == http.StatusOK || res.StatusCode == http.StatusBadGateway:
		// A function error: the handler's (200) or the runtime's, such
		// as Runtime.ExitError for a killed runtime (502).
		fe := &FunctionError{Payload: string(body), Unhandled: res.StatusCode != http.StatusOK || res.Header.Get("X-Amz-Function-Error") == "Unhandled"}
		if err := json.Unmarshal(body, fe); err != nil || fe.Type == "" {
			fe.Type, fe.Message = "Runtime.Unknown", string(body)
		}
		if strings.HasPrefix(fe.Type, "Runtime.") {
			fe.Unhandled = true
		}
		return nil, fe
	default:
		return nil, &ServiceError{Name: "Lambda.ServiceException", Err: fmt.Errorf("%s instance %d: status %d: %s", inst.fn.cfg.Name, inst.ID, res.StatusCode, body)}
	}
}

// isErrorPayload reports whether a 200 response is the runtime's error
// document ({"errorMessage", "errorType"[, "stackTrace"]}): the emulator
// does not set X-Amz-Function-Error as Lambda does.
func isErrorPayload(body []byte) bool {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return false
	}
	if _, ok := m["errorType"]; !ok {
		return false
	}
	for k := range m {
		switch k {
		case "errorType", "errorMessage", "stackTrace", "trace", "cause":
		default:
			return false
		}
	}
	return true
}

// StepError is the error Step Functions reports for a failed Lambda task:
// the function's errorType for a handler's error, Lambda.Unknown for an
// unhandled one (a crash, an out-of-memory kill) but Sandbox.Timedout for
// a timeout, and the Lambda.* service exception of a failed call; the
// cause is the error payload.
func StepError(err error) error {
	var fe *FunctionError
	var se *ServiceError
	switch {
	case errors.As(err, &fe):
		name := fe.Type
		if fe.Unhandled && name != "Sandbox.Timedout" {
			name = "Lambda.Unknown"
		}
		return &asl.ExecutionError{Name: name, Cause: fe.Payload}
	case errors.As(err, &se):
		return &asl.ExecutionError{Name: se.Name, Cause: se.Err.Error()}
	}
	return err
}

// Step is the function as a Task state's Resource: Step Functions invoking
// it through the Invoke API.
func (f *Function) Step() asl.Step {
	return func(ctx context.Context, input json.RawMessage) (json.RawMessage, error) {
		out, err := f.Invoke(ctx, input)
		if err != nil {
			return nil, StepError(err)
		}
		return out, nil
	}
}

// HTTP is the function as an API Gateway integration (payload 2.0), for
// Gateway and Router: a function error is an error, which the gateway
// answers with a 500 as API Gateway does.
func (f *Function) HTTP() func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		var res events.APIGatewayV2HTTPResponse
		in, err := json.Marshal(ev)
		if err != nil {
			return res, err
		}
		out, err := f.Invoke(ctx, in)
		if err != nil {
			return res, err
		}
		if err := json.Unmarshal(out, &res); err != nil {
			return res, fmt.Errorf("%s: response is not a payload-2.0 response: %w", f.cfg.Name, err)
		}
		return res, nil
	}
}

// Template is what the bench reads of template.yaml for each function:
// its HTTP API routes ("GET /jobs/{id}", or "$default"), timeout and
// function-specific environment variables.
type Template struct {
	Routes  map[string]string // route key → function logical id
	Timeout map[string]time.Duration
	Env     map[string]map[string]string // logical id → variable → value as cfn.Parse reads it
}

// ReadTemplate reads template.yaml's functions (cfn.Parse; infra/ checks
// the template in full).
func ReadTemplate(src []byte) (*Template, error) {
	doc, err := cfn.Parse(string(src))
	if err != nil {
		return nil, err
	}
	t := &Template{Routes: map[string]string{}, Timeout: map[string]time.Duration{}, Env: map[string]map[string]string{}}
	seconds := func(where string, v any) (time.Duration, error) {
		n, err := strconv.Atoi(fmt.Sprint(v))
		if err != nil {
			return 0, fmt.Errorf("%s Timeout %v: %v", where, v, err)
		}
		return time.Duration(n) * time.Second, nil
	}
	var globalTimeout time.Duration
	if v := lookup(doc, "Globals", "Function", "Timeout"); v != nil {
		if globalTimeout, err = seconds("Globals", v); err != nil {
			return nil, err
		}
	}
	resources, _ := lookup(doc, "Resources").(map[string]any)
	for _, fn := range slices.Sorted(maps.Keys(resources)) { // sorted: one error for a duplicate route, whatever the map order
		r := resources[fn]
		if lookup(r, "Type") != "AWS::Serverless::Function" {
			continue
		}
		t.Timeout[fn] = globalTimeout
		if v := lookup(r, "Properties", "Timeout"); v != nil {
			if t.Timeout[fn], err = seconds(fn, v); err != nil {
				return nil, err
			}
		}
		vars, _ := lookup(r, "Properties", "Environment", "Variables").(map[string]any)
		for k, v := range vars {
			if t.Env[fn] == nil {
				t.Env[fn] = map[string]string{}
			}
			t.Env[fn][k] = fmt.Sprint(v)
		}
		events, _ := lookup(r, "Properties", "Events").(map[string]any)
		for _, name := range slices.Sorted(maps.Keys(events)) {
			props, _ := lookup(events[name], "Properties").(map[string]any)
			if props["ApiId"] != "!Ref HttpApi" {
				continue
			}
			method, _ := props["Method"].(string)
			path, _ := props["Path"].(string)
			key := "$default"
			if method != "" || path != "" {
				if method == "" || !strings.HasPrefix(path, "/") {
					return nil, fmt.Errorf("%s: route %v", fn, props)
				}
				key = method + " " + path
			}
			if prev, dup := t.Routes[key]; dup {
				return nil, fmt.Errorf("route %s is on %s and %s", key, prev, fn)
			}
			t.Routes[key] = fn
		}
	}
	t.Timeout[""] = globalTimeout
	return t, nil
}

// lookup follows path through nested mappings (nil where one is missing).
func lookup(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
