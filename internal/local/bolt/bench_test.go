package bolt_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// Benchmark sizes: 100k resources of about 1 KB (TRANCHE_BENCH_RESOURCES
// overrides the count), imported in batches of 1000.
var benchResources = 100_000

const (
	benchBodySize   = 1024
	benchBatch      = 1000
	benchPerPatient = 20
)

func init() {
	if v, err := strconv.Atoi(os.Getenv("TRANCHE_BENCH_RESOURCES")); err == nil && v > 0 {
		benchResources = v
	}
}

// BenchmarkPut imports benchResources into a new file per iteration. Random
// times are the worst case for the r: buckets (inserts land all over each
// shard); import times append at the end of each shard.
func BenchmarkPut(b *testing.B) {
	for _, bc := range []struct {
		name       string
		importTime bool
		noSync     bool
		batch      int
	}{
		{"RandomTime/NoSync", false, true, benchBatch},
		{"ImportTime/NoSync", true, true, benchBatch},
		{"RandomTime/Sync", false, false, benchBatch},
		{"RandomTime/NoSync/Batch10k", false, true, 10 * benchBatch},
	} {
		b.Run(bc.name, func(b *testing.B) {
			rs, _ := newGenerator(1, benchBodySize, bc.importTime).records(benchResources, benchPerPatient)
			b.SetBytes(bodyBytes(rs))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				path := filepath.Join(b.TempDir(), bolt.FileName)
				b.StartTimer()
				db, err := bolt.Open(path, bolt.Options{NoSync: bc.noSync})
				if err != nil {
					b.Fatal(err)
				}
				mustPut(b, db.Resources(), rs, bc.batch)
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if fi, err := os.Stat(path); err == nil {
					b.ReportMetric(float64(fi.Size())/(1<<20), "file-MB")
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(len(rs))*float64(b.N)/b.Elapsed().Seconds(), "resources/s")
		})
	}
}

// scanDB is one shared 100k-resource file for the read benchmarks, built on
// first use: building it takes longer than any of them.
var scanDB struct {
	once     sync.Once
	db       *bolt.DB
	patients []string
	counts   map[string]int64
	err      error
}

func openScanDB(b *testing.B) (*bolt.DB, []string) {
	scanDB.once.Do(func() {
		dir, err := os.MkdirTemp("", "tranche-bench-")
		if err != nil {
			scanDB.err = err
			return
		}
		db, err := bolt.Open(filepath.Join(dir, bolt.FileName), bolt.Options{NoSync: true})
		if err != nil {
			scanDB.err = err
			return
		}
		rs, patients := newGenerator(1, benchBodySize, false).records(benchResources, benchPerPatient)
		for start := 0; start < len(rs); start += benchBatch {
			if err := db.Resources().Put(context.Background(), rs[start:min(start+benchBatch, len(rs))]); err != nil {
				scanDB.err = err
				return
			}
		}
		group := &bulk.Resource{Type: "Group", ID: "g10", LastUpdated: genStart, Body: []byte(`{}`), Patients: patients[:10], Members: patients[:10]}
		if err := db.Resources().Put(context.Background(), []*bulk.Resource{group}); err != nil {
			scanDB.err = err
			return
		}
		scanDB.db, scanDB.patients = db, patients
		scanDB.counts, scanDB.err = db.Resources().Count(context.Background())
		// The file stays open for the process; the OS removes nothing, so
		// remove the directory now: the open file lives on until exit.
		os.RemoveAll(dir)
	})
	if scanDB.err != nil {
		b.Fatal(scanDB.err)
	}
	return scanDB.db, scanDB.patients
}

// BenchmarkScan scans every shard of Observation, the largest type, as an
// export does; Parallel2 splits the shards over two goroutines (two cores).
// RawCursor is the zero-copy floor: bbolt's own slices in one transaction.
func BenchmarkScan(b *testing.B) {
	db, _ := openScanDB(b)
	s := db.Resources()
	n := scanDB.counts["Observation"]
	all := bulk.Range{Until: genStart.AddDate(10, 0, 0)}
	scan := func(b *testing.B, shards []int) int64 {
		var bytes int64
		for _, shard := range shards {
			err := s.Scan(context.Background(), bulk.ScanRequest{Type: "Observation", Shard: shard, Range: all},
				func(r *bulk.Resource, _ bulk.Cursor) error { bytes += int64(len(r.Body)); return nil })
			if err != nil {
				b.Error(err)
			}
		}
		return bytes
	}
	shards := make([]int, s.Shards())
	for i := range shards {
		shards[i] = i
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "resources/s")
	}

	b.Run("Serial", func(b *testing.B) {
		b.SetBytes(scan(b, shards))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			scan(b, shards)
		}
		report(b)
	})
	b.Run("Parallel2", func(b *testing.B) {
		b.SetBytes(scan(b, shards))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			var wg sync.WaitGroup
			for half := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					scan(b, shards[half*len(shards)/2:(half+1)*len(shards)/2])
				}()
			}
			wg.Wait()
		}
		report(b)
	})
	b.Run("RawCursor", func(b *testing.B) {
		var bytes int64
		raw := func() {
			bytes = 0
			if err := bolt.RawScan(db, "Observation", func(_, v []byte) { bytes += int64(len(v)) }); err != nil {
				b.Fatal(err)
			}
		}
		raw()
		b.SetBytes(bytes)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			raw()
		}
		report(b)
	})
}

// BenchmarkGroupExport reads a 10-patient Group's compartments from the
// 100k store and reports the share of the store it read.
func BenchmarkGroupExport(b *testing.B) {
	db, _ := openScanDB(b)
	s := db.Resources()
	var total int64
	for _, c := range scanDB.counts {
		total += c
	}
	before := db.Stats()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		members, err := s.GroupMembers(context.Background(), "g10")
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range members {
			if err := s.Compartment(context.Background(), p, nil, func(*bulk.Resource, bulk.Cursor) error { return nil }); err != nil {
				b.Fatal(err)
			}
		}
	}
	items := float64(db.Stats().ItemsRead-before.ItemsRead) / float64(b.N)
	b.ReportMetric(items, "items-read/op")
	b.ReportMetric(100*items/float64(total), "%-of-store")
}

func bodyBytes(rs []*bulk.Resource) int64 {
	var n int64
	for _, r := range rs {
		n += int64(len(r.Body))
	}
	return n
}

// BenchmarkTypeOf resolves stored ids, as the importer does for references
// it could not resolve itself.
func BenchmarkTypeOf(b *testing.B) {
	db, patients := openScanDB(b)
	s := db.Resources()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if types, err := s.TypeOf(context.Background(), patients[i%len(patients)]); err != nil || len(types) != 1 {
			b.Fatalf("TypeOf = %v, %v", types, err)
		}
	}
}
