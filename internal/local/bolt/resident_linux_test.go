package bolt_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// TestResidentBounded: reads keep the store's mapped pages resident only up
// to a bound, whatever the store's size, including reads that look bodies up
// in random order (List here; Compartment, that is Group exports, alike),
// where each body is on another page and every page fault maps 64 KB.
func TestResidentBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a 70 MB store")
	}
	path := filepath.Join(t.TempDir(), "t.db")
	db, err := bolt.Open(path, bolt.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const n = 40000
	order := rand.New(rand.NewPCG(1, 2)).Perm(n) // lastUpdated unrelated to id
	pad := bytes.Repeat([]byte("x"), 900)
	for i := 0; i < n; i += 5000 {
		var rs []*bulk.Resource
		for j := i; j < i+5000; j++ {
			id := fmt.Sprintf("o%06d", j)
			rs = append(rs, &bulk.Resource{Type: "Observation", ID: id, LastUpdated: base.Add(time.Duration(order[j]) * time.Second),
				Body: fmt.Appendf(nil, `{"resourceType":"Observation","id":%q,"pad":"%s"}`, id, pad)})
		}
		if err := db.Resources().Put(ctx, rs); err != nil {
			t.Fatal(err)
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	const bound = 16 << 20
	if fi.Size() < 3*bound {
		t.Fatalf("store is %d bytes: too small to tell", fi.Size())
	}
	check := func(what string, read func(visit func()) error) {
		t.Helper()
		bolt.ReleaseResident(db) // each check starts from nothing resident
		peak, i := int64(0), 0
		err := read(func() {
			if i++; i%500 == 0 {
				peak = max(peak, mappedRSS(t, path))
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: at most %.1f MB of the %d MB store resident", what, float64(peak)/(1<<20), fi.Size()>>20)
		if peak > bound {
			t.Errorf("%s: %d MB of the %d MB store resident, want at most %d MB", what, peak>>20, fi.Size()>>20, bound>>20)
		}
	}
	check("List (random lookups)", func(visit func()) error {
		return db.Resources().List(ctx, "Observation", "", func(*bulk.Resource, bulk.Cursor) error { visit(); return nil })
	})
	check("Scan", func(visit func()) error {
		for shard := range db.Shards() {
			err := db.Resources().Scan(ctx, bulk.ScanRequest{Type: "Observation", Shard: shard, Range: bulk.Range{Until: base.Add(n * time.Second)}},
				func(*bulk.Resource, bulk.Cursor) error { visit(); return nil })
			if err != nil {
				return err
			}
		}
		return nil
	})
	// Small commits (a job's progress, a token's jti) write their pages at
	// new places, which the next reads fault in.
	check("small commits", func(visit func()) error {
		for i := range 3000 {
			id := fmt.Sprintf("o%06d", order[i])
			r := &bulk.Resource{Type: "Observation", ID: id, LastUpdated: base.Add(time.Duration(n+i) * time.Second),
				Body: fmt.Appendf(nil, `{"resourceType":"Observation","id":%q}`, id)}
			if err := db.Resources().Put(ctx, []*bulk.Resource{r}); err != nil {
				return err
			}
			visit()
		}
		return nil
	})
}

// mappedRSS returns the resident bytes of this process's mappings of path,
// from /proc/self/smaps.
func mappedRSS(t *testing.T, path string) int64 {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip("no /proc/self/smaps:", err)
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[len(fields)-1] == path
			continue
		}
		if in && len(fields) == 3 && fields[0] == "Rss:" {
			kb, _ := strconv.ParseInt(fields[1], 10, 64)
			total += kb << 10
		}
	}
	return total
}
