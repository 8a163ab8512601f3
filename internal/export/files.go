package export

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/tranchehq/tranche/internal/bulk"
)

// fileSet writes one work item's NDJSON files: one open file per resource
// type (R59), rolled at MaxFileResources or MaxFileBytes. A file is created
// on its first resource, so no file is ever empty (R60).
type fileSet struct {
	ctx      context.Context
	store    bulk.ObjectStore
	maxRes   int64
	maxBytes int64
	pattern  string // fmt pattern with %s (type) and %03d (sequence)
	open     map[string]*openFile
	seq      map[string]int
	closed   []bulk.OutputFile
}

type openFile struct {
	w    bulk.ObjectWriter
	meta bulk.OutputFile
}

var newline = []byte{'\n'}

func newFileSet(ctx context.Context, store bulk.ObjectStore, cfg Config, pattern string) *fileSet {
	return &fileSet{ctx: ctx, store: store, maxRes: cfg.MaxFileResources, maxBytes: cfg.MaxFileBytes,
		pattern: pattern, open: map[string]*openFile{}, seq: map[string]int{}}
}

// write appends one resource line. body is copied to the writer before
// write returns, so callers may pass bytes that are only valid for the call.
func (fs *fileSet) write(kind bulk.FileKind, typ string, body []byte) error {
	f := fs.open[typ]
	if f != nil && (f.meta.Count >= fs.maxRes || f.meta.Bytes+int64(len(body))+1 > fs.maxBytes) {
		if err := fs.finish(typ, f); err != nil {
			return err
		}
		f = nil
	}
	if f == nil {
		name := typ
		if kind != bulk.KindOutput {
			name = string(kind) + "-" + typ
		}
		key := fmt.Sprintf(fs.pattern, name, fs.seq[typ])
		fs.seq[typ]++
		w, err := fs.store.Create(fs.ctx, key)
		if err != nil {
			return err
		}
		f = &openFile{w: w, meta: bulk.OutputFile{Kind: kind, Type: typ, Key: key}}
		fs.open[typ] = f
	}
	if _, err := f.w.Write(body); err != nil {
		return err
	}
	if _, err := f.w.Write(newline); err != nil {
		return err
	}
	f.meta.Count++
	f.meta.Bytes += int64(len(body)) + 1
	return nil
}

func (fs *fileSet) finish(typ string, f *openFile) error {
	delete(fs.open, typ)
	if err := f.w.Close(); err != nil {
		return err
	}
	fs.closed = append(fs.closed, f.meta)
	return nil
}

// close finishes every open file and returns all files written, in key
// order.
func (fs *fileSet) close() ([]bulk.OutputFile, error) {
	var errs []error
	for typ, f := range fs.open {
		errs = append(errs, fs.finish(typ, f))
	}
	if err := errors.Join(errs...); err != nil {
		fs.abort()
		return nil, err
	}
	sortFiles(fs.closed)
	return fs.closed, nil
}

// abort discards open files. Closed ones stay: they have deterministic names
// that the retry overwrites.
func (fs *fileSet) abort() {
	for typ, f := range fs.open {
		_ = f.w.Abort()
		delete(fs.open, typ)
	}
}

func sortFiles(fs []bulk.OutputFile) {
	slices.SortFunc(fs, func(a, b bulk.OutputFile) int { return strings.Compare(a.Key, b.Key) })
}
