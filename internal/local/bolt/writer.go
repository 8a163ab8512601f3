package bolt

import (
	"bytes"
	"encoding/binary"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/tranchehq/tranche/internal/bulk"
)

// empty is the value of index entries whose key says it all. The gm entries
// (group 0x00 patient) hold when the member joined instead: 8 bytes, the
// time encoding of the r:<type> keys; files written before join times were
// kept have empty gm values, read as an unknown (zero) time.
var empty = []byte{}

// appendFill is how full the splits of time-keyed buckets leave pages.
const appendFill = 1.0

// writer applies Puts and Deletes inside one write transaction.
type writer struct {
	tx             *bbolt.Tx
	shards         int
	pc, gm, counts *bbolt.Bucket
	types          map[string]*typeBuckets
	key            []byte // reused: bbolt copies keys
	hdr            []byte // reused by sameVersion
	arena          []byte // values: bbolt keeps them until commit
}

// typeBuckets are one type's buckets and the change of its count.
type typeBuckets struct {
	r, i, t *bbolt.Bucket
	delta   int64
}

// newWriter returns a writer whose value arena starts at size bytes.
func newWriter(tx *bbolt.Tx, shards, size int) *writer {
	return &writer{
		tx:     tx,
		shards: shards,
		pc:     tx.Bucket(bucketPC),
		gm:     tx.Bucket(bucketGM),
		counts: tx.Bucket(bucketCounts),
		types:  make(map[string]*typeBuckets),
		arena:  make([]byte, 0, size),
	}
}

// alloc returns n bytes that stay untouched until the transaction ends, as
// bbolt requires of values: carving them from an arena makes one allocation
// per batch instead of several per resource.
func (w *writer) alloc(n int) []byte {
	if cap(w.arena)-len(w.arena) < n {
		w.arena = make([]byte, 0, max(n, 64<<10))
	}
	b := w.arena[len(w.arena) : len(w.arena)+n : len(w.arena)+n]
	w.arena = w.arena[:len(w.arena)+n]
	return b
}

func (w *writer) buckets(typ string) (*typeBuckets, error) {
	if tb, ok := w.types[typ]; ok {
		return tb, nil
	}
	var (
		tb  typeBuckets
		err error
	)
	if tb.r, err = w.tx.CreateBucketIfNotExists(resourcesBucket(typ)); err != nil {
		return nil, err
	}
	if tb.i, err = w.tx.CreateBucketIfNotExists(indexBucket(typ)); err != nil {
		return nil, err
	}
	if tb.t, err = w.tx.CreateBucketIfNotExists(tombstonesBucket(typ)); err != nil {
		return nil, err
	}
	// The r: and t: keys start with the time the store's clock stamps, so
	// a write appends to each shard's end: bbolt's default split leaves
	// every appended-to page half empty, doubling the file and the pages an
	// import writes and an export reads (a 1M import: 3.1 GB, 1.7 GB full).
	// Random times (kept lastUpdated) only split pages a little more often.
	tb.r.FillPercent, tb.t.FillPercent = appendFill, appendFill
	w.types[typ] = &tb
	return &tb, nil
}

// put stores r unless its live version is the same (bulk.ResourceSink.Put):
// that is told from the stored value that replacing reads anyway.
func (w *writer) put(r *bulk.Resource) (bulk.PutOutcome, error) {
	tb, err := w.buckets(r.Type)
	if err != nil {
		return 0, err
	}
	shard := shardOf(r.ID, w.shards)
	nanos := r.LastUpdated.UnixNano()
	outcome := bulk.PutNew
	var joined map[string][]byte // a live Group's members → when they joined
	switch old := tb.i.Get([]byte(r.ID)); {
	case len(old) == 9 && old[0] == stateLive:
		rk := appendResourceKey(nil, shard, readTime(old[1:]), r.ID)
		v := tb.r.Get(rk)
		if v == nil {
			return 0, errCorrupt("index entry without resource " + r.Type + "/" + r.ID)
		}
		same, err := w.sameVersion(v, r)
		if err != nil || same {
			return bulk.PutUnchanged, err
		}
		outcome = bulk.PutReplaced
		if r.Type == "Group" {
			joined = w.memberSince(r.ID)
		}
		if err := w.unindexValue(tb, r.Type, r.ID, rk, v); err != nil {
			return 0, err
		}
	case len(old) == 9 && old[0] == stateDeleted:
		if err := tb.t.Delete(w.tombstoneKey(readTime(old[1:]), r.ID)); err != nil {
			return 0, err
		}
		fallthrough
	default:
		tb.delta++
	}

	v := appendValue(w.alloc(valueLen(r))[:0], r)
	w.key = appendResourceKey(w.key[:0], shard, nanos, r.ID)
	if err := tb.r.Put(w.key, v); err != nil {
		return 0, err
	}
	if err := tb.i.Put([]byte(r.ID), w.indexValue(stateLive, nanos)); err != nil {
		return 0, err
	}
	ts := appendTime(w.alloc(8)[:0], nanos)
	for _, p := range r.Patients {
		if err := w.pc.Put(w.compartmentKey(p, r.Type, r.ID), ts); err != nil {
			return 0, err
		}
	}
	if r.Type == "Group" {
		for m, since := range bulk.JoinTimes(r.Members, joined, ts) {
			if err := w.gm.Put(w.memberKey(r.ID, m), since); err != nil {
				return 0, err
			}
		}
	}
	return outcome, nil
}

// sameVersion reports whether the stored value v holds r's Patients,
// Members and content: its header is the one appendValue would write.
func (w *writer) sameVersion(v []byte, r *bulk.Resource) (bool, error) {
	hdr, err := walkHeader(v, nil)
	if err != nil {
		return false, err
	}
	w.hdr = appendValue(w.hdr[:0], &bulk.Resource{Patients: r.Patients, Members: r.Members})
	return bytes.Equal(v[:hdr], w.hdr) && bulk.SameContent(v[hdr:], r.Body), nil
}

// memberSince reads the gm entries of a stored Group: member → when it
// joined (8 bytes, or empty in files written before join times were kept).
func (w *writer) memberSince(group string) map[string][]byte {
	out := make(map[string][]byte)
	prefix := append([]byte(group), 0)
	cur := w.gm.Cursor()
	for k, v := cur.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = cur.Next() {
		out[string(k[len(prefix):])] = slices.Clone(v) // unindex deletes these entries

	}
	return out
}

func (w *writer) delete(ref bulk.Ref, nanos int64) error {
	tb, err := w.buckets(ref.Type)
	if err != nil {
		return err
	}
	// The tombstone's value is the patient list of the deleted version's
	// header, or the earlier tombstone's value when deleted again.
	patients := empty
	switch old := tb.i.Get([]byte(ref.ID)); {
	case len(old) == 9 && old[0] == stateLive:
		shard, lu := shardOf(ref.ID, w.shards), readTime(old[1:])
		if v := tb.r.Get(appendResourceKey(nil, shard, lu, ref.ID)); v != nil {
			n, err := patientsLen(v)
			if err != nil {
				return err
			}
			patients = append(w.alloc(n)[:0], v[:n]...)
		}
		if err := w.unindex(tb, ref.Type, ref.ID, shard, lu); err != nil {
			return err
		}
		tb.delta--
	case len(old) == 9 && old[0] == stateDeleted:
		tk := w.tombstoneKey(readTime(old[1:]), ref.ID)
		if v := tb.t.Get(tk); len(v) > 0 {
			patients = append(w.alloc(len(v))[:0], v...)
		}
		if err := tb.t.Delete(tk); err != nil {
			return err
		}
	}
	if err := tb.t.Put(w.tombstoneKey(nanos, ref.ID), patients); err != nil {
		return err
	}
	return tb.i.Put([]byte(ref.ID), w.indexValue(stateDeleted, nanos))
}

// unindex removes a live resource's body and its compartment and membership
// entries, which its stored header lists.
func (w *writer) unindex(tb *typeBuckets, typ, id string, shard int, nanos int64) error {
	rk := appendResourceKey(nil, shard, nanos, id)
	v := tb.r.Get(rk)
	if v == nil {
		return errCorrupt("index entry without resource " + typ + "/" + id)
	}
	return w.unindexValue(tb, typ, id, rk, v)
}

// unindexValue is unindex with the value v at rk read already.
func (w *writer) unindexValue(tb *typeBuckets, typ, id string, rk, v []byte) error {
	var err error
	_, herr := walkHeader(v, func(member bool, start, end int) {
		if err != nil {
			return
		}
		ref := string(v[start:end])
		if !member {
			err = w.pc.Delete(w.compartmentKey(ref, typ, id))
		} else if typ == "Group" {
			err = w.gm.Delete(w.memberKey(id, ref))
		}
	})
	if herr != nil {
		return herr
	}
	if err != nil {
		return err
	}
	return tb.r.Delete(rk)
}

// saveCounts adds the types' count changes to the counts bucket.
func (w *writer) saveCounts() error {
	for typ, tb := range w.types {
		if tb.delta == 0 {
			continue
		}
		var n int64
		if v := w.counts.Get([]byte(typ)); len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		if err := w.counts.Put([]byte(typ), binary.BigEndian.AppendUint64(w.alloc(8)[:0], uint64(n+tb.delta))); err != nil {
			return err
		}
	}
	return nil
}

func (w *writer) indexValue(state byte, nanos int64) []byte {
	v := w.alloc(9)
	v[0] = state
	appendTime(v[1:1], nanos)
	return v
}

// The key builders reuse w.key: each key is used by one call before the next
// is built.

func (w *writer) tombstoneKey(nanos int64, id string) []byte {
	w.key = append(appendTime(w.key[:0], nanos), id...)
	return w.key
}

func (w *writer) compartmentKey(patient, typ, id string) []byte {
	w.key = append(append(append(append(append(w.key[:0], patient...), 0), typ...), 0), id...)
	return w.key
}

func (w *writer) memberKey(group, patient string) []byte {
	w.key = append(append(append(w.key[:0], group...), 0), patient...)
	return w.key
}
