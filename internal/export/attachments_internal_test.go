package export

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/mem"
)

// TestMayRewrite: the byte test lets through every body whose Attachments
// attachment could rewrite, however its strings are escaped, and nearly
// nothing else.
func TestMayRewrite(t *testing.T) {
	big := `"` + strings.Repeat("A", 100_000) + `"`
	for _, tc := range []struct {
		body string
		max  int64
		want bool
	}{
		{`{"resourceType":"Observation","code":{"text":"Body Height"},"valueQuantity":{"value":180}}`, 64 << 10, false},
		{`{"url":"https://example.org/Binary/1","contentType":"text/plain","data":"aGVsbG8="}`, 64 << 10, false},
		{`{"url":"Binary/1"}`, 64 << 10, true},
		{`{"url":"Binary\/1"}`, 64 << 10, true},
		{`{"url":"B\u0069nary/1"}`, 64 << 10, true},
		{`{"url":"Bin\u0061ry/1"}`, 64 << 10, true},
		{`{"url":"\u0042inary/1"}`, 64 << 10, true},
		{`{"url":"Binar"}`, 64 << 10, false},
		{`{"url":"Binary"}`, 64 << 10, false},
		{`{"url":"Bi`, 64 << 10, false},
		{`"B`, 64 << 10, false},
		{`B`, 64 << 10, false},
		{`\`, 64 << 10, false},
		{``, 64 << 10, false},
		{`{"a":"x\"Binary/1"}`, 64 << 10, true}, // \" then B: taken, harmlessly
		{`{"div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"}`, 64 << 10, false},
		{`{"data":` + big + `}`, 64 << 10, true},
		{`{"data":` + big + `}`, 1 << 20, false},
		{`{"data":` + big + `}`, -1, false},
		{`{"data":"aGVsbG8="}`, 4, true},
		{`{"data":"aGVsbG8="}`, 0, true},
	} {
		if got := mayRewrite([]byte(tc.body), tc.max); got != tc.want {
			t.Errorf("mayRewrite(%.60q, %d) = %v, want %v", tc.body, tc.max, got, tc.want)
		}
	}
}

// TestAttachmentsSkipExact: attachments returns what it returned when it
// walked every body that has "contentType", "data" or "Binary/ in it: the
// byte test (mayRewrite) skips no body the walk would change, for
// generated resources and for Attachments written every way JSON allows,
// at several inline limits.
func TestAttachmentsSkipExact(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	dir := t.TempDir()
	if _, err := generate.Dir(ctx, generate.Options{Patients: 3, Seed: 1}, dir, nil); err != nil {
		t.Fatal(err)
	}
	var bodies [][]byte
	files, err := filepath.Glob(filepath.Join(dir, "*.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 16<<20)
		for sc.Scan() {
			bodies = append(bodies, bytes.Clone(sc.Bytes()))
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	if len(bodies) < 100 {
		t.Fatalf("%d generated bodies, want more", len(bodies))
	}
	big := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte("0123456789abcdef"), 5000))
	for _, a := range []string{
		`{"url":"Binary/bin-1","title":"note"}`,
		`{"url":"Binary\/bin-1"}`,
		`{"url":"Binary\/bin-1","contentType":"text/plain"}`,
		`{"url":"B\u0069nary/bin-1","contentType":"text/plain"}`,
		`{"url":"\u0042inary/bin-1","title":"x","contentType":"a"}`,
		`{"url":"Binary/none","contentType":"text/plain"}`,
		`{"url":"Binary/late"}`,
		`{"url":"https://elsewhere.example/Binary/bin-1","contentType":"application/pdf"}`,
		`{"contentType":"text/plain","data":"aGVsbG8="}`,
		`{"contentType":"application/octet-stream","data":"` + big + `"}`,
		`{"data":"` + big + `"}`,
		`{"d\u0061ta":"` + big + `"}`,
		`{"data":"","url":"Binary\/bin-1"}`,
		`{"data":"not base64 ` + big + `"}`,
	} {
		for _, wrap := range []string{
			`{"resourceType":"DocumentReference","id":"d","content":[{"attachment":%s}]}`,
			`{"resourceType":"Observation","id":"o","extension":[{"url":"http://example.org/x","valueAttachment":%s}]}`,
			`{"resourceType":"Observation","id":"o","note":[{"text":"\"quoted\"\n"}],"extension":[{"url":"Binary/bin-1"},{"valueAttachment":%s}]}`,
		} {
			bodies = append(bodies, []byte(strings.Replace(wrap, "%s", a, 1)))
		}
	}

	res := mem.NewResourceStore(2)
	err = res.Put(ctx, []*bulk.Resource{
		{Type: "Binary", ID: "bin-1", LastUpdated: now.Add(-time.Hour), Body: []byte(`{"resourceType":"Binary","id":"bin-1","contentType":"text/plain","data":"aGVsbG8gYXR0YWNobWVudA=="}`)},
		{Type: "Binary", ID: "late", LastUpdated: now.Add(time.Hour), Body: []byte(`{"resourceType":"Binary","id":"late","data":"aGVsbG8="}`)},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, max := range []int64{0, -1, 4, 64 << 10} {
		objs := mem.NewObjectStore()
		s := NewService(mem.NewJobStore(), res, objs, Config{AttachmentInlineMax: max}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		x := &itemRun{
			s: s, job: &bulk.Job{ID: "job-1", Request: bulk.ExportRequest{Level: bulk.LevelSystem, BaseURL: "https://example.org/fhir"}},
			plan: &bulk.Plan{Range: bulk.Range{Until: now}}, inExport: map[string]bool{},
		}
		skipped, rewritten := 0, 0
		for i, body := range bodies {
			r := &bulk.Resource{Type: "DocumentReference", ID: "d"}
			want, wantErr := body, error(nil)
			if mayHoldAttachment(body) { // the test attachments made before
				want, wantErr = x.rewriteAttachments(ctx, r, body)
			}
			got, err := x.attachments(ctx, r, body)
			if !bytes.Equal(got, want) || (err == nil) != (wantErr == nil) {
				t.Fatalf("max %d, body %d %.200q: attachments() = %.200q, %v; want %.200q, %v", max, i, body, got, err, want, wantErr)
			}
			if !mayRewrite(body, s.Config.AttachmentInlineMax) {
				skipped++
			}
			if !bytes.Equal(want, body) {
				rewritten++
			}
		}
		if max == 64<<10 && (skipped < len(bodies)*9/10 || rewritten == 0) {
			t.Errorf("max %d: %d of %d bodies skipped, %d rewritten; want nearly all skipped and some rewritten", max, skipped, len(bodies), rewritten)
		}
	}
}
