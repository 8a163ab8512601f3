package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// WatermarkFile is the file in an export root that records the last
// successful export, for --since-last.
const WatermarkFile = "last-export.json"

// Watermark is the content of WatermarkFile.
type Watermark struct {
	// TransactionTime is the next export's _since (Bulk Data IG: clients
	// use transactionTime as the next _since).
	TransactionTime string `json:"transactionTime"`
	Request         string `json:"request"`
	StatusURL       string `json:"status_url"`
	// Dir is the export's directory, relative to the root.
	Dir        string    `json:"dir"`
	FinishedAt time.Time `json:"finished_at"`
}

// ReadWatermark reads root/last-export.json; a missing file is (nil, nil):
// no export has finished there yet.
func ReadWatermark(root string) (*Watermark, error) {
	raw, err := os.ReadFile(filepath.Join(root, WatermarkFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var w Watermark
	if err := json.Unmarshal(raw, &w); err != nil || w.TransactionTime == "" {
		return nil, fmt.Errorf("%s: not a watermark (want JSON with transactionTime)", filepath.Join(root, WatermarkFile))
	}
	return &w, nil
}

// Export runs a whole export, as `tranche export` does: kick-off (or resume
// from a status URL), poll, download into its own directory under Out,
// record the watermark and release the export on the server (unless Keep).
// Each export gets the directory Out/<transactionTime>/ (e.g.
// 2026-06-01T120000.000Z), so incremental exports into one Out never mix or
// overwrite files, and a resumed export finds the files it already has.
type Export struct {
	Client  *Client
	Request Request
	// Out is the export root (default "export").
	Out      string
	Parallel int
	// SinceLast sets Request.Since from the watermark of the last
	// successful export in Out; with no watermark everything is exported.
	SinceLast bool
	// Resume is the status URL of an export started earlier: no kick-off.
	Resume string
	// CancelOnInterrupt sends DELETE to the status URL when ctx is
	// cancelled before the export is downloaded.
	CancelOnInterrupt bool
	// Keep leaves a downloaded export on the server. Otherwise, once every
	// file is saved and checked and the watermark written, Run sends
	// DELETE to the status URL: the client has its files and the server
	// may remove them (Bulk Data IG delete request, R68, R71).
	Keep bool

	// Optional observers.
	OnKickoff  func(statusURL string, resumed bool)
	OnPoll     func(PollStatus)
	OnManifest func(m *Manifest, dir string)
	OnNote     func(msg string)
}

// Summary is the outcome of an Export.
type Summary struct {
	StatusURL       string
	Since           string
	TransactionTime string
	// Dir is where the files are.
	Dir      string
	Manifest *Manifest
	Download *DownloadResult
	// Elapsed is the whole run; DownloadTime the download part.
	Elapsed, DownloadTime time.Duration
	// Cancelled is true when DELETE was sent after an interrupt.
	Cancelled bool
	// Released is true when the downloaded export was released: DELETE
	// answered 2xx, or 404 (the server had already removed it).
	// ReleaseErr is why DELETE failed; the export itself succeeded.
	Released   bool
	ReleaseErr error
}

func (e *Export) note(format string, args ...any) {
	if e.OnNote != nil {
		e.OnNote(fmt.Sprintf(format, args...))
	}
}

// Run runs the export. On an interrupt (ctx cancelled) it returns ctx's
// error, after sending DELETE when CancelOnInterrupt is set; otherwise the
// export is left running and the error says how to resume it.
func (e *Export) Run(ctx context.Context) (*Summary, error) {
	c := e.Client
	out := e.Out
	if out == "" {
		out = "export"
	}
	start := c.now()
	sum := &Summary{}
	statusURL, err := e.kickoff(ctx, out, sum)
	if err != nil {
		return sum, err
	}
	sum.StatusURL = statusURL
	if e.OnKickoff != nil {
		e.OnKickoff(statusURL, e.Resume != "")
	}
	m, err := c.Poll(ctx, statusURL, e.OnPoll)
	if err != nil {
		return sum, e.interrupted(ctx, sum, statusURL, fmt.Errorf("export: %w", e.explainGone(out, statusURL, err)))
	}
	sum.Manifest, sum.TransactionTime = m, m.TransactionTime
	dir, err := exportDir(out, m)
	if err != nil {
		return sum, err
	}
	sum.Dir = dir
	if e.OnManifest != nil {
		e.OnManifest(m, dir)
	}
	dlStart := c.now()
	m, res, err := e.download(ctx, m, dir, statusURL, sum)
	sum.Download, sum.DownloadTime = res, c.now().Sub(dlStart)
	sum.Elapsed = c.now().Sub(start)
	if err != nil {
		err = fmt.Errorf("download: %w", err)
		if ctx.Err() != nil {
			return sum, e.interrupted(ctx, sum, statusURL, err)
		}
		return sum, fmt.Errorf("%w (run again with --resume %s to fetch the missing files)", err, statusURL)
	}
	if err := e.saveWatermark(out, dir, statusURL, m); err != nil {
		return sum, err
	}
	if !e.Keep {
		e.release(ctx, sum)
	}
	return sum, nil
}

// kickoff starts the export and returns its status URL, or returns
// Resume. With SinceLast the request's _since is the transactionTime of
// the watermark in out, if any.
func (e *Export) kickoff(ctx context.Context, out string, sum *Summary) (string, error) {
	if e.Resume != "" {
		return e.Resume, nil
	}
	c := e.Client
	req := e.Request
	if e.SinceLast {
		wm, err := ReadWatermark(out)
		if err != nil {
			return "", err
		}
		if wm == nil {
			e.note("no earlier export in %s: exporting everything", out)
		} else {
			req.Since = wm.TransactionTime
			if k, _ := req.URL(c.Base); kickoffKey(k) != kickoffKey(wm.Request) {
				e.note("the last export in %s was a different request (%s); using its transactionTime %s as _since all the same", out, wm.Request, wm.TransactionTime)
			}
		}
	}
	sum.Since = req.Since
	u, err := c.Kickoff(ctx, req)
	if err != nil {
		return "", fmt.Errorf("kick-off: %w", err)
	}
	return u, nil
}

// explainGone adds to a poll's 404 of a resumed export why it may be gone
// (R69: a released, cancelled or expired export is).
func (e *Export) explainGone(out, statusURL string, err error) error {
	if e.Resume == "" || StatusCode(err) != http.StatusNotFound {
		return err
	}
	if wm, _ := ReadWatermark(out); wm != nil && wm.StatusURL == statusURL {
		return fmt.Errorf("%w (this export was downloaded into %s and then released on the server)", err, filepath.Join(out, filepath.FromSlash(wm.Dir)))
	}
	return fmt.Errorf("%w (the server no longer has this export: it expired, was cancelled, or was released after a complete download; `tranche export` releases unless --keep)", err)
}

// interrupted returns err, or if ctx was cancelled an error saying so:
// after sending DELETE to statusURL under CancelOnInterrupt, else saying
// how to resume.
func (e *Export) interrupted(ctx context.Context, sum *Summary, statusURL string, err error) error {
	if ctx.Err() == nil {
		return err
	}
	if !e.CancelOnInterrupt {
		return fmt.Errorf("interrupted; the export continues on the server: resume with --resume %s: %w", statusURL, ctx.Err())
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	cc := *e.Client
	cc.MaxRetries = 2
	if derr := cc.Cancel(dctx, statusURL); derr != nil {
		return fmt.Errorf("interrupted; cancelling the export failed: %v: %w", derr, ctx.Err())
	}
	sum.Cancelled = true
	return fmt.Errorf("interrupted; the export was cancelled (DELETE %s): %w", statusURL, ctx.Err())
}

// download saves m's files into dir and returns the manifest they were
// last fetched with. Capability URLs (requiresAccessToken false) are
// short-lived, about five minutes: files their URLs no longer open are
// fetched again with the fresh URLs of another poll (Bulk Data v3: the
// client MAY fetch the manifest again), as long as each round saves more.
func (e *Export) download(ctx context.Context, m *Manifest, dir, statusURL string, sum *Summary) (*Manifest, *DownloadResult, error) {
	c := e.Client
	res, err := c.Download(ctx, m, dir, e.Parallel)
	for round := 0; err != nil && ctx.Err() == nil && !m.RequiresAccessToken && round < 10 && urlsRefused(res); round++ {
		e.note("download URLs were refused (expired?): polling %s for fresh ones", statusURL)
		fresh, perr := c.Poll(ctx, statusURL, e.OnPoll)
		if perr != nil || fresh.TransactionTime != m.TransactionTime || fresh.Request != m.Request {
			break
		}
		failed := failures(res)
		m, sum.Manifest = fresh, fresh
		res, err = c.Download(ctx, m, dir, e.Parallel)
		if err != nil && failures(res) >= failed {
			break
		}
	}
	return m, res, err
}

// release sends DELETE to the status URL of a downloaded export (R68):
// the manifest, the files and the watermark are saved, so the server may
// remove the files (R71). A failure is reported, not returned: the export
// itself succeeded.
func (e *Export) release(ctx context.Context, sum *Summary) {
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cc := *e.Client
	cc.MaxRetries = 2
	err := cc.Cancel(rctx, sum.StatusURL)
	if StatusCode(err) == http.StatusNotFound {
		err = nil // gone already (R69): expired, or released by an earlier run
	}
	if err != nil {
		sum.ReleaseErr = err
		e.note("warning: releasing the export on the server failed (%v); its files stay there until they expire. The export itself succeeded.", err)
		return
	}
	sum.Released = true
}

// urlsRefused reports whether a file's URL was refused (401 or 403: what
// S3 answers to an expired presigned URL).
func urlsRefused(res *DownloadResult) bool {
	if res == nil {
		return false
	}
	for _, f := range res.Files {
		if s := StatusCode(f.Err); s == http.StatusUnauthorized || s == http.StatusForbidden {
			return true
		}
	}
	return false
}

// failures counts the files res did not save.
func failures(res *DownloadResult) int {
	n := 0
	if res != nil {
		for _, f := range res.Files {
			if f.Err != nil {
				n++
			}
		}
	}
	return n
}

// saveWatermark records m as the last export unless a later one is there
// already (a resumed older export must not move the watermark back).
func (e *Export) saveWatermark(root, dir, statusURL string, m *Manifest) error {
	if old, err := ReadWatermark(root); err == nil && old != nil {
		ot, err1 := time.Parse(time.RFC3339Nano, old.TransactionTime)
		nt, err2 := time.Parse(time.RFC3339Nano, m.TransactionTime)
		if err1 == nil && err2 == nil && ot.After(nt) {
			return nil
		}
	}
	rel, err := filepath.Rel(root, dir)
	if err != nil {
		rel = dir
	}
	raw, err := json.MarshalIndent(Watermark{
		TransactionTime: m.TransactionTime, Request: m.Request, StatusURL: statusURL,
		Dir: filepath.ToSlash(rel), FinishedAt: e.Client.now().UTC(),
	}, "", "  ")
	if err != nil {
		return err
	}
	return WriteFileAtomic(filepath.Join(root, WatermarkFile), append(raw, '\n'), 0o640)
}

// exportDir picks root/<transactionTime>: the directory already holding
// this export (same manifest), else a fresh one.
func exportDir(root string, m *Manifest) (string, error) {
	name := safeDirName(m.TransactionTime)
	if t, err := time.Parse(time.RFC3339Nano, m.TransactionTime); err == nil {
		name = t.UTC().Format("2006-01-02T150405.000Z")
	}
	if name == "" {
		name = "export"
	}
	for i := 1; ; i++ {
		dir := filepath.Join(root, name)
		if i > 1 {
			dir = fmt.Sprintf("%s-%d", dir, i)
		}
		raw, err := os.ReadFile(filepath.Join(dir, ManifestFile))
		if errors.Is(err, os.ErrNotExist) {
			return dir, nil
		}
		if err != nil {
			return "", err
		}
		if old, err := ParseManifest(raw); err == nil && old.TransactionTime == m.TransactionTime && old.Request == m.Request {
			return dir, nil
		}
	}
}

func safeDirName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '.', r == '_':
			return r
		}
		return -1
	}, s)
}

// kickoffKey is a kick-off URL without scheme, host and _since: what must
// match for a watermark to fit the next request.
func kickoffKey(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return s
	}
	q := u.Query()
	q.Del("_since")
	return u.Path + "?" + q.Encode()
}
