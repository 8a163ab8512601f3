// Command testsum turns `go test -json` (on stdin) into what a person
// running `make test` needs to see:
//
//   - one line per package as it finishes (ok, FAIL, with its test counts);
//   - the whole output of every failed test, and of a package that failed
//     outside a test (a build error, a panic, a timeout): nothing of a
//     failure is left out;
//   - a line saying what is still running when nothing was printed for a
//     while (-progress), so a slow step is never silent;
//   - at the end, every skipped test grouped by the reason it gave, then the
//     failed tests again.
//
// Lines that are not JSON (go command messages) are copied as they come.
// The exit status is 1 when a test or a package failed, else 0; run it
// under `set -o pipefail` so go test's own status counts too:
//
//	set -o pipefail; go test -json ./... | go run ./internal/testenv/cmd/testsum
//
// With -v every line of test output is printed as `go test -v` would.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	verbose := flag.Bool("v", false, "print every line of test output, as go test -v does")
	progress := flag.Duration("progress", 30*time.Second, "after this long without output, say what is still running (0: never)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: go test -json PKGS... | testsum [-v] [-progress 30s]\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		os.Exit(2)
	}
	s := newSummary(os.Stdout, modulePath("go.mod"))
	s.verbose = *verbose
	os.Exit(s.run(os.Stdin, *progress))
}

// modulePath is the module line of the go.mod at path ("" if none): the
// prefix trimmed from package names.
func modulePath(path string) string {
	raw, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "module "); ok {
			return strings.Trim(strings.TrimSpace(m), `"`)
		}
	}
	return ""
}

// run reads events from r until EOF, printing as it goes, then the
// summary; it returns the exit status.
func (s *summary) run(r io.Reader, progress time.Duration) int {
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
		for sc.Scan() {
			lines <- sc.Text()
		}
		if err := sc.Err(); err != nil {
			lines <- "testsum: reading go test output: " + err.Error()
		}
		close(lines)
	}()
	var tick <-chan time.Time
	if progress > 0 {
		t := time.NewTicker(min(progress, 5*time.Second))
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return s.finish()
			}
			s.line(line)
		case now := <-tick:
			if now.Sub(s.lastPrint) >= progress {
				s.still(now)
			}
		}
	}
}
