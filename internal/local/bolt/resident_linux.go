package bolt

import "syscall"

// dropResident unmaps the pages of [addr, addr+size) from this process's
// page tables (madvise MADV_DONTNEED). On a read-only shared file mapping
// that loses nothing: the next read faults the page back in from the page
// cache.
func dropResident(addr uintptr, size int64) {
	if addr == 0 || size <= 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, addr, uintptr(size), syscall.MADV_DONTNEED)
}
