package test

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"strings"
	"testing"
)

// TestDependencyDirection enforces style.md rule 1: the domain and engine
// packages import only the standard library and the packages listed here,
// never the AWS SDK, the Lambda runtime or an adapter; and each adapter
// imports only the domain.
func TestDependencyDirection(t *testing.T) {
	const mod = "github.com/tranchehq/tranche/"
	allowed := map[string][]string{
		"internal/bulk": nil,
		"internal/fhir": {mod + "internal/bulk", mod + "internal/fhir/defs", "github.com/tidwall/"},
		// search is pure domain logic on stored JSON (the _typeFilter and
		// _elements engine), at the level of fhir.
		"internal/search": {mod + "internal/bulk", mod + "internal/fhir", "github.com/tidwall/"},
		"internal/export": {mod + "internal/bulk", mod + "internal/fhir", mod + "internal/search", "github.com/tidwall/"},
		// api gzips downloads with klauspost/compress (2.3x compress/gzip's
		// speed, docs/benchmarks.md): a pure library, not an adapter.
		"internal/api":  {mod + "internal/bulk", mod + "internal/fhir", mod + "internal/search", mod + "internal/export", mod + "internal/auth", "github.com/tidwall/", "github.com/klauspost/compress/"},
		"internal/auth": {mod + "internal/bulk", mod + "internal/fhir", mod + "internal/search", "github.com/lestrrat-go/"},
		// Adapters import only the domain (architecture.md's drawing) and
		// the library they adapt; the fakes only the domain.
		"internal/mem":          {mod + "internal/bulk"},
		"internal/mock":         {mod + "internal/bulk"},
		"internal/local/bolt":   {mod + "internal/bulk", "go.etcd.io/bbolt"},
		"internal/local/fsobj":  {mod + "internal/bulk", "github.com/klauspost/compress/"},
		"internal/aws/s3":       {mod + "internal/bulk", "github.com/aws/", "github.com/klauspost/compress/"},
		"internal/aws/dynamodb": {mod + "internal/bulk", "github.com/aws/"},
	}
	for dir, ok := range allowed {
		files, _ := filepath.Glob(filepath.Join("..", dir, "*.go"))
		if len(files) == 0 {
			t.Fatalf("no Go files in %s", dir)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			pf, err := parser.ParseFile(token.NewFileSet(), f, nil, parser.ImportsOnly)
			if err != nil {
				t.Fatal(err)
			}
		next:
			for _, imp := range pf.Imports {
				path := strings.Trim(imp.Path.Value, `"`)
				if first, _, _ := strings.Cut(path, "/"); !strings.Contains(first, ".") {
					continue // standard library
				}
				for _, p := range ok {
					if strings.HasPrefix(path, p) {
						continue next
					}
				}
				t.Errorf("%s imports %s: %s may not depend on it (style.md rule 1)", f, path, dir)
			}
		}
	}
}
