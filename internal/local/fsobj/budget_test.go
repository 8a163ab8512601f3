package fsobj_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/tranchehq/tranche/internal/bulk"
)

// TestUsage: the store counts what its objects hold through writes,
// replacements, aborts and deletes, and from the files an earlier process
// left (temp files of unfinished uploads excepted).
func TestUsage(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	used := func(want int64) {
		t.Helper()
		if got, _ := s.Usage(); got != want {
			t.Errorf("Usage() used = %d, want %d", got, want)
		}
	}
	used(0)
	put(t, s, "j1/a.ndjson", "12345")
	put(t, s, "j1/b.ndjson", "123")
	put(t, s, "j2/a.ndjson", "1234567")
	used(15)
	put(t, s, "j1/a.ndjson", "1") // replaces 5 bytes
	used(11)

	w, err := s.Create(t.Context(), "j2/b.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "abcd"); err != nil {
		t.Fatal(err)
	}
	used(15) // an upload in progress counts
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	used(11)

	// A crash leftover does not count; objects do, after a restart.
	if err := os.WriteFile(filepath.Join(root, "j2", "c.ndjson.tmp-x"), []byte("leftover"), 0o640); err != nil {
		t.Fatal(err)
	}
	s = newStore(t, root)
	used(11)
	if err := s.DeletePrefix(t.Context(), "j1/"); err != nil {
		t.Fatal(err)
	}
	used(7)
	if err := s.DeletePrefix(t.Context(), "j2/"); err != nil {
		t.Fatal(err)
	}
	used(0)
}

// TestLimit: a write that would cross the budget fails with ENOSPACE,
// wrapping ENOSPC as a full disk's would, and publishes nothing; the
// space freed by a delete can be written again.
func TestLimit(t *testing.T) {
	s := newStore(t, t.TempDir())
	s.SetLimit(10)
	put(t, s, "j1/a.ndjson", "123456")
	w, err := s.Create(t.Context(), "j2/a.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(w, "1234"); err != nil {
		t.Fatalf("a write up to the budget: %v", err)
	}
	_, err = io.WriteString(w, "5")
	wantCode(t, "a write past the budget", err, bulk.ENOSPACE)
	if !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("budget error %v does not wrap ENOSPC", err)
	}
	if bulk.ErrorMessage(err) != "No space left for export files." {
		t.Errorf("message %q", bulk.ErrorMessage(err))
	}
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	wantList(t, s, "j2/", nil)
	if used, limit := s.Usage(); used != 6 || limit != 10 {
		t.Errorf("Usage() = %d, %d; want 6, 10", used, limit)
	}
	if err := s.DeletePrefix(t.Context(), "j1/"); err != nil {
		t.Fatal(err)
	}
	put(t, s, "j2/a.ndjson", "1234567890")

	s.SetLimit(0) // unlimited
	put(t, s, "j3/a.ndjson", "more than ten bytes")
}

// TestDefaultLimit: half of what the objects may take, at most 50 GiB.
func TestDefaultLimit(t *testing.T) {
	s := newStore(t, t.TempDir())
	put(t, s, "j/a.ndjson", "12345678")
	free, ok := s.Free()
	if !ok {
		if got := s.DefaultLimit(); got != 50<<30 {
			t.Errorf("DefaultLimit() with the free space unknown = %d, want 50 GiB", got)
		}
		return
	}
	// The free space moves with everything else on the disk: bound it.
	got := s.DefaultLimit()
	if got > 50<<30 || got < 1 || got > (8+free)/2+(1<<30) {
		t.Errorf("DefaultLimit() = %d with %d free, want min(50 GiB, (used+free)/2)", got, free)
	}
}
