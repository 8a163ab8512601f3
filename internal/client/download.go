package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzip"
)

// File kinds: the manifest array a file comes from.
const (
	KindOutput  = "output"
	KindDeleted = "deleted"
	KindError   = "error"
)

// ManifestFile is the name of the saved manifest in a download directory.
const ManifestFile = "manifest.json"

// ErrOtherExport is returned by Download when the directory already holds
// the files of a different export (another manifest.json).
var ErrOtherExport = errors.New("the directory holds a different export")

// DownloadProgress reports download progress to Client.OnDownload.
type DownloadProgress struct {
	// Files is the number of files in the manifest, Done how many are
	// finished (downloaded, skipped or failed).
	Files, Done int
	// Bytes counts bytes written (decoded) so far, skipped files included.
	Bytes int64
	// File is set when a file has just finished.
	File *FileResult
}

// FileResult is one downloaded (or skipped) file.
type FileResult struct {
	Kind string // KindOutput, KindDeleted or KindError
	Type string
	URL  string
	// Path is the file's path relative to the download directory.
	Path      string
	Resources int64
	Bytes     int64
	// Skipped is true when a previous run had already saved the file.
	Skipped bool
	Err     error
}

// DownloadResult sums up a download.
type DownloadResult struct {
	Dir   string
	Files []FileResult
	// Resources counts output resources per type; Deleted and Errors count
	// the entries of the deleted and error files.
	Resources       map[string]int64
	Deleted, Errors int64
	Bytes           int64
	Skipped         int
}

// plannedFile is a manifest entry with its local name.
type plannedFile struct {
	kind string
	f    File
	path string // relative, slash-separated
}

// plan names every manifest file: output files as Type.NNN.ndjson, deleted
// and error files the same under deleted/ and error/. Names depend only on
// the manifest, so a resumed download finds its earlier files.
func plan(m *Manifest) []plannedFile {
	var out []plannedFile
	seen := map[string]int{}
	add := func(kind, dir, defType string, files []File) {
		for _, f := range files {
			t := safeName(f.Type)
			if t == "" {
				t = defType
			}
			key := kind + "/" + t
			n := seen[key]
			seen[key]++
			out = append(out, plannedFile{kind: kind, f: f, path: dir + fmt.Sprintf("%s.%03d.ndjson", t, n)})
		}
	}
	add(KindOutput, "", "output", m.Output)
	add(KindDeleted, "deleted/", "Bundle", m.Deleted)
	add(KindError, "error/", "OperationOutcome", m.Error)
	return out
}

// safeName keeps letters, digits, '-' and '_' of a resource type name.
func safeName(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			return r
		}
		return -1
	}, s)
}

// Download saves every output, deleted and error file of m into dir, with
// up to parallel downloads at a time, and saves the manifest as
// manifest.json.
//
// Each file is requested with Accept-Encoding: gzip (decoded and checked
// here), carries the bearer token only when m.RequiresAccessToken is true
// and the file is on the FHIR server's origin or in TokenOrigins (never
// across origins on a redirect, see SafeRedirect), is written to a
// .part file and renamed when complete, and its resource count is checked
// against the manifest's count. Failed transfers are retried. Files an
// earlier run of the same export completed are skipped, so a Download can
// be repeated to resume; partial .part files are downloaded again. A dir
// holding a different export's manifest.json is ErrOtherExport.
//
// Failures of single files do not stop the others: the error joins them
// and the result lists what was saved.
func (c *Client) Download(ctx context.Context, m *Manifest, dir string, parallel int) (*DownloadResult, error) {
	if parallel < 1 {
		parallel = 1
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	if err := claimDir(dir, m); err != nil {
		return nil, err
	}
	files := plan(m)
	res := &DownloadResult{Dir: dir, Files: make([]FileResult, len(files)), Resources: map[string]int64{}}
	prog := &progress{fn: c.OnDownload, total: len(files)}

	var todo []int
	for i, pf := range files {
		fr := FileResult{Kind: pf.kind, Type: pf.f.Type, URL: pf.f.URL, Path: pf.path}
		if st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(pf.path))); err == nil && st.Mode().IsRegular() {
			fr.Skipped, fr.Bytes = true, st.Size()
			if pf.f.Count != nil {
				fr.Resources = *pf.f.Count
			} else if n, err := countFile(filepath.Join(dir, filepath.FromSlash(pf.path))); err == nil {
				fr.Resources = n
			}
			res.Files[i] = fr
			prog.add(fr.Bytes)
			prog.done(&res.Files[i])
			continue
		}
		fr.Err = errNotStarted
		res.Files[i] = fr
		todo = append(todo, i)
	}

	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(parallel, len(todo)); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fr := &res.Files[i]
				fr.Resources, fr.Bytes, fr.Err = c.downloadFile(ctx, m.RequiresAccessToken, files[i], dir, prog)
				prog.done(fr)
			}
		}()
	}
feed:
	for _, i := range todo {
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()

	var errs []error
	for i := range res.Files {
		fr := &res.Files[i]
		if fr.Err == errNotStarted {
			fr.Err = ctx.Err()
		}
		if fr.Err != nil {
			if !errors.Is(fr.Err, context.Canceled) && !errors.Is(fr.Err, context.DeadlineExceeded) {
				errs = append(errs, fmt.Errorf("%s: %w", fr.Path, fr.Err))
			}
			continue
		}
		res.Bytes += fr.Bytes
		if fr.Skipped {
			res.Skipped++
		}
		switch fr.Kind {
		case KindOutput:
			res.Resources[fr.Type] += fr.Resources
		case KindDeleted:
			res.Deleted += fr.Resources
		case KindError:
			res.Errors += fr.Resources
		}
	}
	if ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return res, errors.Join(errs...)
}

var errNotStarted = errors.New("not started")

// claimDir saves m as dir/manifest.json, or checks that the one there is
// the same export (same transactionTime and request).
func claimDir(dir string, m *Manifest) error {
	path := filepath.Join(dir, ManifestFile)
	if raw, err := os.ReadFile(path); err == nil {
		old, err := ParseManifest(raw)
		if err != nil || old.TransactionTime != m.TransactionTime || old.Request != m.Request {
			return fmt.Errorf("%w: %s is for the export of %s at %s", ErrOtherExport, path, old.Request, old.TransactionTime)
		}
		return nil
	}
	raw := []byte(m.Raw)
	if len(raw) == 0 {
		var err error
		if raw, err = json.Marshal(m); err != nil {
			return err
		}
	}
	return WriteFileAtomic(path, raw, 0o640)
}

// WriteFileAtomic writes data to path through a temporary file and a
// rename, so readers see the old or the new file, never part of one.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// downloadFile fetches one file with retries and returns its resource count
// and size.
func (c *Client) downloadFile(ctx context.Context, auth bool, pf plannedFile, dir string, prog *progress) (int64, int64, error) {
	final := filepath.Join(dir, filepath.FromSlash(pf.path))
	if err := os.MkdirAll(filepath.Dir(final), 0o750); err != nil {
		return 0, 0, err
	}
	part := final + ".part"
	if auth && !c.mayReceiveToken(pf.f.URL) {
		// The manifest says the file needs the token, but it is not on
		// the server the token is for: never sent there unless asked.
		return 0, 0, fmt.Errorf("%s needs the access token but is not on the FHIR server's origin %s: the token is not sent there (tranche export --token-origin %s allows it)", pf.f.URL, origin(c.Base), origin(pf.f.URL))
	}
	for attempt := 0; ; attempt++ {
		n, size, err := c.fetchOnce(ctx, auth, pf, part, prog)
		if err == nil && pf.f.Count != nil && n != *pf.f.Count {
			err = &countError{got: n, want: *pf.f.Count}
		}
		if err == nil {
			if err := os.Rename(part, final); err != nil {
				return 0, 0, err
			}
			return n, size, nil
		}
		prog.add(-size)
		var perm *permanentError
		if ctx.Err() != nil || errors.As(err, &perm) || attempt >= c.maxRetries() {
			_ = os.Remove(part)
			if perm != nil {
				return 0, 0, perm.err
			}
			return 0, 0, ctxErr(ctx, err)
		}
		wait := c.backoff(attempt)
		c.logger().Warn("download failed; retrying", "url", pf.f.URL, "err", err, "wait", wait)
		if err := c.sleep(ctx, wait); err != nil {
			_ = os.Remove(part)
			return 0, 0, err
		}
	}
}

type countError struct{ got, want int64 }

func (e *countError) Error() string {
	return fmt.Sprintf("%d resources, but the manifest count says %d", e.got, e.want)
}

// permanentError is a download failure a retry cannot fix.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }

// fetchOnce downloads pf into part and returns its resource count and the
// bytes written.
func (c *Client) fetchOnce(ctx context.Context, auth bool, pf plannedFile, part string, prog *progress) (n, size int64, err error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	res, err := c.do(ctx, func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodGet, pf.f.URL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/fhir+ndjson")
		// Asking explicitly turns off Go's transparent decoding: the
		// gzip stream is decoded (and its CRC checked) below.
		req.Header.Set("Accept-Encoding", "gzip")
		return req, nil
	}, auth, true, func(s int) bool { return s == http.StatusOK })
	if err != nil {
		var e *Error
		if errors.As(err, &e) && !e.Transient {
			return 0, 0, &permanentError{err}
		}
		return 0, 0, err
	}
	defer res.Body.Close()
	stall := c.StallTimeout
	if stall <= 0 {
		stall = 2 * time.Minute
	}
	errStalled := fmt.Errorf("no data for %s", stall)
	timer := time.AfterFunc(stall, func() { cancel(errStalled) })
	defer timer.Stop()
	var body io.Reader = &stallReader{r: res.Body, timer: timer, d: stall}
	switch enc := strings.ToLower(strings.TrimSpace(res.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			return 0, 0, fmt.Errorf("gzip: %w", err)
		}
		body = zr
	default:
		return 0, 0, &permanentError{fmt.Errorf("unrequested Content-Encoding %q", enc)}
	}
	f, err := os.Create(part)
	if err != nil {
		return 0, 0, &permanentError{err}
	}
	lc := &lineCounter{}
	w := &progressWriter{w: f, prog: prog}
	_, err = io.Copy(io.MultiWriter(w, lc), body)
	size = w.n
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if context.Cause(ctx) == errStalled {
			err = errStalled
		}
		return 0, size, err
	}
	return lc.count(), size, nil
}

// stallReader pushes the stall deadline back on every read that returns
// data.
type stallReader struct {
	r     io.Reader
	timer *time.Timer
	d     time.Duration
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.d)
	}
	return n, err
}

// lineCounter counts non-empty NDJSON lines (a last line without a newline
// counts too).
type lineCounter struct {
	n       int64
	partial bool // the current line has content
}

func (l *lineCounter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if len(bytes.TrimSpace(p)) > 0 {
				l.partial = true
			}
			break
		}
		if l.partial || len(bytes.TrimSpace(p[:i])) > 0 {
			l.n++
		}
		l.partial = false
		p = p[i+1:]
	}
	return total, nil
}

func (l *lineCounter) count() int64 {
	if l.partial {
		return l.n + 1
	}
	return l.n
}

// countFile counts the resources of a saved file.
func countFile(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	lc := &lineCounter{}
	if _, err := io.Copy(lc, f); err != nil {
		return 0, err
	}
	return lc.count(), nil
}

// progress serializes OnDownload calls.
type progress struct {
	fn    func(DownloadProgress)
	total int
	mu    sync.Mutex
	bytes int64
	ndone int
}

func (p *progress) add(n int64) {
	if n == 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += n
	if p.fn != nil {
		p.fn(DownloadProgress{Files: p.total, Done: p.ndone, Bytes: p.bytes})
	}
}

func (p *progress) done(fr *FileResult) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ndone++
	if p.fn != nil {
		cp := *fr
		p.fn(DownloadProgress{Files: p.total, Done: p.ndone, Bytes: p.bytes, File: &cp})
	}
}

type progressWriter struct {
	w    io.Writer
	prog *progress
	n    int64
}

func (pw *progressWriter) Write(p []byte) (int, error) {
	n, err := pw.w.Write(p)
	pw.n += int64(n)
	pw.prog.add(int64(n))
	return n, err
}
