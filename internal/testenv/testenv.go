// Package testenv decides what a test does when something it needs from
// outside (an emulator, the shared dataset, a tool) is missing: locally it
// skips, saying why and how to get it; in CI (CI=true, as .ci/run runs) it
// fails, so a suite can never pass by testing nothing.
package testenv

import (
	"os"
	"testing"
)

// InCI reports whether the tests run in CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test with the message, or fails it under CI=true.
func Missing(tb testing.TB, format string, args ...any) {
	tb.Helper()
	if InCI() {
		tb.Fatalf("CI=true and a test dependency is missing (CI must provide it; see .ci/run): "+format, args...)
		return
	}
	tb.Skipf(format, args...)
}
