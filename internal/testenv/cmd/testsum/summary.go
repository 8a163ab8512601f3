package main

import (
	"encoding/json"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
)

// event is one line of `go test -json` (cmd/test2json, plus the go
// command's build-output and build-fail events).
type event struct {
	Time        time.Time
	Action      string
	Package     string
	Test        string
	Elapsed     float64
	Output      string
	ImportPath  string
	FailedBuild string
}

// pkgRun is a package whose test binary is running.
type pkgRun struct {
	name  string
	start time.Time
	out   []outLine
	// tests holds each test's last action: "" while it runs, then pass,
	// fail or skip.
	tests                   map[string]string
	passed, failed, skipped int
}

type outLine struct{ test, text string }

// skipped is a skipped test and the reason it gave.
type skipped struct {
	pkg, test, reason, where string
}

// summary is the state of one go test run.
type summary struct {
	w         io.Writer
	mod       string // module path, trimmed from package names
	verbose   bool
	now       func() time.Time
	lastPrint time.Time // the last line printed
	lastOut   time.Time // the last line printed that was not a progress line

	running map[string]*pkgRun
	skips   []skipped
	failed  []string // "pkg Test" of each failed test, "pkg" of a package failing outside its tests

	pkgs, okPkgs, failPkgs, noTestPkgs int
	tests, passedTests, failedTests    int
	skippedTests                       int
	anyFailure                         bool
}

func newSummary(w io.Writer, mod string) *summary {
	s := &summary{w: w, mod: mod, now: time.Now, running: map[string]*pkgRun{}}
	s.lastPrint = s.now()
	s.lastOut = s.lastPrint
	return s
}

func (s *summary) printf(format string, a ...any) {
	fmt.Fprintf(s.w, format, a...)
	s.lastPrint = s.now()
	s.lastOut = s.lastPrint
}

// short is a package name without the module path.
func (s *summary) short(pkg string) string {
	if s.mod != "" {
		if rest, ok := strings.CutPrefix(pkg, s.mod+"/"); ok {
			return rest
		}
	}
	return pkg
}

// line handles one line of input.
func (s *summary) line(raw string) {
	var ev event
	if !strings.HasPrefix(raw, "{") || json.Unmarshal([]byte(raw), &ev) != nil || ev.Action == "" {
		s.printf("%s\n", raw)
		return
	}
	s.event(ev)
}

func (s *summary) event(ev event) {
	switch ev.Action {
	case "build-output":
		// Compiler and vet errors: shown as they come.
		s.printf("%s", ev.Output)
		return
	case "build-fail":
		s.anyFailure = true
		return
	case "start":
		s.pkg(ev)
		return
	}
	p := s.pkg(ev)
	if ev.Test == "" {
		switch ev.Action {
		case "output":
			p.out = append(p.out, outLine{"", ev.Output})
			if s.verbose {
				s.printf("%s", ev.Output)
			}
		case "pass", "fail", "skip":
			s.done(p, ev)
		}
		return
	}
	switch ev.Action {
	case "run":
		p.tests[ev.Test] = ""
	case "output":
		p.out = append(p.out, outLine{ev.Test, ev.Output})
		if s.verbose {
			s.printf("%s", ev.Output)
		}
	case "pass", "fail", "skip":
		p.tests[ev.Test] = ev.Action
		s.tests++
		switch ev.Action {
		case "pass":
			p.passed++
			s.passedTests++
		case "fail":
			p.failed++
			s.failedTests++
			s.anyFailure = true
			// A parent fails with its failed subtests: list only those.
			id := s.short(p.name) + " " + ev.Test
			if !slices.ContainsFunc(s.failed, func(f string) bool { return strings.HasPrefix(f, id+"/") }) {
				s.failed = append(s.failed, id)
			}
		case "skip":
			p.skipped++
			s.skippedTests++
			reason, where := skipReason(p.out, ev.Test)
			s.skips = append(s.skips, skipped{s.short(p.name), ev.Test, reason, where})
		}
	}
}

// pkg returns the running package of ev, starting it if needed.
func (s *summary) pkg(ev event) *pkgRun {
	p := s.running[ev.Package]
	if p == nil {
		start := ev.Time
		if start.IsZero() {
			start = s.now()
		}
		p = &pkgRun{name: ev.Package, start: start, tests: map[string]string{}}
		s.running[ev.Package] = p
	}
	return p
}

// done ends a package: a line for it and, if it failed, the output of
// everything that failed or never finished in it.
func (s *summary) done(p *pkgRun, ev event) {
	delete(s.running, p.name)
	s.pkgs++
	name := s.short(p.name)
	switch ev.Action {
	case "skip":
		s.noTestPkgs++
		return
	case "pass":
		s.okPkgs++
		if !s.verbose {
			s.printf("ok    %-40s %7s  %s\n", name, seconds(ev.Elapsed), counts(p))
		}
		return
	}
	s.failPkgs++
	s.anyFailure = true
	if p.failed == 0 {
		// A build failure, a panic, a timeout, a TestMain that failed.
		s.failed = append(s.failed, name)
	}
	if s.verbose {
		return
	}
	if ev.FailedBuild != "" {
		s.printf("FAIL  %s [build failed]\n", name)
		return
	}
	s.printf("FAIL  %-40s %7s  %s\n", name, seconds(ev.Elapsed), counts(p))
	for _, l := range p.out {
		if st, ok := p.tests[l.test]; l.test == "" || !ok || st == "" || st == "fail" {
			s.printf("%s", l.text)
		}
	}
}

func seconds(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(100 * time.Millisecond).String()
}

func counts(p *pkgRun) string {
	var parts []string
	if p.passed > 0 {
		parts = append(parts, fmt.Sprintf("%d passed", p.passed))
	}
	if p.failed > 0 {
		parts = append(parts, fmt.Sprintf("%d FAILED", p.failed))
	}
	if p.skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d skipped", p.skipped))
	}
	if len(parts) == 0 {
		return "(no tests ran)"
	}
	return strings.Join(parts, ", ")
}

// logLine is a t.Log line as go test prints it: indented, file:line: text.
var logLine = regexp.MustCompile(`^\s+([\w.\-]+\.go:\d+): (.*)$`)

// skipReason returns the last message the test logged before it was
// skipped (the t.Skip text, continuation lines joined) and where.
func skipReason(out []outLine, test string) (reason, where string) {
	var lines []string
	for _, l := range out {
		if l.test != test {
			continue
		}
		text := strings.TrimRight(l.text, "\n")
		switch t := strings.TrimSpace(text); {
		case strings.HasPrefix(t, "=== "), strings.HasPrefix(t, "--- SKIP"), strings.HasPrefix(t, "--- PASS"), strings.HasPrefix(t, "--- FAIL"):
			continue
		}
		lines = append(lines, text)
	}
	last := -1
	for i, l := range lines {
		if logLine.MatchString(l) {
			last = i
		}
	}
	if last < 0 {
		return "(no reason given)", ""
	}
	m := logLine.FindStringSubmatch(lines[last])
	parts := []string{m[2]}
	for _, l := range lines[last+1:] {
		if t := strings.TrimSpace(l); t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, " "), m[1]
}

// still says what is running after a quiet spell.
func (s *summary) still(now time.Time) {
	defer func(out time.Time) { s.lastOut = out }(s.lastOut) // a progress line is not output
	quiet := now.Sub(s.lastOut).Round(time.Second)
	if len(s.running) == 0 {
		s.printf("… %s without output: go test is building test binaries (no package is running yet)\n", quiet)
		return
	}
	ps := make([]*pkgRun, 0, len(s.running))
	for _, p := range s.running {
		ps = append(ps, p)
	}
	slices.SortFunc(ps, func(a, b *pkgRun) int { return a.start.Compare(b.start) })
	var names []string
	for _, p := range ps {
		n := fmt.Sprintf("%s (%s", s.short(p.name), now.Sub(p.start).Round(time.Second))
		if done := p.passed + p.failed + p.skipped; done > 0 {
			n += fmt.Sprintf(", %d tests done", done)
		}
		if cur := running(p); cur != "" {
			n += ", in " + cur
		}
		names = append(names, n+")")
	}
	s.printf("… still running: %s\n", strings.Join(names, "; "))
}

// running names the top-level test p is in (the first still running).
func running(p *pkgRun) string {
	var names []string
	for t, st := range p.tests {
		if st == "" && !strings.Contains(t, "/") {
			names = append(names, t)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// finish prints the skipped and failed tests and returns the exit status.
func (s *summary) finish() int {
	for _, p := range s.running {
		// The input ended inside a package: go test died.
		s.anyFailure = true
		s.failed = append(s.failed, s.short(p.name)+" (no result: go test ended before it finished)")
		for _, l := range p.out {
			s.printf("%s", l.text)
		}
	}
	if len(s.skips) > 0 {
		s.printf("\nSkipped %d tests (the reason each gave):\n", len(s.skips))
		type group struct {
			pkg, reason, where string
			tests              []string
		}
		var groups []*group
		for _, sk := range s.skips {
			i := slices.IndexFunc(groups, func(g *group) bool { return g.pkg == sk.pkg && g.reason == sk.reason })
			if i < 0 {
				groups = append(groups, &group{pkg: sk.pkg, reason: sk.reason, where: sk.where})
				i = len(groups) - 1
			}
			groups[i].tests = append(groups[i].tests, sk.test)
		}
		for _, g := range groups {
			tests := g.tests
			more := ""
			if len(tests) > 6 {
				more = fmt.Sprintf(" and %d more", len(tests)-5)
				tests = tests[:5]
			}
			where := ""
			if g.where != "" {
				where = " [" + g.where + "]"
			}
			s.printf("  %s: %s%s\n      %s%s\n", g.pkg, strings.Join(tests, ", "), more, g.reason, where)
		}
	}
	s.printf("\n%d packages: %d ok, %d failed, %d without tests; %d tests: %d passed, %d failed, %d skipped\n",
		s.pkgs, s.okPkgs, s.failPkgs, s.noTestPkgs, s.tests, s.passedTests, s.failedTests, s.skippedTests)
	if !s.anyFailure {
		return 0
	}
	if len(s.failed) > 0 {
		s.printf("FAILED:\n")
		for _, f := range s.failed {
			s.printf("  %s\n", f)
		}
	} else {
		s.printf("FAILED (see the build errors above)\n")
	}
	return 1
}
