package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/export"
	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/local/bolt"
	"github.com/tranchehq/tranche/internal/mem"
	"github.com/tranchehq/tranche/internal/workflow"
)

// exportRun is one export measured over HTTP.
type exportRun struct {
	Level             string  `json:"level"`
	Resources         int64   `json:"resources"`
	Bytes             int64   `json:"bytes"`
	ManifestSeconds   float64 `json:"manifestSeconds"`  // kick-off to manifest
	LastByteSeconds   float64 `json:"lastByteSeconds"`  // kick-off to last byte downloaded
	ResourcesPerSec   float64 `json:"resourcesPerSec"`  // to manifest
	MBPerSecLastByte  float64 `json:"mbPerSecLastByte"` // to last byte
	ResourcesLastByte float64 `json:"resourcesPerSecLastByte"`
	// MBPerSecManifest is the export's NDJSON over the time to manifest.
	// For system exports, CopyMBPerSec and CopySeconds are a plain copy of
	// the same files, measured right after it, and SyncSeconds the syncs of
	// the copies (measureCopyFloor): the export's floor.
	MBPerSecManifest float64 `json:"mbPerSecManifest"`
	CopyMBPerSec     float64 `json:"copyFloorMBPerSec,omitempty"`
	CopySeconds      float64 `json:"copyFloorSeconds,omitempty"`
	SyncSeconds      float64 `json:"copyFloorSyncSeconds,omitempty"`

	keys []string // the files' object keys
}

// benchResult is one dataset. Import and serve run as child processes, so
// each peak RSS comes from the OS (rusage), not from the Go runtime.
type benchResult struct {
	Dataset         string      `json:"dataset"`
	Stored          int64       `json:"stored"`
	ImportSeconds   float64     `json:"importSeconds"`
	ImportPerSec    float64     `json:"importPerSec"`
	ImportPeakRSSMB float64     `json:"importPeakRssMB"`
	Exports         []exportRun `json:"exports"`
	// ExportPeakRSSMB is the server's peak RSS after the exports and
	// downloads (VmHWM); ServerPeakRSSMB includes the latency phase's 200
	// connections too.
	ExportPeakRSSMB float64 `json:"exportPeakRssMB"`
	// RSSAnonMB and RSSFileMB split the resident set at that moment:
	// anonymous memory (heap, stacks) and mapped files (binary, store);
	// RSSStoreMB is the store's mapping among the latter.
	RSSAnonMB       float64 `json:"rssAnonMB"`
	RSSFileMB       float64 `json:"rssFileMB"`
	RSSStoreMB      float64 `json:"rssStoreMB"`
	ServerPeakRSSMB float64 `json:"serverPeakRssMB"`
	// Latency under Pollers concurrent status pollers, milliseconds.
	Pollers        int     `json:"pollers"`
	StatusP50MS    float64 `json:"statusP50ms"`
	StatusP99MS    float64 `json:"statusP99ms"`
	KickoffP50MS   float64 `json:"kickoffP50ms"`
	KickoffP99MS   float64 `json:"kickoffP99ms"`
	TokensPerSec   float64 `json:"tokensPerSec"` // ES384 assertions verified per second, end to end
	GroupItemsRead int64   `json:"groupItemsRead"`
	GroupExported  int64   `json:"groupExported"`
	GroupReadPct   float64 `json:"groupReadPercentOfStore"`
	// Downloads compares the system export and its downloads without and
	// with --gzip-files (bench_downloads.go).
	Downloads []downloadRun `json:"downloads,omitempty"`
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	sizes := fs.String("resources", "10000,100000", "comma-separated generated dataset sizes (resources)")
	short := fs.Bool("short", false, "one small dataset and short latency runs (CI)")
	dataset := fs.String("dataset", "", "also measure this directory of NDJSON (e.g. ../shared/data/synthea-100)")
	cache := fs.String("cache", ".cache/bench", "where generated datasets are kept between runs")
	pollers := fs.Int("pollers", 200, "concurrent status pollers for the latency measurement")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	downloads := fs.Bool("downloads", true, "also compare the system export and its downloads without and with serve --gzip-files (two more servers per round)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *short {
		*sizes = "10000"
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	type input struct{ name, dir string }
	var inputs []input
	if *dataset != "" {
		inputs = append(inputs, input{filepath.Base(*dataset), *dataset})
	}
	for _, s := range strings.Split(*sizes, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1000 {
			fmt.Fprintf(stderr, "tranche bench: --resources %q: want sizes of at least 1000\n", s)
			return errUsage
		}
		dir, err := benchData(ctx, *cache, n, stderr)
		if err != nil {
			return err
		}
		inputs = append(inputs, input{fmt.Sprintf("generated-%d", n), dir})
	}
	var results []benchResult
	for _, in := range inputs {
		fmt.Fprintf(stderr, "bench: %s\n", in.name)
		r, err := benchOne(ctx, self, in.name, in.dir, *pollers, *short, *downloads)
		if err != nil {
			return fmt.Errorf("%s: %w", in.name, err)
		}
		results = append(results, r)
	}
	printBench(stdout, results, *pollers)
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(map[string]any{"machine": machine(), "results": results}, "", "  ")
		return os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
	}
	return nil
}

func printBench(w io.Writer, results []benchResult, pollers int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "dataset\tstored\timport s\timport res/s\timport RSS MB\tlevel\tresources\tmanifest s\tres/s\tMB/s\tcopy floor MB/s\tcopy s\tsync s\tlast byte s\tMB/s\texport RSS MB\tserver RSS MB\t")
	for _, r := range results {
		for i, e := range r.Exports {
			head := fmt.Sprintf("%s\t%d\t%.2f\t%.0f\t%.0f", r.Dataset, r.Stored, r.ImportSeconds, r.ImportPerSec, r.ImportPeakRSSMB)
			rss := fmt.Sprintf("%.0f\t%.0f", r.ExportPeakRSSMB, r.ServerPeakRSSMB)
			if i > 0 {
				head, rss = "\t\t\t\t", "\t"
			}
			floor := "\t\t"
			if e.CopySeconds > 0 {
				floor = fmt.Sprintf("%.0f\t%.2f\t%.2f", e.CopyMBPerSec, e.CopySeconds, e.SyncSeconds)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.2f\t%.0f\t%.0f\t%s\t%.2f\t%.0f\t%s\t\n", head, e.Level, e.Resources,
				e.ManifestSeconds, e.ResourcesPerSec, e.MBPerSecManifest, floor, e.LastByteSeconds, e.MBPerSecLastByte, rss)
		}
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "dataset\tstatus p50 ms\tstatus p99 ms\tkick-off p50 ms\tkick-off p99 ms\t(%d pollers, each every %s)\ttokens/s\tgroup-10 items read\texported\t%% of store\t\n", pollers, pollEvery)
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%.2f\t%.2f\t%.2f\t%.2f\t\t%.0f\t%d\t%d\t%.3f\t\n", r.Dataset, r.StatusP50MS, r.StatusP99MS,
			r.KickoffP50MS, r.KickoffP99MS, r.TokensPerSec, r.GroupItemsRead, r.GroupExported, r.GroupReadPct)
	}
	_ = tw.Flush()
	fmt.Fprintln(w)
	for _, r := range results {
		fmt.Fprintf(w, "%s: after the exports, RSS %.0f MB anonymous + %.0f MB mapped files (%.0f MB of them the store)\n",
			r.Dataset, r.RSSAnonMB, r.RSSFileMB, r.RSSStoreMB)
	}
	fmt.Fprintln(w)
	printDownloads(w, results)
	fmt.Fprintf(w, "machine: %s\n", machine())
}

func machine() string {
	host, _ := os.Hostname()
	return fmt.Sprintf("%s, %d CPUs, %s", host, runtime.NumCPU(), runtime.Version())
}

// benchData returns a cached generated dataset of about n resources.
func benchData(ctx context.Context, cache string, n int64, stderr io.Writer) (string, error) {
	dir := filepath.Join(cache, fmt.Sprintf("gen-%d", n))
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, nil
	}
	patients := int(max(1, (n+generate.ResourcesPerPatient/2)/generate.ResourcesPerPatient))
	fmt.Fprintf(stderr, "bench: generating %d patients into %s\n", patients, dir)
	_ = os.RemoveAll(dir)
	opts := generate.Options{Patients: patients, Seed: 1, Base: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	if _, err := generate.Dir(ctx, opts, dir, nil); err != nil {
		return "", err
	}
	return dir, os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644)
}

func benchOne(ctx context.Context, self, name, src string, pollers int, short, downloads bool) (benchResult, error) {
	r := benchResult{Dataset: name, Pollers: pollers}
	data, err := os.MkdirTemp("", "tranche-bench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(data)

	// Import in a child process.
	start := time.Now()
	imp := exec.CommandContext(ctx, self, "import", "--data", data, src)
	out, err := imp.CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("import: %v\n%s", err, out)
	}
	r.ImportSeconds = time.Since(start).Seconds()
	r.ImportPeakRSSMB = maxRSSMB(imp.ProcessState)

	// Serve in a child process (authorization on, quotas off); measure over
	// HTTP from here with the demo client serve writes.
	bs, err := startBenchServer(ctx, self, data, pollers)
	if err != nil {
		return r, err
	}
	defer bs.stop()
	srv, base, cf, key, hc, b := bs.cmd, bs.base, bs.cf, bs.key, bs.hc, bs.http

	var statusURL string
	for _, level := range []struct{ name, path string }{
		{"system", "/$export"}, {"patient", "/Patient/$export"}, {"group-10", "/Group/group-10/$export"},
	} {
		if name == "synthea-100" && level.name == "group-10" {
			level.path = "/Group/MinutemanHealth/$export"
		}
		e, status, err := b.export(ctx, base+level.path)
		if err != nil {
			return r, fmt.Errorf("%s export: %w", level.name, err)
		}
		e.Level = level.name
		if level.name == "system" {
			r.Stored, statusURL = e.Resources, status
			if err := e.measureCopyFloor(filepath.Join(data, "files")); err != nil {
				return r, fmt.Errorf("copy floor: %w", err)
			}
		}
		r.Exports = append(r.Exports, e)
	}
	r.ImportPerSec = float64(r.Stored) / r.ImportSeconds
	r.ExportPeakRSSMB = procStatusMB(srv.Process.Pid, "VmHWM:")
	r.RSSAnonMB = procStatusMB(srv.Process.Pid, "RssAnon:")
	r.RSSFileMB = procStatusMB(srv.Process.Pid, "RssFile:")
	r.RSSStoreMB = mappedMB(srv.Process.Pid, filepath.Join(data, bolt.FileName))

	// Latency: pollers hammer a completed job's status while kick-offs run.
	dur := 5 * time.Second
	if short {
		dur = time.Second
	}
	st, ko, err := b.latency(ctx, statusURL, base+"/$export?_type=Group", pollers, dur)
	if err != nil {
		return r, err
	}
	r.StatusP50MS, r.StatusP99MS = pct(st, 50), pct(st, 99)
	r.KickoffP50MS, r.KickoffP99MS = pct(ko, 50), pct(ko, 99)

	// Token endpoint: fresh ES384 assertions, verified end to end.
	if r.TokensPerSec, err = tokenRate(ctx, cf, key, base, hc, dur); err != nil {
		return r, err
	}

	_ = srv.Process.Signal(syscall.SIGTERM)
	_ = srv.Wait()
	r.ServerPeakRSSMB = maxRSSMB(srv.ProcessState)

	if downloads {
		rounds := 2
		if short {
			rounds = 1
		}
		if r.Downloads, err = benchDownloads(ctx, self, data, rounds); err != nil {
			return r, err
		}
	}

	// Stored items read for a small Group export, from the store's counters
	// (in-process: the server is gone and the store is free).
	group := "group-10"
	if name == "synthea-100" {
		group = "MinutemanHealth"
	}
	r.GroupItemsRead, r.GroupExported, r.GroupReadPct, err = groupReads(ctx, data, group)
	return r, err
}

// benchServer is a `tranche serve` child process and an authorized HTTP
// client of it.
type benchServer struct {
	cmd  *exec.Cmd
	base string
	cf   *client.ClientFile
	key  *client.Key
	hc   *http.Client
	ts   *client.BackendServices
	http *benchHTTP
}

// startBenchServer serves data in a child process (authorization on,
// quotas off, the demo client registered) with extra serve flags, and
// returns once it listens, with a token of the demo client.
func startBenchServer(ctx context.Context, self, data string, conns int, extra ...string) (*benchServer, error) {
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--demo=false", "--demo-client",
		"--log-level", "warn", "--max-exports", "0", "--max-polls", "0"}, extra...)
	srv := exec.CommandContext(ctx, self, args...)
	stdoutPipe, err := srv.StdoutPipe()
	if err != nil {
		return nil, err
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return nil, err
	}
	bs := &benchServer{cmd: srv}
	if err := bs.connect(ctx, stdoutPipe, data, conns); err != nil {
		bs.stop()
		return nil, err
	}
	return bs, nil
}

func (bs *benchServer) connect(ctx context.Context, stdout io.Reader, data string, conns int) error {
	base, err := readBaseURL(stdout)
	if err != nil {
		return err
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	cf, err := client.LoadClientFile(filepath.Join(data, DemoClientFile))
	if err != nil {
		return err
	}
	key, err := cf.Key()
	if err != nil {
		return err
	}
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns + 8, MaxConnsPerHost: conns + 8}}
	ts := &client.BackendServices{ClientID: cf.ClientID, Key: key, TokenURL: cf.TokenURL, FHIRBase: base, Scope: cf.Scope, HTTP: hc}
	tok, err := ts.Token(ctx)
	if err != nil {
		return err
	}
	bs.base, bs.cf, bs.key, bs.hc, bs.ts, bs.http = base, cf, key, hc, ts, &benchHTTP{hc: hc, token: tok}
	return nil
}

// stop ends the server unless it has been stopped (and waited for).
func (bs *benchServer) stop() {
	if bs.cmd.ProcessState == nil {
		_ = bs.cmd.Process.Kill()
		_ = bs.cmd.Wait()
	}
}

type benchHTTP struct {
	hc    *http.Client
	token string
}

func (b *benchHTTP) do(ctx context.Context, method, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "respond-async")
	return b.hc.Do(req)
}

// export runs one export and downloads its files with 4 connections.
func (b *benchHTTP) export(ctx context.Context, url string) (exportRun, string, error) {
	var e exportRun
	start := time.Now()
	status, m, err := b.toManifest(ctx, url)
	if err != nil {
		return e, "", err
	}
	e.ManifestSeconds = time.Since(start).Seconds()
	for _, f := range m.Output {
		e.Resources += f.Count
		e.keys = append(e.keys, fileKey(f.URL))
	}
	if e.Bytes, err = b.fetchAll(ctx, m.urls(), ""); err != nil {
		return e, "", err
	}
	e.LastByteSeconds = time.Since(start).Seconds()
	e.ResourcesPerSec = float64(e.Resources) / e.ManifestSeconds
	e.MBPerSecManifest = float64(e.Bytes) / 1e6 / e.ManifestSeconds
	e.ResourcesLastByte = float64(e.Resources) / e.LastByteSeconds
	e.MBPerSecLastByte = float64(e.Bytes) / 1e6 / e.LastByteSeconds
	return e, status, nil
}

// benchManifest is what the bench reads of a manifest.
type benchManifest struct {
	Output []struct {
		URL   string `json:"url"`
		Count int64  `json:"count"`
	} `json:"output"`
	raw []byte
}

func (m *benchManifest) urls() []string {
	var urls []string
	for _, f := range m.Output {
		urls = append(urls, f.URL)
	}
	return urls
}

// fileKey is the object key of a file URL (…/files/KEY).
func fileKey(url string) string {
	_, key, _ := strings.Cut(url, "/files/")
	return key
}

// toManifest kicks off an export and polls it until the manifest.
func (b *benchHTTP) toManifest(ctx context.Context, url string) (string, *benchManifest, error) {
	res, err := b.do(ctx, "GET", url)
	if err != nil {
		return "", nil, err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		return "", nil, fmt.Errorf("kick-off: %s", res.Status)
	}
	status := res.Header.Get("Content-Location")
	for {
		res, err := b.do(ctx, "GET", status)
		if err != nil {
			return "", nil, err
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			m := &benchManifest{raw: body}
			return status, m, json.Unmarshal(body, m)
		}
		if res.StatusCode != http.StatusAccepted {
			return "", nil, fmt.Errorf("status: %s %s", res.Status, body)
		}
		if err := client.SleepContext(ctx, 10*time.Millisecond); err != nil { // poll interval
			return "", nil, err
		}
	}
}

// fetchAll downloads urls over 4 connections and returns the bytes read.
// An empty acceptEncoding leaves Go's transparent gzip on (bytes are the
// decoded ones); any other value is sent as it is and the body counted as
// received.
func (b *benchHTTP) fetchAll(ctx context.Context, urls []string, acceptEncoding string) (int64, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		total int64
		first error
		next  = make(chan string)
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				n, err := b.fetch(ctx, u, acceptEncoding)
				mu.Lock()
				total += n
				if err != nil && first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	for _, u := range urls {
		next <- u
	}
	close(next)
	wg.Wait()
	return total, first
}

func (b *benchHTTP) fetch(ctx context.Context, url, acceptEncoding string) (int64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+b.token)
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	res, err := b.hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return io.Copy(io.Discard, res.Body)
}

// measureCopyFloor copies the export's files as the store holds them
// (under root, the server's files directory) the plainest way, reading and
// writing through a 256 KiB buffer as cp does, and then syncs the copies:
// CopySeconds is the copy into the page cache (the CPU's part), SyncSeconds
// the disk's writing of it. An export writes the same bytes and syncs its
// files before they are listed; it reads its store through a mapping
// rather than read(2), and overlaps syncs with work, so the floor is a
// yardstick rather than a strict bound.
func (e *exportRun) measureCopyFloor(root string) error {
	dir, err := os.MkdirTemp("", "tranche-bench-copy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	buf := make([]byte, 256<<10)
	var (
		n      int64
		copies []*os.File
	)
	defer func() {
		for _, f := range copies {
			f.Close()
		}
	}()
	start := time.Now()
	for i, key := range e.keys {
		f, m, err := copyFile(filepath.Join(root, filepath.FromSlash(key)), filepath.Join(dir, strconv.Itoa(i)), buf)
		if err != nil {
			return err
		}
		copies, n = append(copies, f), n+m
	}
	e.CopySeconds = time.Since(start).Seconds()
	e.CopyMBPerSec = float64(n) / 1e6 / e.CopySeconds
	start = time.Now()
	for _, f := range copies {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	e.SyncSeconds = time.Since(start).Seconds()
	return nil
}

// copyFile copies src to a new file dst through buf, never the kernel's
// copy_file_range or sendfile (io.Copy would use them on two files), and
// returns dst open.
func copyFile(src, dst string, buf []byte) (*os.File, int64, error) {
	in, err := os.Open(src)
	if err != nil {
		return nil, 0, err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return nil, 0, err
	}
	n, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, buf)
	if err != nil {
		out.Close()
		return nil, 0, err
	}
	return out, n, nil
}

// pollEvery is each poller's interval: ten times more eager than a client
// honouring the server's Retry-After of 1 s, so 200 pollers send about
// 2,000 polls a second.
const pollEvery = 100 * time.Millisecond

// latency polls status from n goroutines for d while one more goroutine
// kicks off small exports, and returns both latency samples in ms.
func (b *benchHTTP) latency(ctx context.Context, statusURL, kickoffURL string, n int, d time.Duration) (status, kickoff []float64, err error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	deadline := time.Now().Add(d)
	record := func(dst *[]float64, t time.Duration, e error) {
		mu.Lock()
		defer mu.Unlock()
		if e != nil && first == nil {
			first = e
		}
		*dst = append(*dst, float64(t.Microseconds())/1000)
	}
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				t := time.Now()
				res, err := b.do(ctx, "GET", statusURL)
				if err == nil {
					_, _ = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if res.StatusCode != http.StatusOK {
						err = fmt.Errorf("status poll: %s", res.Status)
					}
				}
				record(&status, time.Since(t), err)
				_ = client.SleepContext(ctx, pollEvery-time.Since(t))
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for time.Now().Before(deadline) {
			t := time.Now()
			res, err := b.do(ctx, "GET", kickoffURL)
			if err == nil {
				res.Body.Close()
				if res.StatusCode != http.StatusAccepted {
					err = fmt.Errorf("kick-off: %s", res.Status)
				}
			}
			record(&kickoff, time.Since(t), err)
			_ = client.SleepContext(ctx, 50*time.Millisecond) // a kick-off every 50 ms, not a flood
		}
	}()
	wg.Wait()
	return status, kickoff, first
}

// tokenRate requests tokens with fresh assertions from 4 goroutines for d.
func tokenRate(ctx context.Context, cf *client.ClientFile, key *client.Key, base string, hc *http.Client, d time.Duration) (float64, error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		n     int
		first error
	)
	start := time.Now()
	deadline := start.Add(d)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ts := &client.BackendServices{ClientID: cf.ClientID, Key: key, TokenURL: cf.TokenURL, FHIRBase: base, Scope: cf.Scope, HTTP: hc}
			for time.Now().Before(deadline) {
				ts.Invalidate()
				_, err := ts.Token(ctx)
				mu.Lock()
				if err != nil && first == nil {
					first = err
				}
				n++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return float64(n) / time.Since(start).Seconds(), first
}

// groupReads exports a Group in-process and reports the stored items read.
func groupReads(ctx context.Context, data, group string) (read, exported int64, pct float64, err error) {
	cfg := config.Default()
	cfg.DataDir = data
	db, err := app.OpenStore(cfg)
	if err != nil {
		return 0, 0, 0, err
	}
	defer db.Close()
	counts, err := db.Resources().Count(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	var stored int64
	for _, c := range counts {
		stored += c
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := export.NewService(mem.NewJobStore(), db.Resources(), mem.NewObjectStore(), cfg.Export, logger)
	wf, err := workflow.NewLocal(workflow.Steps{Svc: svc}, logger)
	if err != nil {
		return 0, 0, 0, err
	}
	defer wf.Close()
	svc.Workflow = wf
	before := db.Stats().ItemsRead
	j, err := svc.Kickoff(ctx, "bench", bulk.ExportRequest{Level: bulk.LevelGroup, GroupID: group})
	if err != nil {
		return 0, 0, 0, err
	}
	for !j.Status.Terminal() {
		if err := client.SleepContext(ctx, 5*time.Millisecond); err != nil {
			return 0, 0, 0, err
		}
		if j, err = svc.Jobs.GetJob(ctx, j.ID); err != nil {
			return 0, 0, 0, err
		}
	}
	if j.Status != bulk.StatusCompleted {
		return 0, 0, 0, errors.New("group export failed: " + j.Failure)
	}
	read = db.Stats().ItemsRead - before
	progress, err := svc.Jobs.Progress(ctx, j.ID)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, p := range progress {
		for _, f := range p.Files {
			exported += f.Count
		}
	}
	return read, exported, 100 * float64(read) / float64(stored), nil
}

func pct(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s)-1) * p / 100)
	return s[i]
}

// readBaseURL reads the server's line "… serving FHIR Bulk Data at URL".
func readBaseURL(r io.Reader) (string, error) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if i := strings.Index(line, " at http"); i >= 0 {
			return strings.TrimSpace(line[i+4:]), nil
		}
		if err != nil {
			return "", fmt.Errorf("server did not report its address: %w", err)
		}
	}
}

// procStatusMB reads a kB field of a live process's /proc status (Linux:
// VmHWM is the peak RSS), in MB.
func procStatusMB(pid int, field string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb / 1024
		}
	}
	return 0
}

// mappedMB returns the resident part of a live process's mappings of path
// (Linux /proc/PID/smaps), in MB.
func mappedMB(pid int, path string) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0
	}
	var kb float64
	in := false
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 5 && strings.Contains(f[0], "-") && !strings.HasSuffix(f[0], ":"): // a mapping's header
			in = len(f) >= 6 && f[len(f)-1] == path
		case in && len(f) == 3 && f[0] == "Rss:":
			v, _ := strconv.ParseFloat(f[1], 64)
			kb += v
		}
	}
	return kb / 1024
}

func maxRSSMB(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) / 1024 // Linux reports KiB
	}
	return 0
}
