package bulktest

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/bulk"
)

// RunObjectStoreTests is the bulk.ObjectStore contract suite. open must
// return a new, empty store for each subtest; the subtests run in parallel.
//
// Beyond the interface docs it pins down: keys are checked with bulk.CheckObjectKey
// (EINVALID); DeletePrefix("") is EINVALID; a writer whose ctx is done by
// Close publishes nothing; an open Object keeps reading the content it was
// opened on even when its key is replaced or deleted (R81: never pull a file
// from under a running download).
//
// Stores that encode what they hold (gzip in S3 and fsobj) must read back
// exactly the bytes written, of any content (compressed data included), with
// Size and Seek on those bytes.
//
// It leaves unspecified whether a key may also be a prefix of other keys
// followed by a slash ("a" and "a/b"): fsobj refuses that with ECONFLICT.
func RunObjectStoreTests(t *testing.T, open func(t *testing.T) bulk.ObjectStore) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s bulk.ObjectStore)
	}{
		{"RoundTrip", testObjectRoundTrip},
		{"Empty", testObjectEmpty},
		{"InvisibleUntilClose", testObjectInvisibleUntilClose},
		{"Abort", testObjectAbort},
		{"AbortAfterClose", testObjectAbortAfterClose},
		{"UseAfterClose", testObjectUseAfterClose},
		{"Replace", testObjectReplace},
		{"ReplaceAtomic", testObjectReplaceAtomic},
		{"OpenMissing", testObjectOpenMissing},
		{"DeletePrefix", testObjectDeletePrefix},
		{"List", testObjectList},
		{"SlashKeys", testObjectSlashKeys},
		{"InvalidKeys", testObjectInvalidKeys},
		{"ConcurrentWriters", testObjectConcurrentWriters},
		{"ReaderOutlivesReplaceAndDelete", testObjectReaderOutlives},
		{"Cancelled", testObjectCancelled},
		{"OpaqueBytes", testObjectOpaqueBytes},
		{"SeekAround", testObjectSeekAround},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// bigObjectData is larger than any sensible write buffer, so buffered adapters
// flush in the middle of a write.
var bigObjectData = bytes.Repeat([]byte(`{"resourceType":"Observation","id":"x"}`+"\n"), 20000)

func testObjectRoundTrip(t *testing.T, s bulk.ObjectStore) {
	ctx := t.Context()
	const key = "job/Observation.0001.0001.ndjson"
	putObject(t, s, key, bigObjectData)

	o, err := s.Open(ctx, key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer o.Close()
	if got, want := o.Size(), int64(len(bigObjectData)); got != want {
		t.Errorf("Size() = %d, want %d", got, want)
	}
	if o.ModTime().IsZero() {
		t.Error("ModTime() is zero")
	}
	got, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if !bytes.Equal(got, bigObjectData) {
		t.Fatalf("ReadAll = %d bytes, want the %d written", len(got), len(bigObjectData))
	}

	// Seek is what http.ServeContent needs for Range requests.
	const off = 123456
	if pos, err := o.Seek(off, io.SeekStart); err != nil || pos != off {
		t.Fatalf("Seek(%d, SeekStart) = %d, %v, want %d, nil", off, pos, err, off)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(o, buf); err != nil {
		t.Fatalf("ReadFull after Seek: %v", err)
	}
	if want := bigObjectData[off : off+10]; !bytes.Equal(buf, want) {
		t.Errorf("read after Seek = %q, want %q", buf, want)
	}
	if pos, err := o.Seek(0, io.SeekCurrent); err != nil || pos != off+10 {
		t.Errorf("Seek(0, SeekCurrent) = %d, %v, want %d, nil", pos, err, off+10)
	}
	end := int64(len(bigObjectData))
	if pos, err := o.Seek(-4, io.SeekEnd); err != nil || pos != end-4 {
		t.Errorf("Seek(-4, SeekEnd) = %d, %v, want %d, nil", pos, err, end-4)
	}
	if rest, err := io.ReadAll(o); err != nil || !bytes.Equal(rest, bigObjectData[end-4:]) {
		t.Errorf("ReadAll after SeekEnd = %q, %v, want %q, nil", rest, err, bigObjectData[end-4:])
	}
}

func testObjectEmpty(t *testing.T, s bulk.ObjectStore) {
	const key = "job/empty.ndjson"
	putObject(t, s, key, nil)
	if got := readObject(t, s, key); len(got) != 0 {
		t.Errorf("read %q = %q, want empty", key, got)
	}
	wantObjectKeys(t, s, "", []string{key})
}

func testObjectInvisibleUntilClose(t *testing.T, s bulk.ObjectStore) {
	ctx := t.Context()
	const key = "job/new.ndjson"
	w := createObject(t, s, key)
	writeObject(t, w, []byte("line 1\n"))
	writeObject(t, w, bigObjectData)
	wantOpenObjectCode(t, s, key, bulk.ENOTFOUND)
	wantObjectKeys(t, s, "", nil)
	wantObjectKeys(t, s, "job/", nil)
	if err := w.Close(); err != nil {
		t.Fatalf("Close(): %v", err)
	}
	wantObjectKeys(t, s, "", []string{key})

	// A replacement in progress leaves the old content visible.
	putObject(t, s, key, []byte("old\n"))
	w, err := s.Create(ctx, key)
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	writeObject(t, w, []byte("new\n"))
	if got := readObject(t, s, key); string(got) != "old\n" {
		t.Errorf("read %q while replacing = %q, want %q", key, got, "old\n")
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close(): %v", err)
	}
	if got := readObject(t, s, key); string(got) != "new\n" {
		t.Errorf("read %q after replacing = %q, want %q", key, got, "new\n")
	}
}

func testObjectAbort(t *testing.T, s bulk.ObjectStore) {
	const key = "job/aborted.ndjson"
	w := createObject(t, s, key)
	writeObject(t, w, bigObjectData)
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort(): %v", err)
	}
	if err := w.Abort(); err != nil {
		t.Errorf("second Abort(): %v", err)
	}
	if _, err := w.Write([]byte("x")); err == nil {
		t.Error("Write after Abort succeeded, want an error")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after Abort succeeded, want an error")
	}
	wantOpenObjectCode(t, s, key, bulk.ENOTFOUND)
	wantObjectKeys(t, s, "", nil)

	// Aborting a replacement keeps the old object.
	putObject(t, s, key, []byte("old\n"))
	w = createObject(t, s, key)
	writeObject(t, w, []byte("new\n"))
	if err := w.Abort(); err != nil {
		t.Fatalf("Abort(): %v", err)
	}
	if got := readObject(t, s, key); string(got) != "old\n" {
		t.Errorf("read %q after aborted replace = %q, want %q", key, got, "old\n")
	}
}

func testObjectAbortAfterClose(t *testing.T, s bulk.ObjectStore) {
	const key = "job/kept.ndjson"
	w := createObject(t, s, key)
	writeObject(t, w, []byte("kept\n"))
	if err := w.Close(); err != nil {
		t.Fatalf("Close(): %v", err)
	}
	// The usual `defer w.Abort()` after a successful Close.
	if err := w.Abort(); err != nil {
		t.Errorf("Abort after Close: %v", err)
	}
	if got := readObject(t, s, key); string(got) != "kept\n" {
		t.Errorf("read %q = %q, want %q", key, got, "kept\n")
	}
	wantObjectKeys(t, s, "", []string{key})
}

func testObjectUseAfterClose(t *testing.T, s bulk.ObjectStore) {
	const key = "job/closed.ndjson"
	w := createObject(t, s, key)
	writeObject(t, w, []byte("a\n"))
	if err := w.Close(); err != nil {
		t.Fatalf("Close(): %v", err)
	}
	if _, err := w.Write([]byte("b\n")); err == nil {
		t.Error("Write after Close succeeded, want an error")
	}
	if got := readObject(t, s, key); string(got) != "a\n" {
		t.Errorf("read %q = %q, want %q", key, got, "a\n")
	}
}

func testObjectReplace(t *testing.T, s bulk.ObjectStore) {
	const key = "job/Patient.0001.0001.ndjson"
	putObject(t, s, key, bigObjectData)
	putObject(t, s, key, []byte("retried\n"))
	if got := readObject(t, s, key); string(got) != "retried\n" {
		t.Errorf("read %q = %q, want %q", key, got, "retried\n")
	}
	wantObjectKeys(t, s, "", []string{key})
}

// testObjectReplaceAtomic replaces a key over and over while readers read it:
// every read must be exactly one whole version.
func testObjectReplaceAtomic(t *testing.T, s bulk.ObjectStore) {
	ctx := t.Context()
	const key = "job/retried.ndjson"
	version := func(i int) []byte {
		return bytes.Repeat([]byte{'a' + byte(i%26)}, 64<<10+i*1000)
	}
	putObject(t, s, key, version(0))

	const versions = 30
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				o, err := s.Open(ctx, key)
				if err != nil {
					t.Errorf("Open(%q): %v", key, err)
					return
				}
				b, err := io.ReadAll(o)
				o.Close()
				if err != nil {
					t.Errorf("ReadAll: %v", err)
					return
				}
				if int64(len(b)) != o.Size() || len(b) == 0 || bytes.Count(b, b[:1]) != len(b) {
					t.Errorf("read %d bytes (Size %d) that are not one whole version", len(b), o.Size())
					return
				}
			}
		}()
	}
	for i := 1; i < versions; i++ {
		// Write in pieces so a non-atomic store would expose a prefix.
		w := createObject(t, s, key)
		v := version(i)
		for chunk := range slices.Chunk(v, 4096) {
			writeObject(t, w, chunk)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close(): %v", err)
		}
	}
	close(done)
	wg.Wait()
	if got, want := readObject(t, s, key), version(versions-1); !bytes.Equal(got, want) {
		t.Errorf("final read = %d bytes, want the last version (%d bytes)", len(got), len(want))
	}
}

func testObjectOpenMissing(t *testing.T, s bulk.ObjectStore) {
	putObject(t, s, "job/a/b.ndjson", []byte("x\n"))
	for _, key := range []string{"missing", "job/missing.ndjson", "job", "job/a", "job/a/b", "job/a/b.ndjson/c"} {
		wantOpenObjectCode(t, s, key, bulk.ENOTFOUND)
	}
}

func testObjectDeletePrefix(t *testing.T, s bulk.ObjectStore) {
	ctx := t.Context()
	for _, k := range []string{"job1/a.ndjson", "job1/sub/b.ndjson", "job10/a.ndjson", "job2/a.ndjson", "job1.ndjson"} {
		putObject(t, s, k, []byte(k))
	}
	if err := s.DeletePrefix(ctx, "job1/"); err != nil {
		t.Fatalf("DeletePrefix(job1/): %v", err)
	}
	wantObjectKeys(t, s, "", []string{"job1.ndjson", "job10/a.ndjson", "job2/a.ndjson"})
	wantOpenObjectCode(t, s, "job1/a.ndjson", bulk.ENOTFOUND)
	wantOpenObjectCode(t, s, "job1/sub/b.ndjson", bulk.ENOTFOUND)
	if got := readObject(t, s, "job10/a.ndjson"); string(got) != "job10/a.ndjson" {
		t.Errorf("read job10/a.ndjson = %q after deleting job1/", got)
	}

	for _, p := range []string{"job1/", "nothing/", "job2/a.ndjsonx", "../", "/"} {
		if err := s.DeletePrefix(ctx, p); err != nil {
			t.Errorf("DeletePrefix(%q) of nothing: %v", p, err)
		}
	}
	wantObjectKeys(t, s, "", []string{"job1.ndjson", "job10/a.ndjson", "job2/a.ndjson"})

	// A deleted prefix can be written again.
	putObject(t, s, "job1/sub/b.ndjson", []byte("again"))
	wantObjectKeys(t, s, "job1/", []string{"job1/sub/b.ndjson"})

	// A prefix need not end at a slash.
	if err := s.DeletePrefix(ctx, "job1"); err != nil {
		t.Fatalf("DeletePrefix(job1): %v", err)
	}
	wantObjectKeys(t, s, "", []string{"job2/a.ndjson"})
	if err := s.DeletePrefix(ctx, "job2/a.ndjson"); err != nil {
		t.Fatalf("DeletePrefix(job2/a.ndjson): %v", err)
	}
	wantObjectKeys(t, s, "", nil)

	putObject(t, s, "keep", nil)
	if err := s.DeletePrefix(ctx, ""); bulk.ErrorCode(err) != bulk.EINVALID {
		t.Errorf("DeletePrefix(\"\") = %v, want code %q", err, bulk.EINVALID)
	}
	wantObjectKeys(t, s, "", []string{"keep"})
}

func testObjectList(t *testing.T, s bulk.ObjectStore) {
	keys := []string{"b", "a/b", "a.c", "a-b", "a/c/z", "a/a", "A", "a0", "ab/c"}
	for _, k := range keys {
		putObject(t, s, k, nil)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"A", "a-b", "a.c", "a/a", "a/b", "a/c/z", "a0", "ab/c", "b"}},
		{"a", []string{"a-b", "a.c", "a/a", "a/b", "a/c/z", "a0", "ab/c"}},
		{"a/", []string{"a/a", "a/b", "a/c/z"}},
		{"a/a", []string{"a/a"}},
		{"a/c", []string{"a/c/z"}},
		{"a/c/", []string{"a/c/z"}},
		{"a/c/z", []string{"a/c/z"}},
		{"ab", []string{"ab/c"}},
		{"ab/", []string{"ab/c"}},
		{"b", []string{"b"}},
		{"b/", nil},
		{"c", nil},
		{"../", nil},
		{"/", nil},
	} {
		wantObjectKeys(t, s, tc.prefix, tc.want)
	}
}

func testObjectSlashKeys(t *testing.T, s bulk.ObjectStore) {
	keys := []string{
		"job-id/Observation.0003.0001.ndjson",
		"job-id/deleted/Patient.0001.0001.ndjson",
		"a/b/c/d/e/f.ndjson",
	}
	for _, k := range keys {
		putObject(t, s, k, []byte(k+"\n"))
	}
	for _, k := range keys {
		if got := readObject(t, s, k); string(got) != k+"\n" {
			t.Errorf("read %q = %q, want %q", k, got, k+"\n")
		}
	}
	wantObjectKeys(t, s, "job-id/", []string{"job-id/Observation.0003.0001.ndjson", "job-id/deleted/Patient.0001.0001.ndjson"})
}

func testObjectInvalidKeys(t *testing.T, s bulk.ObjectStore) {
	ctx := t.Context()
	keys := []string{
		"", "/abs", "/", "..", "../x", "a/..", "a/../b", `a\b`, "a\x00b",
		"a/", "a//b", "./a", "a/./b", "a\nb", strings.Repeat("k", 2000),
	}
	for _, key := range keys {
		w, err := s.Create(ctx, key)
		if got := bulk.ErrorCode(err); got != bulk.EINVALID {
			t.Errorf("Create(%q) error = %v, want code %q", key, err, bulk.EINVALID)
			if w != nil {
				w.Abort()
			}
		}
		wantOpenObjectCode(t, s, key, bulk.EINVALID)
	}
	wantObjectKeys(t, s, "", nil)
}

func testObjectConcurrentWriters(t *testing.T, s bulk.ObjectStore) {
	const writers = 32
	content := func(i int) []byte {
		var b bytes.Buffer
		for line := range 200 {
			fmt.Fprintf(&b, `{"resourceType":"Observation","id":"%d-%d"}`+"\n", i, line)
		}
		return b.Bytes()
	}
	key := func(i int) string { return fmt.Sprintf("job/Observation.%04d.0001.ndjson", i) }

	var wg sync.WaitGroup
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := s.Create(t.Context(), key(i))
			if err != nil {
				t.Errorf("Create(%q): %v", key(i), err)
				return
			}
			defer w.Abort()
			for line := range bytes.Lines(content(i)) {
				if _, err := w.Write(line); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
			if err := w.Close(); err != nil {
				t.Errorf("Close(): %v", err)
			}
		}()
	}
	wg.Wait()
	var want []string
	for i := range writers {
		want = append(want, key(i))
		if got := readObject(t, s, key(i)); !bytes.Equal(got, content(i)) {
			t.Errorf("read %q = %d bytes, want %d", key(i), len(got), len(content(i)))
		}
	}
	wantObjectKeys(t, s, "job/", want)
}

// testObjectReaderOutlives checks R81: a download in progress keeps reading
// the content it started on, whatever happens to the key meanwhile.
func testObjectReaderOutlives(t *testing.T, s bulk.ObjectStore) {
	ctx := t.Context()
	const key = "job/Observation.0001.0001.ndjson"
	putObject(t, s, key, bigObjectData)
	o, err := s.Open(ctx, key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer o.Close()
	head := make([]byte, 1000)
	if _, err := io.ReadFull(o, head); err != nil {
		t.Fatalf("ReadFull: %v", err)
	}

	putObject(t, s, key, []byte("replaced\n"))
	if got := readObject(t, s, key); string(got) != "replaced\n" {
		t.Errorf("read %q = %q, want %q", key, got, "replaced\n")
	}
	if err := s.DeletePrefix(ctx, "job/"); err != nil {
		t.Fatalf("DeletePrefix: %v", err)
	}
	wantOpenObjectCode(t, s, key, bulk.ENOTFOUND)

	rest, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("ReadAll after replace and delete: %v", err)
	}
	if got := append(head, rest...); !bytes.Equal(got, bigObjectData) {
		t.Errorf("open reader read %d bytes, want the original %d", len(got), len(bigObjectData))
	}
	if got, want := o.Size(), int64(len(bigObjectData)); got != want {
		t.Errorf("Size() = %d, want %d", got, want)
	}
	if _, err := o.Seek(0, io.SeekStart); err != nil {
		t.Fatalf("Seek: %v", err)
	}
	if all, err := io.ReadAll(o); err != nil || !bytes.Equal(all, bigObjectData) {
		t.Errorf("re-read after Seek = %d bytes, %v, want the original %d", len(all), err, len(bigObjectData))
	}
}

func testObjectCancelled(t *testing.T, s bulk.ObjectStore) {
	ctx, cancel := context.WithCancel(t.Context())
	const key = "job/cancelled.ndjson"
	w, err := s.Create(ctx, key)
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	defer w.Abort()
	w.Write([]byte("partial\n")) // may or may not fail
	cancel()
	if err := w.Close(); err == nil {
		t.Error("Close after cancel succeeded, want an error")
	}
	wantOpenObjectCode(t, s, key, bulk.ENOTFOUND)
	wantObjectKeys(t, s, "", nil)

	if w, err := s.Create(ctx, key); err == nil {
		w.Abort()
		t.Error("Create with a cancelled ctx succeeded, want an error")
	}
}

func createObject(t *testing.T, s bulk.ObjectStore, key string) bulk.ObjectWriter {
	t.Helper()
	w, err := s.Create(t.Context(), key)
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	t.Cleanup(func() { w.Abort() })
	return w
}

func writeObject(t *testing.T, w bulk.ObjectWriter, p []byte) {
	t.Helper()
	if n, err := w.Write(p); err != nil || n != len(p) {
		t.Fatalf("Write(%d bytes) = %d, %v, want %d, nil", len(p), n, err, len(p))
	}
}

// putObject writes data to key in small pieces, as the export path does.
func putObject(t *testing.T, s bulk.ObjectStore, key string, data []byte) {
	t.Helper()
	w := createObject(t, s, key)
	for chunk := range slices.Chunk(data, 1000) {
		writeObject(t, w, chunk)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close() of %q: %v", key, err)
	}
}

func readObject(t *testing.T, s bulk.ObjectStore, key string) []byte {
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
	if int64(len(b)) != o.Size() {
		t.Errorf("Open(%q): read %d bytes, Size() = %d", key, len(b), o.Size())
	}
	return b
}

func wantOpenObjectCode(t *testing.T, s bulk.ObjectStore, key, code string) {
	t.Helper()
	o, err := s.Open(t.Context(), key)
	if err == nil {
		o.Close()
	}
	if got := bulk.ErrorCode(err); got != code {
		t.Errorf("Open(%q) error = %v, want code %q", key, err, code)
	}
}

func wantObjectKeys(t *testing.T, s bulk.ObjectStore, prefix string, want []string) {
	t.Helper()
	got, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("List(%q) mismatch (-want +got):\n%s", prefix, diff)
	}
}

// testObjectOpaqueBytes: content is stored as bytes, never interpreted:
// every byte value, and content that is gzip-compressed itself (an
// Attachment may be), read back as written, whether written whole or a
// byte at a time.
func testObjectOpaqueBytes(t *testing.T, s bulk.ObjectStore) {
	var all bytes.Buffer
	for i := range 1024 {
		all.WriteByte(byte(i))
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	// The extra field fsobj marks its gzip-encoded files with.
	zw.Extra = []byte("Tr\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	zw.Write(bigObjectData[:4096])
	zw.Close()
	for name, data := range map[string][]byte{"bytes": all.Bytes(), "gzip": gz.Bytes()} {
		key := "job/whole-" + name
		putObject(t, s, key, data)
		if got := readObject(t, s, key); !bytes.Equal(got, data) {
			t.Errorf("read %q = %d bytes %q…, want the %d written", key, len(got), got[:min(len(got), 16)], len(data))
		}
		key = "job/bytewise-" + name
		w := createObject(t, s, key)
		for i := range data {
			writeObject(t, w, data[i:i+1])
		}
		if err := w.Close(); err != nil {
			t.Fatalf("Close() of %q: %v", key, err)
		}
		if got := readObject(t, s, key); !bytes.Equal(got, data) {
			t.Errorf("read %q = %d bytes, want the %d written", key, len(got), len(data))
		}
	}
}

// testObjectSeekAround: the moves http.ServeContent and multi-range
// requests make: to the end for the size before any Read, back after
// reading to the end, past the end (then Read is io.EOF), and not before
// the start.
func testObjectSeekAround(t *testing.T, s bulk.ObjectStore) {
	const key = "job/seek.ndjson"
	putObject(t, s, key, bigObjectData)
	o, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer o.Close()
	end := int64(len(bigObjectData))
	if pos, err := o.Seek(0, io.SeekEnd); err != nil || pos != end {
		t.Fatalf("Seek(0, SeekEnd) = %d, %v, want %d, nil", pos, err, end)
	}
	if n, err := o.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read at the end = %d, %v, want 0, io.EOF", n, err)
	}
	for _, off := range []int64{end - 100, 200000, 5, 200000} {
		if _, err := o.Seek(off, io.SeekStart); err != nil {
			t.Fatalf("Seek(%d, SeekStart): %v", off, err)
		}
		buf := make([]byte, 50)
		if _, err := io.ReadFull(o, buf); err != nil || !bytes.Equal(buf, bigObjectData[off:off+50]) {
			t.Errorf("50 bytes at %d = %q, %v, want %q", off, buf, err, bigObjectData[off:off+50])
		}
	}
	if _, err := io.ReadAll(o); err != nil {
		t.Fatalf("ReadAll: %v", err)
	}
	if pos, err := o.Seek(end+10, io.SeekStart); err != nil || pos != end+10 {
		t.Errorf("Seek past the end = %d, %v, want %d, nil", pos, err, end+10)
	}
	if n, err := o.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Errorf("Read past the end = %d, %v, want 0, io.EOF", n, err)
	}
	if _, err := o.Seek(-1, io.SeekStart); err == nil {
		t.Error("Seek(-1, SeekStart) succeeded, want an error")
	}
	if _, err := o.Seek(0, io.SeekStart); err != nil {
		t.Fatalf("Seek(0, SeekStart): %v", err)
	}
	if all, err := io.ReadAll(o); err != nil || !bytes.Equal(all, bigObjectData) {
		t.Errorf("re-read from the start = %d bytes, %v, want %d", len(all), err, end)
	}
}
