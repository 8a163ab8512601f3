package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tranchehq/tranche/internal/client"
)

// downloadRun is one system export on a server in one --gzip-files mode,
// and its files downloaded three ways (issue 20 item 4). The server's CPU
// time is measured beside each wall time: on a shared machine it moves less
// than the wall time does.
type downloadRun struct {
	GzipFiles        bool    `json:"gzipFiles"`
	ManifestSeconds  float64 `json:"manifestSeconds"`  // kick-off to manifest
	ExportCPUSeconds float64 `json:"exportCpuSeconds"` // the server's, kick-off to manifest
	DiskBytes        int64   `json:"diskBytes"`        // the export's files on disk
	NDJSONBytes      int64   `json:"ndjsonBytes"`      // the files' identity bytes
	// Client is internal/client's Download (what `tranche export` runs):
	// 4 files at a time, gzip decoded, counts checked, written to disk.
	Client downloadFigure `json:"client"`
	// Gzip asks for gzip and counts the body as received (curl -H
	// 'Accept-Encoding: gzip'); Identity does not ask for gzip (curl).
	// Both 4 files at a time.
	Gzip     downloadFigure `json:"gzip"`
	Identity downloadFigure `json:"identity"`
}

type downloadFigure struct {
	Seconds          float64 `json:"seconds"`
	WireBytes        int64   `json:"wireBytes"`
	ServerCPUSeconds float64 `json:"serverCpuSeconds"`
}

// benchDownloads exports data at system level on a server without and one
// with --gzip-files, rounds times each, alternating which goes first.
func benchDownloads(ctx context.Context, tranche *binary, name, data string, rounds int) ([]downloadRun, error) {
	var runs []downloadRun
	for round := range rounds {
		modes := []bool{false, true}
		if round%2 == 1 {
			modes = []bool{true, false}
		}
		for _, gz := range modes {
			run, err := downloadOnce(ctx, tranche, fmt.Sprintf("%s-serve-gzip-%v-%d", name, gz, round+1), data, gz)
			if err != nil {
				return nil, fmt.Errorf("downloads with --gzip-files=%v: %w", gz, err)
			}
			runs = append(runs, run)
		}
	}
	return runs, nil
}

func downloadOnce(ctx context.Context, tranche *binary, what, data string, gz bool) (downloadRun, error) {
	run := downloadRun{GzipFiles: gz}
	bs, err := startBenchServer(ctx, tranche, what, data, 8, "--gzip-files="+strconv.FormatBool(gz))
	if err != nil {
		return run, err
	}
	defer bs.stop()
	pid := bs.cmd.Process.Pid
	cpu := procCPUSeconds(pid)
	start := time.Now()
	status, m, err := bs.http.toManifest(ctx, bs.base+"/$export")
	if err != nil {
		return run, err
	}
	run.ManifestSeconds = time.Since(start).Seconds()
	run.ExportCPUSeconds = procCPUSeconds(pid) - cpu
	if len(m.Output) > 0 {
		job, _, _ := strings.Cut(fileKey(m.Output[0].URL), "/")
		run.DiskBytes, _ = dirBytes(filepath.Join(data, "files", job))
	}
	if err := run.download(ctx, bs, m); err != nil {
		return run, err
	}
	// Release the export: the next round's files need the space.
	if err := bs.http.release(ctx, status); err != nil {
		return run, err
	}
	_ = bs.cmd.Process.Signal(syscall.SIGTERM)
	_ = bs.cmd.Wait()
	return run, nil
}

// download fetches the export's files with the project's client, then
// with plain HTTP asking for gzip, then without.
func (run *downloadRun) download(ctx context.Context, bs *benchServer, m *benchManifest) error {
	pid := bs.cmd.Process.Pid
	var err error
	run.Client, err = timed(pid, func() (int64, error) { return clientDownload(ctx, bs, m) })
	if err != nil {
		return fmt.Errorf("client download: %w", err)
	}
	if run.Gzip, err = timed(pid, func() (int64, error) { return bs.http.fetchAll(ctx, m.urls(), "gzip") }); err != nil {
		return err
	}
	if run.Identity, err = timed(pid, func() (int64, error) { return bs.http.fetchAll(ctx, m.urls(), "identity") }); err != nil {
		return err
	}
	run.NDJSONBytes = run.Identity.WireBytes
	return nil
}

// timed runs fn, which returns the bytes it received, and measures it
// with the server's CPU time.
func timed(pid int, fn func() (int64, error)) (downloadFigure, error) {
	cpu := procCPUSeconds(pid)
	start := time.Now()
	n, err := fn()
	return downloadFigure{Seconds: time.Since(start).Seconds(), WireBytes: n, ServerCPUSeconds: procCPUSeconds(pid) - cpu}, err
}

// clientDownload saves the files as `tranche export` does, into a
// directory removed afterwards, and returns the bytes it wrote.
func clientDownload(ctx context.Context, bs *benchServer, m *benchManifest) (int64, error) {
	cm, err := client.ParseManifest(m.raw)
	if err != nil {
		return 0, err
	}
	dir, err := os.MkdirTemp("", "tranche-bench-download-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	c := &client.Client{HTTP: bs.hc, Base: bs.base, Auth: bs.ts}
	res, err := c.Download(ctx, cm, dir, 4)
	if err != nil {
		return 0, err
	}
	return res.Bytes, nil
}

// dirBytes sums the sizes of the files under root.
func dirBytes(root string) (int64, error) {
	var n int64
	err := filepath.WalkDir(root, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// procCPUSeconds is a live process's user and system CPU time (Linux
// /proc/PID/stat, in clock ticks of 1/100 s); 0 where unknown.
func procCPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: state is
	// field 3, utime 14 and stime 15.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100
}

// downloadRatios compares the medians of the runs with and without
// --gzip-files.
func downloadRatios(runs []downloadRun) string {
	ratio := func(get func(downloadRun) float64) string {
		var on, off []float64
		for _, r := range runs {
			if r.GzipFiles {
				on = append(on, get(r))
			} else {
				off = append(off, get(r))
			}
		}
		return times(median(on), median(off))
	}
	return fmt.Sprintf("manifest %s, export CPU %s, on disk %s, client download %s, gzip download %s (server CPU %s), identity download %s (server CPU %s)",
		ratio(func(r downloadRun) float64 { return r.ManifestSeconds }),
		ratio(func(r downloadRun) float64 { return r.ExportCPUSeconds }),
		ratio(func(r downloadRun) float64 { return float64(r.DiskBytes) }),
		ratio(func(r downloadRun) float64 { return r.Client.Seconds }),
		ratio(func(r downloadRun) float64 { return r.Gzip.Seconds }),
		ratio(func(r downloadRun) float64 { return r.Gzip.ServerCPUSeconds }),
		ratio(func(r downloadRun) float64 { return r.Identity.Seconds }),
		ratio(func(r downloadRun) float64 { return r.Identity.ServerCPUSeconds }))
}

// times is a / b as "1.23x" (3 decimals below 0.1), or "—" when b is 0:
// CPU times in 1/100 s ticks can be.
func times(a, b float64) string {
	switch r := a / b; {
	case b == 0 || math.IsNaN(r):
		return none
	case r < 0.1:
		return fmt.Sprintf("%.3fx", r)
	default:
		return fmt.Sprintf("%.2fx", r)
	}
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
