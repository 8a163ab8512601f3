package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// testdata/run.json is `go test -json ./...` of a module jt with a failed
// subtest, skips (one with a two-line reason, two subtests with one reason,
// a parallel one), a panic (jt/p), a quiet passing package (jt/ok) and a
// package without tests (jt/n).

func summarize(t *testing.T, input string, verbose bool) (string, int) {
	t.Helper()
	var out bytes.Buffer
	s := newSummary(&out, "jt")
	s.verbose = verbose
	code := s.run(strings.NewReader(input), 0)
	return out.String(), code
}

func fixture(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile("testdata/run.json")
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

func TestSummaryFailures(t *testing.T) {
	got, code := summarize(t, fixture(t), false)
	if code != 1 {
		t.Errorf("exit status = %d, want 1", code)
	}
	for _, want := range []string{
		// Every line of the failed tests, and the panic with its trace.
		"=== RUN   TestFail/x\n    a_test.go:5: detail\n    a_test.go:5: boom\n--- FAIL: TestFail/x",
		"    p_test.go:4: before\n",
		"panic: assignment to entry in nil map",
		"/tmp/jt/p/p_test.go:4",
		"ok    ok ",
		"Skipped 5 tests",
		"  jt: TestSkip\n      no dataset: set X second line [a_test.go:3]\n",
		"  jt: TestSub/a, TestSub/b\n      synthea missing [a_test.go:4]\n",
		"  jt: TestParallelSkip\n      needs dynalite: run make test-aws [a_test.go:7]\n",
		"  ok: TestS\n      no dataset [ok_test.go:4]\n",
		"4 packages: 1 ok, 2 failed, 1 without tests; 12 tests: 4 passed, 3 failed, 5 skipped\n",
		"FAILED:\n  jt TestFail/x\n  p TestPanic\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	for _, unwanted := range []string{
		"quiet",            // a passing test's log
		"=== RUN   TestOK", // a passing test in a failed package
		"  jt TestFail\n",  // the parent of a listed failed subtest
	} {
		if strings.Contains(got, unwanted) {
			t.Errorf("summary has %q:\n%s", unwanted, got)
		}
	}
	// The skip list and the tally come after every package's output.
	if strings.Index(got, "Skipped 5 tests") < strings.LastIndex(got, "FAIL\tjt/p") {
		t.Errorf("skip list before the end:\n%s", got)
	}
}

func TestSummaryVerbose(t *testing.T) {
	got, code := summarize(t, fixture(t), true)
	if code != 1 {
		t.Errorf("exit status = %d, want 1", code)
	}
	for _, want := range []string{"    ok_test.go:3: quiet\n", "--- PASS: TestOK", "Skipped 5 tests"} {
		if !strings.Contains(got, want) {
			t.Errorf("-v summary lacks %q:\n%s", want, got)
		}
	}
}

// onlyPackage keeps the fixture's lines of one package.
func onlyPackage(input, pkg string) string {
	var keep []string
	for _, l := range strings.Split(input, "\n") {
		if strings.Contains(l, `"Package":"`+pkg+`"`) {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n") + "\n"
}

func TestSummaryPass(t *testing.T) {
	in := "go: downloading example.com/m v1.0.0\n" + onlyPackage(fixture(t), "jt/ok") + onlyPackage(fixture(t), "jt/n")
	got, code := summarize(t, in, false)
	if code != 0 {
		t.Errorf("exit status = %d, want 0\n%s", code, got)
	}
	for _, want := range []string{"go: downloading example.com/m v1.0.0\n", "ok    ok ", "1 passed, 1 skipped", "Skipped 1 tests", "2 packages: 1 ok, 0 failed, 1 without tests"} {
		if !strings.Contains(got, want) {
			t.Errorf("summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "FAILED") {
		t.Errorf("a passing run says FAILED:\n%s", got)
	}
}

func TestSummaryBuildFailure(t *testing.T) {
	in := `{"ImportPath":"jt/b [jt/b.test]","Action":"build-output","Output":"# jt/b [jt/b.test]\n"}
{"ImportPath":"jt/b [jt/b.test]","Action":"build-output","Output":"b/b.go:2:12: undefined: y\n"}
{"ImportPath":"jt/b [jt/b.test]","Action":"build-fail"}
{"Action":"start","Package":"jt/b"}
{"Action":"output","Package":"jt/b","Output":"FAIL\tjt/b [build failed]\n"}
{"Action":"fail","Package":"jt/b","Elapsed":0,"FailedBuild":"jt/b [jt/b.test]"}
`
	got, code := summarize(t, in, false)
	if code != 1 || !strings.Contains(got, "b/b.go:2:12: undefined: y\n") || !strings.Contains(got, "FAIL  b [build failed]") || !strings.Contains(got, "FAILED:\n  b\n") {
		t.Errorf("build failure: exit %d, output:\n%s", code, got)
	}
}

// TestSummaryCutShort: go test killed mid-package (the input ends) is a
// failure, and what the package printed is shown.
func TestSummaryCutShort(t *testing.T) {
	in := `{"Action":"start","Package":"jt/slow"}
{"Action":"run","Package":"jt/slow","Test":"TestLong"}
{"Action":"output","Package":"jt/slow","Test":"TestLong","Output":"=== RUN   TestLong\n"}
`
	got, code := summarize(t, in, false)
	if code != 1 || !strings.Contains(got, "=== RUN   TestLong") || !strings.Contains(got, "slow (no result") {
		t.Errorf("cut-short run: exit %d, output:\n%s", code, got)
	}
}

func TestSummaryStill(t *testing.T) {
	var out bytes.Buffer
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	s := newSummary(&out, "jt")
	s.now, s.lastPrint, s.lastOut = func() time.Time { return now }, start, start
	now = start.Add(40 * time.Second)
	s.still(now)
	now = start.Add(70 * time.Second)
	s.still(now)
	if got, want := out.String(), "… 40s without output: go test is building test binaries (no package is running yet)\n"+
		"… 1m10s without output: go test is building test binaries (no package is running yet)\n"; got != want {
		t.Errorf("still() before any package = %q, want %q", got, want)
	}
	out.Reset()
	s.event(event{Time: start.Add(50 * time.Second), Action: "start", Package: "jt/app"})
	s.event(event{Action: "run", Package: "jt/app", Test: "TestA"})
	s.event(event{Action: "pass", Package: "jt/app", Test: "TestA"})
	s.event(event{Action: "run", Package: "jt/app", Test: "TestServerlessRIE"})
	s.event(event{Action: "run", Package: "jt/app", Test: "TestServerlessRIE/Kickoff"})
	now = start.Add(2 * time.Minute)
	s.still(now)
	if got, want := out.String(), "… still running: app (1m10s, 1 tests done, in TestServerlessRIE)\n"; got != want {
		t.Errorf("still() = %q, want %q", got, want)
	}
}

func TestModulePath(t *testing.T) {
	if got, want := modulePath("../../../../go.mod"), "github.com/tranchehq/tranche"; got != want {
		t.Errorf("modulePath(go.mod) = %q, want %q", got, want)
	}
	if got := modulePath("testdata/none"); got != "" {
		t.Errorf("modulePath(missing) = %q, want \"\"", got)
	}
}
