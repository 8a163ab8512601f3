package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/fhir/defs"
	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/importer"
)

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := config.Default()
	fs := newFlags("import", stderr)
	storeFlags(fs, &cfg)
	keep := fs.Bool("keep-last-updated", false, "keep each resource's own meta.lastUpdated (restoring a backup as it was) instead of the server's clock")
	fs.StringVar(&cfg.FHIRVersion, "fhir-version", cfg.FHIRVersion, "FHIR release of the data: dstu2, stu3, r4 or r5 (default: the store's, or for a new store the data's)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tranche import [--data DIR] [--keep-last-updated] [--fhir-version V] PATH...\n\n"+
			"Loads NDJSON (.ndjson, .ndjson.gz), FHIR Bundles (.json, .json.gz) and directories of them,\n"+
			"and Bulk Data exports: a manifest.json (as `tranche export` saves) imports the files it lists,\n"+
			"from its directory or else from their URLs. Each version gets meta.lastUpdated from the\n"+
			"server's clock as it is stored, so the next `_since` export (tranche export --since-last)\n"+
			"returns it; the file's own value is kept in meta.extension "+importer.SourceLastUpdatedURL+".\n"+
			"A resource the same as the one stored is left as it is: importing again is safe.\n"+
			"A store holds one FHIR release (DSTU2, STU3, R4 or R5), recorded by its first import;\n"+
			"data of another release is refused before anything is written.")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	var model *fhir.Model
	if cfg.FHIRVersion != "" {
		v, err := defs.ParseVersion(cfg.FHIRVersion)
		if err != nil {
			return fmt.Errorf("--fhir-version: %w", err)
		}
		model = fhir.ModelFor(v)
	}
	start := time.Now()
	// A running server holds the store: it imports, through its socket.
	handled, rep, err := adminImport(ctx, cfg.DataDir, fs.Args(), *keep, cfg.FHIRVersion, stdout, stderr)
	if !handled {
		db, oerr := app.OpenStore(cfg)
		if oerr != nil {
			return oerr
		}
		defer db.Close()
		prog := newImportProgress(stderr)
		rep, err = importer.Import(ctx, db.Resources(), importer.Options{KeepLastUpdated: *keep, Progress: prog.update, FHIR: model}, fs.Args()...)
		prog.finish()
	}
	if err != nil && rep.Files == 0 && len(rep.Types) == 0 && ctx.Err() == nil {
		return userError(err) // nothing was read: a path, say
	}
	printReport(stdout, rep)
	switch {
	case ctx.Err() != nil:
		// Ctrl-C: say what is stored and how to go on, not "context canceled".
		fmt.Fprintln(stdout, "Interrupted. The counts above were stored (committed) before the stop.\n"+
			"Running the same import again is safe and finishes it: resources stored already are left\n"+
			"as they are (counted unchanged) and deletions recorded already are not recorded again.")
		return errors.New("interrupted; run the same import again to finish it")
	case err != nil:
		fmt.Fprintln(stdout, "Stopped by an error (below). The counts above were stored (committed); once it is fixed,\n"+
			"running the same import again is safe and finishes it.")
		return userError(err)
	}
	if *keep {
		// The price of restoring as-is (R55): the clock did not stamp these.
		fmt.Fprintln(stdout, "Kept each resource's own meta.lastUpdated (--keep-last-updated): exports _since an earlier\n"+
			"transactionTime (tranche export --since-last) may not include these resources; export without\n"+
			"_since, or _since a time before their lastUpdated, to get them all.")
	}
	fmt.Fprintf(stdout, "Took %s.\n", time.Since(start).Round(time.Millisecond))
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%d bad lines or files were skipped (listed above); everything else was imported", len(rep.Errors))
	}
	return nil
}

// userError is err as a user should read it: an application error's
// message alone (no call trace), anything else as it is.
func userError(err error) error {
	if c := bulk.ErrorCode(err); c != bulk.EINTERNAL && c != "" {
		return errors.New(bulk.ErrorMessage(err))
	}
	return err
}

// printReport prints an import summary: per type what was new, replaced,
// unchanged and deleted, Groups whose members changed, skipped files, and
// each bad line with its file and line number.
func printReport(w io.Writer, rep importer.Report) {
	types := slices.Sorted(maps.Keys(rep.Types))
	width := len("type")
	for _, t := range types {
		width = max(width, len(t))
	}
	var tot importer.Counts
	if len(types) > 0 {
		fmt.Fprintf(w, "  %-*s %9s %9s %9s %9s\n", width, "type", "new", "replaced", "unchanged", "deleted")
	}
	for _, t := range types {
		c := rep.Types[t]
		fmt.Fprintf(w, "  %-*s %9d %9d %9d %9d\n", width, t, c.New, c.Replaced, c.Unchanged, c.Deleted)
		tot.New, tot.Replaced, tot.Unchanged, tot.Deleted = tot.New+c.New, tot.Replaced+c.Replaced, tot.Unchanged+c.Unchanged, tot.Deleted+c.Deleted
	}
	fmt.Fprintf(w, "Imported %d resources from %d files: %d new, %d replaced, %d unchanged",
		tot.New+tot.Replaced+tot.Unchanged, rep.Files, tot.New, tot.Replaced, tot.Unchanged)
	if tot.Deleted > 0 {
		fmt.Fprintf(w, "; %d deletions", tot.Deleted)
	}
	if rep.Unresolved > 0 {
		fmt.Fprintf(w, "; %d urn:uuid references left unresolved", rep.Unresolved)
	}
	fmt.Fprintln(w, ".")
	if tot.Unchanged > 0 {
		fmt.Fprintln(w, "  (unchanged: stored already as they are, so not written again and not in the next _since export)")
	}
	for _, g := range rep.GroupChanges {
		fmt.Fprintf(w, "Warning: Group/%s replaced: %d → %d members (%d joined, %d left).\n", g.ID, g.Before, g.After, g.Joined, g.Left)
	}
	for _, s := range rep.Skipped {
		fmt.Fprintf(w, "Skipped %s: %s.\n", s.File, s.Reason)
	}
	for _, e := range rep.Errors {
		if e.Line > 0 {
			fmt.Fprintf(w, "  %s:%d: %s\n", e.File, e.Line, e.Message)
		} else {
			fmt.Fprintf(w, "  %s: %s\n", e.File, e.Message)
		}
	}
}

func generateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("generate", stderr)
	patients := fs.Int("patients", 100, "number of patients (about 100 resources each)")
	seed := fs.Int64("seed", 1, "random seed: the same seed writes the same bytes")
	out := fs.String("out", "", "output directory (one NDJSON file per type)")
	base := fs.String("base", "2026-01-01T00:00:00Z", "the instant the data is as of (meta.lastUpdated lies in the two years before)")
	version := fs.String("fhir-version", "r4", "FHIR release whose resource shapes to write: dstu2, stu3, r4 or r5")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || *patients < 1 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "Usage: tranche generate --patients N [--seed S] [--fhir-version dstu2|stu3|r4|r5] --out DIR")
		return errUsage
	}
	b, err := time.Parse(time.RFC3339, *base)
	if err != nil {
		fmt.Fprintf(stderr, "tranche generate: --base %q is not an RFC 3339 instant\n", *base)
		return errUsage
	}
	v, err := defs.ParseVersion(*version)
	if err != nil {
		fmt.Fprintf(stderr, "tranche generate: --fhir-version: %v\n", err)
		return errUsage
	}
	bar := newBar(stderr, "generating")
	start := time.Now()
	st, err := generate.Dir(ctx, generate.Options{Patients: *patients, Seed: *seed, Base: b, FHIRVersion: v}, *out, func(n int64) {
		if bar != nil {
			_ = bar.Set64(n)
		}
	})
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	var total int64
	for _, t := range slices.Sorted(maps.Keys(st.Resources)) {
		fmt.Fprintf(stdout, "  %-28s %9d\n", t, st.Resources[t])
		total += st.Resources[t]
	}
	el := time.Since(start)
	fmt.Fprintf(stdout, "Wrote %d FHIR %s resources (%s, %.1f MB) to %s in %s (%.0f resources/s).\n",
		total, defs.For(v).FHIRVersion, v, float64(st.Bytes)/1e6, *out, el.Round(time.Millisecond), float64(total)/el.Seconds())
	return nil
}

// newBar returns a progress bar on a terminal, nil elsewhere (logs and CI
// get the summary only).
func newBar(w io.Writer, what string) *progressbar.ProgressBar {
	if !isTerminal(w) {
		return nil
	}
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("resources"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSpinnerType(14),
	)
}
