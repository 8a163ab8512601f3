package testenv

import (
	"testing"
)

// fakeTB records whether Missing skipped or failed.
type fakeTB struct {
	testing.TB
	skipped, failed bool
}

func (f *fakeTB) Helper()               {}
func (f *fakeTB) Skipf(string, ...any)  { f.skipped = true }
func (f *fakeTB) Fatalf(string, ...any) { f.failed = true }
func (f *fakeTB) Logf(string, ...any)   {}

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		ci           string
		skip, failed bool
	}{{"", true, false}, {"false", true, false}, {"true", false, true}} {
		t.Setenv("CI", tc.ci)
		f := &fakeTB{}
		Missing(f, "dynalite is not running")
		if f.skipped != tc.skip || f.failed != tc.failed {
			t.Errorf("CI=%q: skipped %v, failed %v; want %v, %v", tc.ci, f.skipped, f.failed, tc.skip, tc.failed)
		}
	}
}
