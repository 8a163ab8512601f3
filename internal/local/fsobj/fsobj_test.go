package fsobj_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tranchehq/tranche/internal/bulk"
	"github.com/tranchehq/tranche/internal/bulktest"
	"github.com/tranchehq/tranche/internal/local/fsobj"
)

func TestStore(t *testing.T) {
	bulktest.RunObjectStoreTests(t, func(t *testing.T) bulk.ObjectStore {
		return newStore(t, t.TempDir())
	})
}

func newStore(t *testing.T, root string) *fsobj.Store {
	t.Helper()
	s, err := fsobj.New(root)
	if err != nil {
		t.Fatalf("New(%q): %v", root, err)
	}
	return s
}

func put(t *testing.T, s bulk.ObjectStore, key, data string) {
	t.Helper()
	w, err := s.Create(t.Context(), key)
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	defer w.Abort()
	if _, err := io.WriteString(w, data); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close(): %v", err)
	}
}

// files returns the slash-separated paths of all files under root.
func files(t *testing.T, root string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		got = append(got, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func wantList(t *testing.T, s bulk.ObjectStore, prefix string, want []string) {
	t.Helper()
	got, err := s.List(t.Context(), prefix)
	if err != nil {
		t.Fatalf("List(%q): %v", prefix, err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("List(%q) mismatch (-want +got):\n%s", prefix, diff)
	}
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := bulk.ErrorCode(err); got != code {
		t.Errorf("%s error = %v, want code %q", what, err, code)
	}
}

func TestTempFilesInvisible(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	ctx := t.Context()
	w, err := s.Create(ctx, "job/a.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer w.Abort()
	io.WriteString(w, strings.Repeat("x", 1<<20))

	got := files(t, root)
	if len(got) != 1 || !strings.HasPrefix(got[0], "job/a.ndjson.tmp-") {
		t.Fatalf("files while writing = %q, want one job/a.ndjson.tmp-*", got)
	}
	wantList(t, s, "", nil)
	_, err = s.Open(ctx, "job/a.ndjson")
	wantCode(t, "Open while writing", err, bulk.ENOTFOUND)

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"job/a.ndjson"}, files(t, root)); diff != "" {
		t.Errorf("files after Close (-want +got):\n%s", diff)
	}

	w, err = s.Create(ctx, "job/b.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "b\n")
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"job/a.ndjson"}, files(t, root)); diff != "" {
		t.Errorf("files after Abort (-want +got):\n%s", diff)
	}
}

func TestCrashLeftovers(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	put(t, s, "job/a.ndjson", "a\n")
	put(t, s, "other/keep.ndjson", "keep\n")
	for _, name := range []string{
		"job/a.ndjson.tmp-dead",       // an interrupted replace
		"job/b.ndjson.tmp-x",          // an interrupted first write
		"job/sub/c.ndjson.tmp-1",      // in a directory of its own
		`job/not\a\key`,               // not a valid key
		"other/keep.ndjson.tmp-stale", // outside the deleted prefix
	} {
		path := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte("partial"), 0o640); err != nil {
			t.Fatal(err)
		}
	}

	wantList(t, s, "", []string{"job/a.ndjson", "other/keep.ndjson"})
	for _, key := range []string{"job/b.ndjson", "job/sub/c.ndjson"} {
		_, err := s.Open(t.Context(), key)
		wantCode(t, "Open("+key+")", err, bulk.ENOTFOUND)
	}

	if err := s.DeletePrefix(t.Context(), "job/"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"other/keep.ndjson", "other/keep.ndjson.tmp-stale"}, files(t, root)); diff != "" {
		t.Errorf("files after DeletePrefix (-want +got):\n%s", diff)
	}
	if _, err := os.Stat(filepath.Join(root, "job")); !os.IsNotExist(err) {
		t.Errorf("directory job after DeletePrefix: Stat error = %v, want not exist", err)
	}

	// The next process's store removes the temp files of uploads a killed
	// process left, which nothing else would until their job is purged.
	newStore(t, root)
	if diff := cmp.Diff([]string{"other/keep.ndjson"}, files(t, root)); diff != "" {
		t.Errorf("files after reopening (-want +got):\n%s", diff)
	}
}

func TestPermissions(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data", "objects")
	s := newStore(t, root)
	put(t, s, "job/sub/a.ndjson", "a\n")
	for _, tc := range []struct {
		path string
		max  fs.FileMode // umask may clear more
		min  fs.FileMode
		dir  bool
	}{
		{root, 0o750, 0o700, true},
		{filepath.Join(root, "job"), 0o750, 0o700, true},
		{filepath.Join(root, "job", "sub"), 0o750, 0o700, true},
		{filepath.Join(root, "job", "sub", "a.ndjson"), 0o640, 0o600, false},
	} {
		fi, err := os.Stat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm&^tc.max != 0 || perm&tc.min != tc.min || fi.IsDir() != tc.dir {
			t.Errorf("%s: mode %v, want a %v within %v", tc.path, fi.Mode(), tc.min, tc.max)
		}
	}
}

func TestNew(t *testing.T) {
	_, err := fsobj.New("")
	wantCode(t, `New("")`, err, bulk.EINVALID)

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := fsobj.New(file); err == nil {
		t.Errorf("New(%q) of a file succeeded, want an error", file)
	}

	// A relative root is made absolute, and an existing root is reused.
	t.Chdir(t.TempDir())
	put(t, newStore(t, "objects"), "a", "a")
	s := newStore(t, "objects")
	path, err := s.Path("a")
	if err != nil || !filepath.IsAbs(path) {
		t.Fatalf(`Path("a") = %q, %v, want an absolute path`, path, err)
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "a" {
		t.Errorf("ReadFile(%q) = %q, %v, want %q", path, b, err, "a")
	}
}

func TestPath(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	got, err := s.Path("job/Observation.0001.0001.ndjson")
	if want := filepath.Join(root, "job", "Observation.0001.0001.ndjson"); err != nil || got != want {
		t.Errorf("Path = %q, %v, want %q, nil", got, err, want)
	}
	for _, key := range []string{"", "../x", "/etc/passwd", "a/../../x"} {
		_, err := s.Path(key)
		wantCode(t, "Path("+key+")", err, bulk.EINVALID)
	}
}

// TestServeContent serves an object the way the download route does.
func TestServeContent(t *testing.T) {
	s := newStore(t, t.TempDir())
	put(t, s, "job/a.ndjson", "0123456789")
	o, err := s.Open(t.Context(), "job/a.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	f, ok := o.(interface{ File() *os.File })
	if !ok {
		t.Fatalf("Open returned %T, want a File() *os.File method", o)
	}

	req := httptest.NewRequest("GET", "/files/job/a.ndjson", nil)
	req.Header.Set("Range", "bytes=2-5")
	rec := httptest.NewRecorder()
	http.ServeContent(rec, req, "a.ndjson", o.ModTime(), f.File())
	if rec.Code != http.StatusPartialContent || rec.Body.String() != "2345" {
		t.Errorf("ServeContent = %d %q, want 206 %q", rec.Code, rec.Body.String(), "2345")
	}
}

func TestKeyDirectoryConflict(t *testing.T) {
	s := newStore(t, t.TempDir())
	ctx := t.Context()
	put(t, s, "a", "a")
	_, err := s.Create(ctx, "a/b")
	wantCode(t, `Create("a/b") with "a" stored`, err, bulk.ECONFLICT)

	put(t, s, "c/d", "d")
	w, err := s.Create(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "c")
	wantCode(t, `Close() of "c" with "c/d" stored`, w.Close(), bulk.ECONFLICT)
	wantList(t, s, "", []string{"a", "c/d"})
}

// TestDeleteDuringUpload: DeletePrefix removes the temp file of an upload in
// progress, whose Close then fails and publishes nothing.
func TestDeleteDuringUpload(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	ctx := t.Context()
	w, err := s.Create(ctx, "job/a.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "a\n")
	if err := s.DeletePrefix(ctx, "job/"); err != nil {
		t.Fatal(err)
	}
	io.WriteString(w, "more\n")
	wantCode(t, "Close() after DeletePrefix", w.Close(), bulk.ECONFLICT)
	wantList(t, s, "", nil)
	if got := files(t, root); len(got) != 0 {
		t.Errorf("files = %q, want none", got)
	}
}

func TestDeletePrefixDirectories(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	ctx := t.Context()
	put(t, s, "job1/x/y.ndjson", "y")
	put(t, s, "job10/a.ndjson", "a")
	put(t, s, "job2/a.ndjson", "a")
	dirs := func() []string {
		entries, err := os.ReadDir(root)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		return names
	}
	if err := s.DeletePrefix(ctx, "job1/"); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"job10", "job2"}, dirs()); diff != "" {
		t.Errorf("root entries after DeletePrefix(job1/) (-want +got):\n%s", diff)
	}
	// Deleting a file's exact key leaves its (now empty) directory.
	if err := s.DeletePrefix(ctx, "job2/a.ndjson"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePrefix(ctx, "job"); err != nil {
		t.Fatal(err)
	}
	if got := dirs(); len(got) != 0 {
		t.Errorf("root entries after DeletePrefix(job) = %q, want none", got)
	}
	if _, err := os.Stat(root); err != nil {
		t.Errorf("root after DeletePrefix: %v", err)
	}
}

// TestSymlinksNotFollowed: a symlink under the root is neither listed nor
// followed by DeletePrefix.
func TestSymlinksNotFollowed(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	target := filepath.Join(outside, "secret")
	if err := os.WriteFile(target, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, root)
	put(t, s, "job/a.ndjson", "a")
	for name, to := range map[string]string{"job/link": target, "job/dirlink": outside} {
		if err := os.Symlink(to, filepath.Join(root, filepath.FromSlash(name))); err != nil {
			t.Skipf("symlinks unsupported: %v", err)
		}
	}
	wantList(t, s, "", []string{"job/a.ndjson"})
	if err := s.DeletePrefix(t.Context(), "job/"); err != nil {
		t.Fatal(err)
	}
	if got := files(t, root); len(got) != 0 {
		t.Errorf("files after DeletePrefix = %q, want none", got)
	}
	if got := files(t, outside); !slices.Equal(got, []string{"secret"}) {
		t.Errorf("files outside the root = %q, want [secret]", got)
	}
}
