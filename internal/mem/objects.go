package mem

import (
	"bytes"
	"context"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// ObjectStore is an in-memory bulk.ObjectStore for unit tests. Objects are
// immutable byte slices: replacing or deleting a key never changes what an
// open Object reads. It is safe for concurrent use.
type ObjectStore struct {
	mu      sync.RWMutex
	objects map[string]storedObject
}

var _ bulk.ObjectStore = (*ObjectStore)(nil)

type storedObject struct {
	data    []byte
	modTime time.Time
}

// NewObjectStore returns an empty in-memory object store.
func NewObjectStore() *ObjectStore {
	return &ObjectStore{objects: make(map[string]storedObject)}
}

// Create starts objWriting key. Nothing is visible until Close returns nil.
// Close fails, and publishes nothing, if ctx is done by then.
func (s *ObjectStore) Create(ctx context.Context, key string) (_ bulk.ObjectWriter, err error) {
	defer bulk.Wrap(&err, "mem.ObjectStore.Create(%q)", key)
	if err := objectCtxErr(ctx); err != nil {
		return nil, err
	}
	if err := bulk.CheckObjectKey(key); err != nil {
		return nil, err
	}
	return &objectWriter{ctx: ctx, store: s, key: key}, nil
}

// Open returns the current content of key. Returns ENOTFOUND if it does not
// exist.
func (s *ObjectStore) Open(ctx context.Context, key string) (_ bulk.Object, err error) {
	defer bulk.Wrap(&err, "mem.ObjectStore.Open(%q)", key)
	if err := objectCtxErr(ctx); err != nil {
		return nil, err
	}
	if err := bulk.CheckObjectKey(key); err != nil {
		return nil, err
	}
	s.mu.RLock()
	o, ok := s.objects[key]
	s.mu.RUnlock()
	if !ok {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "File not found.")
	}
	return &objectReader{r: bytes.NewReader(o.data), size: int64(len(o.data)), modTime: o.modTime}, nil
}

// DeletePrefix removes every object whose key starts with prefix. An empty
// prefix is refused with EINVALID so that a blank job id never empties the
// store.
func (s *ObjectStore) DeletePrefix(ctx context.Context, prefix string) (err error) {
	defer bulk.Wrap(&err, "mem.ObjectStore.DeletePrefix(%q)", prefix)
	if err := objectCtxErr(ctx); err != nil {
		return err
	}
	if prefix == "" {
		return bulk.Errorf(bulk.EINVALID, "Refusing to delete with an empty prefix.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.objects {
		if strings.HasPrefix(k, prefix) {
			delete(s.objects, k)
		}
	}
	return nil
}

// List returns the keys that start with prefix, in lexical order.
func (s *ObjectStore) List(ctx context.Context, prefix string) (_ []string, err error) {
	defer bulk.Wrap(&err, "mem.ObjectStore.List(%q)", prefix)
	if err := objectCtxErr(ctx); err != nil {
		return nil, err
	}
	s.mu.RLock()
	var keys []string
	for k := range s.objects {
		if strings.HasPrefix(k, prefix) {
			keys = append(keys, k)
		}
	}
	s.mu.RUnlock()
	slices.Sort(keys)
	return keys, nil
}

// objectWriter buffers an object until Close. It is not safe for concurrent
// use, like any io.Writer.
type objectWriter struct {
	ctx   context.Context
	store *ObjectStore
	key   string
	buf   []byte
	state objectWriterState
}

type objectWriterState int

const (
	objWriting objectWriterState = iota
	objClosed
	objAborted
)

func (w *objectWriter) Write(p []byte) (int, error) {
	if w.state != objWriting {
		return 0, errObjectWriterDone(w.key)
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// Close publishes the object, replacing any earlier one with the same key.
func (w *objectWriter) Close() (err error) {
	defer bulk.Wrap(&err, "mem.ObjectStore: Close(%q)", w.key)
	if w.state != objWriting {
		return errObjectWriterDone(w.key)
	}
	if err := objectCtxErr(w.ctx); err != nil {
		w.state, w.buf = objAborted, nil
		return err
	}
	w.state = objClosed
	o := storedObject{data: w.buf, modTime: time.Now()}
	w.buf = nil
	w.store.mu.Lock()
	w.store.objects[w.key] = o
	w.store.mu.Unlock()
	return nil
}

// Abort discards the object. After Close it does nothing.
func (w *objectWriter) Abort() error {
	if w.state == objWriting {
		w.state, w.buf = objAborted, nil
	}
	return nil
}

func errObjectWriterDone(key string) error {
	return bulk.Wrapf(fs.ErrClosed, bulk.EINTERNAL, "Object writer for %q is closed.", key)
}

// objectReader reads an immutable snapshot of an object's bytes.
type objectReader struct {
	r       *bytes.Reader
	size    int64
	modTime time.Time
	closed  bool
}

func (o *objectReader) Read(p []byte) (int, error) {
	if o.closed {
		return 0, fs.ErrClosed
	}
	return o.r.Read(p)
}

func (o *objectReader) Seek(offset int64, whence int) (int64, error) {
	if o.closed {
		return 0, fs.ErrClosed
	}
	return o.r.Seek(offset, whence)
}

func (o *objectReader) Close() error {
	if o.closed {
		return fs.ErrClosed
	}
	o.closed = true
	return nil
}

func (o *objectReader) Size() int64        { return o.size }
func (o *objectReader) ModTime() time.Time { return o.modTime }

// objectCtxErr returns an ETRANSIENT error wrapping ctx.Err() once ctx is done.
func objectCtxErr(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return bulk.Wrapf(err, bulk.ETRANSIENT, "Request cancelled.")
	}
	return nil
}
