// Package fsobj is the local bulk.ObjectStore: each object is a file under a
// root directory, at the path its key names ("job/Patient.0001.0001.ndjson"
// is root/job/Patient.0001.0001.ndjson).
//
// Uploads go to a temp file next to the target (key + ".tmp-" + random) that
// is renamed into place on Close, so an object appears whole or not at all and
// a retried upload replaces it atomically. Readers hold an open *os.File: on
// POSIX systems a rename over, or an unlink of, the path leaves an open
// download reading the old content to its end (R81).
//
// Keys follow bulk.CheckObjectKey. Because directories stand for key
// prefixes, a key cannot also be the directory of other keys: with "a"
// stored, Create("a/b") fails with ECONFLICT, and so does Close of "a"
// while "a/b" exists. On a case-insensitive file system, keys that differ
// only in case collide.
//
// A Store counts the bytes its objects and uploads in progress hold, and may
// have a budget (SetLimit, `tranche serve --max-output-bytes`): a write that
// would cross it fails with ENOSPACE, as one the disk refuses (ENOSPC, EDQUOT)
// does. The budget counts bytes on disk.
//
// A store may write objects gzip-encoded (SetGzip, `tranche serve
// --gzip-files`), as the S3 store's Options.Gzip does: Open still reads the
// object's own bytes, decompressing them, and a *GzipObject hands the
// stored stream to the download route so that a client accepting gzip gets
// the file as it is on disk (sendfile). Each file's header says how it is
// stored (gzip.go), so files of both kinds can be read whatever the mode.
package fsobj

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/klauspost/compress/gzip"

	"github.com/tranchehq/tranche/internal/bulk"
)

const (
	// bufferSize is the write buffer of each upload: the export path writes
	// one short NDJSON line at a time.
	bufferSize = 256 << 10
	dirPerm    = 0o750
	filePerm   = 0o640
)

// Store is a bulk.ObjectStore on the local file system. It is safe for
// concurrent use.
type Store struct {
	root string
	// used is the bytes of published objects plus those written to
	// uploads in progress; limit is the budget, 0 for none.
	used, limit atomic.Int64
	// gzip makes Create write objects gzip-encoded.
	gzip atomic.Bool
}

var _ bulk.ObjectStore = (*Store)(nil)

// New returns a store of the files under root, creating root (mode 0750) if
// it does not exist.
func New(root string) (*Store, error) {
	if root == "" {
		return nil, bulk.Errorf(bulk.EINVALID, "Object store directory is not set.")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, bulk.Wrapf(err, bulk.EINVALID, "Object store directory %q is invalid.", root)
	}
	if err := os.MkdirAll(abs, dirPerm); err != nil {
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Creating object store directory %q failed.", abs)
	}
	s := &Store{root: abs}
	// Objects an earlier process left count from the start; the temp files
	// of its uploads in progress (killed with kill -9, say) are removed:
	// the store is the process's own (the embedded store's lock), so no
	// upload of this one is running yet.
	var used int64
	err = s.walk(context.Background(), "", func(path, rel string, d fs.DirEntry) error {
		if !d.IsDir() && strings.Contains(d.Name(), bulk.TempKeyMarker) {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return bulk.Wrapf(err, bulk.EINTERNAL, "Removing an unfinished upload failed.")
			}
			return nil
		}
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() && bulk.CheckObjectKey(rel) == nil {
			used += fi.Size()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.used.Store(used)
	return s, nil
}

// SetLimit sets the budget: the most bytes the objects (and uploads in
// progress) may hold. 0 or less is no budget. Objects already stored
// count, so a budget below Usage refuses every write.
func (s *Store) SetLimit(limit int64) { s.limit.Store(max(limit, 0)) }

// SetGzip sets whether objects created from now on are stored
// gzip-encoded. Objects already stored keep their encoding and read the
// same either way.
func (s *Store) SetGzip(on bool) { s.gzip.Store(on) }

// Usage returns the bytes the objects and uploads in progress hold, and the
// budget (0: none).
func (s *Store) Usage() (used, limit int64) { return s.used.Load(), s.limit.Load() }

// DefaultMaxBytes caps DefaultLimit.
const DefaultMaxBytes = 50 << 30

// DefaultLimit is the budget `tranche serve` sets unless told otherwise:
// the smaller of DefaultMaxBytes and half of what the objects may take on
// the root's file system now (its free space plus what they hold already).
// The other half is left to the embedded store and the rest of the disk.
// Where the free space is not known it is DefaultMaxBytes.
func (s *Store) DefaultLimit() int64 {
	free, ok := s.Free()
	if !ok {
		return DefaultMaxBytes
	}
	return max(min(DefaultMaxBytes, (s.used.Load()+free)/2), 1)
}

// Free returns the bytes free for an unprivileged user on the file system
// of the store's root; ok is false where that is not known.
func (s *Store) Free() (free int64, ok bool) { return freeBytes(s.root) }

// reserve counts n more bytes, unless that crosses the budget.
func (s *Store) reserve(n int64) bool {
	used := s.used.Add(n)
	if limit := s.limit.Load(); limit > 0 && used > limit {
		s.used.Add(-n)
		return false
	}
	return true
}

// errNoBudget is the cause of a write the budget refused: the file system
// error a quota would give.
var errNoBudget = fmt.Errorf("output budget (--max-output-bytes) reached: %w", syscall.ENOSPC)

// writeErr translates a write error: the disk or quota is full (ENOSPACE),
// or something else (EINTERNAL).
func writeErr(err error, key string) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return bulk.Wrapf(err, bulk.ENOSPACE, "No space left for export files.")
	}
	return bulk.Wrapf(err, bulk.EINTERNAL, "Writing file %q failed.", key)
}

// Path returns the absolute path of the file that holds key, whether or not
// it exists. Returns EINVALID for an invalid key.
func (s *Store) Path(key string) (string, error) {
	if err := bulk.CheckObjectKey(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// Create starts writing key into a temp file in the key's directory, which it
// creates as needed. Close publishes the object unless ctx is done by then.
// Returns ECONFLICT if a prefix of key is an object.
func (s *Store) Create(ctx context.Context, key string) (_ bulk.ObjectWriter, err error) {
	defer bulk.Wrap(&err, "fsobj.Store.Create(%q)", key)
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	path, err := s.Path(key)
	if err != nil {
		return nil, err
	}
	f, err := createTemp(path)
	if err != nil {
		return nil, err
	}
	w := &writer{s: s, ctx: ctx, key: key, path: path, f: f, buf: bufio.NewWriterSize(&fileSink{f: f}, bufferSize)}
	if s.gzip.Load() {
		w.encode()
	}
	return w, nil
}

// createTemp creates a new temp file for path in path's directory.
func createTemp(path string) (*os.File, error) {
	dir := filepath.Dir(path)
	for attempt := 0; ; attempt++ {
		if err := os.MkdirAll(dir, dirPerm); err != nil {
			if errors.Is(err, syscall.ENOTDIR) {
				return nil, bulk.Wrapf(err, bulk.ECONFLICT, "An object exists where the key needs a directory.")
			}
			return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Creating directory failed.")
		}
		name := path + bulk.TempKeyMarker + strconv.FormatUint(rand.Uint64(), 36)
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, filePerm)
		switch {
		case err == nil:
			return f, nil
		case attempt < 10 && (errors.Is(err, fs.ErrExist) || errors.Is(err, fs.ErrNotExist)):
			// A name clash, or a DeletePrefix removed the directory
			// between MkdirAll and OpenFile: try again.
			continue
		}
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Creating temp file failed.")
	}
}

// Open returns the object's file. Returns ENOTFOUND if it does not exist.
func (s *Store) Open(ctx context.Context, key string) (_ bulk.Object, err error) {
	defer bulk.Wrap(&err, "fsobj.Store.Open(%q)", key)
	if err := ctxErr(ctx); err != nil {
		return nil, err
	}
	path, err := s.Path(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, bulk.Errorf(bulk.ENOTFOUND, "File not found.")
		}
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Opening file failed.")
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Opening file failed.")
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, bulk.Errorf(bulk.ENOTFOUND, "File not found.")
	}
	size, encoded, err := encodedSize(f, fi.Size())
	switch {
	case err != nil:
		f.Close()
		return nil, bulk.Wrapf(err, bulk.EINTERNAL, "Opening file failed.")
	case encoded:
		return &GzipObject{f: f, stored: fi.Size(), size: size, modTime: fi.ModTime()}, nil
	}
	return &Object{f: f, size: fi.Size(), modTime: fi.ModTime()}, nil
}

// List returns the keys under prefix in lexical order. Temp files, of uploads
// in progress or left by a crash, are not listed, nor is any file whose name
// is not a valid key.
func (s *Store) List(ctx context.Context, prefix string) (_ []string, err error) {
	defer bulk.Wrap(&err, "fsobj.Store.List(%q)", prefix)
	var keys []string
	err = s.walk(ctx, prefix, func(_, rel string, d fs.DirEntry) error {
		if d.Type().IsRegular() && bulk.CheckObjectKey(rel) == nil {
			keys = append(keys, rel)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Walk order is not key order: "a/b" is walked before "a.c".
	slices.Sort(keys)
	return keys, nil
}

// DeletePrefix removes every file whose key starts with prefix, including temp
// files (an upload in progress under prefix then fails to Close), and then the
// directories that only held such keys, if they are empty. The root stays. An
// empty prefix is refused with EINVALID so a blank job id never empties the
// store.
func (s *Store) DeletePrefix(ctx context.Context, prefix string) (err error) {
	defer bulk.Wrap(&err, "fsobj.Store.DeletePrefix(%q)", prefix)
	if prefix == "" {
		return bulk.Errorf(bulk.EINVALID, "Refusing to delete with an empty prefix.")
	}
	var dirs []string
	err = s.walk(ctx, prefix, func(path, rel string, d fs.DirEntry) error {
		if d.IsDir() {
			if strings.HasPrefix(rel+"/", prefix) {
				dirs = append(dirs, path)
			}
			return nil
		}
		var size int64 // a published object's; an upload counts its own
		if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() && bulk.CheckObjectKey(rel) == nil {
			size = fi.Size()
		}
		if err := os.Remove(path); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return bulk.Wrapf(err, bulk.EINTERNAL, "Deleting file failed.")
		}
		s.used.Add(-size)
		return nil
	})
	if err != nil {
		return err
	}
	// Parents were walked before their children. A directory that is not
	// empty (an upload started meanwhile) stays, so errors are ignored.
	for _, dir := range slices.Backward(dirs) {
		_ = os.Remove(dir)
	}
	return nil
}

// walk calls fn for every file whose key starts with prefix and for every
// directory that may hold such keys, parents first. rel is the slash-separated
// path relative to the root. Directories that cannot hold such keys are not
// read, and the walk never leaves the root (no symlink is followed).
func (s *Store) walk(ctx context.Context, prefix string, fn func(path, rel string, d fs.DirEntry) error) error {
	err := filepath.WalkDir(s.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if path != s.root && errors.Is(err, fs.ErrNotExist) {
				return nil // deleted meanwhile
			}
			return bulk.Wrapf(err, bulk.EINTERNAL, "Reading object store directory failed.")
		}
		if err := ctxErr(ctx); err != nil {
			return err
		}
		if path == s.root {
			return nil
		}
		rel, err := filepath.Rel(s.root, path)
		if err != nil {
			return bulk.Wrapf(err, bulk.EINTERNAL, "Reading object store directory failed.")
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if dir := rel + "/"; !strings.HasPrefix(dir, prefix) && !strings.HasPrefix(prefix, dir) {
				return fs.SkipDir
			}
			return fn(path, rel, d)
		}
		if !strings.HasPrefix(rel, prefix) {
			return nil
		}
		return fn(path, rel, d)
	})
	return err
}

// writer buffers an upload into its temp file. Like any io.Writer it is not
// safe for concurrent use.
type writer struct {
	s    *Store
	ctx  context.Context
	key  string
	path string // the object's path; the temp file is f.Name()
	f    *os.File
	buf  *bufio.Writer
	// out takes the object's bytes once their encoding is chosen: gz, or
	// disk{w} as they are. Until then (identity, fewer than sigLen bytes
	// written) they are held in head.
	out   io.Writer
	gz    *gzip.Writer
	head  [sigLen]byte
	headN int
	size  int64 // the object's bytes written
	n     int64 // bytes for the file, counted in s.used
	state writerState
}

// fileSink is the temp file under a writer's buffer. It starts the
// kernel's writeback every writebackEvery bytes, so that the disk writes a
// large file while the export goes on: otherwise (the dirty-page
// thresholds are far above an export's files) all of it is written during
// Close's fsync, and the export item waits for that.
type fileSink struct {
	f                *os.File
	written, started int64 // bytes written; bytes whose writeback has started
}

const writebackEvery = 8 << 20

func (s *fileSink) Write(p []byte) (int, error) {
	n, err := s.f.Write(p)
	s.written += int64(n)
	if s.written-s.started >= writebackEvery {
		startWriteback(s.f, s.started, s.written-s.started)
		s.started = s.written
	}
	return n, err
}

// disk is a writer's file side: what reaches it is what the file will
// hold, so it is what the budget counts.
type disk struct{ w *writer }

func (d disk) Write(p []byte) (int, error) {
	if !d.w.s.reserve(int64(len(p))) {
		return 0, errNoBudget
	}
	d.w.n += int64(len(p))
	return d.w.buf.Write(p)
}

type writerState int

const (
	writing writerState = iota
	closed
	aborted
)

func (w *writer) Write(p []byte) (int, error) {
	if w.state != writing {
		return 0, errWriterDone(w.key)
	}
	var n int
	var err error
	if w.out == nil {
		n, err = w.sniff(p)
	} else {
		n, err = w.out.Write(p)
	}
	w.size += int64(n)
	if err != nil {
		return n, writeErr(err, w.key)
	}
	return n, nil
}

// sniff holds an identity object's first sigLen bytes, counted as they
// come, until it can tell whether they look like an encoded object's
// header (which Open would take them for); then choose decides.
func (w *writer) sniff(p []byte) (int, error) {
	k := min(len(p), sigLen-w.headN)
	if !w.s.reserve(int64(k)) {
		return 0, errNoBudget
	}
	w.n += int64(k)
	w.headN += copy(w.head[w.headN:], p[:k])
	if w.headN < sigLen {
		return k, nil
	}
	if err := w.choose(); err != nil {
		return k, err
	}
	n, err := w.out.Write(p[k:])
	return k + n, err
}

// choose sets the encoding of an identity object from its head: as it
// is, unless it begins like an encoded object, which is then stored
// encoded so that it reads back as written.
func (w *writer) choose() error {
	head := w.head[:w.headN]
	if !looksEncoded(head) {
		w.out = disk{w}
		_, err := w.buf.Write(head) // counted by sniff
		return err
	}
	// Encoded, the file holds the compressed bytes: the encoder counts
	// those.
	w.s.used.Add(-int64(len(head)))
	w.n -= int64(len(head))
	w.encode()
	_, err := w.gz.Write(head)
	return err
}

// encode makes the writer store the object gzip-encoded.
func (w *writer) encode() {
	w.gz = newGzip(disk{w})
	w.out = w.gz
}

// flush writes everything held to the temp file: the head of a short
// identity object, or the encoder's last block, its trailer and the
// header's size field.
func (w *writer) flush() error {
	if w.out == nil {
		if err := w.choose(); err != nil {
			return err
		}
	}
	if w.gz != nil {
		if err := w.gz.Close(); err != nil {
			return err
		}
	}
	if err := w.buf.Flush(); err != nil {
		return err
	}
	if w.gz != nil {
		return patchSize(w.f, w.size)
	}
	return nil
}

// release returns the encoder to the pool, without the writer it points
// at.
func (w *writer) release() {
	if w.gz != nil {
		w.gz.Reset(io.Discard)
		gzipWriters.Put(w.gz)
		w.gz, w.out = nil, nil
	}
}

// Close flushes and syncs the temp file and renames it over the object's
// path. On any error the temp file is removed and nothing is published.
func (w *writer) Close() (err error) {
	defer bulk.Wrap(&err, "fsobj.Store: Close(%q)", w.key)
	if w.state != writing {
		return errWriterDone(w.key)
	}
	w.state = aborted // until the rename succeeds
	tmp := w.f.Name()
	defer func() {
		w.release()
		w.buf = nil
		if err != nil {
			os.Remove(tmp)
			w.s.used.Add(-w.n)
		}
	}()
	if err := w.flush(); err != nil {
		w.f.Close()
		return writeErr(err, w.key)
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return writeErr(err, w.key)
	}
	if err := w.f.Close(); err != nil {
		return writeErr(err, w.key)
	}
	if err := ctxErr(w.ctx); err != nil {
		return err
	}
	var replaced int64 // the size of the object this one replaces
	if fi, err := os.Lstat(w.path); err == nil && fi.IsDir() {
		return bulk.Errorf(bulk.ECONFLICT, "A directory of other objects exists at the key.")
	} else if err == nil && fi.Mode().IsRegular() {
		replaced = fi.Size()
	}
	if err := os.Rename(tmp, w.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return bulk.Wrapf(err, bulk.ECONFLICT, "The object was deleted while being written.")
		}
		return bulk.Wrapf(err, bulk.EINTERNAL, "Publishing file failed.")
	}
	w.s.used.Add(-replaced)
	w.state = closed
	syncDir(filepath.Dir(w.path))
	return nil
}

// Abort removes the temp file. After Close it does nothing.
func (w *writer) Abort() (err error) {
	if w.state != writing {
		return nil
	}
	defer bulk.Wrap(&err, "fsobj.Store: Abort(%q)", w.key)
	w.state, w.buf = aborted, nil
	w.release()
	w.s.used.Add(-w.n)
	cerr := w.f.Close()
	if err := os.Remove(w.f.Name()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return bulk.Wrapf(err, bulk.EINTERNAL, "Removing temp file failed.")
	}
	if cerr != nil {
		return bulk.Wrapf(cerr, bulk.EINTERNAL, "Closing temp file failed.")
	}
	return nil
}

func errWriterDone(key string) error {
	return bulk.Wrapf(fs.ErrClosed, bulk.EINTERNAL, "Object writer for %q is closed.", key)
}

// syncDir makes a rename in dir durable. It is best effort: the rename has
// happened and the object is visible whatever it returns.
func syncDir(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	_ = d.Sync()
	d.Close()
}

// Object is an open object stored as it is: its file, opened by
// Store.Open. File gives the *os.File to http.ServeContent, which then
// uses sendfile.
type Object struct {
	f       *os.File
	size    int64
	modTime time.Time
}

var _ bulk.Object = (*Object)(nil)

// Read reads from the file.
func (o *Object) Read(p []byte) (int, error) { return o.f.Read(p) }

// Seek sets the offset of the next Read.
func (o *Object) Seek(offset int64, whence int) (int64, error) { return o.f.Seek(offset, whence) }

// Close closes the file.
func (o *Object) Close() error { return o.f.Close() }

// Size returns the object's size in bytes. An object never changes once
// published, so it is the file's size when opened.
func (o *Object) Size() int64 { return o.size }

// ModTime returns when the object was written.
func (o *Object) ModTime() time.Time { return o.modTime }

// File returns the open file. Closing the Object closes it.
func (o *Object) File() *os.File { return o.f }

// ctxErr returns an ETRANSIENT error wrapping ctx.Err() once ctx is done.
func ctxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return bulk.Wrapf(err, bulk.ETRANSIENT, "Request cancelled.")
	}
	return nil
}
