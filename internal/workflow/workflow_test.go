package workflow_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/mem"
	"github.com/tranchehq/tranche/internal/workflow"
)

// TestGetObject: the local ItemReader reads item lists from the store the
// service writes them to, and nothing outside its bucket and prefix.
func TestGetObject(t *testing.T) {
	ctx := context.Background()
	store := mem.NewObjectStore()
	w, err := store.Create(ctx, "job-1/plan/items.json")
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("[0,1,2]\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	get := workflow.GetObject(export.ItemLists{Store: store, Bucket: "b", Prefix: "exports/"})
	for _, tc := range []struct {
		name, bucket, key, want, wantErr string
	}{
		{name: "OK", bucket: "b", key: "exports/job-1/plan/items.json", want: "[0,1,2]\n"},
		{name: "OtherBucket", bucket: "c", key: "exports/job-1/plan/items.json", wantErr: "NoSuchKey"},
		{name: "OutsidePrefix", bucket: "b", key: "job-1/plan/items.json", wantErr: "NoSuchKey"},
		{name: "Missing", bucket: "b", key: "exports/job-2/plan/items.json", wantErr: "job-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in, _ := json.Marshal(workflow.GetObjectInput{Bucket: tc.bucket, Key: tc.key})
			out, err := get(ctx, in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("GetObject() = %s, %v; want error containing %q", out, err, tc.wantErr)
				}
				return
			}
			if err != nil || string(out) != tc.want {
				t.Errorf("GetObject() = %q, %v; want %q", out, err, tc.want)
			}
		})
	}
}
