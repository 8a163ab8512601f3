package importer_test

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tranchehq/tranche/internal/importer"
)

// TestLines: the NDJSON line reader import and the bench's floor share.
func TestLines(t *testing.T) {
	long := strings.Repeat("x", 100) // longer than the 16-byte buffer below
	in := "\xEF\xBB\xBF{\"a\":1}\n\n" + long + "\nlast"
	var got []string
	var nums []int
	n, err := importer.Lines(bufio.NewReaderSize(strings.NewReader(in), 16), func(n int, line []byte) error {
		got, nums = append(got, string(line)), append(nums, n)
		return nil
	})
	want := []string{"{\"a\":1}\n", "\n", long + "\n", "last"}
	if err != nil || strings.Join(got, "|") != strings.Join(want, "|") || n != 4 {
		t.Fatalf("Lines = %q (lines %v), %d, %v; want %q, 4, nil (BOM dropped, the blank line passed, long line whole)", got, nums, n, err, want)
	}
	if nums[0] != 1 || nums[3] != 4 {
		t.Errorf("line numbers %v, want [1 2 3 4]", nums)
	}

	stop := errors.New("stop")
	if n, err := importer.Lines(bufio.NewReader(strings.NewReader("a\nb\n")), func(n int, _ []byte) error { return stop }); n != 1 || err != stop {
		t.Errorf("Lines with fn failing = %d, %v; want 1, its error", n, err)
	}
	broken := io.MultiReader(strings.NewReader("a\nb"), errReader{})
	if n, err := importer.Lines(bufio.NewReader(broken), func(int, []byte) error { return nil }); n != 2 || err == nil {
		t.Errorf("Lines with a read error = %d, %v; want 2 and the error", n, err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("disk gone") }
