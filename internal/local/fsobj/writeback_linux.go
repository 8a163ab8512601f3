//go:build linux && (amd64 || arm64)

package fsobj

import (
	"os"
	"syscall"
)

// startWriteback asks the kernel to start writing n bytes of f's dirty
// pages from off to disk and returns without waiting for them
// (sync_file_range, SYNC_FILE_RANGE_WRITE). Best effort: the fsync at Close
// is what makes the file durable.
func startWriteback(f *os.File, off, n int64) {
	const syncFileRangeWrite = 2
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_, _, _ = syscall.Syscall6(syscall.SYS_SYNC_FILE_RANGE, fd, uintptr(off), uintptr(n), syncFileRangeWrite, 0, 0)
	})
}
