//go:build linux || darwin || freebsd || dragonfly

package fsobj

import "syscall"

// freeBytes returns the bytes available to an unprivileged user on the
// file system holding dir (statfs f_bavail × f_bsize).
func freeBytes(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return max(int64(st.Bavail), 0) * int64(st.Bsize), true
}
