package export

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/tranchehq/tranche/internal/bulk"
)

// fileSet writes one work item's NDJSON files: one open file per resource
// type (R59), rolled at MaxFileResources or MaxFileBytes. A file is created
// on its first resource, so no file is ever empty (R60). Organized output
// (organizeOutputBy=Patient) goes through beginBlock, blockLine and
// endBlock into files of type "" instead.
type fileSet struct {
	ctx      context.Context
	store    bulk.ObjectStore
	maxRes   int64
	maxBytes int64
	pattern  string // fmt pattern with %s (type) and %03d (sequence)
	open     map[string]*openFile
	seq      map[string]int

	// Files finish closes in the background; close and abort wait for
	// them. mu guards closed and closeErr, the first such Close's error.
	closing  sync.WaitGroup
	mu       sync.Mutex
	closed   []bulk.OutputFile
	closeErr error

	// The Patient block being written: its header line, and its lines
	// until it is known where the block goes.
	header   []byte
	pending  [][]byte
	pendSize int64
	spilling bool // the block is larger than a file: written as it comes
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
		var err error
		if f, err = fs.create(kind, typ); err != nil {
			return err
		}
	}
	return f.put(body)
}

// nextKey is the key the next file of typ will get.
func (fs *fileSet) nextKey(kind bulk.FileKind, typ string) string {
	name := typ
	switch {
	case kind != bulk.KindOutput:
		name = string(kind) + "-" + typ
	case typ == "":
		name = "Patient-blocks"
	}
	return fmt.Sprintf(fs.pattern, name, fs.seq[typ])
}

// create opens the next file of typ.
func (fs *fileSet) create(kind bulk.FileKind, typ string) (*openFile, error) {
	key := fs.nextKey(kind, typ)
	fs.seq[typ]++
	w, err := fs.store.Create(fs.ctx, key)
	if err != nil {
		return nil, err
	}
	f := &openFile{w: w, meta: bulk.OutputFile{Kind: kind, Type: typ, Key: key}}
	fs.open[typ] = f
	return f, nil
}

func (f *openFile) put(body []byte) error {
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

// fits reports whether n more lines of size bytes (newlines included) fit
// in f.
func (fs *fileSet) fits(f *openFile, n, size int64) bool {
	return f.meta.Count+n <= fs.maxRes && f.meta.Bytes+size <= fs.maxBytes
}

// beginBlock starts a Patient block of organized output (requirements 5.7):
// header is its Parameters line. A block with no lines is not written.
func (fs *fileSet) beginBlock(header []byte) {
	fs.header = header
	fs.pending, fs.pendSize, fs.spilling = fs.pending[:0], 0, false
}

// blockLine adds a resource to the current block. Lines are held until the
// block ends, so that a block that fits in a file is never split (R92:
// blocks SHOULD NOT span files); one larger than a file is written as it
// comes, split over files that each repeat the header and are linked by
// ContinuesIn. body is copied.
func (fs *fileSet) blockLine(body []byte) error {
	if fs.spilling {
		return fs.spill(body)
	}
	fs.pending = append(fs.pending, slices.Clone(body))
	fs.pendSize += int64(len(body)) + 1
	if int64(len(fs.pending))+1 <= fs.maxRes && fs.pendSize+int64(len(fs.header))+1 <= fs.maxBytes {
		return nil
	}
	// Larger than a file: start it in a fresh one and stream the rest.
	if f := fs.open[""]; f != nil {
		if err := fs.finish("", f); err != nil {
			return err
		}
	}
	fs.spilling = true
	for _, l := range fs.pending {
		if err := fs.spill(l); err != nil {
			return err
		}
	}
	fs.pending, fs.pendSize = fs.pending[:0], 0
	return nil
}

// spill writes one line of a block that spans files.
func (fs *fileSet) spill(body []byte) error {
	f := fs.open[""]
	if f != nil && f.meta.Count > 1 && !fs.fits(f, 1, int64(len(body))+1) {
		// Continue the block in the next file, which repeats the header.
		f.meta.ContinuesIn = fs.nextKey(bulk.KindOutput, "")
		if err := fs.finish("", f); err != nil {
			return err
		}
		f = nil
	}
	if f == nil {
		var err error
		if f, err = fs.create(bulk.KindOutput, ""); err != nil {
			return err
		}
		if err := f.put(fs.header); err != nil {
			return err
		}
	}
	return f.put(body)
}

// endBlock writes the held lines of the current block: after the blocks
// already in the open file if they fit, or else at the top of a new file.
func (fs *fileSet) endBlock() error {
	defer func() { fs.pending, fs.pendSize, fs.spilling = fs.pending[:0], 0, false }()
	if fs.spilling || len(fs.pending) == 0 {
		return nil
	}
	f := fs.open[""]
	if f != nil && !fs.fits(f, int64(len(fs.pending))+1, fs.pendSize+int64(len(fs.header))+1) {
		if err := fs.finish("", f); err != nil {
			return err
		}
		f = nil
	}
	if f == nil {
		var err error
		if f, err = fs.create(bulk.KindOutput, ""); err != nil {
			return err
		}
	}
	if err := f.put(fs.header); err != nil {
		return err
	}
	for _, l := range fs.pending {
		if err := f.put(l); err != nil {
			return err
		}
	}
	return nil
}

// finish closes f in the background: a Close syncs the file to disk, which
// takes milliseconds (more for a large file) that the item's next writes,
// or the other files' Closes, overlap. It returns the error of an earlier
// background Close, if any, so that a failing item stops soon.
func (fs *fileSet) finish(typ string, f *openFile) error {
	delete(fs.open, typ)
	fs.closing.Add(1)
	go func() {
		defer fs.closing.Done()
		err := f.w.Close()
		fs.mu.Lock()
		defer fs.mu.Unlock()
		if err != nil {
			fs.closeErr = cmp.Or(fs.closeErr, err)
			return
		}
		fs.closed = append(fs.closed, f.meta)
	}()
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return fs.closeErr
}

// close finishes every open file and returns all files written, in key
// order, once they are all closed.
func (fs *fileSet) close() ([]bulk.OutputFile, error) {
	for typ, f := range fs.open {
		_ = fs.finish(typ, f) // its error is closeErr, below
	}
	fs.closing.Wait()
	if fs.closeErr != nil {
		return nil, fs.closeErr
	}
	sortFiles(fs.closed)
	return fs.closed, nil
}

// abort discards open files and waits for those being closed, so that no
// file is published after the item returns (a cancelled job's files are
// deleted then). Closed ones stay: they have deterministic names that the
// retry overwrites.
func (fs *fileSet) abort() {
	for typ, f := range fs.open {
		_ = f.w.Abort()
		delete(fs.open, typ)
	}
	fs.closing.Wait()
}

func sortFiles(fs []bulk.OutputFile) {
	slices.SortFunc(fs, func(a, b bulk.OutputFile) int { return strings.Compare(a.Key, b.Key) })
}
