package fsobj_test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/local/fsobj"
)

// TestStoreGzip runs the contract suite with objects stored gzip-encoded.
func TestStoreGzip(t *testing.T) {
	bulktest.RunObjectStoreTests(t, func(t *testing.T) bulk.ObjectStore {
		return newGzipStore(t, t.TempDir())
	})
}

func newGzipStore(t *testing.T, root string) *fsobj.Store {
	t.Helper()
	s := newStore(t, root)
	s.SetGzip(true)
	return s
}

// ndjson is compressible NDJSON of about 1 MB.
func ndjson() []byte {
	var b bytes.Buffer
	for i := range 10000 {
		fmt.Fprintf(&b, `{"resourceType":"Observation","id":"obs-%d","status":"final","subject":{"reference":"Patient/p-%d"}}`+"\n", i, i%97)
	}
	return b.Bytes()
}

// TestGzipOnDisk: a gzip-encoded object's file is a gzip stream of its
// bytes that any gzip reader decodes; the budget counts the file, and
// Open returns a *GzipObject of the uncompressed size whose GzipFile is
// that stream.
func TestGzipOnDisk(t *testing.T) {
	root := t.TempDir()
	s := newGzipStore(t, root)
	data := ndjson()
	const key = "job/Observation.000.ndjson"
	put(t, s, key, string(data))

	raw, err := os.ReadFile(filepath.Join(root, key))
	if err != nil {
		t.Fatal(err)
	}
	if got := gunzip(t, raw); !bytes.Equal(got, data) {
		t.Fatalf("gunzip(file) = %d bytes, want the %d written", len(got), len(data))
	}
	if len(raw)*5 > len(data) {
		t.Errorf("file holds %d bytes for %d of NDJSON, want at least 5x smaller", len(raw), len(data))
	}
	if used, _ := s.Usage(); used != int64(len(raw)) {
		t.Errorf("Usage() used = %d, want the file's %d", used, len(raw))
	}
	if used, _ := newStore(t, root).Usage(); used != int64(len(raw)) {
		t.Errorf("after a restart Usage() used = %d, want the file's %d", used, len(raw))
	}

	o, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	g, ok := o.(*fsobj.GzipObject)
	if !ok {
		t.Fatalf("Open returned %T, want *fsobj.GzipObject", o)
	}
	if g.Size() != int64(len(data)) {
		t.Errorf("Size() = %d, want %d", g.Size(), len(data))
	}
	f, n := g.GzipFile()
	stream, err := io.ReadAll(f)
	if err != nil || !bytes.Equal(stream, raw) || n != int64(len(raw)) {
		t.Errorf("GzipFile() = %d bytes, read %d, %v; want the file's %d", n, len(stream), err, len(raw))
	}
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip.NewReader: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

// TestModeSwitch: a store reads the objects of either mode, whichever it
// is in (a restart with another --gzip-files), and a key written in one
// mode is replaced by a write in the other.
func TestModeSwitch(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	put(t, s, "j/plain.ndjson", "plain\n")
	s.SetGzip(true)
	put(t, s, "j/encoded.ndjson", "encoded\n")
	put(t, s, "j/plain-then-encoded.ndjson", "1\n")
	s.SetGzip(false)
	put(t, s, "j/plain-then-encoded.ndjson", "2\n")
	for _, st := range []*fsobj.Store{s, newGzipStore(t, root)} {
		for key, want := range map[string]string{
			"j/plain.ndjson": "plain\n", "j/encoded.ndjson": "encoded\n", "j/plain-then-encoded.ndjson": "2\n",
		} {
			if got := readAll(t, st, key); got != want {
				t.Errorf("read %q = %q, want %q", key, got, want)
			}
		}
	}
}

func readAll(t *testing.T, s bulk.ObjectStore, key string) string {
	t.Helper()
	o, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("ReadAll(%q): %v", key, err)
	}
	return string(b)
}

// TestContentLikeEncoded: identity content that is itself an encoded
// object's file (an Attachment could be one) reads back as written, also
// when it arrives a byte at a time.
func TestContentLikeEncoded(t *testing.T) {
	root := t.TempDir()
	enc := newGzipStore(t, root)
	put(t, enc, "a/encoded", "inner\n")
	file, err := os.ReadFile(filepath.Join(root, "a", "encoded"))
	if err != nil {
		t.Fatal(err)
	}
	s := newStore(t, t.TempDir())
	put(t, s, "j/whole", string(file))
	w, err := s.Create(t.Context(), "j/bytewise")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	for i := range file {
		if _, err := w.Write(file[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"j/whole", "j/bytewise"} {
		if got := readAll(t, s, key); got != string(file) {
			t.Errorf("read %q = %q, want the %d bytes written", key, got, len(file))
		}
	}
}

// TestGzipServeContent: a Range request on a gzip-encoded object is
// answered on its uncompressed bytes, as the download route does for a
// client that does not take the stored gzip.
func TestGzipServeContent(t *testing.T) {
	s := newGzipStore(t, t.TempDir())
	data := ndjson()
	put(t, s, "job/a.ndjson", string(data))
	o, err := s.Open(t.Context(), "job/a.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	for _, rng := range []struct {
		header     string
		start, end int
	}{{"bytes=500000-500009", 500000, 500010}, {"bytes=10-19", 10, 20}, {"bytes=-5", len(data) - 5, len(data)}} {
		req := httptest.NewRequest("GET", "/files/job/a.ndjson", nil)
		req.Header.Set("Range", rng.header)
		rec := httptest.NewRecorder()
		http.ServeContent(rec, req, "", o.ModTime(), o)
		if want := string(data[rng.start:rng.end]); rec.Code != http.StatusPartialContent || rec.Body.String() != want {
			t.Errorf("ServeContent(Range %s) = %d %q, want 206 %q", rng.header, rec.Code, rec.Body.String(), want)
		}
	}
}

// TestGzipLimit: with gzip-encoded objects the budget counts compressed
// bytes, so NDJSON far larger than the budget fits, and a write that
// crosses it still fails with ENOSPACE and publishes nothing.
func TestGzipLimit(t *testing.T) {
	s := newGzipStore(t, t.TempDir())
	data := ndjson()
	s.SetLimit(int64(len(data) / 4))
	put(t, s, "j1/a.ndjson", string(data))

	s.SetLimit(1000)
	w, err := s.Create(t.Context(), "j2/a.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	_, err = w.Write(data)
	if err == nil {
		err = w.Close()
	}
	wantCode(t, "a write past the budget", err, bulk.ENOSPACE)
	wantList(t, s, "j2/", nil)
}
