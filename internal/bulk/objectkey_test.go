package bulk_test

import (
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
)

func TestCheckObjectKey(t *testing.T) {
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
		if err := bulk.CheckObjectKey(key); err != nil {
			t.Errorf("CheckObjectKey(%q) = %v, want nil", key, err)
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
		if err := bulk.CheckObjectKey(key); bulk.ErrorCode(err) != bulk.EINVALID {
			t.Errorf("CheckObjectKey(%q) = %v, want code %q", key, err, bulk.EINVALID)
		}
	}
}
