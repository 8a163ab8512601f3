// Command tranche-bench measures the served stack: it runs `tranche import`
// and `tranche serve` as child processes, so that each peak RSS comes from
// the OS, and measures them over HTTP as a client would. It prints every
// table and a summary of the targets (issue 20), and can keep the latest run
// in docs/benchmarks.md.
//
//	tranche-bench [--resources 10000,100000] [--dataset DIR] [--short] [--markdown docs/benchmarks.md] ...
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args, os.Stdout, os.Stderr))
}

// errUsage marks a bad command line: exit status 2.
var errUsage = errors.New("usage")

// run is main without the process: tests call it. args[0] is the command
// as it was run, recorded with the results.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := bench(ctx, args, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "tranche-bench: %v\n", err)
		return 1
	}
}

// options are the command line's.
type options struct {
	tranche    string
	sizes      []int64
	dataset    string
	cache      string
	pollers    int
	latencyFor time.Duration
	short      bool
	downloads  bool
	jsonOut    string
	markdown   string
	profiles   string
}

func parseOptions(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("tranche-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: tranche-bench [flags]\n\n"+
			"Measures import, export, latency and downloads of bin/tranche (import and serve as child\n"+
			"processes) and prints a summary of the targets. See docs/benchmarks.md.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&o.tranche, "tranche", "", "the tranche binary to measure (default: tranche beside this binary, else bin/tranche)")
	sizes := fs.String("resources", "10000,100000", "comma-separated generated dataset sizes in resources (1000 or more; 100k, 1M and 3M are accepted)")
	fs.StringVar(&o.dataset, "dataset", "", "also measure this directory of NDJSON (e.g. ../shared/data/synthea-100)")
	fs.StringVar(&o.cache, "cache", ".cache/bench", "where generated datasets are kept between runs")
	fs.IntVar(&o.pollers, "pollers", 200, "concurrent status pollers for the latency measurement")
	fs.DurationVar(&o.latencyFor, "latency-for", 5*time.Second, "how long each latency phase (idle, under load) and the token phase run")
	fs.BoolVar(&o.short, "short", false, "one small dataset (10k), 1 s latency phases, one download round (CI)")
	fs.BoolVar(&o.downloads, "downloads", true, "also compare the system export and its downloads without and with serve --gzip-files (two more servers per round)")
	fs.StringVar(&o.jsonOut, "json", "", "also write the results as JSON to this file")
	fs.StringVar(&o.profiles, "profiles", "", "write a CPU profile of each tranche import and serve into this directory (DATASET-import.prof, DATASET-serve.prof, ...)")
	fs.StringVar(&o.markdown, "markdown", "", "rewrite the latest run in this file (docs/benchmarks.md) between "+beginMarker+" and "+endMarker)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return o, err
		}
		return o, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tranche-bench: unexpected argument %q\n", fs.Arg(0))
		return o, errUsage
	}
	if o.short {
		*sizes = "10000"
		o.latencyFor = time.Second
	}
	for _, s := range strings.Split(*sizes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, ok := parseSize(s)
		if !ok || n < 1000 {
			fmt.Fprintf(stderr, "tranche-bench: --resources %q: want sizes of at least 1000 (e.g. 100000, 100k, 1M, 3M)\n", s)
			return o, errUsage
		}
		o.sizes = append(o.sizes, n)
	}
	if o.pollers < 1 || o.latencyFor <= 0 {
		fmt.Fprintln(stderr, "tranche-bench: --pollers and --latency-for must be positive")
		return o, errUsage
	}
	return o, nil
}

// parseSize reads 3000000, 3M or 100k.
func parseSize(s string) (int64, bool) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "k"), strings.HasSuffix(s, "K"):
		mult, s = 1000, s[:len(s)-1]
	case strings.HasSuffix(s, "m"), strings.HasSuffix(s, "M"):
		mult, s = 1000000, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, false
	}
	return n * mult, true
}

// trancheBinary is the binary to measure: --tranche, or tranche beside
// this executable (bin/tranche-bench beside bin/tranche), or bin/tranche.
func trancheBinary(flagValue string) (string, error) {
	cands := []string{flagValue}
	if flagValue == "" {
		cands = nil
		if self, err := os.Executable(); err == nil {
			cands = append(cands, filepath.Join(filepath.Dir(self), "tranche"))
		}
		cands = append(cands, filepath.Join("bin", "tranche"))
	}
	for _, c := range cands {
		if fi, err := os.Stat(c); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return filepath.Abs(c)
		}
	}
	return "", fmt.Errorf("no tranche binary at %s: run `make build` or pass --tranche", strings.Join(cands, " or "))
}

func bench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args[1:], stderr)
	if err != nil {
		return err
	}
	path, err := trancheBinary(o.tranche)
	if err != nil {
		return err
	}
	tranche := &binary{path: path}
	if o.profiles != "" {
		if tranche.profiles, err = filepath.Abs(o.profiles); err != nil {
			return err
		}
		if err := os.MkdirAll(tranche.profiles, 0o755); err != nil {
			return err
		}
	}
	if o.markdown != "" {
		// Fail now rather than after the run.
		if err := checkMarkers(o.markdown); err != nil {
			return err
		}
	}
	rep := &report{Command: commandLine(args), Date: time.Now(), Pollers: o.pollers, LatencyFor: o.latencyFor.String()}
	rep.Machine = readMachine(ctx, tranche)

	type input struct{ name, dir string }
	var inputs []input
	if o.dataset != "" {
		inputs = append(inputs, input{filepath.Base(filepath.Clean(o.dataset)), o.dataset})
	}
	for _, n := range o.sizes {
		dir, err := benchData(ctx, tranche, o.cache, n, stderr)
		if err != nil {
			return err
		}
		inputs = append(inputs, input{fmt.Sprintf("generated-%d", n), dir})
	}
	for _, in := range inputs {
		fmt.Fprintf(stderr, "bench: %s\n", in.name)
		r, err := benchOne(ctx, tranche, in.name, in.dir, o, stderr)
		if err != nil {
			return fmt.Errorf("%s: %w", in.name, err)
		}
		rep.Results = append(rep.Results, r)
	}
	rep.Machine.LoadEnd = loadAverage()
	rep.Seconds = time.Since(rep.Date).Seconds()
	rep.Summary = rep.checks()
	rep.printText(stdout)
	if o.jsonOut != "" {
		b, _ := json.MarshalIndent(rep, "", "  ")
		if err := os.WriteFile(o.jsonOut, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	if o.markdown != "" {
		if err := writeMarkdown(o.markdown, rep.markdown()); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: wrote the latest run into %s\n", o.markdown)
	}
	return nil
}

// commandLine is args as a shell would take them back.
func commandLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		q[i] = a
	}
	return strings.Join(q, " ")
}
