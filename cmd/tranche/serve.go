package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/importer"
)

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := config.FromEnv(config.Default())
	if err != nil {
		return err
	}
	fs := newFlags("serve", stderr)
	fs.StringVar(&cfg.Addr, "addr", cfg.Addr, "listen address HOST:PORT (port 0 picks a free port)")
	storeFlags(fs, &cfg)
	fs.StringVar(&cfg.BaseURL, "base-url", cfg.BaseURL, "public FHIR base URL (default: derived from each request)")
	fs.BoolVar(&cfg.TrustProxy, "trust-proxy", cfg.TrustProxy, "derive the base URL from X-Forwarded-Proto/Host")
	fs.BoolVar(&cfg.Demo, "demo", cfg.Demo, "load generated demo data when the store is empty")
	fs.IntVar(&cfg.DemoPatients, "demo-patients", cfg.DemoPatients, "patients in the demo data")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: json or text")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn, error")
	fs.Int64Var(&cfg.Export.MaxFileResources, "max-file-resources", cfg.Export.MaxFileResources, "roll output files after this many resources")
	fs.Int64Var(&cfg.Export.MaxFileBytes, "max-file-bytes", cfg.Export.MaxFileBytes, "roll output files after this many bytes")
	fs.DurationVar(&cfg.Export.Retention, "retention", cfg.Export.Retention, "how long finished exports' files are kept")
	fs.DurationVar(&cfg.Export.ItemBudget, "item-budget", cfg.Export.ItemBudget, "time one work item runs before it checkpoints")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "tranche serve: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)

	if cfg.Demo {
		if err := loadDemo(ctx, cfg, stdout, stderr); err != nil {
			return err
		}
	}
	l, err := app.NewLocal(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer l.Close()

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: l.Handler, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	base := cfg.BaseURL
	if base == "" {
		base = "http://" + ln.Addr().String()
	}
	fmt.Fprintf(stdout, "Tranche %s is serving FHIR Bulk Data at %s\n", app.Version, base)
	fmt.Fprintf(stdout, "Data: %s  (open: no authorization yet; keep it on loopback)\n", cfg.DataDir)
	fmt.Fprintf(stdout, "Try:\n  curl -si -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' '%s/$export'\n", base)
	fmt.Fprintf(stdout, "  then poll the Content-Location URL it returns with curl -si.\n")

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintln(stdout, "Shutting down: unfinished exports resume at the next start.")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// loadDemo fills an empty store with generated data so a newcomer's first
// export has something in it.
func loadDemo(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) error {
	db, err := app.OpenStore(cfg)
	if err != nil {
		return err
	}
	counts, err := db.Resources().Count(ctx)
	if err != nil {
		db.Close()
		return err
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	if total > 0 {
		return db.Close()
	}
	dir, err := os.MkdirTemp("", "tranche-demo-")
	if err != nil {
		db.Close()
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(stdout, "Empty store: generating demo data (%d patients)...\n", cfg.DemoPatients)
	opts := generate.Options{Patients: cfg.DemoPatients, Seed: 1, Base: time.Now().UTC().Truncate(time.Second)}
	if _, err := generate.Dir(ctx, opts, filepath.Join(dir, "ndjson"), nil); err != nil {
		db.Close()
		return err
	}
	rep, err := importer.Import(ctx, db.Resources(), importer.Options{}, filepath.Join(dir, "ndjson"))
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	printReport(stdout, rep)
	return nil
}
