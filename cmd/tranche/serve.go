package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"github.com/tranchehq/tranche/internal/admin"
	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/fhir"
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
	fs.StringVar(&cfg.FHIRVersion, "fhir-version", cfg.FHIRVersion, "FHIR release of a new store: dstu2, stu3, r4 or r5 (default r4; an existing store keeps its own, which this must match)")
	fs.StringVar(&cfg.BaseURL, "base-url", cfg.BaseURL, "public FHIR base URL; required with --trust-proxy or TLS (default: http://ADDR)")
	fs.BoolVar(&cfg.TrustProxy, "trust-proxy", cfg.TrustProxy, "behind a reverse proxy: honour X-Forwarded-Proto for logs and redirects (needs --base-url)")
	fs.BoolVar(&cfg.LenientHeaders, "lenient-headers", cfg.LenientHeaders, "accept kick-offs without Accept or Prefer: respond-async (default: 400, as the IG's test suites expect)")
	demoClientFlag := fs.Bool("demo-client", false, "register the full-access demo client (DATA/demo-client.json) even with --demo=false")
	fs.BoolVar(&cfg.InsecureListen, "insecure-listen", cfg.InsecureListen, "allow plain HTTP on a non-loopback address (only behind a TLS proxy on this host)")
	fs.BoolVar(&cfg.Demo, "demo", cfg.Demo, "load generated demo data when the store is empty")
	fs.IntVar(&cfg.DemoPatients, "demo-patients", cfg.DemoPatients, "patients in the demo data")
	fs.StringVar(&cfg.LogFormat, "log-format", cfg.LogFormat, "log format: json or text")
	fs.StringVar(&cfg.LogLevel, "log-level", cfg.LogLevel, "log level: debug, info, warn, error")
	fs.Int64Var(&cfg.Export.MaxFileResources, "max-file-resources", cfg.Export.MaxFileResources, "roll output files after this many resources")
	fs.Int64Var(&cfg.Export.MaxFileBytes, "max-file-bytes", cfg.Export.MaxFileBytes, "roll output files after this many bytes")
	fs.BoolVar(&cfg.GzipFiles, "gzip-files", cfg.GzipFiles, "store export files gzip-encoded as they are written: gzip downloads are plain file copies, the files take about a tenth of the disk, the export spends CPU compressing")
	fs.Int64Var(&cfg.MaxOutputBytes, "max-output-bytes", cfg.MaxOutputBytes, "bytes the files of unexpired exports may hold; kick-offs beyond are 429 (0: unlimited; -1: the smaller of 50 GiB and half the data dir's disk space at start)")
	fs.DurationVar(&cfg.Export.Retention, "retention", cfg.Export.Retention, "how long finished exports' files are kept")
	fs.DurationVar(&cfg.Export.ItemBudget, "item-budget", cfg.Export.ItemBudget, "time one work item runs before it checkpoints")
	fs.IntVar(&cfg.Export.ManifestPageFiles, "manifest-page-files", cfg.Export.ManifestPageFiles, "files per manifest page of exports with allowPartialManifests")
	fs.BoolVar(&cfg.Auth.Open, "open", cfg.Auth.Open, "disable authorization (anyone can export everything: local experiments only)")
	fs.StringVar(&cfg.Auth.TLSCert, "tls-cert", cfg.Auth.TLSCert, "TLS certificate file (PEM); serves HTTPS with TLS >= 1.2")
	fs.StringVar(&cfg.Auth.TLSKey, "tls-key", cfg.Auth.TLSKey, "TLS private key file (PEM)")
	fs.StringVar(&cfg.Auth.RegistrationToken, "registration-token", cfg.Auth.RegistrationToken, "initial access token for POST /register (default: generated into the data dir)")
	fs.BoolVar(&cfg.Auth.AllowLoopbackJWKS, "allow-loopback-jwks", cfg.Auth.AllowLoopbackJWKS, "let clients register a jwks_uri on loopback (local testing)")
	fs.IntVar(&cfg.Auth.MaxConcurrentExports, "max-exports", cfg.Auth.MaxConcurrentExports, "concurrent exports per client unless its contract says otherwise (0: unlimited)")
	fs.IntVar(&cfg.Auth.MaxPollsPerMinute, "max-polls", cfg.Auth.MaxPollsPerMinute, "status polls per minute per client unless its contract says otherwise (0: unlimited)")
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

	// Another server on this data dir answers on its admin socket: say so
	// at once, rather than after waiting for the store's lock.
	if c, err := admin.Dial(ctx, cfg.DataDir); err == nil {
		c.Close()
		return fmt.Errorf("another tranche server (pid %d, at %s) is serving the data directory %s: stop it first, or give this one another --data",
			c.Info.PID, c.Info.BaseURL, cfg.DataDir)
	}
	// The address first: a busy port fails before demo data is generated.
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	defer ln.Close()
	if addr := os.Getenv("TRANCHE_PPROF"); addr != "" {
		stopPprof, err := servePprof(addr, stderr)
		if err != nil {
			return fmt.Errorf("TRANCHE_PPROF: %w", err)
		}
		defer stopPprof()
	}
	l, err := app.NewLocal(ctx, cfg, logger)
	if err != nil {
		if bulk.ErrorCode(err) == bulk.ECONFLICT {
			return errors.New(bulk.ErrorMessage(err)) // no call trace: the message says it all
		}
		return err
	}
	defer l.Close()

	// ReadTimeout bounds a whole request, body included, so a slow-drip
	// POST /token or kick-off holds a connection 30 s at most; no write
	// timeout: a large download takes as long as it takes.
	srv := &http.Server{Handler: l.Handler, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 256 << 10,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12}} // R1
	scheme := "http"
	if cfg.Auth.TLSCert != "" {
		scheme = "https"
	}
	base := cfg.BaseURL
	if base == "" {
		// Loopback plain HTTP (Validate requires --base-url otherwise):
		// the listening address, so the token endpoint and the issuer are
		// this server's whatever Host a request names.
		base = scheme + "://" + ln.Addr().String()
		l.API.BaseURL = base
	}

	// The admin socket: tranche clients, import and stats go through this
	// process while it holds the store. Up before the demo data, so they
	// work while it loads.
	l.Admin.Info = &admin.Info{Version: app.Version, BaseURL: base, PID: os.Getpid()}
	aln, err := admin.Listen(cfg.DataDir)
	if err != nil {
		return fmt.Errorf("admin socket: %w", err)
	}
	actx, stopAdmin := context.WithCancel(context.WithoutCancel(ctx))
	asrv := &http.Server{Handler: admin.Handler(l.Admin, logger), ReadHeaderTimeout: 10 * time.Second,
		BaseContext: func(net.Listener) context.Context { return actx }}
	go func() { _ = asrv.Serve(aln) }()
	// Before l.Close (deferred earlier, so run later): imports stop and
	// the socket is gone before the store closes.
	defer func() {
		stopAdmin()
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = asrv.Shutdown(sctx)
	}()

	if cfg.Demo {
		if err := loadDemo(ctx, l.DB.Resources(), cfg, l.API.FHIR, stdout); err != nil {
			return err
		}
	}
	var clientFile string
	if !cfg.Auth.Open && (cfg.Demo || *demoClientFlag) {
		// Before the "serving" line: whoever reads it may use the file.
		if clientFile, err = demoClient(ctx, l, cfg, base); err != nil {
			return fmt.Errorf("demo client: %w", err)
		}
	}
	fmt.Fprintf(stdout, "Tranche %s is serving FHIR Bulk Data at %s\n", app.Version, base)
	if cfg.Auth.Open {
		fmt.Fprintf(stdout, "\n  WARNING: --open: authorization is OFF. Anyone who reaches %s can export all data.\n\n", base)
		fmt.Fprintf(stdout, "Try:\n  curl -si -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' '%s/$export'\n", base)
	} else {
		file := clientFile
		if file == "" {
			file = "CLIENT.json"
			fmt.Fprintf(stdout, "Authorization: SMART Backend Services. No demo client (--demo=false): add one with tranche clients add, or register one\n")
		} else {
			fmt.Fprintf(stdout, "Authorization: SMART Backend Services. Demo client: %s\n", file)
		}
		fmt.Fprintf(stdout, "Registration (RFC 7591): POST %s/register with the token in %s\n", base, filepath.Join(cfg.DataDir, app.RegistrationTokenFile))
		fmt.Fprintf(stdout, "Try:\n  tranche export --client %s --out ./export\n", file)
		fmt.Fprintf(stdout, "or with curl:\n  TOKEN=$(tranche token --client %s)\n", file)
		fmt.Fprintf(stdout, "  curl -si -H \"Authorization: Bearer $TOKEN\" -H 'Accept: application/fhir+json' -H 'Prefer: respond-async' '%s/$export'\n", base)
	}
	fmt.Fprintf(stdout, "  then poll the Content-Location URL it returns.\n")

	errc := make(chan error, 1)
	go func() {
		if cfg.Auth.TLSCert != "" {
			errc <- srv.ServeTLS(ln, cfg.Auth.TLSCert, cfg.Auth.TLSKey)
		} else {
			errc <- srv.Serve(ln)
		}
	}()
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

// DemoClientFile is the demo client's credentials file in the data dir.
const DemoClientFile = "demo-client.json"

// demoClient makes sure a registered ES384 demo client exists and its file
// in the data dir points at this server, so a newcomer's first export is an
// authorized one.
func demoClient(ctx context.Context, l *app.Local, cfg config.Config, base string) (string, error) {
	path := filepath.Join(cfg.DataDir, DemoClientFile)
	cf, err := client.LoadClientFile(path)
	if err == nil {
		if _, err := l.DB.Clients().GetClient(ctx, cf.ClientID); err == nil {
			cf.FHIRBaseURL, cf.TokenURL = base, base+"/token"
			return path, cf.Save(path)
		}
	}
	key, err := client.GenerateES384()
	if err != nil {
		return "", err
	}
	md, _ := json.Marshal(map[string]any{"client_name": "Tranche demo client", "scope": "system/*.rs system/Group.cud",
		"jwks": map[string]any{"keys": []client.JWK{key.PublicJWK()}}})
	// The demo client may also create cohorts (README "Cohorts").
	c, _, err := l.API.Authz.Authority.Register(ctx, md, auth.RegistrationDefaults{Groups: []string{"*"}, MaxScopes: []string{"system/*.rs", "system/Group.cud"}})
	if err != nil {
		return "", err
	}
	jwk, err := key.PrivateJWK()
	if err != nil {
		return "", err
	}
	priv, _ := json.Marshal(jwk)
	cf = &client.ClientFile{ClientID: c.ID, TokenURL: base + "/token", FHIRBaseURL: base, PrivateJWK: priv, Scope: "system/*.read"}
	return path, cf.Save(path)
}

// loadDemo fills an empty store with generated data so a newcomer's first
// export has something in it.
func loadDemo(ctx context.Context, store bulk.ResourceStore, cfg config.Config, model *fhir.Model, stdout io.Writer) error {
	counts, err := store.Count(ctx)
	if err != nil {
		return err
	}
	var total int64
	for _, n := range counts {
		total += n
	}
	if total > 0 {
		return nil
	}
	dir, err := os.MkdirTemp("", "tranche-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fmt.Fprintf(stdout, "Empty store: generating demo data (%d patients, FHIR %s)...\n", cfg.DemoPatients, model.Name)
	opts := generate.Options{Patients: cfg.DemoPatients, Seed: 1, Base: time.Now().UTC().Truncate(time.Second), FHIRVersion: model.Version}
	if _, err := generate.Dir(ctx, opts, filepath.Join(dir, "ndjson"), nil); err != nil {
		return err
	}
	rep, err := importer.Import(ctx, store, importer.Options{FHIR: model}, filepath.Join(dir, "ndjson"))
	if err != nil {
		return err
	}
	printReport(stdout, rep)
	return nil
}

// servePprof serves net/http/pprof on addr (TRANCHE_PPROF, a loopback
// HOST:PORT), for profiling a running server: CPU, heap, goroutines, and
// the block and mutex profiles, which it turns on (they cost a little on
// every contended lock and channel wait, so only with TRANCHE_PPROF). It
// is never on by default and is no route of the FHIR server.
func servePprof(addr string, stderr io.Writer) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if tcp, ok := ln.Addr().(*net.TCPAddr); !ok || !tcp.IP.IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("%s is not a loopback address: profiles show the server's internals", addr)
	}
	runtime.SetBlockProfileRate(int(10 * time.Microsecond))
	runtime.SetMutexProfileFraction(10)
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Fprintf(stderr, "tranche: profiles at http://%s/debug/pprof/\n", ln.Addr())
	return func() { _ = srv.Close() }, nil
}
