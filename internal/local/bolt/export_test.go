package bolt

import "go.etcd.io/bbolt"

// SetChunkLimits changes the read chunk limits until the returned func
// restores them, so small test data crosses chunk boundaries.
func SetChunkLimits(items, bytes int) (restore func()) {
	oldItems, oldBytes := chunkItems, chunkBytes
	chunkItems, chunkBytes = items, bytes
	return func() { chunkItems, chunkBytes = oldItems, oldBytes }
}

// RawScan iterates a type's stored values in one read transaction, passing
// bbolt's own slices: the zero-copy baseline BenchmarkScan compares with.
func RawScan(db *DB, typ string, fn func(k, v []byte)) error {
	return db.bolt.View(func(tx *bbolt.Tx) error {
		b := tx.Bucket(resourcesBucket(typ))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error { fn(k, v); return nil })
	})
}

// ReleaseResident exposes DB.releaseResident to tests.
func ReleaseResident(db *DB) { db.releaseResident() }

// SetMaxDirtyNodes changes the bound on the nodes a write transaction of
// Put modifies, and has fn told of each such transaction, until the
// returned func restores them.
func SetMaxDirtyNodes(n int64, fn func(resources int, nodes int64)) (restore func()) {
	oldN, oldFn := maxDirtyNodes, putTx
	maxDirtyNodes, putTx = n, fn
	return func() { maxDirtyNodes, putTx = oldN, oldFn }
}
