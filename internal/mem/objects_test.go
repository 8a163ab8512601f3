package mem_test

import (
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/mem"
)

func TestObjectStore(t *testing.T) {
	bulktest.RunObjectStoreTests(t, func(t *testing.T) bulk.ObjectStore {
		return mem.NewObjectStore()
	})
}

func TestCheckKey(t *testing.T) {
	valid := []string{
		"a",
		"job-id/Observation.0003.0001.ndjson",
		"a/b/c/d.ndjson",
		".hidden",
		"a/.b",
		"a.b",
		"tmp-1",
		"héllo/wörld",
		strings.Repeat("k", 200),
		strings.Repeat("a/", 511) + "bb",
	}
	for _, key := range valid {
		if err := mem.CheckKey(key); err != nil {
			t.Errorf("CheckKey(%q) = %v, want nil", key, err)
		}
	}
	invalid := []string{
		"",
		"/abs",
		"/",
		"a/",
		"a//b",
		".",
		"./a",
		"a/.",
		"a/./b",
		"..",
		"../x",
		"a/..",
		"a/../b",
		"a..b",
		`a\b`,
		"a\x00b",
		"a\nb",
		"a\x7fb",
		"a\xffb",
		"job/x.ndjson.tmp-123",
		"x.tmp-/y",
		strings.Repeat("k", 201),
		strings.Repeat("a/", 512) + "b",
	}
	for _, key := range invalid {
		if err := mem.CheckKey(key); bulk.ErrorCode(err) != bulk.EINVALID {
			t.Errorf("CheckKey(%q) = %v, want code %q", key, err, bulk.EINVALID)
		}
	}
}
