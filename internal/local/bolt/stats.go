package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.StatsSource = (*ResourceStore)(nil)

// OpenReadOnly opens an existing data file for reading only: it shares the
// lock with other readers and writes nothing, for `tranche stats` on a
// stopped server. Writes through its stores fail. Returns ENOTFOUND if
// there is no file at path, and ECONFLICT, as Open does, if a writer holds
// it for longer than timeout.
func OpenReadOnly(path string, timeout time.Duration) (_ *DB, err error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "There is no store in %s: no server has run and nothing was imported there.", filepath.Dir(path))
	}
	if timeout <= 0 {
		timeout = time.Second
	}
	b, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: timeout, FreelistType: bbolt.FreelistMapType})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, errInUse(filepath.Dir(path), timeout, err)
	}
	defer bulk.Wrap(&err, "bolt.OpenReadOnly(%q)", path)
	if err != nil {
		return nil, err
	}
	db := &DB{bolt: b}
	db.stats.release = db.releaseResident
	err = b.View(func(tx *bbolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return bulk.Errorf(bulk.EINTERNAL, "The data file has no meta bucket.")
		}
		if v := meta.Get(keyLayout); len(v) != 1 || v[0] != layoutVersion {
			return bulk.Errorf(bulk.EINTERNAL, "The data file has layout %v; this tranche reads layout %d.", v, layoutVersion)
		}
		v := meta.Get(keyShards)
		if len(v) != 2 {
			return bulk.Errorf(bulk.EINTERNAL, "The data file has no valid shard count.")
		}
		db.shards = int(binary.BigEndian.Uint16(v))
		db.clock = bulk.NewLocalClock(loadClock(tx), nil) // never stamps: nothing is written
		return nil
	})
	if err != nil {
		b.Close()
		return nil, err
	}
	return db, nil
}

// StoreStats implements bulk.StatsSource. Live counts come from the counts
// bucket; tombstones, Groups and member counts from walking t:<type>, i:Group
// and gm; LastUpdated from the last key of each shard of each r:<type> and
// each t:<type>. Each part is its own read transaction, so a writer waits
// for one part at most.
func (s *ResourceStore) StoreStats(ctx context.Context) (_ *bulk.StoreStats, err error) {
	defer bulk.Wrap(&err, "bolt.ResourceStore.StoreStats")
	st := &bulk.StoreStats{Tombstones: map[string]int64{}, Groups: []bulk.GroupStats{}}
	if st.Resources, err = s.Count(ctx); err != nil {
		return nil, err
	}
	var types []string // with an r: or t: bucket
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bbolt.Bucket) error {
			if typ, ok := strings.CutPrefix(string(name), "r:"); ok {
				types = append(types, typ)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	var latest int64
	seen := false
	for _, typ := range types {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		err := s.db.bolt.View(func(tx *bbolt.Tx) error {
			var m meter
			defer s.db.charge(tx, &m)
			if b := tx.Bucket(resourcesBucket(typ)); b != nil {
				cur := b.Cursor()
				for shard := 0; shard < s.db.shards; shard++ {
					if k, ok := lastOfShard(cur, shard); ok && len(k) >= resourceKeyLen {
						m.touch(0, k)
						latest, seen = max(latest, readTime(k[1:resourceKeyLen])), true
					}
				}
			}
			b := tx.Bucket(tombstonesBucket(typ))
			if b == nil {
				return nil
			}
			var n int64
			cur := b.Cursor()
			for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
				m.touch(0, k)
				n++
			}
			if k, _ := cur.Last(); len(k) >= 8 {
				latest, seen = max(latest, readTime(k[:8])), true
			}
			if n > 0 {
				st.Tombstones[typ] = n
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if seen {
		st.LastUpdated = time.Unix(0, latest).UTC()
	}
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		idx := tx.Bucket(indexBucket("Group"))
		if idx == nil {
			return nil
		}
		var m meter
		defer s.db.charge(tx, &m)
		members := map[string]int{}
		cur := tx.Bucket(bucketGM).Cursor()
		for k, _ := cur.First(); k != nil; k, _ = cur.Next() {
			m.touch(0, k)
			if g, _, ok := bytes.Cut(k, []byte{0}); ok {
				members[string(g)]++
			}
		}
		// The index, not gm: a live Group with no members has no gm
		// entries. Its keys are ids, so Groups come in id order.
		return idx.ForEach(func(id, v []byte) error {
			m.touch(1, v)
			if len(v) == 9 && v[0] == stateLive {
				st.Groups = append(st.Groups, bulk.GroupStats{ID: string(id), Members: members[string(id)]})
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(s.db.bolt.Path()); err == nil {
		st.Bytes = fi.Size()
	}
	return st, nil
}

// lastOfShard returns the last key of shard in an r:<type> bucket, whose
// keys start with the shard byte.
func lastOfShard(cur *bbolt.Cursor, shard int) ([]byte, bool) {
	var k []byte
	if shard+1 < MaxShards {
		if k, _ = cur.Seek([]byte{byte(shard + 1)}); k != nil {
			k, _ = cur.Prev()
		} else {
			k, _ = cur.Last()
		}
	} else {
		k, _ = cur.Last()
	}
	return k, len(k) > 0 && int(k[0]) == shard
}
