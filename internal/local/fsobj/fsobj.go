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
// Keys follow mem.CheckKey. Because directories stand for key prefixes, a key
// cannot also be the directory of other keys: with "a" stored, Create("a/b")
// fails with ECONFLICT, and so does Close of "a" while "a/b" exists. On a
// case-insensitive file system, keys that differ only in case collide.
package fsobj

import (
	"bufio"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/mem"
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
	return &Store{root: abs}, nil
}

// Path returns the absolute path of the file that holds key, whether or not
// it exists. Returns EINVALID for an invalid key.
func (s *Store) Path(key string) (string, error) {
	if err := mem.CheckKey(key); err != nil {
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
	return &writer{ctx: ctx, key: key, path: path, f: f, buf: bufio.NewWriterSize(f, bufferSize)}, nil
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
		name := path + mem.TempKeyMarker + strconv.FormatUint(rand.Uint64(), 36)
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
	return &Object{f: f, size: fi.Size(), modTime: fi.ModTime()}, nil
}

// List returns the keys under prefix in lexical order. Temp files, of uploads
// in progress or left by a crash, are not listed, nor is any file whose name
// is not a valid key.
func (s *Store) List(ctx context.Context, prefix string) (_ []string, err error) {
	defer bulk.Wrap(&err, "fsobj.Store.List(%q)", prefix)
	var keys []string
	err = s.walk(ctx, prefix, func(_, rel string, d fs.DirEntry) error {
		if d.Type().IsRegular() && mem.CheckKey(rel) == nil {
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
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return bulk.Wrapf(err, bulk.EINTERNAL, "Deleting file failed.")
		}
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
	ctx   context.Context
	key   string
	path  string // the object's path; the temp file is f.Name()
	f     *os.File
	buf   *bufio.Writer
	state writerState
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
	n, err := w.buf.Write(p)
	if err != nil {
		return n, bulk.Wrapf(err, bulk.EINTERNAL, "Writing file %q failed.", w.key)
	}
	return n, nil
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
		w.buf = nil
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := w.buf.Flush(); err != nil {
		w.f.Close()
		return bulk.Wrapf(err, bulk.EINTERNAL, "Writing file failed.")
	}
	if err := w.f.Sync(); err != nil {
		w.f.Close()
		return bulk.Wrapf(err, bulk.EINTERNAL, "Writing file failed.")
	}
	if err := w.f.Close(); err != nil {
		return bulk.Wrapf(err, bulk.EINTERNAL, "Writing file failed.")
	}
	if err := ctxErr(w.ctx); err != nil {
		return err
	}
	if fi, err := os.Lstat(w.path); err == nil && fi.IsDir() {
		return bulk.Errorf(bulk.ECONFLICT, "A directory of other objects exists at the key.")
	}
	if err := os.Rename(tmp, w.path); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return bulk.Wrapf(err, bulk.ECONFLICT, "The object was deleted while being written.")
		}
		return bulk.Wrapf(err, bulk.EINTERNAL, "Publishing file failed.")
	}
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

// Object is an open object: its file, opened by Store.Open. File gives
// the *os.File to http.ServeContent, which then uses sendfile.
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
