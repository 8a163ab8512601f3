package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/importer"
)

func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := config.Default()
	fs := newFlags("import", stderr)
	storeFlags(fs, &cfg)
	keep := fs.Bool("keep-last-updated", false, "keep each resource's own meta.lastUpdated (restoring a backup as it was) instead of the server's clock")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tranche import [--data DIR] [--keep-last-updated] PATH...\n\n"+
			"Loads NDJSON (.ndjson, .ndjson.gz), FHIR Bundles (.json, .json.gz) and directories of them.\n"+
			"Each version gets meta.lastUpdated from the server's clock as it is stored, so the next\n"+
			"`_since` export (tranche export --since-last) returns it; the file's own value is kept in\n"+
			"meta.extension "+importer.SourceLastUpdatedURL+".")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errUsage
	}
	db, err := app.OpenStore(cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	bar := newBar(stderr, "importing")
	start := time.Now()
	rep, err := importer.Import(ctx, db.Resources(), importer.Options{KeepLastUpdated: *keep, Progress: func(p importer.Progress) {
		if bar != nil {
			_ = bar.Set64(p.Resources)
		}
	}}, fs.Args()...)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(stderr)
	}
	if err != nil {
		return err
	}
	printReport(stdout, rep)
	if *keep {
		// The price of restoring as-is (R55): the clock did not stamp these.
		fmt.Fprintln(stdout, "Kept each resource's own meta.lastUpdated (--keep-last-updated): exports _since an earlier\n"+
			"transactionTime (tranche export --since-last) may not include these resources; export without\n"+
			"_since, or _since a time before their lastUpdated, to get them all.")
	}
	fmt.Fprintf(stdout, "Took %s.\n", time.Since(start).Round(time.Millisecond))
	if len(rep.Errors) > 0 {
		return fmt.Errorf("%d bad lines were skipped (listed above); everything else was imported", len(rep.Errors))
	}
	return nil
}

// printReport prints an import summary: per type, then each bad line with
// its file and line number.
func printReport(w io.Writer, rep importer.Report) {
	var total int64
	for _, t := range slices.Sorted(maps.Keys(rep.Resources)) {
		fmt.Fprintf(w, "  %-28s %9d\n", t, rep.Resources[t])
		total += rep.Resources[t]
	}
	fmt.Fprintf(w, "Imported %d resources from %d files", total, rep.Files)
	if rep.Deleted > 0 {
		fmt.Fprintf(w, ", %d deletions", rep.Deleted)
	}
	if rep.Unresolved > 0 {
		fmt.Fprintf(w, ", %d urn:uuid references left unresolved", rep.Unresolved)
	}
	fmt.Fprintln(w, ".")
	for _, e := range rep.Errors {
		fmt.Fprintf(w, "  %s:%d: %s\n", e.File, e.Line, e.Message)
	}
}

func generateCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("generate", stderr)
	patients := fs.Int("patients", 100, "number of patients (about 100 resources each)")
	seed := fs.Int64("seed", 1, "random seed: the same seed writes the same bytes")
	out := fs.String("out", "", "output directory (one NDJSON file per type)")
	base := fs.String("base", "2026-01-01T00:00:00Z", "the instant the data is as of (meta.lastUpdated lies in the two years before)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || *patients < 1 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "Usage: tranche generate --patients N [--seed S] --out DIR")
		return errUsage
	}
	b, err := time.Parse(time.RFC3339, *base)
	if err != nil {
		fmt.Fprintf(stderr, "tranche generate: --base %q is not an RFC 3339 instant\n", *base)
		return errUsage
	}
	bar := newBar(stderr, "generating")
	start := time.Now()
	st, err := generate.Dir(ctx, generate.Options{Patients: *patients, Seed: *seed, Base: b}, *out, func(n int64) {
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
	fmt.Fprintf(stdout, "Wrote %d resources (%.1f MB) to %s in %s (%.0f resources/s).\n",
		total, float64(st.Bytes)/1e6, *out, el.Round(time.Millisecond), float64(total)/el.Seconds())
	return nil
}

// newBar returns a progress bar on a terminal, nil elsewhere (logs and CI
// get the summary only).
func newBar(w io.Writer, what string) *progressbar.ProgressBar {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
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
