package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"strings"
	"sync"
	"time"

	"go.etcd.io/bbolt"

	"github.com/tranchehq/tranche/internal/bulk"
)

var _ bulk.ResourceStore = (*ResourceStore)(nil)

// ResourceStore is the bulk.ResourceStore in a DB file.
//
// Reads go in chunks: a read transaction copies up to chunkItems entries (or
// chunkBytes) into a buffer and closes before the first visit, and the next
// chunk resumes after the last key. So a slow visit (an upload) never holds a
// transaction that would keep old pages alive or stall a writer that has to
// grow the file, and a visit may itself write to the DB (record progress)
// without deadlocking on bbolt's locks. The price is one memcpy per body:
// BenchmarkScan still reads 2.7 M one-kilobyte resources/s on one core. A
// read is therefore
// not a snapshot: a resource replaced during a scan with a later lastUpdated
// can be visited again at its new position, which an export never sees
// because its range ends at the job's transaction time.
type ResourceStore struct {
	db *DB
}

// Chunk limits: enough items that a transaction's cost (about a microsecond)
// vanishes, few enough bytes that the buffer stays small. The byte limit is
// what binds on a large store: at 4 MB, a 1M-resource store filled chunks of
// 1024 ExplanationOfBenefits (3.6 KB each), one per concurrent scan plus the
// pooled ones, for a live heap of 12 MB against 7 MB at 100k, where a
// shard's range holds fewer. Variables so tests can force many chunks.
var (
	chunkItems = 1024
	chunkBytes = 1 << 20
)

// Per-type buckets.
func resourcesBucket(typ string) []byte  { return []byte("r:" + typ) }
func indexBucket(typ string) []byte      { return []byte("i:" + typ) }
func tombstonesBucket(typ string) []byte { return []byte("t:" + typ) }

// Shards returns the number of shards stored in the file.
func (s *ResourceStore) Shards() int { return s.db.shards }

// Count returns the number of live resources per type, kept up to date in the
// same transaction as every Put and Delete. Types with none are left out.
func (s *ResourceStore) Count(ctx context.Context) (_ map[string]int64, err error) {
	defer bulk.Wrap(&err, "bolt.ResourceStore.Count")
	counts := make(map[string]int64)
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCounts).ForEach(func(k, v []byte) error {
			if n := int64(binary.BigEndian.Uint64(v)); n != 0 {
				counts[string(k)] = n
			}
			return nil
		})
	})
	return counts, err
}

// Scan visits the resources of req.Type in req.Shard in (lastUpdated, id)
// order after req.Cursor: one range of r:<type> keys. The cursor is
// "<lastUpdated UnixNano>/<id>". The visit's Body points into a buffer that
// the next chunk overwrites.
func (s *ResourceStore) Scan(ctx context.Context, req bulk.ScanRequest, fn bulk.Visit) (err error) {
	defer wrapRead(&err, "bolt.ResourceStore.Scan(%s, shard %d)", req.Type, req.Shard)
	if req.Shard < 0 || req.Shard >= s.db.shards {
		return bulk.Errorf(bulk.EINVALID, "Shard %d is out of range [0, %d).", req.Shard, s.db.shards)
	}
	lo, hi, ok := nanosRange(req.Range)
	if !ok {
		return nil
	}
	shard := byte(req.Shard)
	start := appendResourceKey(nil, req.Shard, lo, "")
	var skip []byte // a key to pass over: the one the cursor names
	if req.Cursor != "" {
		nanos, id, err := parseCursor(req.Cursor)
		if err != nil {
			return err
		}
		if k := appendResourceKey(nil, req.Shard, nanos, id); bytes.Compare(k, start) >= 0 {
			start, skip = k, k
		}
	}
	name := resourcesBucket(req.Type)
	c := getChunk()
	defer putChunk(c)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.reset()
		var more bool
		err := s.db.bolt.View(func(tx *bbolt.Tx) error {
			b := tx.Bucket(name)
			if b == nil {
				return nil
			}
			c.m.begin()
			defer s.db.charge(tx, &c.m)
			cur := b.Cursor()
			for k, v := cur.Seek(start); k != nil; k, v = cur.Next() {
				c.items++
				if c.m.touch(0, v); c.m.pending >= chargeEvery {
					s.db.charge(tx, &c.m)
				}
				if len(k) <= resourceKeyLen || k[0] != shard {
					return nil
				}
				nanos := readTime(k[1:resourceKeyLen])
				switch {
				case nanos > hi:
					return nil
				case skip != nil && bytes.Equal(k, skip),
					req.CompartmentOnly && !inCompartment(v):
					continue
				case c.full():
					start, skip, more = slices.Clone(k), nil, true
					return nil
				}
				c.add(req.Type, nanos, k[resourceKeyLen:], v)
			}
			return nil
		})
		s.db.stats.add(c.items, int64(len(c.ents)), c.bodyBytes())
		if err != nil {
			return err
		}
		if err := c.visit(ctx, true, fn); err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

// Compartment visits the resources of types (all when empty) in patientID's
// compartment, in (type, id) order: a prefix of the pc index, and for each
// entry one lookup of the body.
func (s *ResourceStore) Compartment(ctx context.Context, patientID string, types []string, fn bulk.Visit) (err error) {
	defer wrapRead(&err, "bolt.ResourceStore.Compartment(%s)", patientID)
	var prefixes [][]byte
	if len(types) == 0 {
		prefixes = [][]byte{[]byte(patientID + "\x00")}
	} else {
		types = slices.Clone(types)
		slices.Sort(types)
		for _, t := range slices.Compact(types) {
			prefixes = append(prefixes, []byte(patientID+"\x00"+t+"\x00"))
		}
	}
	c := getChunk()
	defer putChunk(c)
	for _, prefix := range prefixes {
		start := prefix
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			c.reset()
			var more bool
			err := s.db.bolt.View(func(tx *bbolt.Tx) error {
				var (
					typ     string
					buckets = make(map[string]*bbolt.Bucket)
					key     []byte
				)
				c.m.begin()
				defer s.db.charge(tx, &c.m)
				cur := tx.Bucket(bucketPC).Cursor()
				for k, v := cur.Seek(start); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
					c.items++
					if c.m.touch(0, k); c.m.pending >= chargeEvery {
						s.db.charge(tx, &c.m)
					}
					if c.full() {
						start, more = slices.Clone(k), true
						return nil
					}
					rest := k[len(patientID)+1:]
					i := bytes.IndexByte(rest, 0)
					if i < 0 || len(v) != 8 {
						return errCorrupt("bad compartment entry")
					}
					if typ != string(rest[:i]) {
						typ = string(rest[:i])
					}
					id := rest[i+1:]
					b, ok := buckets[typ]
					if !ok {
						b = tx.Bucket(resourcesBucket(typ))
						buckets[typ] = b
					}
					var err error
					if key, err = s.addBody(c, b, key, typ, readTime(v), id, "compartment"); err != nil {
						return err
					}
				}
				return nil
			})
			s.db.stats.add(c.items, int64(len(c.ents)), c.bodyBytes())
			if err != nil {
				return err
			}
			if err := c.visit(ctx, false, fn); err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	return nil
}

// Get returns a copy of one resource. Returns ENOTFOUND if it does not exist
// or was deleted.
func (s *ResourceStore) Get(ctx context.Context, typ, id string) (_ *bulk.Resource, err error) {
	defer bulk.Wrap(&err, "bolt.ResourceStore.Get(%s, %s)", typ, id)
	var (
		rec   []byte
		nanos int64
	)
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		v, items, err := getLive(tx, typ, id, s.db.shards)
		if err != nil {
			s.db.stats.add(items, 0, 0)
			return err
		}
		s.db.stats.add(items, 1, int64(len(v.value)))
		nanos = v.nanos
		rec = append([]byte(id), v.value...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	r := new(bulk.Resource)
	if err := decodeResource(r, typ, nanos, rec, len(id)); err != nil {
		return nil, err
	}
	return r, nil
}

// stored is a live resource's stored value, valid during its transaction.
type stored struct {
	nanos int64
	value []byte
}

// getLive looks a live resource up through i:<type>, returning how many
// entries it read. Returns ENOTFOUND if there is none.
func getLive(tx *bbolt.Tx, typ, id string, shards int) (stored, int64, error) {
	notFound := bulk.Errorf(bulk.ENOTFOUND, "%s/%s not found.", typ, id)
	ib := tx.Bucket(indexBucket(typ))
	if ib == nil || id == "" {
		return stored{}, 0, notFound
	}
	iv := ib.Get([]byte(id))
	if len(iv) != 9 || iv[0] != stateLive {
		return stored{}, 1, notFound
	}
	nanos := readTime(iv[1:])
	var v []byte
	if rb := tx.Bucket(resourcesBucket(typ)); rb != nil {
		v = rb.Get(appendResourceKey(nil, shardOf(id, shards), nanos, id))
	}
	if v == nil {
		return stored{}, 2, errCorrupt("index entry without resource " + typ + "/" + id)
	}
	return stored{nanos, v}, 2, nil
}

// GroupMembers returns the members of a Group, from the header of its stored
// value. Returns ENOTFOUND if the Group does not exist.
func (s *ResourceStore) GroupMembers(ctx context.Context, groupID string) (_ []string, err error) {
	defer bulk.Wrap(&err, "bolt.ResourceStore.GroupMembers(%s)", groupID)
	var members []string
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		v, items, err := getLive(tx, "Group", groupID, s.db.shards)
		s.db.stats.add(items, 0, 0)
		if err != nil {
			return err
		}
		members = []string{}
		_, err = walkHeader(v.value, func(member bool, start, end int) {
			if member {
				members = append(members, string(v.value[start:end]))
			}
		})
		return err
	})
	return members, err
}

// IsGroupMember reports whether patientID is a member of the Group: one
// lookup in the gm index. It is false for an unknown Group.
func (s *ResourceStore) IsGroupMember(ctx context.Context, groupID, patientID string) (ok bool, err error) {
	defer bulk.Wrap(&err, "bolt.ResourceStore.IsGroupMember(%s, %s)", groupID, patientID)
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		// Seek, not Get: Get cannot tell an empty value from a missing key.
		key := []byte(groupID + "\x00" + patientID)
		k, _ := tx.Bucket(bucketGM).Cursor().Seek(key)
		ok = bytes.Equal(k, key)
		return nil
	})
	s.db.stats.add(1, 0, 0)
	return ok, err
}

// GroupMembership returns the members of a Group with when each joined, from
// the gm index (in id order). A member recorded by a file written before
// join times were kept has a zero Since. Returns ENOTFOUND if the Group does
// not exist.
func (s *ResourceStore) GroupMembership(ctx context.Context, groupID string) (_ []bulk.Member, err error) {
	defer bulk.Wrap(&err, "bolt.ResourceStore.GroupMembership(%s)", groupID)
	var members []bulk.Member
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		_, items, err := getLive(tx, "Group", groupID, s.db.shards)
		s.db.stats.add(items, 0, 0)
		if err != nil {
			return err
		}
		members = []bulk.Member{}
		prefix := []byte(groupID + "\x00")
		var mt meter
		defer s.db.charge(tx, &mt)
		cur := tx.Bucket(bucketGM).Cursor()
		for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
			mt.touch(0, k)
			m := bulk.Member{ID: string(k[len(prefix):])}
			if len(v) == 8 {
				m.Since = time.Unix(0, readTime(v)).UTC()
			}
			members = append(members, m)
		}
		s.db.stats.add(int64(len(members)), 0, 0)
		return nil
	})
	return members, err
}

// Tombstones visits the deletions of typ in rng in (deletedAt, id) order: a
// range of t:<type> keys, whose values are the deleted versions' patients.
func (s *ResourceStore) Tombstones(ctx context.Context, typ string, rng bulk.Range, fn func(bulk.Tombstone) error) (err error) {
	defer wrapRead(&err, "bolt.ResourceStore.Tombstones(%s)", typ)
	lo, hi, ok := nanosRange(rng)
	if !ok {
		return nil
	}
	name := tombstonesBucket(typ)
	start := appendTime(nil, lo)
	var ts []bulk.Tombstone
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		ts = ts[:0]
		var more bool
		err := s.db.bolt.View(func(tx *bbolt.Tx) error {
			b := tx.Bucket(name)
			if b == nil {
				return nil
			}
			var m meter
			defer s.db.charge(tx, &m)
			cur := b.Cursor()
			for k, v := cur.Seek(start); k != nil; k, v = cur.Next() {
				m.touch(0, k)
				m.touch(0, v)
				if len(k) <= 8 {
					return errCorrupt("bad tombstone key")
				}
				nanos := readTime(k[:8])
				if nanos > hi {
					return nil
				}
				if len(ts) == chunkItems {
					start, more = slices.Clone(k), true
					return nil
				}
				patients, err := readPatients(v)
				if err != nil {
					return err
				}
				ts = append(ts, bulk.Tombstone{Type: typ, ID: string(k[8:]), DeletedAt: time.Unix(0, nanos).UTC(), Patients: patients})
			}
			return nil
		})
		s.db.stats.add(int64(len(ts)), 0, 0)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := fn(t); err != nil {
				return visitError{err}
			}
		}
		if !more {
			return nil
		}
	}
}

// List visits the live resources of typ in id order after afterID, through
// i:<type>. The visit's cursor is the resource's id: pass it as afterID to
// resume.
func (s *ResourceStore) List(ctx context.Context, typ string, afterID string, fn bulk.Visit) (err error) {
	defer wrapRead(&err, "bolt.ResourceStore.List(%s, %q)", typ, afterID)
	start, skip := []byte(afterID), []byte(afterID)
	c := getChunk()
	defer putChunk(c)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.reset()
		var more bool
		err := s.db.bolt.View(func(tx *bbolt.Tx) error {
			ib, rb := tx.Bucket(indexBucket(typ)), tx.Bucket(resourcesBucket(typ))
			if ib == nil || rb == nil {
				return nil
			}
			var key []byte
			c.m.begin()
			defer s.db.charge(tx, &c.m)
			cur := ib.Cursor()
			for k, v := cur.Seek(start); k != nil; k, v = cur.Next() {
				c.items++
				if c.m.touch(0, k); c.m.pending >= chargeEvery {
					s.db.charge(tx, &c.m)
				}
				if bytes.Equal(k, skip) || v[0] != stateLive {
					continue
				}
				if c.full() {
					start, skip, more = slices.Clone(k), nil, true
					return nil
				}
				var err error
				if key, err = s.addBody(c, rb, key, typ, readTime(v[1:]), k, "index"); err != nil {
					return err
				}
			}
			return nil
		})
		s.db.stats.add(c.items, int64(len(c.ents)), c.bodyBytes())
		if err != nil {
			return err
		}
		if err := c.visitList(ctx, fn); err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
}

// Put stores rs, replacing earlier versions with their index entries and
// clearing tombstones, and leaves a live version with the same content as
// it is (bulk.ResourceSink). Returns EINVALID, storing nothing, if a
// resource cannot be stored. Later resources in rs win over earlier ones
// with the same type and id.
//
// A large rs is stored in several write transactions, each ending once it
// has modified maxDirtyNodes B+tree nodes (see there); a failing
// transaction leaves the earlier ones stored, with their Outcome set.
func (s *ResourceStore) Put(ctx context.Context, rs []*bulk.Resource) (err error) {
	defer bulk.Wrap(&err, "bolt.ResourceStore.Put(%d resources)", len(rs))
	size := 0
	for _, r := range rs {
		if err := checkResource(r); err != nil {
			return err
		}
		size += valueLen(r) + 9 + 8*len(r.Patients)
	}
	for len(rs) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := s.put(rs, size)
		if err != nil {
			return err
		}
		rs = rs[n:]
	}
	return nil
}

// put stores rs[:n] in one write transaction: as many resources as fit in
// maxDirtyNodes modified nodes, and at least one. size is the value bytes
// rs needs.
func (s *ResourceStore) put(rs []*bulk.Resource, size int) (n int, err error) {
	// Inserting reads the tree through the mapping too: update charges
	// the pages written, or an import would keep the whole store resident.
	// Within the transaction the mapping's resident part grows by a
	// fault-around window per modified node (read when modified, and again
	// by the commit, which frees its old page): maxDirtyNodes bounds that
	// too. Releasing the mapping during the transaction does not help
	// (the commit faults the same windows back in) and slowed a 1M import
	// by a third.
	outcomes := make([]bulk.PutOutcome, 0, len(rs))
	err = s.db.update(func(tx *bbolt.Tx) error {
		n, outcomes = 0, outcomes[:0]
		w := newWriter(tx, s.db.shards, min(size, maxArena))
		for _, r := range rs {
			o, err := w.put(r)
			if err != nil {
				return err
			}
			outcomes = append(outcomes, o)
			n++
			if nodeCount(tx) >= maxDirtyNodes {
				break
			}
		}
		if err := w.saveCounts(); err != nil {
			return err
		}
		if putTx != nil {
			putTx(n, nodeCount(tx))
		}
		return nil
	})
	if err == nil {
		// Committed: only now are the outcomes true.
		for i, o := range outcomes {
			rs[i].SetOutcome(o)
		}
	}
	return n, err
}

// maxDirtyNodes bounds the B+tree nodes one write transaction of Put
// modifies. bbolt keeps every modified node in memory until the commit,
// which then copies each into a page buffer of its own: a node costs about
// 16 KB (the page) plus its decoded entries. With random keys almost every
// insert into a large tree modifies a leaf of its own, so a 10,000-resource
// batch (3 to 4 keys each) modified 12,000 nodes at 1M stored resources,
// 300 MB of Go heap, and would modify more the larger the store: this
// bounds it whatever the batch, and with it the mapped pages a transaction
// makes resident (64 KB each, see put). Smaller transactions cost more
// commits, each rewriting the index leaves that a larger one would have
// shared (docs/benchmarks.md): 8192 kept a 1M import's time and made a 3M
// import 12-16% slower with a third less peak RSS; 4096 cut the 1M peak
// by a further 0.35 GB but made that import a quarter slower.
var maxDirtyNodes int64 = 8192

// putTx, when set (by tests), is told of each write transaction of Put:
// how many resources it stored and how many nodes it modified.
var putTx func(resources int, nodes int64)

// maxArena bounds the value arena a transaction starts with; it grows by
// 64 KB chunks beyond.
const maxArena = 8 << 20

// nodeCount is the number of nodes tx has materialized: the nodes it
// modified and the branches above them.
func nodeCount(tx *bbolt.Tx) int64 {
	st := tx.Stats()
	return st.GetNodeCount()
}

// Delete removes a resource with its index entries and records a tombstone at
// at with the deleted version's patients, replacing an earlier tombstone of
// it (whose patients it keeps when the resource is not live).
func (s *ResourceStore) Delete(ctx context.Context, ref bulk.Ref, at time.Time) (err error) {
	defer bulk.Wrap(&err, "bolt.ResourceStore.Delete(%s/%s)", ref.Type, ref.ID)
	if err := checkRef(ref.Type, ref.ID); err != nil {
		return err
	}
	if !at.After(minTime) || at.After(maxTime) {
		return bulk.Errorf(bulk.EINVALID, "Deletion time %v is out of range.", at)
	}
	return s.db.update(func(tx *bbolt.Tx) error {
		w := newWriter(tx, s.db.shards, 64)
		if err := w.delete(ref, at.UnixNano()); err != nil {
			return err
		}
		return w.saveCounts()
	})
}

// TypeOf returns the types under which id is stored, in byte order: one
// lookup in the i:<type> bucket of each type that has resources. An index
// from id to types would make this one seek, but it costs a random insert
// per imported resource (28% of a 1M-resource import) for a call the
// importer makes only for the few references it could not resolve itself.
func (s *ResourceStore) TypeOf(ctx context.Context, id string) (types []string, err error) {
	defer bulk.Wrap(&err, "bolt.ResourceStore.TypeOf(%s)", id)
	var items int64
	err = s.db.bolt.View(func(tx *bbolt.Tx) error {
		return tx.Bucket(bucketCounts).ForEach(func(typ, n []byte) error {
			if binary.BigEndian.Uint64(n) == 0 {
				return nil
			}
			items++
			if ib := tx.Bucket(indexBucket(string(typ))); ib != nil {
				if v := ib.Get([]byte(id)); len(v) == 9 && v[0] == stateLive {
					types = append(types, string(typ))
				}
			}
			return nil
		})
	})
	s.db.stats.add(items, 0, 0)
	return types, err
}

// checkRef returns EINVALID unless typ and id can be keys: non-empty, with no
// NUL (the index separator).
func checkRef(typ, id string) error {
	switch {
	case typ == "" || id == "":
		return bulk.Errorf(bulk.EINVALID, "A resource needs a type and an id.")
	case strings.IndexByte(typ, 0) >= 0 || strings.IndexByte(id, 0) >= 0:
		return bulk.Errorf(bulk.EINVALID, "Resource type and id must not contain NUL.")
	case len(typ)+len(id) > 1024:
		return bulk.Errorf(bulk.EINVALID, "Resource type and id are too long.")
	}
	return nil
}

func checkResource(r *bulk.Resource) error {
	if err := checkRef(r.Type, r.ID); err != nil {
		return err
	}
	if !r.LastUpdated.After(minTime) || r.LastUpdated.After(maxTime) {
		return bulk.Errorf(bulk.EINVALID, "%s/%s: lastUpdated %v is out of range.", r.Type, r.ID, r.LastUpdated)
	}
	for _, ids := range [][]string{r.Patients, r.Members} {
		for _, id := range ids {
			if err := checkRef(r.Type, id); err != nil {
				return bulk.Errorf(bulk.EINVALID, "%s/%s: bad patient or member id %q.", r.Type, r.ID, id)
			}
		}
	}
	return nil
}

// visitError carries an error returned by the caller's visit, so it comes
// back unwrapped, as the contract says.
type visitError struct{ err error }

func (e visitError) Error() string { return e.err.Error() }

// wrapRead adds context to a read's own errors, returns the visit's as they
// are, and ErrStop as nil.
func wrapRead(errp *error, format string, args ...any) {
	var ve visitError
	if errors.As(*errp, &ve) {
		if *errp = ve.err; *errp == bulk.ErrStop {
			*errp = nil
		}
		return
	}
	bulk.Wrap(errp, format, args...)
}

// chunk holds entries copied out of one read transaction.
type chunk struct {
	buf   []byte
	ents  []entry
	items int64 // entries read, for Stats
	m     meter // the mapping the reads made resident
}

// entry is a record in chunk.buf: buf[start:idEnd] is the id and
// buf[idEnd:end] its stored value.
type entry struct {
	typ               string
	nanos             int64
	start, idEnd, end int
}

// chunks recycles chunk buffers: growing a fresh megabyte buffer for every
// shard scanned cost more than the scan's copying itself.
var chunks = sync.Pool{New: func() any { return new(chunk) }}

func getChunk() *chunk {
	c := chunks.Get().(*chunk)
	c.reset()
	return c
}

// putChunk recycles c unless a huge value (a Group of many members) grew it.
func putChunk(c *chunk) {
	if cap(c.buf) <= 2*chunkBytes {
		chunks.Put(c)
	}
}

func (c *chunk) reset() {
	c.buf, c.ents, c.items = c.buf[:0], c.ents[:0], 0
}

func (c *chunk) full() bool {
	return len(c.ents) >= chunkItems || len(c.buf) >= chunkBytes
}

func (c *chunk) add(typ string, nanos int64, id, value []byte) {
	start := len(c.buf)
	c.buf = append(c.buf, id...)
	idEnd := len(c.buf)
	c.buf = append(c.buf, value...)
	c.ents = append(c.ents, entry{typ, nanos, start, idEnd, len(c.buf)})
}

func (c *chunk) bodyBytes() int64 {
	var n int64
	for _, e := range c.ents {
		n += int64(e.end - e.idEnd)
	}
	return n
}

// visit decodes and visits the chunk's resources, with scan cursors when
// cursors is set. The visit's errors, ErrStop included, come back as
// visitError.
func (c *chunk) visit(ctx context.Context, cursors bool, fn bulk.Visit) error {
	return c.each(ctx, fn, func(r *bulk.Resource, e *entry) bulk.Cursor {
		if cursors {
			return cursorOf(e.nanos, r.ID)
		}
		return ""
	})
}

// visitList is visit with the id as the cursor.
func (c *chunk) visitList(ctx context.Context, fn bulk.Visit) error {
	return c.each(ctx, fn, func(r *bulk.Resource, _ *entry) bulk.Cursor { return bulk.Cursor(r.ID) })
}

func (c *chunk) each(ctx context.Context, fn bulk.Visit, cursor func(*bulk.Resource, *entry) bulk.Cursor) error {
	// One allocation for the chunk's Resources: the caller may keep them
	// (all but their Body), so they are never reused.
	rs := make([]bulk.Resource, len(c.ents))
	done := ctx.Done()
	for i := range c.ents {
		select {
		case <-done:
			return ctx.Err()
		default:
		}
		e, r := &c.ents[i], &rs[i]
		if err := decodeResource(r, e.typ, e.nanos, c.buf[e.start:e.end], e.idEnd-e.start); err != nil {
			return err
		}
		if err := fn(r, cursor(r, e)); err != nil {
			return visitError{err}
		}
	}
	return nil
}

// addBody reads the body an index entry points at (in bucket b, nil when
// the type has none) into c. key is a reusable buffer, returned grown.
func (s *ResourceStore) addBody(c *chunk, b *bbolt.Bucket, key []byte, typ string, nanos int64, id []byte, index string) ([]byte, error) {
	key = appendResourceKey(key[:0], shardOf(string(id), s.db.shards), nanos, string(id))
	var body []byte
	if b != nil {
		body = b.Get(key)
	}
	if body == nil {
		return key, errCorrupt(index + " entry without resource " + typ + "/" + string(id))
	}
	c.items++
	c.m.touch(1, body)
	c.add(typ, nanos, id, body)
	return key, nil
}
