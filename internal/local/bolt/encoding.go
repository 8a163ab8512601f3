package bolt

import (
	"encoding/binary"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tranchehq/tranche/internal/bulk"
)

// Stored times are UnixNano, so only times after minTime and up to maxTime
// can be stored: then a zero Range.Until, which clamps to minTime, holds
// nothing, as Range.Contains says.
var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// appendTime appends nanos as 8 bytes whose byte order is numeric order: the
// sign bit flipped, big-endian.
func appendTime(b []byte, nanos int64) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(nanos)^(1<<63))
}

func readTime(b []byte) int64 {
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63))
}

// clampNanos is t.UnixNano for times outside the storable range too.
func clampNanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// nanosRange returns the inclusive UnixNano bounds of rng, and false when it
// holds no storable time.
func nanosRange(rng bulk.Range) (lo, hi int64, ok bool) {
	lo, hi = math.MinInt64, clampNanos(rng.Until)
	if !rng.Since.IsZero() {
		since := clampNanos(rng.Since)
		if since == math.MaxInt64 {
			return 0, 0, false
		}
		lo = since + 1 // Since is exclusive
	}
	return lo, hi, lo <= hi
}

// shardOf is the shard of a resource in its type's r: bucket: bulk.ShardOf,
// the shard function of every ResourceStore.
func shardOf(id string, shards int) int { return bulk.ShardOf(id, shards) }

// appendResourceKey appends the r:<type> key: shard, lastUpdated, id.
func appendResourceKey(b []byte, shard int, nanos int64, id string) []byte {
	b = append(b, byte(shard))
	b = appendTime(b, nanos)
	return append(b, id...)
}

// resourceKeyLen is the length of a resource key before the id.
const resourceKeyLen = 1 + 8

// Index states in i:<type> values.
const (
	stateLive    = 'L'
	stateDeleted = 'D'
)

// valueLen is the size of the stored value of r: the header (patients and
// members, each a uvarint count followed by uvarint-length-prefixed ids) and
// the body.
func valueLen(r *bulk.Resource) int {
	n := len(r.Body) + 2*binary.MaxVarintLen32
	for _, ids := range [][]string{r.Patients, r.Members} {
		for _, id := range ids {
			n += binary.MaxVarintLen32 + len(id)
		}
	}
	return n
}

func appendValue(b []byte, r *bulk.Resource) []byte {
	for _, ids := range [][]string{r.Patients, r.Members} {
		b = binary.AppendUvarint(b, uint64(len(ids)))
		for _, id := range ids {
			b = binary.AppendUvarint(b, uint64(len(id)))
			b = append(b, id...)
		}
	}
	return append(b, r.Body...)
}

// patientsLen returns the length of the patient list that starts a stored
// value's header: the encoding a tombstone keeps of the deleted version's
// patients.
func patientsLen(v []byte) (int, error) {
	n, off := binary.Uvarint(v)
	if off <= 0 {
		return 0, errCorrupt("bad value header")
	}
	for range n {
		l, k := binary.Uvarint(v[off:])
		if k <= 0 || uint64(len(v)-off-k) < l {
			return 0, errCorrupt("bad value header")
		}
		off += k + int(l)
	}
	return off, nil
}

// readPatients decodes a tombstone's value, a patient list as in a value
// header; an empty value (a tombstone written before tombstones recorded
// patients) and an empty list both give nil.
func readPatients(v []byte) ([]string, error) {
	if len(v) == 0 {
		return nil, nil
	}
	n, off := binary.Uvarint(v)
	if off <= 0 || n > uint64(len(v)) {
		return nil, errCorrupt("bad tombstone value")
	}
	if n == 0 {
		return nil, nil
	}
	str := string(v) // one allocation for every id
	ids := make([]string, 0, n)
	for range n {
		l, k := binary.Uvarint(v[off:])
		if k <= 0 || uint64(len(v)-off-k) < l {
			return nil, errCorrupt("bad tombstone value")
		}
		off += k
		ids = append(ids, str[off:off+int(l)])
		off += int(l)
	}
	return ids, nil
}

// inCompartment reports whether a stored value lists any patient: a zero
// patient count is the single byte 0.
func inCompartment(v []byte) bool { return len(v) > 0 && v[0] != 0 }

// walkHeader calls fn with the offsets in v of each patient and member id in
// a stored value's header, and returns the header length.
func walkHeader(v []byte, fn func(member bool, start, end int)) (int, error) {
	off := 0
	for list := range 2 {
		n, k := binary.Uvarint(v[off:])
		if k <= 0 {
			return 0, errCorrupt("bad value header")
		}
		off += k
		for range n {
			l, k := binary.Uvarint(v[off:])
			if k <= 0 || uint64(len(v)-off-k) < l {
				return 0, errCorrupt("bad value header")
			}
			off += k
			if fn != nil {
				fn(list == 1, off, off+int(l))
			}
			off += int(l)
		}
	}
	return off, nil
}

// decodeResource fills r from rec, a stored id followed by its stored value.
// r.Body aliases rec; the id, patients and members share one new string, so
// they stay valid when rec is reused.
func decodeResource(r *bulk.Resource, typ string, nanos int64, rec []byte, idLen int) error {
	np, nm := 0, 0
	hdrLen, err := walkHeader(rec[idLen:], func(member bool, _, _ int) {
		if member {
			nm++
		} else {
			np++
		}
	})
	if err != nil {
		return err
	}
	str := string(rec[:idLen+hdrLen])
	*r = bulk.Resource{
		Type:        typ,
		ID:          str[:idLen],
		LastUpdated: time.Unix(0, nanos).UTC(),
		Body:        rec[idLen+hdrLen:],
	}
	if np > 0 {
		r.Patients = make([]string, 0, np)
	}
	if nm > 0 {
		r.Members = make([]string, 0, nm)
	}
	walkHeader(rec[idLen:], func(member bool, start, end int) {
		id := str[idLen+start : idLen+end]
		if member {
			r.Members = append(r.Members, id)
		} else {
			r.Patients = append(r.Patients, id)
		}
	})
	return nil
}

// cursorOf is the scan cursor that resumes after a resource:
// "<lastUpdated UnixNano>/<id>".
func cursorOf(nanos int64, id string) bulk.Cursor {
	var b [20]byte
	return bulk.Cursor(string(strconv.AppendInt(b[:0], nanos, 10)) + "/" + id)
}

func parseCursor(c bulk.Cursor) (int64, string, error) {
	nanos, id, ok := strings.Cut(string(c), "/")
	n, err := strconv.ParseInt(nanos, 10, 64)
	if !ok || err != nil || id == "" {
		return 0, "", bulk.Errorf(bulk.EINVALID, "Invalid scan cursor %q.", c)
	}
	return n, id, nil
}

func errCorrupt(what string) error {
	return bulk.Errorf(bulk.EINTERNAL, "The data file is corrupt: %s.", what)
}
