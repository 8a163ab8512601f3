package bolt_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// TestReleaseResident: dropping the mapped pages from the resident set
// between and during scans changes nothing that is read.
func TestReleaseResident(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "t.db"), bolt.Options{Shards: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var rs []*bulk.Resource
	for i := range 3000 {
		id := fmt.Sprintf("o%05d", i)
		rs = append(rs, &bulk.Resource{Type: "Observation", ID: id, LastUpdated: base.Add(time.Duration(i) * time.Second),
			Body: fmt.Appendf(nil, `{"resourceType":"Observation","id":%q,"pad":"%s"}`, id, bytes.Repeat([]byte("x"), 900))})
	}
	if err := db.Resources().Put(ctx, rs); err != nil {
		t.Fatal(err)
	}
	defer bolt.SetChunkLimits(100, 1<<20)()
	n := 0
	err = db.Resources().Scan(ctx, bulk.ScanRequest{Type: "Observation", Range: bulk.Range{Until: base.Add(time.Hour * 2)}},
		func(r *bulk.Resource, _ bulk.Cursor) error {
			if !bytes.Equal(r.Body, rs[n].Body) {
				t.Fatalf("resource %d body changed after releasing resident pages", n)
			}
			n++
			if n%250 == 0 {
				bolt.ReleaseResident(db)
			}
			return nil
		})
	if err != nil || n != len(rs) {
		t.Fatalf("Scan() = %v after %d resources, want %d", err, n, len(rs))
	}
}
