package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/tranchehq/tranche/internal/admin"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/fhir"
	"github.com/tranchehq/tranche/internal/fhir/defs"
)

// maxGroupRows is how many Groups the table lists; --json lists them all.
const maxGroupRows = 50

// statsCmd prints what the data dir holds: through the running server, or
// from the store opened read-only.
func statsCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := config.Default()
	fs := newFlags("stats", stderr)
	fs.StringVar(&cfg.DataDir, "data", cfg.DataDir, "data directory")
	asJSON := fs.Bool("json", false, "print JSON (counts, sizes in bytes, times in RFC 3339)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: tranche stats [--data DIR] [--json]\n\n"+
			"Resources and deletions per type, Groups and their members, the store's size,\n"+
			"the last import and the export jobs by state. Works with the server running\n"+
			"(through its admin socket) or stopped (reading the store).")
		fs.PrintDefaults()
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	var st *admin.Stats
	err := withOperations(ctx, cfg, true, func(ops admin.Operations, _ *admin.Info) (err error) {
		st, err = ops.Stats(ctx)
		return err
	})
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	printStats(stdout, cfg.DataDir, st)
	return nil
}

func printStats(w io.Writer, dataDir string, st *admin.Stats) {
	dir, _ := filepath.Abs(dataDir)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "Data directory\t%s\n", dir)
	if st.Server != nil {
		fmt.Fprintf(tw, "Server\trunning at %s (pid %d, tranche %s)\n", st.Server.BaseURL, st.Server.PID, st.Server.Version)
	} else {
		fmt.Fprintf(tw, "Server\tnot running\n")
	}
	fmt.Fprintf(tw, "Store\t%s on disk; export files %s\n", sizeOf(st.Bytes), sizeOf(st.FileBytes))
	release := "none yet (the first import records it)"
	if m := fhir.ModelFor(defs.Version(st.FHIRVersion)); m != nil {
		release = m.Name + " (" + m.FHIRVersion + ")"
	}
	fmt.Fprintf(tw, "FHIR release\t%s\n", release)
	last := "never"
	if !st.LastUpdated.IsZero() {
		last = st.LastUpdated.Format(time.RFC3339Nano) + " (the latest lastUpdated stored)"
	}
	fmt.Fprintf(tw, "Last import\t%s\n", last)
	tw.Flush()

	fmt.Fprintln(w)
	var live, deleted int64
	types := slices.Sorted(maps.Keys(st.Resources))
	for t := range st.Tombstones {
		if _, ok := st.Resources[t]; !ok {
			types = append(types, t)
		}
	}
	slices.Sort(types)
	width := len("TYPE")
	for _, t := range types {
		width = max(width, len(t))
	}
	fmt.Fprintf(w, "%-*s  %10s  %8s\n", width, "TYPE", "RESOURCES", "DELETED")
	for _, t := range types {
		fmt.Fprintf(w, "%-*s  %10d  %8d\n", width, t, st.Resources[t], st.Tombstones[t])
		live += st.Resources[t]
		deleted += st.Tombstones[t]
	}
	fmt.Fprintf(w, "%-*s  %10d  %8d\n", width, "total", live, deleted)

	fmt.Fprintln(w)
	if len(st.Groups) == 0 {
		fmt.Fprintln(w, "No Groups.")
	} else {
		shown := st.Groups[:min(len(st.Groups), maxGroupRows)]
		width = len("GROUP")
		for _, g := range shown {
			width = max(width, len(g.ID))
		}
		fmt.Fprintf(w, "%-*s  %8s\n", width, "GROUP", "MEMBERS")
		for _, g := range shown {
			fmt.Fprintf(w, "%-*s  %8d\n", width, g.ID, g.Members)
		}
		if n := len(st.Groups) - len(shown); n > 0 {
			fmt.Fprintf(w, "... and %d more (--json lists them all)\n", n)
		}
	}

	fmt.Fprintln(w)
	fmt.Fprint(w, "Jobs:")
	for i, s := range jobStates(st.Jobs) {
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(w, "%s %s %d", sep, s, st.Jobs[s])
	}
	fmt.Fprintln(w)
}

// jobStates are the statuses to show: every known one, then any other the
// store holds.
func jobStates(jobs map[bulk.Status]int) []bulk.Status {
	out := []bulk.Status{bulk.StatusAccepted, bulk.StatusInProgress, bulk.StatusCompleted, bulk.StatusFailed, bulk.StatusCancelled}
	for _, s := range slices.Sorted(maps.Keys(jobs)) {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// sizeOf shows a byte count in decimal units.
func sizeOf(n int64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.1f GB", float64(n)/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	}
	return fmt.Sprintf("%d B", n)
}
