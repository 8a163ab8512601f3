package bolt

import (
	"testing"
	"unsafe"
)

// TestMeterTouch: a read is charged one fault-around window per window it
// enters, not per byte, and two streams do not charge each other's windows.
func TestMeterTouch(t *testing.T) {
	buf := make([]byte, 8*faultAround)
	a := 0 // the first window boundary in buf
	for uintptr(unsafe.Pointer(&buf[a]))%faultAround != 0 {
		a++
	}
	var m meter
	m.begin()
	steps := []struct {
		stream     int
		start, end int
		want       int64 // pending after the touch, in windows
	}{
		{0, a, a + 100, 1},
		{0, a + 200, a + 4000, 1},                           // same window
		{1, a + 300, a + 400, 2},                            // the other stream enters it too
		{0, a + faultAround, a + faultAround + 10, 3},       // next window
		{0, a + faultAround + 20, a + 4*faultAround + 5, 6}, // spans three more
		{1, a + 500, a + 600, 6},                            // stream 1 is still there
		{0, a, a + 1, 7},                                    // back to the first: faulted again after a release
	}
	for i, s := range steps {
		m.touch(s.stream, buf[s.start:s.end])
		if m.pending != s.want*faultAround {
			t.Fatalf("step %d: pending = %d windows, want %d", i, m.pending/faultAround, s.want)
		}
	}
	m.touch(0, nil)
	if m.pending != 7*faultAround {
		t.Fatalf("empty touch changed pending to %d", m.pending)
	}
}
