// Command storebench imports data into the embedded store (bbolt, what
// `tranche import` writes) or into Pebble, a log-structured store, through
// the same importer and the same keys, to decide whether the B+tree is what
// bounds import (issue 20 item 1; docs/benchmarks.md, "Import: the store").
// It is a module of its own so the product does not depend on Pebble.
//
//	go run . --store bolt|pebble --data DIR PATH...
package main

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/importer"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

func main() {
	store := flag.String("store", "bolt", "bolt or pebble")
	data := flag.String("data", "", "directory for the store (must not exist)")
	flag.Parse()
	if *data == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: storebench --store bolt|pebble --data DIR PATH...")
		os.Exit(2)
	}
	if err := os.MkdirAll(*data, 0o755); err != nil {
		fail(err)
	}
	if path := os.Getenv("STOREBENCH_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			fail(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	start := time.Now()
	var (
		rep   importer.Report
		err   error
		close func() error
	)
	switch *store {
	case "bolt":
		db, oerr := bolt.Open(filepath.Join(*data, bolt.FileName), bolt.Options{})
		if oerr != nil {
			fail(oerr)
		}
		close = db.Close
		rep, err = importer.Import(ctx, db.Resources(), importer.Options{}, flag.Args()...)
	case "pebble":
		s, oerr := openPebble(*data)
		if oerr != nil {
			fail(oerr)
		}
		close = s.Close
		rep, err = importer.Import(ctx, s, importer.Options{}, flag.Args()...)
	default:
		fail(fmt.Errorf("unknown store %q", *store))
	}
	if err != nil {
		fail(err)
	}
	if err := close(); err != nil {
		fail(err)
	}
	took := time.Since(start)
	var n int64
	for _, c := range rep.Resources {
		n += c
	}
	fmt.Printf("store %s: %d resources in %.2f s, %.0f resources/s, %d MB on disk, peak RSS %s\n",
		*store, n, took.Seconds(), float64(n)/took.Seconds(), dirSize(*data)>>20, peakRSS())
}

func fail(err error) {
	pprof.StopCPUProfile()
	fmt.Fprintln(os.Stderr, "storebench:", err)
	os.Exit(1)
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// peakRSS is the process's VmHWM (Linux).
func peakRSS() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			return strings.TrimSpace(strings.TrimPrefix(l, "VmHWM:"))
		}
	}
	return "?"
}
