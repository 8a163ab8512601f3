package importer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/tidwall/gjson"

	"github.com/tranchehq/tranche/internal/bulk"
)

// readBufferSize is the size of the read buffers. Large buffers cut the
// number of read calls; lines longer than this still work.
const readBufferSize = 1 << 20

// utf8BOM starts files written by some Windows tools; JSON has no place for
// it (RFC 8259 section 8.1), so it is dropped.
var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// isDataFile reports whether a file found in a directory is one to import.
func isDataFile(path string) bool {
	name := strings.ToLower(strings.TrimSuffix(strings.ToLower(path), ".gz"))
	return strings.HasSuffix(name, ".ndjson") || strings.HasSuffix(name, ".json")
}

// isDocumentFile reports whether a file holds one JSON document rather than
// NDJSON, going by its name.
func isDocumentFile(path string) bool {
	return strings.HasSuffix(strings.TrimSuffix(strings.ToLower(path), ".gz"), ".json")
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n *int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}

// readInput imports one file. Only a local file that cannot be opened or
// a store error is returned; a file that breaks off (a truncated .gz), is
// not what its name says or cannot be fetched is reported and skipped.
func (im *importer) readInput(in input) error {
	im.depth++
	defer func() { im.depth-- }()
	rc, err := im.open(in)
	if err != nil || rc == nil {
		return err
	}
	defer rc.Close()
	br := bufio.NewReaderSize(countingReader{rc, &im.progress.BytesRead}, readBufferSize)
	var r io.Reader = br
	// Gzip is recognized by its magic number, whatever the file is called.
	magic, _ := br.Peek(2)
	switch {
	case len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(br)
		if err != nil {
			im.lineError(loc{file: in.name, line: 1, entry: -1}, "gzip: %v", err)
			return nil
		}
		defer zr.Close()
		r = bufio.NewReaderSize(zr, readBufferSize)
	case in.path != "" && len(magic) > 0 && strings.HasSuffix(strings.ToLower(in.path), ".gz"):
		// Plain JSON under a .gz name is read as it is; anything else
		// would only be "invalid JSON" line after line. Not for fetched
		// files: HTTP clients decode Content-Encoding.
		head, _ := br.Peek(16)
		if first := bytes.TrimLeft(bytes.TrimPrefix(head, utf8BOM), " \t\r\n"); len(first) == 0 || (first[0] != '{' && first[0] != '[') {
			im.fileError(in.name, "not gzip-compressed, though its name ends in .gz (it starts with %q): a download that failed, or a file renamed by mistake?", head)
			return nil
		}
	}
	if in.document {
		return im.readDocument(in, r)
	}
	return im.readNDJSON(in.name, bufio.NewReaderSize(r, readBufferSize))
}

// open opens a local file, or fetches a remote one: nil, nil when the
// fetch failed, which is reported.
func (im *importer) open(in input) (io.ReadCloser, error) {
	if in.path != "" {
		f, err := os.Open(in.path)
		if err != nil {
			return nil, bulk.Errorf(bulk.EINVALID, "Cannot read %s: %v.", in.path, pathErr(err))
		}
		return f, nil
	}
	req, err := http.NewRequestWithContext(im.ctx, http.MethodGet, in.url, nil)
	if err != nil {
		im.fileError(in.name, "cannot fetch: %v", err)
		return nil, nil
	}
	req.Header.Set("Accept", "application/fhir+ndjson")
	hc := im.opts.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		if cerr := im.ctx.Err(); cerr != nil {
			return nil, cerr
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is named already, without its query
		}
		im.fileError(in.name, "cannot fetch: %v", err)
		return nil, nil
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		why := ""
		switch res.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			why = ": the server wants an access token; download the export with `tranche export` and import its directory"
		case http.StatusNotFound, http.StatusGone:
			why = ": export files expire; run the export again"
		}
		im.fileError(in.name, "cannot fetch: HTTP %d%s", res.StatusCode, why)
		return nil, nil
	}
	return res.Body, nil
}

// readNDJSON imports a file line by line. A read error is the file's last
// line's error, not the import's.
func (im *importer) readNDJSON(path string, r *bufio.Reader) error {
	var stop error
	n, err := Lines(r, func(n int, line []byte) error {
		if err := im.ndjsonLine(loc{file: path, line: n, entry: -1}, line); err != nil {
			stop = err
			return err
		}
		if n%4096 == 0 {
			if err := im.ctx.Err(); err != nil {
				stop = err
				return err
			}
		}
		return nil
	})
	if stop != nil {
		return stop
	}
	if err != nil {
		im.lineError(loc{file: path, line: n, entry: -1}, "read: %v", err)
	}
	return nil
}

// Lines calls fn with each line of r, numbered from 1 (a blank line too,
// as "\n"; not the nothing after a last newline), its newline kept and
// the first line's UTF-8 byte order mark dropped; a line longer than r's
// buffer comes whole. It stops at fn's first error, and at a read error
// (not io.EOF), which it returns with the number of the line it was
// reading. The line is valid only during the call. It is how import reads
// NDJSON, and the bench's floor with it.
func Lines(r *bufio.Reader, fn func(n int, line []byte) error) (int, error) {
	var long []byte // holds lines longer than r's buffer
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if n == 1 {
			line = bytes.TrimPrefix(line, utf8BOM)
		}
		if len(line) > 0 && (err == nil || err == io.EOF) {
			if err := fn(n, line); err != nil {
				return n, err
			}
		}
		if err == io.EOF {
			return n, nil
		} else if err != nil {
			return n, err
		}
	}
}

// ndjsonLine imports one line of an NDJSON file, a unit: skipped when it
// was stored before Options.Resume, not started once Options.Stop says so.
func (im *importer) ndjsonLine(at loc, line []byte) error {
	switch {
	case im.resumed():
	case im.depth == 1 && im.stopping():
		return ErrStopped
	default:
		if err := im.line(at, line); err != nil {
			return err
		}
	}
	im.unitDone()
	return nil
}

// readDocument imports a file that holds one JSON value: a resource or a
// Bundle, often pretty-printed, or a fetched manifest. A .json file that
// turns out to be NDJSON is read as NDJSON.
func (im *importer) readDocument(in input, r io.Reader) error {
	path := in.name
	data, err := io.ReadAll(r)
	if err != nil {
		im.lineError(loc{file: path, line: 1 + bytes.Count(data, []byte{'\n'}), entry: -1}, "read: %v", err)
		return nil
	}
	data = bytes.TrimPrefix(data, utf8BOM)
	doc := bytes.TrimSpace(data)
	if len(doc) == 0 {
		return nil
	}
	// Line numbers count from the start of the file.
	at := loc{file: path, line: 1 + bytes.Count(data[:len(data)-len(bytes.TrimLeft(data, " \t\r\n"))], []byte{'\n'}), entry: -1}
	if gjson.ValidBytes(doc) {
		if doc[0] == '{' && !gjson.GetBytes(doc, "resourceType").Exists() {
			if m := parseManifest(doc); m != nil && in.url != "" {
				return im.readRemoteManifest(in, m) // local ones are listed up front
			}
			im.skip(path, "not FHIR: a JSON object without resourceType")
			return nil
		}
		return im.document(at, doc, true)
	}
	if first, _, _ := bytes.Cut(doc, []byte{'\n'}); gjson.ValidBytes(first) {
		return im.readNDJSON(path, bufio.NewReader(bytes.NewReader(data)))
	}
	im.lineError(at, "invalid JSON")
	return nil
}
