//go:build !linux

package bolt

// dropResident is a no-op where madvise is not used.
func dropResident(addr uintptr, size int64) {}
