package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/tranchehq/tranche/internal/admin"
	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/importer"
)

// The operator's commands (clients, stats, import) act through the server
// running on the data dir when one answers on its admin socket: the store
// has one writer, and that is the server. Otherwise they open the store
// themselves.

// withOperations runs fn on the data dir's admin.Operations: the running
// server's (server is its Info), or the store's opened here (server nil),
// read-only if readOnly.
func withOperations(ctx context.Context, cfg config.Config, readOnly bool, fn func(ops admin.Operations, server *admin.Info) error) error {
	c, err := admin.Dial(ctx, cfg.DataDir)
	if errors.Is(err, admin.ErrNoServer) {
		svc, db, oerr := app.OpenAdmin(cfg, readOnly)
		if oerr == nil {
			err = fn(svc, nil)
			if cerr := db.Close(); err == nil {
				err = cerr
			}
			return operatorError(err)
		}
		if bulk.ErrorCode(oerr) != bulk.ECONFLICT {
			return operatorError(oerr)
		}
		// A server that was starting holds the store now: its socket may
		// be up.
		if c, err = admin.Dial(ctx, cfg.DataDir); err != nil {
			return operatorError(oerr)
		}
	} else if err != nil {
		return err
	}
	defer c.Close()
	return operatorError(fn(c, &c.Info))
}

// operatorError is err as a command prints it: an application error's
// message without its code or call trace. An internal error of this
// process keeps its text (the operator is its owner); the server sends
// none of its own.
func operatorError(err error) error {
	var e *bulk.Error
	if errors.As(err, &e) && (e.Code != bulk.EINTERNAL || e.Err == nil) {
		return errors.New(e.Message)
	}
	return err
}

// adminImport imports paths through the server running on dataDir, when
// one answers on its admin socket: the server process reads the files (the
// same machine and user) and stores them with its clock, so that exports
// kicked off before do not see them and those after do. handled is false
// when no server answers: then open the store directly. It prints where
// the import runs to stdout and the server's progress (a bar, on a
// terminal) to stderr; the caller prints the report.
func adminImport(ctx context.Context, dataDir string, paths []string, keepLastUpdated bool, fhirVersion string, stdout, stderr io.Writer) (handled bool, rep importer.Report, err error) {
	rep = importer.Report{Resources: map[string]int64{}}
	c, err := admin.Dial(ctx, dataDir)
	if errors.Is(err, admin.ErrNoServer) {
		return false, rep, nil
	} else if err != nil {
		return true, rep, err
	}
	defer c.Close()
	abs := make([]string, len(paths))
	for i, p := range paths {
		if strings.Contains(p, "://") {
			abs[i] = p // a URL: the server's importer fetches it
			continue
		}
		// Checked here, where the message can name the operator's path.
		if abs[i], err = filepath.Abs(p); err != nil {
			return true, rep, err
		}
		if _, err := os.Stat(abs[i]); err != nil {
			return true, rep, err
		}
	}
	fmt.Fprintf(stdout, "Importing through the server running on %s (pid %d, %s).\n", dataDir, c.Info.PID, c.Info.BaseURL)
	bar := newBar(stderr, "importing")
	rep, err = c.Import(ctx, admin.ImportRequest{Paths: abs, KeepLastUpdated: keepLastUpdated, FHIRVersion: fhirVersion}, func(p importer.Progress) {
		if bar != nil {
			_ = bar.Set64(p.Resources)
		}
	})
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	return true, rep, operatorError(err)
}
