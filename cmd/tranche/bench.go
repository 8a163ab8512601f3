package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/tranchehq/tranche/internal/generate"
)

// benchResult is one measured run: each phase runs in its own process so its
// peak RSS comes from the OS (rusage), not from the Go runtime's view.
type benchResult struct {
	Dataset         string  `json:"dataset"`
	Resources       int64   `json:"resources"`
	ImportSeconds   float64 `json:"importSeconds"`
	ImportPeakRSSMB float64 `json:"importPeakRssMB"`
	ExportSeconds   float64 `json:"exportSeconds"`   // kick-off to manifest
	DownloadSeconds float64 `json:"downloadSeconds"` // manifest to last byte
	ExportedBytes   int64   `json:"exportedBytes"`
	ServerPeakRSSMB float64 `json:"serverPeakRssMB"`
}

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", stderr)
	sizes := fs.String("resources", "100000", "comma-separated generated dataset sizes (resources)")
	dataset := fs.String("dataset", "", "also measure this directory of NDJSON (e.g. ../shared/data/synthea-100)")
	cache := fs.String("cache", ".cache/bench", "where generated datasets are kept between runs")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	if err := parse(fs, args); err != nil {
		return err
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
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 100 {
			fmt.Fprintf(stderr, "tranche bench: --resources %q: want sizes of at least 100\n", s)
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
		r, err := benchOne(ctx, self, in.name, in.dir)
		if err != nil {
			return fmt.Errorf("%s: %w", in.name, err)
		}
		results = append(results, r)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "dataset\tresources\timport s\timport res/s\timport RSS MB\texport s\texport res/s\tdownload s\tMB\tserver RSS MB\t")
	for _, r := range results {
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.0f\t%.0f\t%.2f\t%.0f\t%.2f\t%.0f\t%.0f\t\n", r.Dataset, r.Resources,
			r.ImportSeconds, float64(r.Resources)/r.ImportSeconds, r.ImportPeakRSSMB,
			r.ExportSeconds, float64(r.Resources)/r.ExportSeconds, r.DownloadSeconds, float64(r.ExportedBytes)/1e6, r.ServerPeakRSSMB)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *jsonOut != "" {
		b, _ := json.MarshalIndent(results, "", "  ")
		return os.WriteFile(*jsonOut, append(b, '\n'), 0o644)
	}
	return nil
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

func benchOne(ctx context.Context, self, name, src string) (benchResult, error) {
	r := benchResult{Dataset: name}
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

	// Serve in a child process; export and download from here.
	srv := exec.CommandContext(ctx, self, "serve", "--addr", "127.0.0.1:0", "--data", data, "--demo=false", "--log-level", "warn")
	stdoutPipe, err := srv.StdoutPipe()
	if err != nil {
		return r, err
	}
	srv.Stderr = os.Stderr
	if err := srv.Start(); err != nil {
		return r, err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	base, err := readBaseURL(stdoutPipe)
	if err != nil {
		return r, err
	}
	go func() { _, _ = io.Copy(io.Discard, stdoutPipe) }()

	start = time.Now()
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/$export", nil)
	req.Header.Set("Accept", "application/fhir+json")
	req.Header.Set("Prefer", "respond-async")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return r, err
	}
	res.Body.Close()
	if res.StatusCode != http.StatusAccepted {
		return r, fmt.Errorf("kick-off: %s", res.Status)
	}
	status := res.Header.Get("Content-Location")
	var m struct {
		Output []struct {
			URL   string `json:"url"`
			Count int64  `json:"count"`
		} `json:"output"`
	}
	for {
		res, err := http.Get(status)
		if err != nil {
			return r, err
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode == http.StatusOK {
			if err := json.Unmarshal(body, &m); err != nil {
				return r, err
			}
			break
		}
		if res.StatusCode != http.StatusAccepted {
			return r, fmt.Errorf("status: %s %s", res.Status, body)
		}
		select {
		case <-ctx.Done():
			return r, ctx.Err()
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
	r.ExportSeconds = time.Since(start).Seconds()

	start = time.Now()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan string)
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range next {
				res, err := http.Get(u)
				if err == nil {
					var n int64
					n, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					mu.Lock()
					r.ExportedBytes += n
					mu.Unlock()
				}
				if err != nil {
					mu.Lock()
					first = err
					mu.Unlock()
				}
			}
		}()
	}
	for _, f := range m.Output {
		next <- f.URL
		r.Resources += f.Count
	}
	close(next)
	wg.Wait()
	if first != nil {
		return r, first
	}
	r.DownloadSeconds = time.Since(start).Seconds()

	_ = srv.Process.Signal(syscall.SIGTERM)
	_ = srv.Wait()
	r.ServerPeakRSSMB = maxRSSMB(srv.ProcessState)
	return r, nil
}

// readBaseURL reads the server's first line: "… serving FHIR Bulk Data at URL".
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

func maxRSSMB(ps *os.ProcessState) float64 {
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return float64(ru.Maxrss) / 1024 // Linux reports KiB
	}
	return 0
}
