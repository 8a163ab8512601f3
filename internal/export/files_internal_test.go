package export

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/mem"
)

// TestFileSetBlocks: Patient blocks go whole into a file when they fit
// (after the blocks already there, or at the top of a new file), and a
// block larger than a file is split over files that each start with its
// header and are chained by ContinuesIn (requirements 5.7, R92).
func TestFileSetBlocks(t *testing.T) {
	ctx := context.Background()
	objs := mem.NewObjectStore()
	fs := newFileSet(ctx, objs, Config{MaxFileResources: 5, MaxFileBytes: 1 << 20}, "job/%s.%03d.ndjson")
	block := func(patient string, n int) {
		fs.beginBlock([]byte("H" + patient))
		for i := range n {
			if err := fs.blockLine(fmt.Appendf(nil, "%s%d", patient, i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := fs.endBlock(); err != nil {
			t.Fatal(err)
		}
	}
	block("a", 2) // 3 lines: file 0
	block("b", 1) // 2 more: file 0 is full (5)
	block("c", 0) // nothing
	block("d", 2) // file 1
	block("e", 9) // larger than a file: starts file 2, continues in 3 and 4
	block("f", 1) // fits after e's tail
	files, err := fs.close()
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		lines       string
		continuesIn string
	}{
		{"Ha a0 a1 Hb b0", ""},
		{"Hd d0 d1", ""},
		{"He e0 e1 e2 e3", "job/Patient-blocks.003.ndjson"},
		{"He e4 e5 e6 e7", "job/Patient-blocks.004.ndjson"},
		{"He e8 Hf f0", ""},
	}
	if len(files) != len(want) {
		t.Fatalf("wrote %d files %+v, want %d", len(files), files, len(want))
	}
	for i, f := range files {
		o, err := objs.Open(ctx, f.Key)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(o)
		o.Close()
		got := strings.Join(strings.Fields(string(bytes.TrimSpace(b))), " ")
		if diff := cmp.Diff(want[i].lines, got); diff != "" || f.ContinuesIn != want[i].continuesIn || f.Type != "" || f.Kind != bulk.KindOutput ||
			f.Count != int64(len(strings.Fields(got))) {
			t.Errorf("file %d (%s) = %q continues in %q (count %d, type %q), want %q continuing in %q",
				i, f.Key, got, f.ContinuesIn, f.Count, f.Type, want[i].lines, want[i].continuesIn)
		}
	}
}
