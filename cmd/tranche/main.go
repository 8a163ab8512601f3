// Command tranche is the single local binary: a FHIR Bulk Data export server
// with embedded storage, plus the import and generate tools that feed it.
//
//	tranche serve    [--addr 127.0.0.1:8080] [--data .tranche] ...
//	tranche import   [--data .tranche] PATH...
//	tranche generate --patients N [--seed S] --out DIR
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/config"
)

const usage = `tranche: FHIR Bulk Data export server

Usage:
  tranche serve    [flags]          run the server (loads demo data into an empty store)
  tranche import   [flags] PATH...  load NDJSON (.ndjson, .ndjson.gz) and Bundle (.json) files or directories
  tranche generate [flags]          write deterministic synthetic R4 NDJSON
  tranche export   [flags]          run a bulk export against any Bulk Data server and download it
  tranche register [flags]          register a client with a server (RFC 7591) and write a client file
  tranche clients  add|list|remove  manage registered clients and their contracts (operators)
  tranche stats    [--json]         what the store holds: resources, Groups, deletions, size, jobs
  tranche token    --client FILE    print a fresh access token (for curl)
  tranche version

Run 'tranche COMMAND -h' for a command's flags.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(profiled(func() int { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) }))
}

// profiled runs f with a CPU profile written to $TRANCHE_CPUPROFILE when it
// is set: how docs/benchmarks.md profiles the real commands (import, serve).
func profiled(f func() int) int {
	path := os.Getenv("TRANCHE_CPUPROFILE")
	if path == "" {
		return f()
	}
	out, err := os.Create(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "tranche: TRANCHE_CPUPROFILE:", err)
		return 1
	}
	defer out.Close()
	if err := pprof.StartCPUProfile(out); err != nil {
		fmt.Fprintln(os.Stderr, "tranche: TRANCHE_CPUPROFILE:", err)
		return 1
	}
	defer pprof.StopCPUProfile()
	return f()
}

// errUsage marks a bad command line: exit status 2.
var errUsage = errors.New("usage")

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "serve":
		err = serve(ctx, args[1:], stdout, stderr)
	case "import":
		err = importCmd(ctx, args[1:], stdout, stderr)
	case "generate":
		err = generateCmd(ctx, args[1:], stdout, stderr)
	case "bench":
		// Moved out of this binary (issue 19 step 5): say where to.
		fmt.Fprintln(stderr, "tranche: the benchmark is its own binary now: bin/tranche-bench (make build; make bench)")
		return 2
	case "export":
		err = exportCmd(ctx, args[1:], stdout, stderr)
	case "register":
		err = registerCmd(ctx, args[1:], stdout, stderr)
	case "clients":
		err = clientsCmd(ctx, args[1:], stdout, stderr)
	case "stats":
		err = statsCmd(ctx, args[1:], stdout, stderr)
	case "token":
		err = tokenCmd(ctx, args[1:], stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "tranche", app.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "tranche: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "tranche %s: %v\n", args[0], err)
		return 1
	}
}

// newFlags returns a flag set that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("tranche "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parse parses flags, mapping parse errors to errUsage.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	return nil
}

// storeFlags are the flags every command that opens the store shares.
func storeFlags(fs *flag.FlagSet, cfg *config.Config) {
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory (embedded store and output files)")
	fs.IntVar(&cfg.Shards, "shards", cfg.Shards, "shards per resource type, fixed when the store is created")
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
