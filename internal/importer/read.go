package importer

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
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

// listFiles expands paths into the files to read, before anything is
// imported, so that a mistyped path fails the import up front.
func listFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, bulk.Wrapf(err, bulk.EINVALID, "Cannot read %s.", p)
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		// WalkDir visits in lexical order, so imports are repeatable.
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !isDataFile(path) {
				return nil
			}
			if d.Type()&fs.ModeSymlink != 0 {
				// Follow links to files; links to directories are not walked.
				fi, err := os.Stat(path)
				if err != nil || !fi.Mode().IsRegular() {
					return nil
				}
			} else if !d.Type().IsRegular() {
				return nil
			}
			files = append(files, path)
			return nil
		})
		if err != nil {
			return nil, bulk.Wrapf(err, bulk.EINVALID, "Cannot read %s.", p)
		}
	}
	return files, nil
}

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

// readFile imports one file. Only an open error or a store error is
// returned; a file that breaks off (a truncated .gz) is a line error at the
// line where it broke.
func (im *importer) readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return bulk.Wrapf(err, bulk.EINVALID, "Cannot read %s.", path)
	}
	defer f.Close()
	br := bufio.NewReaderSize(countingReader{f, &im.progress.BytesRead}, readBufferSize)
	var r io.Reader = br
	// Gzip is recognized by its magic number, whatever the file is called.
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			im.lineError(loc{file: path, line: 1, entry: -1}, "gzip: %v", err)
			return nil
		}
		defer zr.Close()
		r = bufio.NewReaderSize(zr, readBufferSize)
	}
	if isDocumentFile(path) {
		return im.readDocument(path, r)
	}
	return im.readNDJSON(path, bufio.NewReaderSize(r, readBufferSize))
}

// readNDJSON imports a file line by line.
func (im *importer) readNDJSON(path string, r *bufio.Reader) error {
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
			if err := im.line(loc{file: path, line: n, entry: -1}, line); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		} else if err != nil {
			im.lineError(loc{file: path, line: n, entry: -1}, "read: %v", err)
			return nil
		}
		if n%4096 == 0 {
			if err := im.ctx.Err(); err != nil {
				return err
			}
		}
	}
}

// readDocument imports a file that holds one JSON value: a resource or a
// Bundle, often pretty-printed. A .json file that turns out to be NDJSON is
// read as NDJSON.
func (im *importer) readDocument(path string, r io.Reader) error {
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
		return im.document(at, doc, true)
	}
	if first, _, _ := bytes.Cut(doc, []byte{'\n'}); gjson.ValidBytes(first) {
		return im.readNDJSON(path, bufio.NewReader(bytes.NewReader(data)))
	}
	im.lineError(at, "invalid JSON")
	return nil
}
