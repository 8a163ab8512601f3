package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/admin"
	"github.com/tranchehq/tranche/internal/api"
	"github.com/tranchehq/tranche/internal/auth"
	"github.com/tranchehq/tranche/internal/cohort"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/local/bolt"
	"github.com/tranchehq/tranche/internal/local/fsobj"
	"github.com/tranchehq/tranche/internal/mem"
	"github.com/tranchehq/tranche/internal/workflow"
)

// Version is set at build time with -ldflags.
var Version = "dev"

// Local is the single-binary deployment.
type Local struct {
	DB       *bolt.DB
	Objects  *fsobj.Store
	Service  *export.Service
	Workflow *workflow.Local
	API      *api.Server
	Handler  http.Handler
	// Admin is what operators do to the data dir while the server runs:
	// `tranche serve` serves it on the admin socket (admin.Handler).
	Admin  *admin.Service
	Logger *slog.Logger
	// Cohorts is the Bulk Cohort API (cohort.go).
	Cohorts *LocalCohorts

	stopPurge context.CancelFunc
	purgeDone chan struct{}
}

// OpenStore opens the embedded store in cfg.DataDir (import and generate use
// it without the rest of the server).
func OpenStore(cfg config.Config) (*bolt.DB, error) {
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	return bolt.Open(filepath.Join(cfg.DataDir, "tranche.db"), bolt.Options{Shards: cfg.Shards, Timeout: time.Second})
}

// OpenAdmin opens the store in cfg.DataDir for an operator's command on a
// stopped server: read-only (ENOTFOUND when there is no store) or for
// writing. The caller closes the DB.
func OpenAdmin(cfg config.Config, readOnly bool) (*admin.Service, *bolt.DB, error) {
	var db *bolt.DB
	var err error
	if readOnly {
		db, err = bolt.OpenReadOnly(filepath.Join(cfg.DataDir, bolt.FileName), time.Second)
	} else {
		db, err = OpenStore(cfg)
	}
	if err != nil {
		return nil, nil, err
	}
	files := filepath.Join(cfg.DataDir, "files")
	return adminService(db, func() (int64, error) { return dirBytes(files) }), db, nil
}

func adminService(db *bolt.DB, fileBytes func() (int64, error)) *admin.Service {
	return &admin.Service{Clients: db.Clients(), Resources: db.Resources(), Counts: db.Resources(), Jobs: db.Jobs(), FileBytes: fileBytes}
}

// dirBytes sums the sizes of the regular files under root (0 if there is
// no root): fsobj.New would do it too, but also create root and remove
// unfinished uploads, which is not a stopped server's reader's to do.
func dirBytes(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path == root && os.IsNotExist(err) {
				return fs.SkipAll
			}
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// LocalOption changes what NewLocal builds; with none it builds what
// `tranche serve` runs.
type LocalOption func(*localOptions)

type localOptions struct {
	now func() time.Time
}

// WithClock makes now the clock of everything NewLocal wires that reads
// the time: kick-off, transactionTime and job expiry (export.Service.Now),
// token and client assertion lifetimes (auth.Authority.Now), the jwks_uri
// cache and its refresh interval (auth.JWKSFetcher.Now), jti replay, the
// poll limit and the Bulk Cohort service. A test moves it instead of
// waiting for the wall clock. It should run with the wall clock, if ahead
// of it: the export service compares it with context deadlines. It does
// not drive the purge and cohort refresh loops, which tick every
// PurgeEvery and RefreshLoop of real time (tests turn the purge loop off
// and call Service.Purge), nor the few reads of time.Now in api. A nil
// now keeps time.Now.
func WithClock(now func() time.Time) LocalOption {
	return func(o *localOptions) {
		if now != nil {
			o.now = now
		}
	}
}

// NewLocal opens the data dir and builds the server. Unfinished jobs of an
// earlier process resume (Recover) and a purge loop removes expired jobs
// and fails those whose execution died (the watchdog).
func NewLocal(ctx context.Context, cfg config.Config, logger *slog.Logger, opts ...LocalOption) (*Local, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := localOptions{now: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	db, err := OpenStore(cfg)
	if err != nil {
		return nil, err
	}
	objs, err := fsobj.New(filepath.Join(cfg.DataDir, "files"))
	if err != nil {
		db.Close()
		return nil, err
	}
	limit := cfg.MaxOutputBytes
	if limit == config.AutoOutputBytes {
		limit = objs.DefaultLimit()
	}
	objs.SetLimit(limit)
	objs.SetGzip(cfg.GzipFiles)
	used, _ := objs.Usage()
	logger.Info("output budget", "limit_bytes", limit, "used_bytes", used) // limit 0: unlimited
	model, err := StoreModel(ctx, db.Resources(), cfg.FHIRVersion)
	if err != nil {
		db.Close()
		return nil, err
	}
	logger.Info("store", "fhir", model.Name, "fhir_version", model.FHIRVersion)
	svc := export.NewService(db.Jobs(), db.Resources(), objs, cfg.Export, logger)
	svc.Now = o.now
	svc.FHIR = model
	svc.ForeignGroups = cohort.ForeignGroups(db.Cohorts())
	svc.Clock = db.Resources() // transactionTime from the store's clock (R55)
	svc.Space = objs
	wf, err := workflow.NewLocal(workflow.Steps{Svc: svc}, logger)
	if err != nil {
		db.Close()
		return nil, err
	}
	svc.Workflow = wf
	cohorts, err := startLocalCohorts(ctx, db, model, !cfg.Auth.Open, o.now, logger)
	if err != nil {
		wf.Close()
		db.Close()
		return nil, err
	}
	srv := &api.Server{
		FHIR:   model,
		Export: svc, Resources: db.Resources(), Objects: objs, Cohorts: cohorts.Service,
		BaseURL: cfg.BaseURL, TrustProxy: cfg.TrustProxy, LenientHeaders: cfg.LenientHeaders, Logger: logger, Version: Version,
	}
	if !cfg.Auth.Open {
		if srv.Authz, err = localAuthz(cfg, db, o.now); err != nil {
			cohorts.Close()
			db.Close()
			return nil, err
		}
	}
	l := &Local{DB: db, Objects: objs, Service: svc, Workflow: wf, Cohorts: cohorts, API: srv, Handler: srv.Handler(), Logger: logger,
		Admin: adminService(db, func() (int64, error) { used, _ := objs.Usage(); return used, nil })}
	l.Admin.FHIR = model // imports through the socket are of the server's release
	if err := svc.Recover(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("resume unfinished exports: %w", err)
	}
	// Only now, with every unfinished job's execution started again, may
	// the watchdog ask whether a job's execution runs.
	pctx, cancel := context.WithCancel(context.Background())
	l.stopPurge, l.purgeDone = cancel, make(chan struct{})
	go l.purgeLoop(pctx, cfg.PurgeEvery)
	return l, nil
}

// localAuthz builds the authorization server over the embedded store, on
// the clock now: the token signing key and the registration token live in
// the data dir, generated on first start.
func localAuthz(cfg config.Config, db *bolt.DB, now func() time.Time) (*api.Authz, error) {
	signer, err := auth.LoadOrCreateSigner(filepath.Join(cfg.DataDir, "token-key.jwk"))
	if err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	regToken := cfg.Auth.RegistrationToken
	if regToken == "" {
		if regToken, err = loadOrCreateSecret(filepath.Join(cfg.DataDir, RegistrationTokenFile)); err != nil {
			return nil, fmt.Errorf("registration token: %w", err)
		}
	}
	return &api.Authz{
		Authority: &auth.Authority{
			Clients: contractClients(db), Replay: db.Replay(now), Signer: signer,
			Fetcher:       &auth.JWKSFetcher{AllowLoopback: cfg.Auth.AllowLoopbackJWKS, Now: now},
			TokenLifetime: cfg.Auth.TokenLifetime,
			Now:           now,
		},
		RegistrationToken:    regToken,
		Registration:         auth.RegistrationDefaults{Groups: []string{"*"}},
		MaxConcurrentExports: cfg.Auth.MaxConcurrentExports,
		MaxPollsPerMinute:    cfg.Auth.MaxPollsPerMinute,
		Polls:                mem.NewRateCounter(now), // one process serves every poll
	}, nil
}

// RegistrationTokenFile holds the generated initial access token for
// POST /register, in the data dir.
const RegistrationTokenFile = "registration-token"

func loadOrCreateSecret(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	} else if !os.IsNotExist(err) {
		return "", err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	tok := hex.EncodeToString(b[:])
	if err := os.WriteFile(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}

func (l *Local) purgeLoop(ctx context.Context, every time.Duration) {
	defer close(l.purgeDone)
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := l.Service.Watchdog(ctx); err != nil && ctx.Err() == nil {
				l.Logger.Error("watchdog failed", "err", err)
			}
			if _, err := l.Service.Purge(ctx); err != nil {
				l.Logger.Error("purge failed", "err", err)
			}
		}
	}
}

// Close stops running exports (they resume at the next start) and closes
// the store.
func (l *Local) Close() error {
	if l.stopPurge != nil {
		l.stopPurge()
		<-l.purgeDone
	}
	l.Cohorts.Close()
	l.Workflow.Close()
	return l.DB.Close()
}
