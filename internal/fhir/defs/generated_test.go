package defs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/tranchehq/tranche/internal/fhir/defs/internal/codegen"
)

// TestGenerated checks that the checked-in tables are exactly what the
// generator writes from spec/ now (run `go generate ./internal/fhir/defs`
// after changing either), and that generating twice gives the same bytes.
func TestGenerated(t *testing.T) {
	files, err := codegen.Generate("spec")
	if err != nil {
		t.Fatal(err)
	}
	again, err := codegen.Generate("spec")
	if err != nil {
		t.Fatal(err)
	}
	for name, src := range files {
		if !bytes.Equal(src, again[name]) {
			t.Errorf("%s differs between two runs of the generator", name)
		}
		got, err := os.ReadFile(name)
		if err != nil {
			t.Errorf("%s: %v (run go generate ./internal/fhir/defs)", name, err)
			continue
		}
		if !bytes.Equal(got, src) {
			t.Errorf("%s is not what the generator writes from spec/: run go generate ./internal/fhir/defs", name)
		}
	}
	onDisk, err := filepath.Glob("zz_*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range onDisk {
		if _, ok := files[name]; !ok {
			t.Errorf("%s is not written by the generator: remove it", name)
		}
	}
	if want := []string{"zz_dstu2.go", "zz_r4.go", "zz_r5.go", "zz_stu3.go"}; !slices.Equal(onDisk, want) {
		t.Errorf("generated files %q, want %q", onDisk, want)
	}
}
