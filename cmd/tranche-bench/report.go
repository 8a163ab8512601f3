package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// report is a whole run: what bench.json holds, what is printed and what
// --markdown writes.
type report struct {
	Command    string        `json:"command"`
	Date       time.Time     `json:"date"`
	Seconds    float64       `json:"seconds"`
	Machine    machineInfo   `json:"machine"`
	Pollers    int           `json:"pollers"`
	LatencyFor string        `json:"latencyPhase"`
	Results    []benchResult `json:"results"`
	Summary    []check       `json:"summary"`
}

// check is one row of the summary: a target of issue 20 and what this run
// measured. Met is yes or no, or "—" where there is no target.
type check struct {
	What     string `json:"what"`
	Dataset  string `json:"dataset"`
	Measured string `json:"measured"`
	Target   string `json:"target"`
	Met      string `json:"met"`
}

// Targets (issue 20).
const (
	targetImportPerSec   = 100_000
	targetImportPctFloor = 25
	targetImportRSSMB    = 300
	// targetRSSFlat is how this bench reads "flat from 100k to 3M": the
	// largest generated size's import peak RSS over the smallest's (both
	// 100k or more) at most this.
	targetRSSFlat       = 1.10
	flatFrom            = 100_000
	targetP99MS         = 20
	targetManifestSmall = 0.1 // s, synthea-100
	targetManifest1M    = 2.5 // s, generated-1000000
)

func yesNo(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

const none = "—"

// checks evaluates the targets against the results.
func (rep *report) checks() []check {
	var cs []check
	add := func(what, dataset, measured, target, met string) {
		cs = append(cs, check{what, dataset, measured, target, met})
	}
	for _, r := range rep.Results {
		add("import rate", r.Dataset, thousands(r.ImportPerSec)+" res/s", "≥ "+thousands(targetImportPerSec)+" res/s", yesNo(r.ImportPerSec >= targetImportPerSec))
	}
	for _, r := range rep.Results {
		add("import / its floor", r.Dataset, fmt.Sprintf("%.0f %% (floor %s res/s)", r.ImportPctOfFloor, thousands(r.Floor.ResourcesPerSec())),
			fmt.Sprintf("≥ %d %%", targetImportPctFloor), yesNo(r.ImportPctOfFloor >= targetImportPctFloor))
	}
	for _, r := range rep.Results {
		add("import peak RSS", r.Dataset, fmt.Sprintf("%.0f MB", r.ImportPeakRSSMB), fmt.Sprintf("≤ %d MB", targetImportRSSMB), yesNo(r.ImportPeakRSSMB <= targetImportRSSMB))
	}
	add(rep.flatness())
	for _, r := range rep.Results {
		add(fmt.Sprintf("status p99, %d pollers, export running", r.Pollers), r.Dataset, fmt.Sprintf("%.1f ms", r.Loaded.StatusP99MS),
			fmt.Sprintf("< %d ms", targetP99MS), yesNo(r.Loaded.StatusP99MS < targetP99MS))
	}
	for _, r := range rep.Results {
		add("kick-off p99, export running", r.Dataset, fmt.Sprintf("%.1f ms", r.Loaded.KickP99MS),
			fmt.Sprintf("< %d ms", targetP99MS), yesNo(r.Loaded.KickP99MS < targetP99MS))
	}
	for _, r := range rep.Results {
		s := r.system()
		if s == nil {
			continue
		}
		target, met := none, none
		switch {
		case r.Dataset == "synthea-100":
			target, met = fmt.Sprintf("≤ %.1f s", targetManifestSmall), yesNo(s.ManifestSeconds <= targetManifestSmall)
		case r.Generated == 1_000_000:
			target, met = fmt.Sprintf("≤ %.1f s", targetManifest1M), yesNo(s.ManifestSeconds <= targetManifest1M)
		}
		add("system export, kick-off → manifest", r.Dataset, fmt.Sprintf("%.2f s", s.ManifestSeconds), target, met)
	}
	for _, r := range rep.Results {
		if s := r.system(); s != nil && s.CopyMBPerSec > 0 {
			add("system export MB/s to manifest vs copy floor", r.Dataset,
				fmt.Sprintf("%s vs %s MB/s (%.0f %%)", thousands(s.MBPerSecManifest), thousands(s.CopyMBPerSec), 100*s.MBPerSecManifest/s.CopyMBPerSec), none, none)
		}
	}
	for _, r := range rep.Results {
		if len(r.Downloads) == 0 {
			continue
		}
		off, on := downloadRates(r.Downloads, false), downloadRates(r.Downloads, true)
		add("download MB/s of NDJSON: gzip vs plain (identity)", r.Dataset,
			fmt.Sprintf("%s vs %s (%s); with --gzip-files %s vs %s (%s)", thousands(off[0]), thousands(off[1]), times(off[0], off[1]),
				thousands(on[0]), thousands(on[1]), times(on[0], on[1])), none, none)
	}
	return cs
}

// flatness is the summary's row for the import's peak RSS against size.
func (rep *report) flatness() (what, dataset, measured, target, met string) {
	what, target = "import peak RSS, largest / smallest size", fmt.Sprintf("≤ %.2fx from %s up", targetRSSFlat, shortSize(flatFrom))
	var gen, from []benchResult
	for _, r := range rep.Results {
		if r.Generated > 0 {
			gen = append(gen, r)
			if r.Generated >= flatFrom {
				from = append(from, r)
			}
		}
	}
	sizes := gen
	if len(from) >= 2 {
		sizes = from
	}
	if len(sizes) < 2 {
		return what, none, "needs two generated sizes", target, none
	}
	slices.SortFunc(sizes, func(a, b benchResult) int { return int(a.Generated - b.Generated) })
	lo, hi := sizes[0], sizes[len(sizes)-1]
	ratio := hi.ImportPeakRSSMB / lo.ImportPeakRSSMB
	met = none // sizes below flatFrom: not the target's range
	if len(from) >= 2 {
		met = yesNo(ratio <= targetRSSFlat)
	}
	return what, shortSize(hi.Generated) + " / " + shortSize(lo.Generated),
		fmt.Sprintf("%.2fx (%.0f / %.0f MB)", ratio, hi.ImportPeakRSSMB, lo.ImportPeakRSSMB), target, met
}

// downloadRates are the medians of the gzip and the identity downloads'
// MB/s of NDJSON on the servers of one --gzip-files mode.
func downloadRates(runs []downloadRun, gzipFiles bool) [2]float64 {
	var gz, id []float64
	for _, d := range runs {
		if d.GzipFiles == gzipFiles {
			mb := float64(d.NDJSONBytes) / 1e6
			gz, id = append(gz, mb/d.Gzip.Seconds), append(id, mb/d.Identity.Seconds)
		}
	}
	return [2]float64{median(gz), median(id)}
}

// tables are the run's tables, the summary last.
func (rep *report) tables() []*table {
	imp := &table{title: "import, and its floor (the same files read, decompressed and scanned with gjson in one goroutine, writing nothing)",
		head: []string{"dataset", "stored", "import s", "import res/s", "import peak RSS MB", "floor s", "floor res/s", "floor MB/s", "import % of floor"}, left: 1}
	exp := &table{title: "exports (kick-off to manifest, then every file downloaded over 4 connections; copy floor: the system export's files copied and synced)",
		head: []string{"dataset", "level", "resources", "manifest s", "res/s", "MB/s", "copy floor MB/s", "copy s", "sync s", "last byte s", "MB/s", "export RSS MB", "server RSS MB"}, left: 2}
	lat := &table{title: fmt.Sprintf("latency, ms (%d pollers, each every %s, and a small kick-off every %s, for %s; loaded: a system export running the whole time, its files not downloaded, the pollers polling it; idle: polling a finished job)",
		rep.Pollers, pollEvery, kickoffEvery, rep.LatencyFor),
		head: []string{"dataset", "loaded: status p50", "p99", "polls", "kick-off p50", "p99", "kick-offs", "system exports done / started",
			"idle: status p50", "p99", "polls", "kick-off p50", "p99", "kick-offs"}, left: 1}
	srv := &table{title: "server (tokens: fresh ES384 assertions over HTTP; group: stored items a 10-patient Group export reads; RSS after the exports)",
		head: []string{"dataset", "tokens/s", "group items read", "exported", "% of store", "RSS anon MB", "RSS files MB", "of which store MB"}, left: 1}
	for _, r := range rep.Results {
		imp.add(r.Dataset, thousands(float64(r.Stored)), fmt.Sprintf("%.2f", r.ImportSeconds), thousands(r.ImportPerSec), fmt.Sprintf("%.0f", r.ImportPeakRSSMB),
			fmt.Sprintf("%.2f", r.Floor.Seconds), thousands(r.Floor.ResourcesPerSec()), fmt.Sprintf("%.0f", r.Floor.MBPerSec()), fmt.Sprintf("%.0f", r.ImportPctOfFloor))
		for i, e := range r.Exports {
			floor := []string{"", "", ""}
			if e.CopySeconds > 0 {
				floor = []string{thousands(e.CopyMBPerSec), fmt.Sprintf("%.2f", e.CopySeconds), fmt.Sprintf("%.2f", e.SyncSeconds)}
			}
			rss := []string{fmt.Sprintf("%.0f", r.ExportPeakRSSMB), fmt.Sprintf("%.0f", r.ServerPeakRSSMB)}
			name := r.Dataset
			if i > 0 {
				name, rss = "", []string{"", ""}
			}
			row := []string{name, e.Level, thousands(float64(e.Resources)), fmt.Sprintf("%.2f", e.ManifestSeconds), thousands(e.ResourcesPerSec), fmt.Sprintf("%.0f", e.MBPerSecManifest)}
			row = append(append(row, floor...), fmt.Sprintf("%.2f", e.LastByteSeconds), fmt.Sprintf("%.0f", e.MBPerSecLastByte))
			exp.add(append(row, rss...)...)
		}
		l, i := r.Loaded, r.Idle
		lat.add(r.Dataset, ms(l.StatusP50MS), ms(l.StatusP99MS), thousands(float64(l.Polls)), ms(l.KickP50MS), ms(l.KickP99MS), thousands(float64(l.Kickoffs)),
			fmt.Sprintf("%d / %d", l.ExportsDone, l.ExportsStarted),
			ms(i.StatusP50MS), ms(i.StatusP99MS), thousands(float64(i.Polls)), ms(i.KickP50MS), ms(i.KickP99MS), thousands(float64(i.Kickoffs)))
		srv.add(r.Dataset, thousands(r.TokensPerSec), thousands(float64(r.GroupItemsRead)), thousands(float64(r.GroupExported)), fmt.Sprintf("%.3f", r.GroupReadPct),
			fmt.Sprintf("%.0f", r.RSSAnonMB), fmt.Sprintf("%.0f", r.RSSFileMB), fmt.Sprintf("%.0f", r.RSSStoreMB))
	}
	ts := []*table{imp, exp, lat, srv}
	if d := downloadsTable(rep.Results); d != nil {
		ts = append(ts, d)
	}
	return append(ts, rep.summaryTable())
}

func (rep *report) summaryTable() *table {
	t := &table{title: "summary (issue 20 targets)", head: []string{"what", "dataset", "measured", "target", "met"}, left: 5}
	for _, c := range rep.Summary {
		t.add(c.What, c.Dataset, c.Measured, c.Target, c.Met)
	}
	return t
}

// downloadsTable is the --gzip-files comparison: every run, then the
// ratios of the medians (on / off) as notes.
func downloadsTable(results []benchResult) *table {
	t := &table{title: "system export and its downloads by --gzip-files (4 connections; MB/s of NDJSON delivered; CPU: the server's)",
		head: []string{"dataset", "gzip files", "manifest s", "export CPU s", "on disk MB", "NDJSON MB", "client s", "client MB/s", "CPU s",
			"gzip s", "gzip MB/s", "wire MB", "CPU s", "identity s", "identity MB/s", "CPU s"}, left: 2}
	for _, r := range results {
		for _, d := range r.Downloads {
			mb := float64(d.NDJSONBytes) / 1e6
			row := []string{r.Dataset, strconv.FormatBool(d.GzipFiles), fmt.Sprintf("%.2f", d.ManifestSeconds), fmt.Sprintf("%.2f", d.ExportCPUSeconds),
				fmt.Sprintf("%.0f", float64(d.DiskBytes)/1e6), fmt.Sprintf("%.0f", mb)}
			row = append(row, rate(d.Client, mb)...)
			row = append(row, fmt.Sprintf("%.2f", d.Client.ServerCPUSeconds))
			row = append(row, rate(d.Gzip, mb)...)
			row = append(row, fmt.Sprintf("%.0f", float64(d.Gzip.WireBytes)/1e6), fmt.Sprintf("%.2f", d.Gzip.ServerCPUSeconds))
			row = append(row, rate(d.Identity, mb)...)
			t.add(append(row, fmt.Sprintf("%.2f", d.Identity.ServerCPUSeconds))...)
		}
		if len(r.Downloads) > 0 {
			t.notes = append(t.notes, fmt.Sprintf("%s, on / off (medians): %s", r.Dataset, downloadRatios(r.Downloads)))
		}
	}
	if len(t.rows) == 0 {
		return nil
	}
	return t
}

// rate is a download's seconds and MB/s of mb, the NDJSON it delivered.
func rate(f downloadFigure, mb float64) []string {
	return []string{fmt.Sprintf("%.2f", f.Seconds), fmt.Sprintf("%.0f", mb/f.Seconds)}
}

func (rep *report) printText(w io.Writer) {
	for _, t := range rep.tables() {
		t.text(w)
	}
	fmt.Fprintf(w, "machine: %s\n", rep.Machine)
}

// markdown is the latest run as docs/benchmarks.md keeps it.
func (rep *report) markdown() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "`%s`, %s, %s in all.\n\n", rep.Command, rep.Date.UTC().Format("2006-01-02 15:04 MST"), time.Duration(rep.Seconds*float64(time.Second)).Round(time.Second))
	fmt.Fprintf(&b, "Machine: %s.\n\n", rep.Machine)
	ts := rep.tables()
	// The summary first, then the details.
	ts = append([]*table{ts[len(ts)-1]}, ts[:len(ts)-1]...)
	for _, t := range ts {
		t.markdown(&b)
	}
	return b.String()
}

// table is a printed table: aligned text for the terminal, a pipe table
// for docs/benchmarks.md.
type table struct {
	title string
	head  []string
	left  int // leading columns of text; the others are figures, right-aligned
	rows  [][]string
	notes []string // lines under the table
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

func (t *table) text(w io.Writer) {
	if t.title != "" {
		fmt.Fprintln(w, t.title+":")
	}
	var flags uint
	if t.left < len(t.head) {
		flags = tabwriter.AlignRight
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', flags)
	for _, row := range append([][]string{t.head}, t.rows...) {
		fmt.Fprintln(tw, strings.Join(row, "\t")+"\t")
	}
	_ = tw.Flush()
	for _, n := range t.notes {
		fmt.Fprintln(w, n)
	}
	fmt.Fprintln(w)
}

func (t *table) markdown(w io.Writer) {
	if t.title != "" {
		fmt.Fprintf(w, "%s%s:\n\n", strings.ToUpper(t.title[:1]), t.title[1:])
	}
	cell := func(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
	line := func(row []string) {
		cells := make([]string, len(row))
		for i, c := range row {
			cells[i] = cell(c)
		}
		fmt.Fprintf(w, "| %s |\n", strings.Join(cells, " | "))
	}
	line(t.head)
	align := make([]string, len(t.head))
	for i := range align {
		align[i] = "---:"
		if i < t.left {
			align[i] = "---"
		}
	}
	fmt.Fprintf(w, "|%s|\n", strings.Join(align, "|"))
	for _, row := range t.rows {
		line(row)
	}
	if len(t.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range t.notes {
			fmt.Fprintf(w, "%s\n", n)
		}
	}
	fmt.Fprintln(w)
}

// thousands formats x rounded, with thousands separators: 1,234,567.
func thousands(x float64) string {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return none
	}
	s := strconv.FormatInt(int64(math.Round(x)), 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ms(x float64) string { return fmt.Sprintf("%.2f", x) }

// shortSize is 100k, 1M, 3M, 2.5M or 12345.
func shortSize(n int64) string {
	switch {
	case n >= 1_000_000 && n%100_000 == 0:
		return strconv.FormatFloat(float64(n)/1e6, 'f', -1, 64) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.FormatInt(n/1000, 10) + "k"
	}
	return strconv.FormatInt(n, 10)
}

// machineInfo is what the figures were measured on.
type machineInfo struct {
	CPU       string  `json:"cpu"`
	Cores     int     `json:"cores"`
	RAMGiB    float64 `json:"ramGiB"`
	Go        string  `json:"go"`
	Kernel    string  `json:"kernel"`
	Git       string  `json:"git"`
	Tranche   string  `json:"tranche"` // `tranche version` of the binary measured
	LoadStart string  `json:"loadAverageStart"`
	LoadEnd   string  `json:"loadAverageEnd"`
}

func (m machineInfo) String() string {
	return fmt.Sprintf("%s, %d cores, %.1f GiB RAM, %s, Linux %s, git %s, %s; load average (1, 5, 15 min) %s at the start, %s at the end",
		m.CPU, m.Cores, m.RAMGiB, m.Go, m.Kernel, m.Git, m.Tranche, m.LoadStart, m.LoadEnd)
}

func readMachine(ctx context.Context, tranche *binary) machineInfo {
	m := machineInfo{CPU: "unknown CPU", Cores: runtime.NumCPU(), Go: runtime.Version(), Kernel: "unknown", Git: "unknown", LoadStart: loadAverage()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		m.RAMGiB = kBField(string(b), "MemTotal:") / (1 << 20)
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil { // what uname -r prints
		m.Kernel = strings.TrimSpace(string(b))
	}
	m.Git = gitRevision(ctx, filepath.Dir(tranche.path))
	if out, err := tranche.command(ctx, "", "version").Output(); err == nil {
		m.Tranche = strings.TrimSpace(string(out))
	}
	return m
}

// gitRevision is HEAD's short hash, "+ local changes" when tracked files
// differ from it. GIT_OPTIONAL_LOCKS=0: reading the state must not
// refresh the index of a tree others are working in.
func gitRevision(ctx context.Context, dir string) string {
	git := func(args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_OPTIONAL_LOCKS=0")
		out, err := cmd.Output()
		return strings.TrimSpace(string(out)), err
	}
	rev, err := git("rev-parse", "--short", "HEAD")
	if err != nil {
		return "unknown"
	}
	if changed, err := git("status", "--porcelain", "--untracked-files=no"); err == nil && changed != "" {
		rev += " + local changes"
	}
	return rev
}

// loadAverage is /proc/loadavg's three averages.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], ", ")
}

// The markers around the latest run in docs/benchmarks.md.
const (
	beginMarker = "<!-- bench:begin -->"
	endMarker   = "<!-- bench:end -->"
)

// checkMarkers fails unless path holds both markers, in order.
func checkMarkers(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	_, err = replaceBetween(b, "")
	if err != nil {
		return fmt.Errorf("--markdown %s: %w", path, err)
	}
	return nil
}

// replaceBetween replaces what lies between the markers in doc.
func replaceBetween(doc []byte, section string) ([]byte, error) {
	i := bytes.Index(doc, []byte(beginMarker))
	j := bytes.Index(doc, []byte(endMarker))
	if i < 0 || j < i || bytes.Count(doc, []byte(beginMarker)) != 1 || bytes.Count(doc, []byte(endMarker)) != 1 {
		return nil, fmt.Errorf("want one %s line and one %s line after it", beginMarker, endMarker)
	}
	var out bytes.Buffer
	out.Write(doc[:i+len(beginMarker)])
	out.WriteString("\n<!-- Written by tranche-bench --markdown: edit outside the markers. -->\n\n")
	out.WriteString(section)
	out.Write(doc[j:])
	return out.Bytes(), nil
}

// writeMarkdown puts section between the markers of the file at path,
// keeping the rest of it, by a rename.
func writeMarkdown(path, section string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := replaceBetween(doc, section)
	if err != nil {
		return fmt.Errorf("--markdown %s: %w", path, err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
