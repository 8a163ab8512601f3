package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"

	"github.com/tranchehq/tranche/internal/bulk"
)

// pebbleStore is the Put side of bulk.ResourceStore over Pebble, with the
// embedded store's keys and values (internal/local/bolt): r<type>\0 shard,
// lastUpdated, id → patients, members, body; i<type>\0 id → state and
// lastUpdated; c patient\0type\0id → lastUpdated; g group\0patient →
// joined. Each Put is one batch committed with fsync, as bbolt commits.
// What an import of new data does not use is left out (deletions, scans).
type pebbleStore struct {
	db     *pebble.DB
	counts map[string]int64
}

const shards = 16

// blind skips the existence checks (STOREBENCH_BLIND=1): the write path's
// upper bound. cacheMB is the block cache (STOREBENCH_CACHE_MB, default 32).
var (
	blind      = os.Getenv("STOREBENCH_BLIND") != ""
	cacheMB, _ = strconv.ParseInt(cmp.Or(os.Getenv("STOREBENCH_CACHE_MB"), "32"), 10, 64)
)

func openPebble(dir string) (*pebbleStore, error) {
	cache := pebble.NewCache(cacheMB << 20)
	defer cache.Unref()
	// Bloom filters: an import's existence checks are almost all for keys
	// that are not there, which a filter answers without reading a block.
	opts := &pebble.Options{Cache: cache, MemTableSize: 64 << 20}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	return &pebbleStore{db: db, counts: map[string]int64{}}, nil
}

func (s *pebbleStore) Close() error { return s.db.Close() }

func shardOf(id string) byte {
	h := uint32(2166136261)
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	return byte(h % shards)
}

func appendTime(b []byte, nanos int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(nanos)^(1<<63))
}

func rKey(b []byte, typ string, shard byte, nanos int64, id string) []byte {
	b = append(append(append(b, 'r'), typ...), 0, shard)
	return append(appendTime(b, nanos), id...)
}

func iKey(b []byte, typ, id string) []byte {
	return append(append(append(append(b, 'i'), typ...), 0), id...)
}

func cKey(b []byte, patient, typ, id string) []byte {
	return append(append(append(append(append(append(b, 'c'), patient...), 0), typ...), 0), id...)
}

func header(r *bulk.Resource) []byte {
	var b []byte
	for _, ids := range [][]string{r.Patients, r.Members} {
		b = binary.AppendUvarint(b, uint64(len(ids)))
		for _, id := range ids {
			b = append(binary.AppendUvarint(b, uint64(len(id))), id...)
		}
	}
	return b
}

// patients reads a stored value's header: its patients and where the body
// starts.
func patients(v []byte) (ps []string, body int, err error) {
	off := 0
	for list := 0; list < 2; list++ {
		n, k := binary.Uvarint(v[off:])
		if k <= 0 {
			return nil, 0, errors.New("bad header")
		}
		off += k
		for range n {
			l, k := binary.Uvarint(v[off:])
			if k <= 0 || uint64(len(v)-off-k) < l {
				return nil, 0, errors.New("bad header")
			}
			if list == 0 {
				ps = append(ps, string(v[off+k:off+k+int(l)]))
			}
			off += k + int(l)
		}
	}
	return ps, off, nil
}

func (s *pebbleStore) Put(ctx context.Context, rs []*bulk.Resource) error {
	b := s.db.NewIndexedBatch()
	defer b.Close()
	outcomes := make([]bulk.PutOutcome, len(rs))
	delta := map[string]int64{}
	var key []byte
	for n, r := range rs {
		nanos := r.LastUpdated.UnixNano()
		outcome := bulk.PutNew
		var (
			old    []byte
			closer io.Closer
			err    error = pebble.ErrNotFound
		)
		if !blind {
			old, closer, err = b.Get(iKey(key[:0], r.Type, r.ID))
		}
		switch {
		case err == nil && len(old) == 9 && old[0] == 'L':
			at := int64(binary.BigEndian.Uint64(old[1:]) ^ (1 << 63))
			closer.Close()
			rk := rKey(nil, r.Type, shardOf(r.ID), at, r.ID)
			v, vc, err := b.Get(rk)
			if err != nil {
				return err
			}
			ps, body, err := patients(v)
			if err != nil {
				vc.Close()
				return err
			}
			same := bytes.Equal(v[:body], header(r)) && bulk.SameContent(v[body:], r.Body)
			vc.Close()
			if same {
				outcomes[n] = bulk.PutUnchanged
				continue
			}
			outcome = bulk.PutReplaced
			for _, p := range ps {
				if err := b.Delete(cKey(nil, p, r.Type, r.ID), nil); err != nil {
					return err
				}
			}
			if err := b.Delete(rk, nil); err != nil {
				return err
			}
		case err == nil:
			closer.Close()
			delta[r.Type]++
		case errors.Is(err, pebble.ErrNotFound):
			delta[r.Type]++
		default:
			return err
		}
		v := append(header(r), r.Body...)
		if err := b.Set(rKey(key[:0], r.Type, shardOf(r.ID), nanos, r.ID), v, nil); err != nil {
			return err
		}
		if err := b.Set(iKey(key[:0], r.Type, r.ID), appendTime([]byte{'L'}, nanos), nil); err != nil {
			return err
		}
		ts := appendTime(nil, nanos)
		for _, p := range r.Patients {
			if err := b.Set(cKey(key[:0], p, r.Type, r.ID), ts, nil); err != nil {
				return err
			}
		}
		for _, m := range r.Members {
			k := append(append(append(key[:0], 'g'), r.ID...), 0)
			if err := b.Set(append(k, m...), ts, nil); err != nil {
				return err
			}
		}
		outcomes[n] = outcome
	}
	for typ, d := range delta {
		s.counts[typ] += d
		k := append([]byte{'n'}, typ...)
		if err := b.Set(k, binary.BigEndian.AppendUint64(nil, uint64(s.counts[typ])), nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	for n, o := range outcomes {
		rs[n].SetOutcome(o)
	}
	return nil
}

func (s *pebbleStore) GroupMembers(ctx context.Context, group string) ([]string, error) {
	prefix := append(append([]byte{'g'}, group...), 0)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: append(prefix[:len(prefix)-1:len(prefix)-1], 1)})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []string
	for it.First(); it.Valid(); it.Next() {
		out = append(out, string(it.Key()[len(prefix):]))
	}
	if out == nil {
		return nil, bulk.Errorf(bulk.ENOTFOUND, "Group/%s is not stored.", group)
	}
	return out, it.Error()
}

// What a new import does not call.

var errUnused = errors.New("storebench: not implemented")

func (s *pebbleStore) Shards() int                                     { return shards }
func (s *pebbleStore) Count(context.Context) (map[string]int64, error) { return s.counts, nil }
func (s *pebbleStore) Scan(context.Context, bulk.ScanRequest, bulk.Visit) error {
	return errUnused
}
func (s *pebbleStore) Compartment(context.Context, string, []string, bulk.Visit) error {
	return errUnused
}
func (s *pebbleStore) Get(context.Context, string, string) (*bulk.Resource, error) {
	return nil, errUnused
}
func (s *pebbleStore) IsGroupMember(context.Context, string, string) (bool, error) {
	return false, errUnused
}
func (s *pebbleStore) GroupMembership(context.Context, string) ([]bulk.Member, error) {
	return nil, errUnused
}
func (s *pebbleStore) Tombstones(context.Context, string, bulk.Range, func(bulk.Tombstone) error) error {
	return nil // nothing deleted
}
func (s *pebbleStore) List(context.Context, string, string, bulk.Visit) error { return errUnused }
func (s *pebbleStore) Delete(context.Context, bulk.Ref, time.Time) error      { return errUnused }
func (s *pebbleStore) TypeOf(context.Context, string) ([]string, error)       { return nil, nil }

var _ bulk.ResourceStore = (*pebbleStore)(nil)
