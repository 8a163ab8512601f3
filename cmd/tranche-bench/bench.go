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
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tranchehq/tranche/internal/app"
	"github.com/tranchehq/tranche/internal/client"
	"github.com/tranchehq/tranche/internal/config"
	"github.com/tranchehq/tranche/internal/generate"
	"github.com/tranchehq/tranche/internal/local/bolt"
)

// binary is the tranche binary measured. Its child processes never
// inherit TRANCHE_CPUPROFILE; with profiles set, each one named writes its
// CPU profile there (--profiles).
type binary struct {
	path     string
	profiles string
}

// command is a child process of the binary; what names its profile ("" for
// none).
func (b *binary) command(ctx context.Context, what string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, b.path, args...)
	env := slices.DeleteFunc(os.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "TRANCHE_CPUPROFILE=") })
	if b.profiles != "" && what != "" {
		env = append(env, "TRANCHE_CPUPROFILE="+filepath.Join(b.profiles, what+".prof"))
	}
	cmd.Env = env
	return cmd
}

// demoClientFile is where `tranche serve --demo-client` writes the demo
// client's credentials in the data dir (cmd/tranche's DemoClientFile).
const demoClientFile = "demo-client.json"

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
	Dataset         string  `json:"dataset"`
	Generated       int64   `json:"generated,omitempty"` // the --resources size, for generated datasets
	Stored          int64   `json:"stored"`
	ImportSeconds   float64 `json:"importSeconds"`
	ImportPerSec    float64 `json:"importPerSec"`
	ImportPeakRSSMB float64 `json:"importPeakRssMB"`
	// Floor is the import's floor, measured right after it (floor.go);
	// ImportPctOfFloor is ImportPerSec as a percentage of its rate.
	Floor            floorRun    `json:"floor"`
	ImportPctOfFloor float64     `json:"importPercentOfFloor"`
	Exports          []exportRun `json:"exports"`
	// ExportPeakRSSMB is the server's peak RSS after the exports and
	// downloads (VmHWM); ServerPeakRSSMB includes the latency phases and
	// the token endpoint's too.
	ExportPeakRSSMB float64 `json:"exportPeakRssMB"`
	// RSSAnonMB and RSSFileMB split the resident set at that moment:
	// anonymous memory (heap, stacks) and mapped files (binary, store);
	// RSSStoreMB is the store's mapping among the latter.
	RSSAnonMB       float64 `json:"rssAnonMB"`
	RSSFileMB       float64 `json:"rssFileMB"`
	RSSStoreMB      float64 `json:"rssStoreMB"`
	ServerPeakRSSMB float64 `json:"serverPeakRssMB"`
	// Pollers concurrent status pollers, each every pollEvery, and a
	// kick-off of a small export every 50 ms; milliseconds. Loaded is with
	// a system export running on the server the whole time, Idle without.
	Pollers        int        `json:"pollers"`
	Loaded         latencyRun `json:"loaded"`
	Idle           latencyRun `json:"idle"`
	TokensPerSec   float64    `json:"tokensPerSec"` // ES384 assertions verified per second, end to end
	GroupItemsRead int64      `json:"groupItemsRead"`
	GroupExported  int64      `json:"groupExported"`
	GroupReadPct   float64    `json:"groupReadPercentOfStore"`
	// Downloads compares the system export and its downloads without and
	// with --gzip-files (downloads.go).
	Downloads []downloadRun `json:"downloads,omitempty"`
}

// system is the result's system export.
func (r *benchResult) system() *exportRun {
	for i := range r.Exports {
		if r.Exports[i].Level == "system" {
			return &r.Exports[i]
		}
	}
	return nil
}

// benchData returns a cached generated dataset of about n resources,
// written by `tranche generate` (seed 1, its default base instant).
func benchData(ctx context.Context, tranche *binary, cache string, n int64, stderr io.Writer) (string, error) {
	dir := filepath.Join(cache, fmt.Sprintf("gen-%d", n))
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err == nil {
		return dir, nil
	}
	patients := max(1, (n+generate.ResourcesPerPatient/2)/generate.ResourcesPerPatient)
	fmt.Fprintf(stderr, "bench: generating %d patients into %s\n", patients, dir)
	_ = os.RemoveAll(dir)
	gen := tranche.command(ctx, "", "generate", "--patients", strconv.FormatInt(patients, 10), "--seed", "1", "--out", dir)
	gen.Stderr = stderr
	if out, err := gen.Output(); err != nil {
		return "", fmt.Errorf("tranche generate: %v\n%s", err, out)
	}
	return dir, os.WriteFile(filepath.Join(dir, ".complete"), nil, 0o644)
}

// benchExports runs the system, Patient and Group exports of benchOne into
// r, with the copy floor after the system one; it returns the system
// export's status URL and the others'.
func benchExports(ctx context.Context, b *benchHTTP, base, name, data string, r *benchResult) (statusURL string, others []string, err error) {
	for _, level := range []struct{ name, path string }{
		{"system", "/$export"}, {"patient", "/Patient/$export"}, {"group-10", "/Group/group-10/$export"},
	} {
		if name == "synthea-100" && level.name == "group-10" {
			level.path = "/Group/MinutemanHealth/$export"
		}
		e, status, err := b.export(ctx, base+level.path)
		if err != nil {
			return "", nil, fmt.Errorf("%s export: %w", level.name, err)
		}
		e.Level = level.name
		if level.name == "system" {
			r.Stored, statusURL = e.Resources, status
			if err := e.measureCopyFloor(filepath.Join(data, "files")); err != nil {
				return "", nil, fmt.Errorf("copy floor: %w", err)
			}
		} else {
			others = append(others, status)
		}
		r.Exports = append(r.Exports, e)
	}
	return statusURL, others, nil
}

func benchOne(ctx context.Context, tranche *binary, name, src string, o options, stderr io.Writer) (benchResult, error) {
	r := benchResult{Dataset: name, Pollers: o.pollers}
	if n, ok := strings.CutPrefix(name, "generated-"); ok {
		r.Generated, _ = strconv.ParseInt(n, 10, 64)
	}
	data, err := os.MkdirTemp("", "tranche-bench-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(data)

	// Import in a child process, then its floor: the same files read,
	// decompressed and scanned here, writing nothing (the import has just
	// read them, so both find them in the page cache).
	start := time.Now()
	imp := tranche.command(ctx, name+"-import", "import", "--data", data, src)
	out, err := imp.CombinedOutput()
	if err != nil {
		return r, fmt.Errorf("import: %v\n%s", err, out)
	}
	r.ImportSeconds = time.Since(start).Seconds()
	r.ImportPeakRSSMB = maxRSSMB(imp.ProcessState)
	if r.Floor, err = importFloor(ctx, src); err != nil {
		return r, fmt.Errorf("import floor: %w", err)
	}

	// Serve in a child process (authorization on, quotas off); measure over
	// HTTP from here with the demo client serve writes.
	bs, err := startBenchServer(ctx, tranche, name+"-serve", data, o.pollers)
	if err != nil {
		return r, err
	}
	defer bs.stop()
	srv, base, b := bs.cmd, bs.base, bs.http

	statusURL, others, err := benchExports(ctx, b, base, name, data, &r)
	if err != nil {
		return r, err
	}
	r.ImportPerSec = float64(r.Stored) / r.ImportSeconds
	if f := r.Floor.ResourcesPerSec(); f > 0 {
		r.ImportPctOfFloor = 100 * r.ImportPerSec / f
	}
	r.ExportPeakRSSMB = procStatusMB(srv.Process.Pid, "VmHWM:")
	r.RSSAnonMB = procStatusMB(srv.Process.Pid, "RssAnon:")
	r.RSSFileMB = procStatusMB(srv.Process.Pid, "RssFile:")
	r.RSSStoreMB = mappedMB(srv.Process.Pid, filepath.Join(data, bolt.FileName))
	// The Patient and Group exports' files are not needed any more (the
	// system export's are polled below): at 3M they take 4 GB of disk.
	for _, s := range others {
		if err := b.release(ctx, s); err != nil {
			return r, err
		}
	}

	// Latency: pollers poll a completed job's status while small exports
	// are kicked off (idle), then the same with a system export running
	// the whole time, the pollers polling it (loaded: the target's case).
	if r.Idle, err = b.latency(ctx, base, statusURL, o.pollers, o.latencyFor, false); err != nil {
		return r, fmt.Errorf("latency: %w", err)
	}
	if err := b.release(ctx, statusURL); err != nil {
		return r, err
	}
	if r.Loaded, err = b.latency(ctx, base, "", o.pollers, o.latencyFor, true); err != nil {
		return r, fmt.Errorf("latency under load: %w", err)
	}

	// Token endpoint: fresh ES384 assertions, verified end to end.
	if r.TokensPerSec, err = tokenRate(ctx, bs, o.latencyFor); err != nil {
		return r, err
	}

	_ = srv.Process.Signal(syscall.SIGTERM)
	_ = srv.Wait()
	r.ServerPeakRSSMB = maxRSSMB(srv.ProcessState)

	if o.downloads {
		rounds := 2
		if o.short {
			rounds = 1
		}
		if r.Downloads, err = benchDownloads(ctx, tranche, name, data, rounds); err != nil {
			return r, err
		}
	}

	// Stored items read for a small Group export, from the store's counters:
	// in this process (the server is gone and the store is free), through
	// the server's own composition root.
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
// returns once it listens, with a token of the demo client. what names its
// profile.
func startBenchServer(ctx context.Context, tranche *binary, what, data string, conns int, extra ...string) (*benchServer, error) {
	args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data", data, "--demo=false", "--demo-client",
		"--log-level", "warn", "--max-exports", "0", "--max-polls", "0"}, extra...)
	srv := tranche.command(ctx, what, args...)
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
	cf, err := client.LoadClientFile(filepath.Join(data, demoClientFile))
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

// benchHTTP is the bench's client of a server: token may be empty (an
// open server).
type benchHTTP struct {
	hc    *http.Client
	token string
}

func (b *benchHTTP) do(ctx context.Context, method, url string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, err
	}
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
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

// kickoff starts an export and returns its status URL.
func (b *benchHTTP) kickoff(ctx context.Context, url string) (string, error) {
	res, err := b.do(ctx, "GET", url)
	if err != nil {
		return "", err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		return "", fmt.Errorf("kick-off: %s", res.Status)
	}
	return res.Header.Get("Content-Location"), nil
}

// toManifest kicks off an export and polls it until the manifest.
func (b *benchHTTP) toManifest(ctx context.Context, url string) (string, *benchManifest, error) {
	status, err := b.kickoff(ctx, url)
	if err != nil {
		return "", nil, err
	}
	for {
		done, body, err := b.poll(ctx, status)
		if err != nil {
			return "", nil, err
		}
		if done {
			m := &benchManifest{raw: body}
			return status, m, json.Unmarshal(body, m)
		}
		if err := client.SleepContext(ctx, 10*time.Millisecond); err != nil { // poll interval
			return "", nil, err
		}
	}
}

// poll asks for an export's status once: done with the manifest, or not
// done yet.
func (b *benchHTTP) poll(ctx context.Context, status string) (done bool, manifest []byte, err error) {
	res, err := b.do(ctx, "GET", status)
	if err != nil {
		return false, nil, err
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	switch res.StatusCode {
	case http.StatusOK:
		return true, body, nil
	case http.StatusAccepted:
		return false, nil, nil
	}
	return false, nil, fmt.Errorf("status: %s %s", res.Status, body)
}

// release deletes an export (and cancels it if it runs); one deleted
// already is not an error.
func (b *benchHTTP) release(ctx context.Context, status string) error {
	res, err := b.do(ctx, "DELETE", status)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted && res.StatusCode != http.StatusNotFound {
		return fmt.Errorf("DELETE %s: %s", status, res.Status)
	}
	return nil
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
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
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

// kickoffEvery is the latency phases' rate of small kick-offs: a steady
// trickle, not a flood.
const kickoffEvery = 50 * time.Millisecond

// retireAfter is how long a completed system export of the loaded phase is
// kept before it is deleted: longer than any poll of it still in flight.
const retireAfter = 2 * time.Second

// latencyRun is one latency phase: the status and kick-off latencies in
// ms, and for the loaded phase the system exports it ran.
type latencyRun struct {
	Polls       int     `json:"polls"`
	StatusP50MS float64 `json:"statusP50ms"`
	StatusP99MS float64 `json:"statusP99ms"`
	Kickoffs    int     `json:"kickoffs"`
	KickP50MS   float64 `json:"kickoffP50ms"`
	KickP99MS   float64 `json:"kickoffP99ms"`
	// ExportsDone system exports reached their manifest during the phase
	// of ExportsStarted kicked off (the last one is cancelled at its end).
	ExportsDone    int `json:"systemExportsCompleted,omitempty"`
	ExportsStarted int `json:"systemExportsStarted,omitempty"`
}

// latency polls status from n goroutines for d while one more goroutine
// kicks off small exports (_type=Group, every kickoffEvery).
//
// Idle (loaded false), the pollers poll idleStatus, a finished job. Loaded,
// a system export runs on the server for the whole phase: one is kicked
// off before the pollers start and the next as soon as one completes (its
// files are not downloaded: the load is the export; it is deleted
// retireAfter later), and the pollers poll the running one, as the clients
// of running exports do.
//
// Every export the phase kicks off is deleted at its end, the running one
// cancelled, so that none is left to resume in the next server on the data.
func (b *benchHTTP) latency(ctx context.Context, base, idleStatus string, n int, d time.Duration, loaded bool) (latencyRun, error) {
	var (
		run            latencyRun
		wg             sync.WaitGroup
		mu             sync.Mutex
		first          error
		status, kicks  []float64
		started        []string // status URLs of every export kicked off here
		released       = map[string]bool{}
		current        atomic.Pointer[string]
		stopExports    = make(chan struct{})
		exportersError error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if first == nil {
			first = err
		}
	}
	kick := func(url string) (string, error) {
		loc, err := b.kickoff(ctx, url)
		if err == nil {
			mu.Lock()
			started = append(started, loc)
			mu.Unlock()
		}
		return loc, err
	}
	current.Store(&idleStatus)
	if loaded {
		loc, err := kick(base + "/$export")
		if err != nil {
			return run, fmt.Errorf("system export: %w", err)
		}
		current.Store(&loc)
		run.ExportsStarted = 1
		wg.Add(1)
		go func() {
			defer wg.Done()
			exportersError = b.keepExporting(ctx, base, &current, &run, kick, stopExports, released, &mu)
		}()
	}
	deadline := time.Now().Add(d)
	record := func(dst *[]float64, t time.Duration, err error) {
		if err != nil {
			fail(err)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		*dst = append(*dst, float64(t.Microseconds())/1000)
	}
	var pollers sync.WaitGroup
	for range n {
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			for time.Now().Before(deadline) {
				t := time.Now()
				done, _, err := b.poll(ctx, *current.Load())
				if err == nil && !done && !loaded {
					err = errors.New("status poll: the finished job answered 202")
				}
				record(&status, time.Since(t), err)
				_ = client.SleepContext(ctx, pollEvery-time.Since(t))
			}
		}()
	}
	pollers.Add(1)
	go func() {
		defer pollers.Done()
		for time.Now().Before(deadline) {
			t := time.Now()
			_, err := kick(base + "/$export?_type=Group")
			record(&kicks, time.Since(t), err)
			_ = client.SleepContext(ctx, kickoffEvery-time.Since(t))
		}
	}()
	pollers.Wait()
	close(stopExports)
	wg.Wait()
	if exportersError != nil {
		fail(exportersError)
	}
	for _, s := range started {
		if released[s] {
			continue
		}
		if err := b.release(ctx, s); err != nil {
			fail(err)
		}
	}
	run.Polls, run.StatusP50MS, run.StatusP99MS = len(status), pct(status, 50), pct(status, 99)
	run.Kickoffs, run.KickP50MS, run.KickP99MS = len(kicks), pct(kicks, 50), pct(kicks, 99)
	return run, first
}

// keepExporting watches the running system export (current) every 20 ms,
// without counting those polls, and kicks off the next one when it
// completes, until stop; completed ones are released retireAfter later.
func (b *benchHTTP) keepExporting(ctx context.Context, base string, current *atomic.Pointer[string], run *latencyRun,
	kick func(string) (string, error), stop <-chan struct{}, released map[string]bool, mu *sync.Mutex) error {
	type retired struct {
		status string
		at     time.Time
	}
	var old []retired
	for {
		select {
		case <-stop:
			return nil
		case <-time.After(20 * time.Millisecond):
		}
		cur := *current.Load()
		done, _, err := b.poll(ctx, cur)
		if err != nil {
			return fmt.Errorf("system export under load: %w", err)
		}
		if done {
			run.ExportsDone++
			old = append(old, retired{cur, time.Now()})
			select {
			case <-stop:
				return nil
			default:
			}
			next, err := kick(base + "/$export")
			if err != nil {
				return fmt.Errorf("system export under load: %w", err)
			}
			current.Store(&next)
			run.ExportsStarted++
		}
		for len(old) > 0 && time.Since(old[0].at) > retireAfter {
			if err := b.release(ctx, old[0].status); err != nil {
				return err
			}
			mu.Lock()
			released[old[0].status] = true
			mu.Unlock()
			old = old[1:]
		}
	}
}

// tokenRate requests tokens with fresh assertions from 4 goroutines for d.
func tokenRate(ctx context.Context, bs *benchServer, d time.Duration) (float64, error) {
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
			ts := &client.BackendServices{ClientID: bs.cf.ClientID, Key: bs.key, TokenURL: bs.cf.TokenURL, FHIRBase: bs.base, Scope: bs.cf.Scope, HTTP: bs.hc}
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

// groupReads exports a Group through the server's composition root
// (app.NewLocal on the data dir, its handler over loopback HTTP,
// authorization off) and reports the stored items the export read, from
// the store's counters, which only this process can see.
func groupReads(ctx context.Context, data, group string) (read, exported int64, pct float64, err error) {
	cfg := config.Default()
	cfg.DataDir = data
	cfg.Auth.Open = true
	l, err := app.NewLocal(ctx, cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		return 0, 0, 0, err
	}
	defer l.Close()
	counts, err := l.DB.Resources().Count(ctx)
	if err != nil {
		return 0, 0, 0, err
	}
	var stored int64
	for _, c := range counts {
		stored += c
	}
	srv := httptest.NewServer(l.Handler)
	defer srv.Close()
	b := &benchHTTP{hc: srv.Client()}
	before := l.DB.Stats().ItemsRead
	status, m, err := b.toManifest(ctx, srv.URL+"/Group/"+group+"/$export")
	if err != nil {
		return 0, 0, 0, fmt.Errorf("group export: %w", err)
	}
	read = l.DB.Stats().ItemsRead - before
	for _, f := range m.Output {
		exported += f.Count
	}
	if err := b.release(ctx, status); err != nil {
		return 0, 0, 0, err
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
	return kBField(string(b), field) / 1024
}

// kBField is the value of a "Field:   123 kB" line of a /proc file, in kB.
func kBField(text, field string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb
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
