// Command gen writes the defs tables, zz_<version>.go, from the trimmed
// official definitions in spec/. go generate runs it from
// internal/fhir/defs:
//
//	go run ./gen -spec spec -out .
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/tranchehq/tranche/internal/fhir/defs/internal/codegen"
)

func main() {
	spec := flag.String("spec", "spec", "directory holding <version>/ trimmed definitions")
	out := flag.String("out", ".", "directory to write zz_<version>.go into")
	flag.Parse()
	files, err := codegen.Generate(*spec)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(*out, n), files[n], 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "gen:", err)
			os.Exit(1)
		}
	}
}
